//! The window for real: `ecsrdp direct` opens a window on an Xvfb display; a screenshot of the
//! screen shows the server's pixels exactly, keys typed with xdotool reach the server as set-1
//! scancodes, and a click lands on the desktop pixel under the pointer.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::proxy::Proxy;
use support::rdp_server::{InputEvent, Security, TestServer, TestServerOptions};
use support::{fitted_errors, read_png, Daemon, Xvfb};

#[tokio::test(flavor = "multi_thread")]
async fn window_shows_the_desktop_and_sends_typed_keys() {
    let (width, height) = (640u16, 480u16);
    let Opened {
        server,
        xvfb,
        client,
        window,
        _home,
        _proxy,
    } = open_window("60s", None).await;
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("screen.png");
    let wrong = desktop_errors(&xvfb, &shot, (width, height), Duration::from_secs(5)).await;
    assert_eq!(
        wrong, 0,
        "{wrong} screen pixels differ from the served desktop"
    );
    if let Ok(keep) = std::env::var("ECSRDP_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }

    // No auto-repeat: on a loaded machine a key held for 500 ms between xdotool's press and
    // release would otherwise repeat, and the server would rightly see it twice.
    xvfb.run("xset", &["r", "off"]);
    // A key held while focus comes back is not pressed in the session: winit reports it as a
    // made-up press when the focus arrives, which typed a key twice when the real press raced
    // the focus. Shift goes down elsewhere, the window takes the focus (its lock-key sync says
    // the client has seen it), Shift comes up.
    let root = xvfb.run("xwininfo", &["-root", "-int"]);
    let root = root
        .split_whitespace()
        .skip_while(|word| *word != "id:")
        .nth(1)
        .expect("xwininfo names the root window");
    xvfb.run("xdotool", &["windowfocus", "--sync", root]);
    // The lock keys, changed elsewhere meanwhile, are what the session gets with the focus.
    // (Xvfb's keymap binds Scroll Lock's indicator to no modifier: it is lit by name.)
    xvfb.run("xdotool", &["key", "Caps_Lock", "Num_Lock"]);
    xvfb.run("xset", &["led", "named", "Scroll Lock"]);
    xvfb.run("xdotool", &["keydown", "shift"]);
    let synced = server.input.syncs().len();
    xvfb.run("xdotool", &["windowfocus", "--sync", &window]);
    let started = Instant::now();
    while server.input.syncs().len() == synced && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.input.syncs().len() > synced, "focus came back");
    // Scroll 1, num 2, caps 4 (MS-RDPBCGR 2.2.8.1.2.2.5).
    assert_eq!(
        server.input.syncs().last(),
        Some(&0b111),
        "{:?}",
        server.input.syncs()
    );
    xvfb.run("xdotool", &["keyup", "shift"]);
    xvfb.run(
        "xdotool",
        &[
            "key", "--window", &window, "--delay", "50", "a", "Left", "Home",
        ],
    );
    let wanted = [
        InputEvent::Key {
            code: 0x1E,
            extended: false,
            down: true,
        },
        InputEvent::Key {
            code: 0x1E,
            extended: false,
            down: false,
        },
        InputEvent::Key {
            code: 0x4B,
            extended: true,
            down: true,
        },
        InputEvent::Key {
            code: 0x4B,
            extended: true,
            down: false,
        },
        InputEvent::Key {
            code: 0x47,
            extended: true,
            down: true,
        },
        InputEvent::Key {
            code: 0x47,
            extended: true,
            down: false,
        },
    ];
    let started = Instant::now();
    let keys = loop {
        let keys: Vec<InputEvent> = server
            .input
            .events()
            .into_iter()
            .filter(|e| matches!(e, InputEvent::Key { .. }))
            .collect();
        if keys.len() >= wanted.len() || started.elapsed() > Duration::from_secs(5) {
            break keys;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(keys, wanted);

    // A click where a person would click: the window maps it to the same desktop pixel.
    xvfb.run(
        "xdotool",
        &["mousemove", "--sync", "123", "45", "click", "1"],
    );
    let started = Instant::now();
    let clicked = loop {
        let events = server.input.events();
        let done = events.iter().any(|e| {
            matches!(
                e,
                InputEvent::MouseButton {
                    button: 1,
                    down: false,
                    ..
                }
            )
        });
        if done || started.elapsed() > Duration::from_secs(5) {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let buttons: Vec<&InputEvent> = clicked
        .iter()
        .filter(|e| matches!(e, InputEvent::MouseButton { .. }))
        .collect();
    assert_eq!(
        buttons,
        [
            &InputEvent::MouseButton {
                button: 1,
                down: true,
                x: 123,
                y: 45
            },
            &InputEvent::MouseButton {
                button: 1,
                down: false,
                x: 123,
                y: 45
            },
        ]
    );

    // Closing the window ends the session and the process, cleanly.
    close_and_expect_exit(&xvfb, &window, client).await;
    server.stop().await;
}

/// A key held down repeats as X repeats it, and the server gets what a keyboard sends: presses
/// alone while it is held, one release at the end. (IronRDP's key table sent a release before
/// each repeated press, which typed `bb` pairs and broke held shortcuts.)
#[tokio::test(flavor = "multi_thread")]
async fn a_held_key_repeats_as_presses_then_one_release() {
    let Opened {
        server,
        xvfb,
        client,
        window,
        _home,
        _proxy,
    } = open_window("60s", None).await;
    // X's own auto-repeat: after 200 ms, 25 a second.
    xvfb.run("xset", &["r", "on", "r", "rate", "200", "25"]);
    xvfb.run("xdotool", &["windowfocus", "--sync", &window]);
    xvfb.run("xdotool", &["keydown", "--window", &window, "b"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    xvfb.run("xdotool", &["keyup", "--window", &window, "b"]);
    let b = |events: Vec<InputEvent>| -> Vec<bool> {
        events
            .into_iter()
            .filter_map(|e| match e {
                InputEvent::Key {
                    code: 0x30, down, ..
                } => Some(down),
                _ => None,
            })
            .collect()
    };
    let started = Instant::now();
    let held = loop {
        let held = b(server.input.events());
        if held.last() == Some(&false) || started.elapsed() > Duration::from_secs(5) {
            break held;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(held.len() >= 4, "the key repeated: {held:?}");
    assert!(
        held[..held.len() - 1].iter().all(|&down| down) && held.last() == Some(&false),
        "presses, then one release: {held:?}"
    );
    close_and_expect_exit(&xvfb, &window, client).await;
    server.stop().await;
}

/// The network drops under the window and stays down a while: the window keeps the last
/// frame, dimmed, with "Reconnecting (n of 5)..." over it and in its title; once the network is
/// back the session reconnects by itself and the window shows the desktop exactly again.
#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_session_shows_it_is_reconnecting_then_comes_back() {
    let (width, height) = (640u16, 480u16);
    let opened = open_window("40s", Some(0)).await;
    let (xvfb, window) = (&opened.xvfb, &opened.window);
    let proxy = opened._proxy.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("screen.png");
    let wrong = desktop_errors(xvfb, &shot, (width, height), Duration::from_secs(5)).await;
    assert_eq!(wrong, 0, "{wrong} pixels differ before the drop");

    proxy.refuse_new(true);
    proxy.blip();
    // The notice: most of the desktop dimmed to half, white text over a dark band.
    let started = Instant::now();
    let (dimmed, white) = loop {
        xvfb.run("import", &["-window", "root", shot.to_str().unwrap()]);
        let (w, _, rgb) = read_png(&shot);
        let (mut dimmed, mut white) = (0, 0);
        for y in 0..u32::from(height) {
            for x in 0..u32::from(width) {
                let i = ((y * w + x) * 3) as usize;
                let [b, g, r, _] = TestServer::expected_pixel(x as u16, y as u16);
                let seen = &rgb[i..i + 3];
                if seen == [r >> 1, g >> 1, b >> 1] {
                    dimmed += 1;
                } else if seen == [255, 255, 255] {
                    white += 1;
                }
            }
        }
        if (dimmed > 250_000 && white > 500) || started.elapsed() > Duration::from_secs(10) {
            break (dimmed, white);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if let Ok(keep) = std::env::var("ECSRDP_KEEP_RECONNECTING") {
        std::fs::copy(&shot, keep).unwrap();
    }
    assert!(
        dimmed > 250_000 && white > 500,
        "{dimmed} dimmed and {white} white pixels: no notice"
    );
    let title = xvfb.run("xdotool", &["getwindowname", window]);
    assert!(title.contains("reconnecting ("), "title: {title}");

    proxy.refuse_new(false);
    let wrong = desktop_errors(xvfb, &shot, (width, height), Duration::from_secs(20)).await;
    assert_eq!(wrong, 0, "{wrong} pixels differ after reconnecting");
    let title = xvfb.run("xdotool", &["getwindowname", window]);
    assert!(!title.contains("reconnecting"), "title: {title}");
    assert!(proxy.connections() >= 2);
}

/// A character the local keyboard has no key for (xdotool binds it to a spare keycode for the
/// moment, as an input method or compose sequence would produce it): the window sends it as the
/// character itself, a Unicode key event, rather than a scancode the server would misread.
#[tokio::test(flavor = "multi_thread")]
async fn a_character_without_a_key_goes_as_unicode() {
    let opened = open_window("20s", None).await;
    let (xvfb, window) = (&opened.xvfb, &opened.window);
    xvfb.run("xset", &["r", "off"]);
    xvfb.run("xdotool", &["windowfocus", "--sync", window]);
    xvfb.run("xdotool", &["key", "--window", window, "U014B"]);
    let wanted = [
        InputEvent::Unicode {
            unit: 0x014B,
            down: true,
        },
        InputEvent::Unicode {
            unit: 0x014B,
            down: false,
        },
    ];
    let started = Instant::now();
    let typed = loop {
        let typed: Vec<InputEvent> = opened
            .server
            .input
            .events()
            .into_iter()
            .filter(|e| matches!(e, InputEvent::Unicode { .. } | InputEvent::Key { .. }))
            .collect();
        if typed.len() >= 2 || started.elapsed() > Duration::from_secs(5) {
            break typed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(typed, wanted);
}

/// A server behind a slow link (32 KiB/s), then one that stops answering: the window draws the
/// desktop as it trickles in, and closes at once while the server is silent.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_then_silent_server_leaves_the_window_drawing_and_closable() {
    let Opened {
        server,
        xvfb,
        client,
        window,
        _home,
        _proxy: proxy,
    } = open_window("120s", Some(32 * 1024)).await;
    let proxy = proxy.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("screen.png");
    let wrong = desktop_errors(&xvfb, &shot, (640, 480), Duration::from_secs(60)).await;
    assert_eq!(
        wrong, 0,
        "{wrong} screen pixels differ after the slow link delivered"
    );
    proxy.stall();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Still drawn while nothing arrives: a resize repaints, scaled, from the last frame.
    xvfb.run("xdotool", &["windowsize", "--sync", &window, "641", "481"]);
    let started = Instant::now();
    let wrong = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        xvfb.run("import", &["-window", "root", shot.to_str().unwrap()]);
        let wrong = fitted_errors(&shot, (0, 0, 641, 481), (640, 480));
        if wrong.is_empty() || started.elapsed() > Duration::from_secs(6) {
            break wrong.len();
        }
    };
    assert_eq!(
        wrong, 0,
        "{wrong} window pixels wrong after a resize while the server was silent"
    );
    close_and_expect_exit(&xvfb, &window, client).await;
    server.stop().await;
}

/// The window resized to an odd size, as a person dragging its corner does: the server here
/// cannot follow (no Display Control), so the window scales the desktop to fit, and the
/// desktop still reaches the last column and row: no black edge.
#[tokio::test(flavor = "multi_thread")]
async fn a_window_resized_to_an_odd_size_has_no_black_edge() {
    let (width, height) = (640u16, 480u16);
    // Every part is kept to the end: dropping the client would end the session.
    let Opened {
        server,
        xvfb,
        client: _client,
        window,
        _home,
        _proxy,
    } = open_window("10s", None).await;
    let (odd_w, odd_h) = (641u32, 481u32);
    xvfb.run(
        "xdotool",
        &[
            "windowsize",
            "--sync",
            &window,
            &odd_w.to_string(),
            &odd_h.to_string(),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("screen.png");
    // The window repaints once the session has the new size: look until it has (or give up).
    let started = Instant::now();
    let wrong = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        xvfb.run("import", &["-window", "root", shot.to_str().unwrap()]);
        let wrong = fitted_errors(&shot, (0, 0, odd_w, odd_h), (width, height));
        if wrong.is_empty() || started.elapsed() > Duration::from_secs(6) {
            break wrong;
        }
    };
    if let Ok(keep) = std::env::var("ECSRDP_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    assert!(
        wrong.is_empty(),
        "{} window pixels are wrong, first (x, y, seen, wanted): {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    server.stop().await;
}

/// `--fullscreen` opens the window over the whole screen (here a 1024x768 Xvfb display), the
/// desktop scaled into it.
#[tokio::test(flavor = "multi_thread")]
async fn fullscreen_opens_over_the_whole_screen() {
    let Opened {
        server,
        xvfb,
        client: _client,
        window,
        _home,
        _proxy,
    } = open_window_with("10s", None, &["--fullscreen", "--scale", "fit"]).await;
    let started = Instant::now();
    let geometry = loop {
        let out = std::process::Command::new("xdotool")
            .args(["getwindowgeometry", "--shell", &window])
            .env("DISPLAY", &xvfb.display)
            .output()
            .expect("xdotool");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("WIDTH=1024") || started.elapsed() > Duration::from_secs(5) {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        geometry.contains("WIDTH=1024") && geometry.contains("HEIGHT=768"),
        "{geometry}"
    );
    server.stop().await;
}

/// An open session whose desktop does not change costs no wake-ups: the clipboard's thread
/// (shared by default) sleeps until something is copied or pasted. IronRDP's X11 backend, which
/// ecsrdp used before, woke about 100 times a second (docs/performance.md). Counted, not timed:
/// the thread's context switches over three seconds.
#[tokio::test(flavor = "multi_thread")]
async fn the_clipboard_thread_sleeps_while_nothing_is_copied() {
    let opened = open_window("30s", None).await;
    let pid = opened.client.0.id();
    let switches = || -> Option<u64> {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        let thread = tasks.flatten().find(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim() == "clipboard-x11")
        })?;
        let status = std::fs::read_to_string(thread.path().join("status")).ok()?;
        let counts = status
            .lines()
            .filter(|line| line.contains("ctxt_switches"))
            .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok());
        Some(counts.sum())
    };
    let mut before = None;
    for _ in 0..50 {
        before = switches();
        if before.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = before.expect("ecsrdp runs a clipboard-x11 thread");
    // Settled: the session is up and its first clipboard announcement went.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = switches().expect("the clipboard thread is still there");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = switches().expect("the clipboard thread is still there");
    assert!(
        after - settled <= 2,
        "the clipboard thread woke {} times in 3 s ({} while the session started)",
        after - settled,
        settled - before
    );
    opened.server.stop().await;
}

/// The in-process server (640x480, NLA), an Xvfb display, and ecsrdp's window on it, maybe
/// through a proxy the test controls.
struct Opened {
    server: TestServer,
    xvfb: Xvfb,
    client: Daemon,
    window: String,
    _home: tempfile::TempDir,
    _proxy: Option<Proxy>,
}

/// Starts the server and the display, and `ecsrdp direct` in a window for `exit_after`; with
/// `slow`, through a proxy that passes the server's bytes on at that many per second.
async fn open_window(exit_after: &str, slow: Option<u64>) -> Opened {
    open_window_with(exit_after, slow, &[]).await
}

/// [`open_window`] with more options for ecsrdp.
async fn open_window_with(exit_after: &str, slow: Option<u64>, more: &[&str]) -> Opened {
    const PASSWORD: &str = "Window-pw-1";
    let server = TestServer::start(TestServerOptions {
        security: Security::Hybrid,
        user: "Administrator".into(),
        password: PASSWORD.into(),
        width: 640,
        height: 480,
        avc420: false,
    })
    .await;
    let proxy = slow.map(|rate| {
        let proxy = Proxy::start(server.addr.port());
        proxy.slow(rate);
        proxy
    });
    let port = proxy.as_ref().map_or(server.addr.port(), |p| p.port);
    let xvfb = Xvfb::start(1024, 768);
    let home = tempfile::tempdir().unwrap();
    let mut command = support::ecsrdp(home.path());
    command
        .env("DISPLAY", &xvfb.display)
        .env("ECSRDP_PASSWORD", PASSWORD)
        .args(["direct", &format!("127.0.0.1:{port}")])
        .args(["--trust-new", "--lossless", "--size", "640x480"])
        .args(["--exit-after", exit_after])
        .args(more)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let client = Daemon(command.spawn().expect("start ecsrdp"));
    let window = tokio::task::spawn_blocking({
        let display = xvfb.display.clone();
        move || find_window(&display)
    })
    .await
    .unwrap();
    Opened {
        server,
        xvfb,
        client,
        window,
        _home: home,
        _proxy: proxy,
    }
}

/// Screen pixels that differ from the served desktop once the first frame has landed, looked
/// at as a person would (a screenshot), until there are none or `limit` has passed.
async fn desktop_errors(
    xvfb: &Xvfb,
    shot: &std::path::Path,
    size: (u16, u16),
    limit: Duration,
) -> usize {
    let started = Instant::now();
    loop {
        xvfb.run("import", &["-window", "root", shot.to_str().unwrap()]);
        let (w, _, rgb) = read_png(shot);
        let mut wrong = 0;
        // No window manager runs, so the window's inside sits at the screen's top left.
        for y in 0..u32::from(size.1) {
            for x in 0..u32::from(size.0) {
                let i = ((y * w + x) * 3) as usize;
                let [b, g, r, _] = TestServer::expected_pixel(x as u16, y as u16);
                if rgb[i..i + 3] != [r, g, b] {
                    wrong += 1;
                }
            }
        }
        if wrong == 0 || started.elapsed() > limit {
            if let Ok(keep) = std::env::var("ECSRDP_KEEP_SCREENSHOT") {
                std::fs::copy(shot, keep).unwrap();
            }
            return wrong;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Closes the window the way a window manager asks, and expects ecsrdp to be gone, cleanly,
/// within a few seconds.
async fn close_and_expect_exit(xvfb: &Xvfb, window: &str, client: Daemon) {
    xvfb.run("xdotool", &["windowclose", window]);
    let mut client = client;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = client.0.try_wait().expect("wait for ecsrdp") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "ecsrdp outlived its window"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
}

/// Waits for the ecsrdp window and returns its X id.
fn find_window(display: &str) -> String {
    let started = Instant::now();
    loop {
        let out = std::process::Command::new("xdotool")
            .args(["search", "--name", "^ecsrdp"])
            .env("DISPLAY", display)
            .output()
            .expect("xdotool (apt-get install xdotool)");
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(id) = text.lines().next() {
            return id.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no ecsrdp window appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
