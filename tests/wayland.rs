//! The window as a native Wayland client, not through XWayland: under sway's headless backend
//! (wlroots with its pixman renderer; no X server anywhere), `ecsrdp direct` opens its window,
//! a screenshot (grim) shows the server's pixels exactly where sway placed it, a key typed
//! into it reaches the server, a resize and a scale factor of 2 leave every pixel right, and
//! closing it ends ecsrdp cleanly.
//!
//! Why sway and not Weston: Weston 10's headless backend shows every winit + softbuffer
//! window white, ecsrdp's and a 30-line example's alike, while its own shm clients draw; sway
//! draws the same buffers as they are. Sway will not run as root, so as root the test runs it
//! as `nobody`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::rdp_server::{InputEvent, Security, TestServer, TestServerOptions};
use support::{read_png, Daemon};

/// A headless sway of its own, in a runtime directory of its own.
struct Sway {
    runtime: tempfile::TempDir,
    display: String,
    ipc: PathBuf,
    _server: Daemon,
}

impl Sway {
    fn start() -> Sway {
        let runtime = tempfile::tempdir().unwrap();
        let config = runtime.path().join("config");
        std::fs::write(
            &config,
            "output HEADLESS-1 resolution 1600x1200\n\
             for_window [title=\"^ecsrdp\"] floating enable, border none\n",
        )
        .unwrap();
        let mut command = if support::is_root() {
            // The runtime directory is sway's; root (ecsrdp, grim, swaymsg) reaches it anyway.
            let status = Command::new("chown")
                .args(["-R", "nobody"])
                .arg(runtime.path())
                .status()
                .expect("chown");
            assert!(status.success());
            let mut command = Command::new("setpriv");
            command.args(["--reuid=65534", "--regid=65534", "--clear-groups", "sway"]);
            command
        } else {
            Command::new("sway")
        };
        command
            .arg("-c")
            .arg(&config)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("HOME", runtime.path())
            .env("WLR_BACKENDS", "headless")
            .env("WLR_RENDERER", "pixman")
            .env("WLR_LIBINPUT_NO_DEVICES", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let server = Daemon(command.spawn().expect("sway (apt-get install sway)"));
        let started = Instant::now();
        let (display, ipc) = loop {
            let names: Vec<String> = std::fs::read_dir(runtime.path())
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect();
            let display = names
                .iter()
                .find(|n| n.starts_with("wayland-") && !n.ends_with(".lock"));
            let ipc = names.iter().find(|n| n.starts_with("sway-ipc."));
            if let (Some(display), Some(ipc)) = (display, ipc) {
                break (display.clone(), runtime.path().join(ipc));
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "sway did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Sway {
            runtime,
            display,
            ipc,
            _server: server,
        }
    }

    /// A Wayland client of this compositor (and nothing of X11).
    fn client(&self, command: &mut Command) {
        command
            .env_remove("DISPLAY")
            .env("XDG_RUNTIME_DIR", self.runtime.path())
            .env("WAYLAND_DISPLAY", &self.display)
            .env("SWAYSOCK", &self.ipc);
    }

    fn run(&self, program: &str, args: &[&str]) -> String {
        let mut command = Command::new(program);
        command.args(args);
        self.client(&mut command);
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e} (apt-get install sway grim wtype)"));
        assert!(
            output.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Where sway put the content of the window whose title starts with `ecsrdp`.
    fn window(&self) -> Option<(u32, u32, u32, u32)> {
        let tree: Value = serde_json::from_str(&self.run("swaymsg", &["-t", "get_tree"])).ok()?;
        find(&tree)
    }
}

/// The inside of the first window titled `ecsrdp…` in sway's tree, in screen coordinates: the
/// container's `rect` moved by the `window_rect` within it (borders and title bar excluded).
fn find(node: &Value) -> Option<(u32, u32, u32, u32)> {
    if node["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("ecsrdp"))
    {
        let get = |rect: &str, key: &str| node[rect][key].as_u64().map(|v| v as u32);
        return Some((
            get("rect", "x")? + get("window_rect", "x")?,
            get("rect", "y")? + get("window_rect", "y")?,
            get("window_rect", "width")?,
            get("window_rect", "height")?,
        ));
    }
    ["nodes", "floating_nodes"]
        .iter()
        .filter_map(|key| node[*key].as_array())
        .flatten()
        .find_map(find)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_native_wayland_window_shows_the_desktop_and_sends_keys() {
    const PASSWORD: &str = "Wayland-pw-1";
    let server = TestServer::start(TestServerOptions {
        security: Security::Hybrid,
        user: "Administrator".into(),
        password: PASSWORD.into(),
        width: 640,
        height: 480,
        avc420: false,
    })
    .await;
    let sway = Sway::start();
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("ecsrdp.log");
    let mut command = support::ecsrdp(home.path());
    sway.client(&mut command);
    command
        .env("ECSRDP_PASSWORD", PASSWORD)
        .env("RUST_LOG", "info")
        .args(["direct", &format!("127.0.0.1:{}", server.addr.port())])
        .args([
            "--trust-new",
            "--lossless",
            "--size",
            "640x480",
            "--no-clipboard",
        ])
        .args(["--exit-after", "30s"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut client = Daemon(command.spawn().expect("start ecsrdp"));
    let said = || std::fs::read_to_string(&log).unwrap_or_default();

    let started = Instant::now();
    while sway.window().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no ecsrdp window in sway; ecsrdp said: {}",
            said()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("screen.png");
    let (wrong, window) = desktop_errors(&sway, &shot, Duration::from_secs(10)).await;
    assert_eq!(
        wrong, 0,
        "{wrong} pixels of the window at {window:?} differ from the served desktop; ecsrdp said: {}",
        said()
    );

    // A key typed into the focused window reaches the server, pressed then released.
    // The virtual keyboard appears with wtype: give the window a moment to see it first.
    sway.run("wtype", &["-s", "1000", "-P", "x", "-s", "100", "-p", "x"]);
    let started = Instant::now();
    let keys = loop {
        let keys: Vec<InputEvent> = server
            .input
            .events()
            .into_iter()
            .filter(|e| matches!(e, InputEvent::Key { .. }))
            .collect();
        if keys.len() >= 2 || started.elapsed() > Duration::from_secs(5) {
            break keys;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        matches!(
            keys.as_slice(),
            [InputEvent::Key { code: a, down: true, .. }, InputEvent::Key { code: b, down: false, .. }]
                if a == b
        ),
        "{keys:?}"
    );

    // Resized to an odd size, as dragging a corner does: the server here cannot follow, so the
    // window scales the desktop to fit, to its last column and row.
    sway.run("swaymsg", &["[title=\"^ecsrdp\"] resize set 641 481"]);
    expect_fitted(&sway, &shot, 1, "after a resize", said).await;

    // On a screen at scale 2 the window keeps its size in the layout and gets twice the pixels
    // each way; it fills them all, each desktop pixel as a sharp 2x2 block.
    sway.run("swaymsg", &["output HEADLESS-1 scale 2"]);
    sway.run("swaymsg", &["[title=\"^ecsrdp\"] move position 0 0"]);
    expect_fitted(&sway, &shot, 2, "at scale 2", said).await;

    // Closing it the way the compositor asks ends ecsrdp at once, cleanly.
    sway.run("swaymsg", &["[title=\"^ecsrdp\"] kill"]);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = client.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "ecsrdp outlived its window"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        status.success(),
        "exit status {status}; ecsrdp said: {}",
        said()
    );
    server.stop().await;
}

/// Pixels of the window's inside that differ from the served desktop, looked at through a
/// screenshot, until there are none or `limit` passes; with where the window was. Sway places a
/// floating window after mapping it, so where it is is asked each time.
async fn desktop_errors(
    sway: &Sway,
    shot: &Path,
    limit: Duration,
) -> (usize, (u32, u32, u32, u32)) {
    let started = Instant::now();
    loop {
        let window = sway.window().expect("the window");
        let (left, top, width, height) = window;
        sway.run("grim", &[shot.to_str().unwrap()]);
        let (w, h, rgb) = read_png(shot);
        let mut wrong = 0;
        for y in 0..480u32 {
            for x in 0..640u32 {
                let [b, g, r, _] = TestServer::expected_pixel(x as u16, y as u16);
                let (sx, sy) = (left + x, top + y);
                let inside = x < width && y < height && sx < w && sy < h;
                let i = ((sy * w + sx) * 3) as usize;
                if !inside || rgb[i..i + 3] != [r, g, b] {
                    wrong += 1;
                }
            }
        }
        if wrong == 0 || started.elapsed() > limit {
            if let Ok(keep) = std::env::var("ECSRDP_KEEP_SCREENSHOT") {
                std::fs::copy(shot, keep).unwrap();
            }
            return (wrong, window);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Fails `when` the window does not show the 640x480 desktop scaled to fit, looked at through
/// a screenshot on an output at `scale` (sway's layout is in logical pixels, grim's picture in
/// the output's own) until every pixel is right or 10 s pass: the window fits the desktop once
/// it gives up waiting for the server to follow its size.
async fn expect_fitted(
    sway: &Sway,
    shot: &Path,
    scale: u32,
    when: &str,
    said: impl Fn() -> String,
) {
    let wrong = fitted_window_errors(sway, shot, scale).await;
    assert!(
        wrong.is_empty(),
        "{} pixels wrong {when}, first (x, y, seen, wanted): {:?}; ecsrdp said: {}",
        wrong.len(),
        &wrong[..wrong.len().min(5)],
        said()
    );
}

async fn fitted_window_errors(
    sway: &Sway,
    shot: &Path,
    scale: u32,
) -> Vec<(u32, u32, [u8; 3], [u8; 3])> {
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (left, top, width, height) = sway.window().expect("the window");
        sway.run("grim", &[shot.to_str().unwrap()]);
        let window = (left * scale, top * scale, width * scale, height * scale);
        let wrong = support::fitted_errors(shot, window, (640, 480));
        if wrong.is_empty() || started.elapsed() > Duration::from_secs(10) {
            if let Ok(keep) = std::env::var("ECSRDP_KEEP_SCREENSHOT") {
                std::fs::copy(shot, keep).unwrap();
            }
            return wrong;
        }
    }
}
