//! RDP servers nobody here wrote: FreeRDP 2's shadow server sharing an Xvfb display painted a
//! known colour, over TLS and over NLA. RemoteFX is lossy, so colours match within a tolerance.

mod support;

use support::{read_png, Run, Shadow, Xvfb};

const USER: &str = "Administrator";
const PASSWORD: &str = "Peer-pw-1!";

/// Connects headless to a shadow server whose display is `colour`, and checks the snapshot.
fn snapshot_shows(security: &str, colour: &str, rgb: [u8; 3], lossless: bool) {
    let xvfb = Xvfb::start(800, 600);
    let shadow = Shadow::start(&xvfb, security, USER, PASSWORD);
    xvfb.run("xsetroot", &["-solid", colour]);
    let home = tempfile::tempdir().unwrap();
    let png = home.path().join("out.png");
    let mut command = support::ecsrdp(home.path());
    command
        .args([
            "direct",
            &format!("127.0.0.1:{}", shadow.port),
            "--user",
            USER,
        ])
        .args([
            "--password-stdin",
            "--headless",
            "--trust-new",
            "--exit-after",
            "2s",
        ])
        .args(["--snapshot", png.to_str().unwrap()])
        .args(["--security", security]);
    if lossless {
        command.arg("--lossless");
    }
    Run::with_stdin(&mut command, Some(&format!("{PASSWORD}\n"))).succeeds();
    let (w, h, pixels) = read_png(&png);
    assert_eq!((w, h), (800, 600), "the desktop size the server offered");
    let off = pixels
        .chunks_exact(3)
        .filter(|p| p.iter().zip(rgb).any(|(&a, b)| a.abs_diff(b) > 8))
        .count();
    assert!(
        off * 1000 < pixels.len() / 3,
        "{off} pixels are not {colour}; first: {:?}",
        &pixels[..3]
    );
}

#[test]
fn freerdp_shadow_over_nla_shows_the_display() {
    snapshot_shows("nla", "red", [255, 0, 0], false);
}

#[test]
fn freerdp_shadow_over_tls_shows_the_display() {
    snapshot_shows("tls", "#2080c0", [0x20, 0x80, 0xc0], false);
}

#[test]
fn freerdp_shadow_without_lossy_codecs() {
    snapshot_shows("nla", "#30a050", [0x30, 0xa0, 0x50], true);
}

#[test]
fn freerdp_shadow_refuses_a_wrong_password() {
    let xvfb = Xvfb::start(800, 600);
    let shadow = Shadow::start(&xvfb, "nla", USER, PASSWORD);
    let home = tempfile::tempdir().unwrap();
    let mut command = support::ecsrdp(home.path());
    command
        .args([
            "direct",
            &format!("127.0.0.1:{}", shadow.port),
            "--user",
            USER,
        ])
        .args([
            "--password-stdin",
            "--headless",
            "--trust-new",
            "--exit-after",
            "2s",
        ]);
    Run::with_stdin(&mut command, Some("wrong\n")).fails(5, "refused the login");
}

/// xrdp 0.9 from Debian, TLS only. Asked for its login screen (no session manager runs here),
/// it shows a teal desktop with a grey dialog, all drawn by xrdp with bitmap updates.
#[test]
fn xrdp_over_tls_shows_its_login_screen() {
    std::fs::create_dir_all("/run/xrdp/sockdir").expect("xrdp's socket dir (run as root)");
    let port = support::free_port();
    let server = support::Daemon(
        std::process::Command::new("xrdp")
            .args(["--nodaemon", "--port", &format!("tcp://127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("xrdp (apt-get install xrdp)"),
    );
    support::wait_for_port(port, std::time::Duration::from_secs(10));
    let home = tempfile::tempdir().unwrap();
    let png = home.path().join("out.png");
    let mut command = support::ecsrdp(home.path());
    command
        .args(["direct", &format!("127.0.0.1:{port}"), "--user", "nobody"])
        .args(["--security", "tls"])
        .args([
            "--password-stdin",
            "--headless",
            "--trust-new",
            "--lossless",
            "--login-screen",
        ])
        .args(["--size", "1280x800", "--exit-after", "2s"])
        .args(["--snapshot", png.to_str().unwrap()]);
    Run::with_stdin(&mut command, Some("unused\n")).succeeds();
    drop(server);
    let (w, h, pixels) = read_png(&png);
    assert_eq!((w, h), (1280, 800));
    let count = |rgb: [u8; 3]| pixels.chunks_exact(3).filter(|p| *p == rgb).count();
    let teal = count([0x00, 0x9c, 0xb5]);
    let dialog_grey = count([0xde, 0xde, 0xde]);
    assert!(
        teal * 2 > pixels.len() / 3,
        "xrdp's background: {teal} teal pixels"
    );
    assert!(
        dialog_grey > 50_000,
        "xrdp's login dialog: {dialog_grey} grey pixels"
    );
}

/// xrdp 0.9 from Debian over TLS, logged on for real: the domain field picks its Xvnc backend,
/// xrdp-sesman starts an Xvnc session at the client's odd size (1022×766) for a local account
/// whose `~/.xsession` paints the root window a colour chosen for this run and shows a window
/// 301 pixels wide (not a multiple of 4) holding a checkerboard, then keeps a screenshot of its
/// own display. The snapshot must equal that screenshot, pixel for pixel.
#[test]
fn xrdp_xvnc_session_matches_its_display_exactly() {
    const USER: &str = "ecsrdp-xrdp";
    let colour = [0x40 + (std::process::id() % 0x80) as u8, 0x90, 0x30];
    let hex = format!("#{:02x}{:02x}{:02x}", colour[0], colour[1], colour[2]);
    let xrdp = XrdpSession::start(
        USER,
        "xsetroot -solid \"$(cat ~/colour)\"\n\
         display -geometry +37+41 ~/pattern.png &\n\
         sleep 2\n\
         while :; do import -window root ~/truth.tmp.png && mv ~/truth.tmp.png ~/truth.png; \
         sleep 1; done\n",
        |home| {
            std::fs::write(home.join("colour"), &hex).unwrap();
            let made = std::process::Command::new("convert")
                .args([
                    "-size",
                    "301x203",
                    "pattern:checkerboard",
                    "-fill",
                    "#c02060",
                ])
                .args(["-draw", "line 0,0 300,202"])
                .arg(home.join("pattern.png"))
                .status()
                .expect("convert (apt-get install imagemagick)");
            assert!(made.success());
        },
    );
    let (port, home, password) = (xrdp.port, xrdp.home(), xrdp.password.clone());

    let out = tempfile::tempdir().unwrap();
    let png = out.path().join("out.png");
    let mut command = support::ecsrdp(out.path());
    command
        .args([
            "direct",
            &format!("127.0.0.1:{port}"),
            "--user",
            USER,
            "--domain",
            "Xvnc",
            "--security",
            "tls",
        ])
        .args([
            "--password-stdin",
            "--headless",
            "--trust-new",
            "--lossless",
        ])
        .args(["--size", "1022x766", "--exit-after", "12s"])
        .args(["--snapshot", png.to_str().unwrap()]);
    Run::with_stdin(&mut command, Some(&format!("{password}\n"))).succeeds();
    let truth = home.join("truth.png");
    assert!(
        truth.exists(),
        "the session took no screenshot; its log: {}",
        xrdp.log()
    );
    let truth = read_png(&truth);
    drop(xrdp);

    let (w, h, pixels) = read_png(&png);
    assert_eq!((w, h), (1022, 766), "the session follows the client's size");
    assert_eq!((truth.0, truth.1), (w, h), "the Xvnc display's size");
    let painted = pixels.chunks_exact(3).filter(|p| *p == colour).count();
    assert!(
        painted * 10 > pixels.len() / 3 * 8,
        "{painted} of {} pixels are the session's {hex}",
        pixels.len() / 3
    );
    // The odd-width window is there: its (antialiased) red diagonal, and a checkerboard of
    // two greys.
    let diagonal = pixels
        .chunks_exact(3)
        .filter(|p| p[0] > p[1].saturating_add(40) && p[2] > p[1])
        .count();
    assert!(
        diagonal >= 250,
        "{diagonal} pixels of the window's diagonal"
    );
    let pattern = pixels
        .chunks_exact(3)
        .filter(|p| p[0] == p[1] && p[1] == p[2])
        .count();
    assert!(
        pattern >= 50_000,
        "{pattern} pixels of the window's checkerboard"
    );
    let wrong = pixels
        .chunks_exact(3)
        .zip(truth.2.chunks_exact(3))
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(wrong, 0, "{wrong} pixels differ from the Xvnc display");
}

/// The clipboard both ways through xrdp's chansrv, as a user moving a command in and a log out:
/// what the local clipboard (Xvfb's, where ecsrdp's window is) holds is what a program in the
/// session pastes, and a 300 KB multi-line log copied in the session is what a local program
/// pastes (X11 hands that much over in increments). Text no single-byte charset holds; not
/// outside the BMP, which xrdp 0.9's chansrv cannot convert (with an emoji its paste never
/// completes, whichever client). Each side's clipboard is read with xclip, as a program would.
/// First a session with `--no-clipboard`, which must share nothing. What was copied before the
/// session started (often a password) is never offered: the session pastes only what is copied
/// once the window has focus.
#[test]
fn copied_text_crosses_both_ways_through_xrdp() {
    const USER: &str = "ecsrdp-clip";
    let here = format!(
        "copied here → pasted there: naïve 日本語 {}",
        std::process::id()
    );
    let there: String = std::iter::once(format!("Ωμέγα 中文 {:x}\n", rand_u64()))
        .chain(
            (0..7000).map(|n| format!("2026-11-28T12:00:{:02} INFO svc[{n}] ünïcödé ok\n", n % 60)),
        )
        .collect();
    assert!(there.len() > 300_000);
    let xrdp = XrdpSession::start(
        USER,
        "xsetroot -solid grey\n\
         for i in $(seq 150); do\n\
           xclip -o -selection clipboard -t UTF8_STRING >~/pasted.tmp && [ -s ~/pasted.tmp ] && break\n\
           sleep 0.2\n\
         done\n\
         mv ~/pasted.tmp ~/pasted.txt\n\
         xclip -i -selection clipboard ~/copied.txt\n\
         sleep 600\n",
        |home| std::fs::write(home.join("copied.txt"), &there).unwrap(),
    );
    let xvfb = Xvfb::start(1024, 768);
    let before = format!("copied before the session {}", rand_u64());
    copy_on(&xvfb, &before);

    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("ecsrdp.log");
    let window = |extra: &[&str]| {
        let mut command = window_on(&xvfb, &xrdp, USER, &log);
        command.args(extra);
        command
    };
    // The session's script waits 30 s for a paste; the first client ends well before that.
    Run::of(&mut window(&["--no-clipboard", "--exit-after", "5s"])).succeeds();
    assert!(
        !xrdp.home().join("pasted.txt").exists(),
        "--no-clipboard shared the clipboard"
    );
    let client = support::Daemon(
        window(&["--exit-after", "60s"])
            .env("RUST_LOG", "ecsrdp::rdp::channels=debug")
            .spawn()
            .expect("start ecsrdp"),
    );
    // Once the channel is up (its first announcement went, empty), the user turns to the window
    // and copies there.
    wait_for(std::time::Duration::from_secs(30), || {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        said.contains("before the session is not offered")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no clipboard channel; the session's log: {}", xrdp.log()));
    let id = window_id(&xvfb);
    xvfb.run("xdotool", &["windowfocus", "--sync", &id]);
    copy_on(&xvfb, &here);

    // The session pastes before anything here does, so that no local read races ecsrdp's (xclip
    // serves one INCR reader at a time and leaves a second one waiting for ever).
    let pasted = xrdp.home().join("pasted.txt");
    wait_for(std::time::Duration::from_secs(40), || {
        pasted.exists().then_some(())
    });
    let pasted_here = wait_for(std::time::Duration::from_secs(40), || {
        let now = paste_on(&xvfb);
        (now == there).then_some(now)
    });
    let pasted_there = std::fs::read(xrdp.home().join("pasted.txt"));
    drop(client);
    let diagnostics = || {
        format!(
            "ecsrdp said: {}\nthe session's log: {}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            xrdp.log()
        )
    };
    // Compared without printing a megabyte on failure.
    let pasted_there = pasted_there.unwrap_or_default();
    let alike = pasted_there
        .iter()
        .zip(here.as_bytes())
        .take_while(|(a, b)| a == b)
        .count();
    assert!(
        pasted_there == here.as_bytes(),
        "pasted in the session: {} bytes of {}, the first {alike} alike, then {:?}; {}",
        pasted_there.len(),
        here.len(),
        String::from_utf8_lossy(&pasted_there[alike..pasted_there.len().min(alike + 80)]),
        diagnostics()
    );
    assert_eq!(
        pasted_here.as_deref(),
        Some(there.as_str()),
        "pasted here; {}",
        diagnostics()
    );
}

/// Typing on a German keyboard through xrdp: the local display's XKB layout is `de`, so ecsrdp
/// tells the server 0x407, and the keys labelled Y and Z (swapped from US positions) type `y`
/// and `z` in the session, as a program there (xev) reads them. Sending no layout, the server
/// would read those positions as US keys and type `z` and `y`.
#[test]
fn a_german_keyboard_types_german_in_the_session() {
    const USER: &str = "ecsrdp-keys";
    let xrdp = XrdpSession::start(USER, XEV_SESSION, |_| {});
    let xvfb = Xvfb::start(1024, 768);
    xvfb.run("setxkbmap", &["-layout", "de"]);
    xvfb.run("xset", &["r", "off"]);
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("ecsrdp.log");
    let mut command = window_on(&xvfb, &xrdp, USER, &log);
    command
        .env("RUST_LOG", "ecsrdp=info")
        .args(["--no-clipboard", "--exit-after", "60s"]);
    let client = support::Daemon(command.spawn().expect("start ecsrdp"));
    let keys = xrdp.home().join("keys.log");
    let window = session_window(&xvfb, &keys, &xrdp);
    xvfb.run("xdotool", &["windowfocus", "--sync", &window]);
    xvfb.run(
        "xdotool",
        &["key", "--window", &window, "--delay", "100", "y", "z"],
    );
    let typed = wait_for(std::time::Duration::from_secs(15), || {
        let text = std::fs::read_to_string(&keys).ok()?;
        let typed = pressed_keysyms(&text);
        (typed.len() >= 2).then_some(typed)
    });
    drop(client);
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        typed,
        Some(vec!["y".to_owned(), "z".to_owned()]),
        "what the session read; ecsrdp said: {said}"
    );
    assert!(
        said.contains("layout=de") && said.contains("klid=0x407"),
        "the local layout was not found: {said}"
    );
}

/// Caps Lock switched on here before the window had focus is on in the session once the window
/// gains it: ecsrdp tells the server the lock keys (a synchronize event), so `a` types `A` in
/// the session, as xev there reads it. Without that the server would type `a`.
#[test]
fn caps_lock_is_synchronised_when_the_window_gains_focus() {
    const USER: &str = "ecsrdp-locks";
    let xrdp = XrdpSession::start(USER, XEV_SESSION, |_| {});
    let xvfb = Xvfb::start(1024, 768);
    xvfb.run("xset", &["r", "off"]);
    xvfb.run("xdotool", &["key", "Caps_Lock"]);
    let state = xvfb.run("xset", &["q"]);
    assert!(
        state.contains("Caps Lock:   on"),
        "Caps Lock on the local display: {state}"
    );
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("ecsrdp.log");
    let mut command = window_on(&xvfb, &xrdp, USER, &log);
    command.args([
        "--no-clipboard",
        "--keyboard-layout",
        "us",
        "--exit-after",
        "60s",
    ]);
    let client = support::Daemon(command.spawn().expect("start ecsrdp"));
    let keys = xrdp.home().join("keys.log");
    let window = session_window(&xvfb, &keys, &xrdp);
    xvfb.run("xdotool", &["windowfocus", "--sync", &window]);
    xvfb.run(
        "xdotool",
        &["key", "--window", &window, "--delay", "100", "a"],
    );
    let typed = wait_for(std::time::Duration::from_secs(15), || {
        let text = std::fs::read_to_string(&keys).ok()?;
        let typed = pressed_keysyms(&text);
        typed
            .iter()
            .any(|k| k.eq_ignore_ascii_case("a"))
            .then_some(typed)
    });
    drop(client);
    // xrdp applies the synchronize event to its Xvnc session by pressing Caps_Lock there.
    let letters = typed.map(|keys| {
        keys.into_iter()
            .filter(|k| !k.ends_with("_Lock"))
            .collect::<Vec<_>>()
    });
    assert_eq!(
        letters,
        Some(vec!["A".to_owned()]),
        "what the session read; ecsrdp said: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// ecsrdp's window on `xvfb`, once xev in the session has reported its first events (its
/// window is up).
fn session_window(xvfb: &Xvfb, keys: &std::path::Path, xrdp: &XrdpSession) -> String {
    wait_for(std::time::Duration::from_secs(30), || {
        let shown = std::fs::metadata(keys).is_ok_and(|m| m.len() > 0);
        shown.then(|| find_window(xvfb)).flatten()
    })
    .unwrap_or_else(|| panic!("no window or no xev; the session's log: {}", xrdp.log()))
}

/// The X window ID of ecsrdp's window, once it is there.
fn window_id(xvfb: &Xvfb) -> String {
    wait_for(std::time::Duration::from_secs(30), || find_window(xvfb)).expect("ecsrdp's window")
}

fn find_window(xvfb: &Xvfb) -> Option<String> {
    let found = std::process::Command::new("xdotool")
        .args(["search", "--name", "^ecsrdp"])
        .env("DISPLAY", &xvfb.display)
        .output()
        .ok()?;
    Some(
        String::from_utf8_lossy(&found.stdout)
            .lines()
            .next()?
            .to_owned(),
    )
}

/// The keysym names of the KeyPress events in xev's output, a key pressed twice in a row
/// counted once (the Xvnc session now and then reports a press twice on a busy machine; which
/// keys arrive, and in which order, is what the layout decides).
fn pressed_keysyms(xev: &str) -> Vec<String> {
    let mut names: Vec<String> = xev
        .split("\n\n")
        .filter(|event| event.starts_with("KeyPress"))
        .filter_map(|event| {
            let after = event.split("(keysym ").nth(1)?;
            let name = after.split(", ").nth(1)?.split(')').next()?;
            Some(name.to_owned())
        })
        .collect();
    names.dedup();
    names
}

/// A local folder shared with `--drive logs=DIR`, through xrdp's chansrv, which mounts
/// redirected drives with FUSE under `~/thinclient_drives` in the session: a program there lists
/// the folder (chansrv asks for FileDirectoryInformation), reads the file this side put in it, a file it writes appears here, what it appends to a
/// file is in it here, a file it deletes is gone here (chansrv opens it without asking for
/// DELETE access), and a symbolic link in the folder pointing out of it (to /etc) leads
/// nowhere.
///
/// FUSE needs `/dev/fuse` for the session's user: the test grants it to its own account with an
/// ACL entry and removes the entry at the end (the device's mode is left as it was).
#[test]
fn a_shared_folder_is_read_and_written_by_the_session() {
    let shared = share_a_folder("ecsrdp-drive", false);
    assert_eq!(
        shared.read.as_deref(),
        Some(shared.here.as_str()),
        "read in the session; {}",
        shared.diagnostics
    );
    assert_eq!(
        shared.listing.as_deref(),
        Some("doomed.txt\nhello.txt\noutside\n"),
        "the folder as listed in the session; {}",
        shared.diagnostics
    );
    assert_eq!(
        shared.written.as_deref(),
        Some("from the session\n"),
        "written by the session; {}",
        shared.diagnostics
    );
    assert_eq!(
        shared.escaped.as_deref(),
        Some(""),
        "a symbolic link led out of the folder; {}",
        shared.diagnostics
    );
    assert_eq!(
        (shared.removed.as_deref(), shared.doomed_after.as_deref()),
        (Some("0\n"), None),
        "rm's status in the session, and the file here after it; {}",
        shared.diagnostics
    );
    assert_eq!(
        shared.hello_after,
        Some(format!("{}more\n", shared.here)),
        "the session appended to the file; {}",
        shared.diagnostics
    );
}

/// The same without `--drive-writable` (read-only is the default): the session reads the file,
/// but cannot write a new one, append to the file or delete one; the folder here is as it was.
#[test]
fn a_read_only_folder_is_read_but_not_changed() {
    let shared = share_a_folder("ecsrdp-rodrive", true);
    assert_eq!(
        shared.read.as_deref(),
        Some(shared.here.as_str()),
        "read in the session; {}",
        shared.diagnostics
    );
    assert_eq!(
        shared.listing.as_deref(),
        Some("doomed.txt\nhello.txt\noutside\n"),
        "the folder as listed in the session; {}",
        shared.diagnostics
    );
    assert_eq!(
        shared.written, None,
        "a new file was written; {}",
        shared.diagnostics
    );
    assert_eq!(
        shared.hello_after.as_deref(),
        Some(shared.here.as_str()),
        "the file was changed; {}",
        shared.diagnostics
    );
    assert_eq!(
        shared.doomed_after.as_deref(),
        Some("delete me\n"),
        "a file was deleted (rm said {:?}); {}",
        shared.removed,
        shared.diagnostics
    );
}

/// What became of a shared folder after a session had at it.
struct Shared {
    here: String,
    read: Option<String>,
    /// `ls -1` of the shared folder in the session.
    listing: Option<String>,
    written: Option<String>,
    escaped: Option<String>,
    hello_after: Option<String>,
    /// `rm`'s exit status in the session, and the file it removed as it is here afterwards.
    removed: Option<String>,
    doomed_after: Option<String>,
    diagnostics: String,
}

/// Shares a folder holding `hello.txt`, `doomed.txt` and a link to /etc with an xrdp session
/// whose script reads the first, follows the link, writes `written.txt`, appends to the first
/// and deletes the second.
fn share_a_folder(user: &'static str, read_only: bool) -> Shared {
    let folder = tempfile::tempdir().unwrap();
    let here = format!("from the client {}\n", rand_u64());
    std::fs::write(folder.path().join("hello.txt"), &here).unwrap();
    std::fs::write(folder.path().join("doomed.txt"), "delete me\n").unwrap();
    // A link out of the folder: the session must not get through it.
    std::os::unix::fs::symlink("/etc", folder.path().join("outside")).unwrap();
    let xrdp = XrdpSession::start(
        user,
        "xsetroot -solid grey\n\
         for i in $(seq 100); do\n\
           f=$(ls -d ~/thinclient_drives/*/hello.txt 2>/dev/null | head -n1)\n\
           [ -n \"$f\" ] && break\n\
           sleep 0.2\n\
         done\n\
         d=$(dirname \"$f\")\n\
         ls -1 \"$d\" >~/listing.txt\n\
         cat \"$f\" >~/read.txt\n\
         cat \"$d/outside/hostname\" >~/escaped.txt\n\
         echo \"from the session\" >\"$d/written.txt\"\n\
         echo more >>\"$f\"\n\
         rm -f \"$d/doomed.txt\"; echo $? >~/removed.txt\n\
         touch ~/done\n\
         sleep 600\n",
        |_| {},
    );
    let _fuse = FuseAccess::grant(user);
    let xvfb = Xvfb::start(1024, 768);
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("ecsrdp.log");
    let mut command = window_on(&xvfb, &xrdp, user, &log);
    command
        .args(["--no-clipboard", "--exit-after", "60s", "--drive"])
        .arg(format!("logs={}", folder.path().display()));
    if !read_only {
        command.arg("--drive-writable");
    }
    let client = support::Daemon(command.spawn().expect("start ecsrdp"));
    let done = wait_for(std::time::Duration::from_secs(40), || {
        xrdp.home().join("done").exists().then_some(())
    });
    let read = |path: std::path::PathBuf| std::fs::read_to_string(path).ok();
    let shared = Shared {
        here,
        read: read(xrdp.home().join("read.txt")),
        listing: read(xrdp.home().join("listing.txt")),
        written: read(folder.path().join("written.txt")),
        escaped: read(xrdp.home().join("escaped.txt")),
        hello_after: read(folder.path().join("hello.txt")),
        removed: read(xrdp.home().join("removed.txt")),
        doomed_after: read(folder.path().join("doomed.txt")),
        diagnostics: format!(
            "ecsrdp said: {}\nthe session's log: {}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            xrdp.log()
        ),
    };
    drop(client);
    assert!(
        done.is_some(),
        "the session's script did not finish; {}",
        shared.diagnostics
    );
    shared
}

/// Read and write access to /dev/fuse for one account, by an ACL entry removed when dropped.
struct FuseAccess(&'static str);

impl FuseAccess {
    fn grant(user: &'static str) -> FuseAccess {
        let status = std::process::Command::new("setfacl")
            .args(["-m", &format!("u:{user}:rw"), "/dev/fuse"])
            .status()
            .expect("setfacl (apt-get install acl)");
        assert!(status.success(), "setfacl on /dev/fuse");
        FuseAccess(user)
    }
}

impl Drop for FuseAccess {
    fn drop(&mut self) {
        let _ = std::process::Command::new("setfacl")
            .args(["-x", &format!("u:{}", self.0), "/dev/fuse"])
            .status();
    }
}

/// An xrdp session that shows xev over its whole screen and logs the keys it reads.
const XEV_SESSION: &str = "xsetroot -solid grey\n\
     stdbuf -oL xev -geometry 800x600+0+0 -event keyboard >~/keys.log &\n\
     sleep 600\n";

/// `ecsrdp direct` in a window on `xvfb`, logged on to `xrdp`'s Xvnc session as `user` at
/// 800x600 (a new certificate trusted), its stderr in `log`; the caller adds the rest.
fn window_on(
    xvfb: &Xvfb,
    xrdp: &XrdpSession,
    user: &str,
    log: &std::path::Path,
) -> std::process::Command {
    let mut command = support::ecsrdp(log.parent().expect("the log's folder"));
    command
        .env("DISPLAY", &xvfb.display)
        .env_remove("WAYLAND_DISPLAY")
        .env("ECSRDP_PASSWORD", &xrdp.password)
        .args([
            "direct",
            &format!("127.0.0.1:{}", xrdp.port),
            "--security",
            "tls",
        ])
        .args(["--user", user, "--domain", "Xvnc", "--trust-new"])
        .args(["--size", "800x600"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    command
}

/// Puts `text` on the display's clipboard, as a program copying it would (xclip keeps serving
/// it in the background until another program takes the clipboard or the display ends).
fn copy_on(xvfb: &Xvfb, text: &str) {
    use std::io::Write as _;
    let mut xclip = std::process::Command::new("xclip")
        .args(["-i", "-selection", "clipboard"])
        .env("DISPLAY", &xvfb.display)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("xclip (apt-get install xclip)");
    xclip
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(xclip.wait().unwrap().success());
}

/// What a program pasting from the display's clipboard gets (empty when it gets nothing).
/// Bounded (coreutils' `timeout`): xclip waits for ever for an increment that never comes, as
/// when the owner changes in the middle of an INCR transfer.
fn paste_on(xvfb: &Xvfb) -> String {
    let output = std::process::Command::new("timeout")
        .args([
            "10",
            "xclip",
            "-o",
            "-selection",
            "clipboard",
            "-t",
            "UTF8_STRING",
        ])
        .env("DISPLAY", &xvfb.display)
        .output()
        .expect("xclip (apt-get install xclip)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Polls `probe` until it gives something or `limit` passes.
fn wait_for<T>(limit: std::time::Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let started = std::time::Instant::now();
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// xrdp 0.9 from Debian with its session manager, for one local account whose X session (an
/// Xvnc display, picked by the domain `Xvnc`) runs `xsession`, a shell script. Needs root (the
/// account is the machine's, through PAM); everything is removed when dropped. One at a time:
/// xrdp-sesman listens on a fixed port.
struct XrdpSession {
    port: u16,
    password: String,
    // Dropped in this order: the daemons, then the account with its processes.
    _xrdp: ProcessGroup,
    _sesman: ProcessGroup,
    _config: tempfile::TempDir,
    account: Account,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

impl XrdpSession {
    /// `prepare` fills the account's home before its session starts.
    fn start(
        user: &'static str,
        xsession: &str,
        prepare: impl FnOnce(&std::path::Path),
    ) -> XrdpSession {
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let guard = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { geteuid() },
            0,
            "this test makes a local account for xrdp and must run as root (CI does)"
        );
        // A password of this run's own, and an account removed with its processes at the end.
        let password = format!("Xrdp-{}-{:x}!", std::process::id(), rand_u64());
        let account = Account::create(user, &password);
        prepare(&account.home);
        std::fs::write(
            account.home.join(".xsession"),
            format!("#!/bin/sh\nexec >~/session.log 2>&1\n{xsession}"),
        )
        .unwrap();
        account.chown_home();
        // The session's own processes (chansrv, as the account) make sockets here: the mode is
        // the one xrdp's service unit gives it. A root-only directory leaves xrdp with one black
        // frame, and no clipboard.
        std::fs::create_dir_all("/run/xrdp/sockdir").unwrap();
        set_mode("/run/xrdp/sockdir", 0o3777);
        // The machine's sesman.ini with a UTF-8 locale for the session, as a server with one
        // set in /etc/default/locale gives it (chansrv converts clipboard text with the C
        // library's locale-bound functions; this machine has none set).
        let config = tempfile::tempdir().unwrap();
        let sesman_ini = config.path().join("sesman.ini");
        let mut ini = std::fs::read_to_string("/etc/xrdp/sesman.ini")
            .expect("/etc/xrdp/sesman.ini (apt-get install xrdp)");
        ini = ini.replace("[SessionVariables]", "[SessionVariables]\nLANG=C.UTF-8");
        std::fs::write(&sesman_ini, ini).unwrap();
        let sesman = ProcessGroup::start(
            "xrdp-sesman",
            &["--nodaemon", "--config", sesman_ini.to_str().unwrap()],
        );
        let port = support::free_port();
        let xrdp = ProcessGroup::start(
            "xrdp",
            &["--nodaemon", "--port", &format!("tcp://127.0.0.1:{port}")],
        );
        support::wait_for_port(port, std::time::Duration::from_secs(10));
        XrdpSession {
            port,
            password,
            _xrdp: xrdp,
            _sesman: sesman,
            _config: config,
            account,
            _one_at_a_time: guard,
        }
    }

    fn home(&self) -> std::path::PathBuf {
        self.account.home.clone()
    }

    /// What the session's script wrote to its log so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.account.home.join("session.log")).unwrap_or_default()
    }
}

/// A local account for one test, removed with everything it runs and owns when dropped.
struct Account {
    name: &'static str,
    home: std::path::PathBuf,
}

impl Account {
    fn create(name: &'static str, password: &str) -> Account {
        let sh = |script: &str| {
            let status = std::process::Command::new("sh")
                .args(["-c", script])
                .status()
                .expect("sh");
            assert!(status.success(), "{script}");
        };
        // Left over by a run that was killed before it could clean up.
        sh(&format!(
            "if id {name} >/dev/null 2>&1; then pkill -KILL -u {name}; userdel -r {name} 2>/dev/null; true; fi"
        ));
        let home = std::path::PathBuf::from(format!("/home/{name}"));
        unmount_below(&home);
        let _ = std::fs::remove_dir_all(&home);
        sh(&format!("useradd -m -s /bin/sh {name}"));
        // chpasswd reads the password on stdin: never on a command line.
        let mut chpasswd = std::process::Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("chpasswd");
        use std::io::Write as _;
        writeln!(chpasswd.stdin.take().unwrap(), "{name}:{password}").unwrap();
        assert!(chpasswd.wait().unwrap().success());
        Account { name, home }
    }

    fn chown_home(&self) {
        let status = std::process::Command::new("chown")
            .args(["-R", self.name])
            .arg(&self.home)
            .status()
            .expect("chown");
        assert!(status.success());
        set_mode(self.home.join(".xsession"), 0o755);
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        // The account's own processes (its Xvnc session) by user id, then the account.
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-u", self.name])
            .status();
        std::thread::sleep(std::time::Duration::from_millis(200));
        // chansrv killed leaves its FUSE mount of the shared drives behind, which would keep
        // the home from being removed (and the next run from owning it).
        unmount_below(&self.home);
        let _ = std::process::Command::new("userdel")
            .args(["-r", self.name])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Detaches every file system mounted below `dir` (as root may: the mount of a dead FUSE
/// daemon only answers "transport endpoint is not connected" until then).
fn unmount_below(dir: &std::path::Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // The fifth field of each line is the mount point (proc(5)).
    for point in mounts.lines().filter_map(|line| line.split(' ').nth(4)) {
        if std::path::Path::new(point).starts_with(dir) {
            let _ = std::process::Command::new("umount")
                .args(["-l", point])
                .status();
        }
    }
}

/// A daemon in a process group of its own, so that it and every child it forks (xrdp forks
/// one per connection) end together, without matching processes by name.
struct ProcessGroup(std::process::Child);

impl ProcessGroup {
    fn start(program: &str, args: &[&str]) -> ProcessGroup {
        use std::os::unix::process::CommandExt as _;
        let child = std::process::Command::new(program)
            .args(args)
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e} (apt-get install xrdp)"));
        ProcessGroup(child)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let group = self.0.id() as i32;
        // SAFETY: kill has no memory preconditions; a negative pid names our own group.
        unsafe { kill(-group, 15) };
        let _ = self.0.wait();
    }
}

fn set_mode(path: impl AsRef<std::path::Path>, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .elapsed()
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}

extern "C" {
    fn geteuid() -> u32;
    fn kill(pid: i32, signal: i32) -> i32;
}

/// Weston's RDP backend (Debian `weston`): a real Wayland compositor on FreeRDP's server library,
/// TLS only, no authentication. It follows the client's desktop size, here one whose width is
/// not a multiple of 4, and shows its panel over a patterned grey background.
#[test]
fn weston_shows_its_desktop_at_the_clients_odd_size() {
    weston_shows_its_desktop(&["--exit-after", "40s"]);
}

/// The same with `--lossless`: Weston requires surface commands and closed the connection
/// right after activation when ecsrdp advertised no codec (a reconnection loop, a blank
/// snapshot, exit 0); it now gets the capability with no codec named, and sends raw pixels.
#[test]
fn weston_serves_a_lossless_session() {
    weston_shows_its_desktop(&["--exit-after", "15s", "--lossless"]);
}

fn weston_shows_its_desktop(extra: &[&str]) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=weston", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(made.status.success());
    let port = support::free_port();
    let _weston = support::Daemon(
        std::process::Command::new("weston")
            .arg("--backend=rdp-backend.so")
            .arg(format!("--rdp-tls-cert={}", cert.display()))
            .arg(format!("--rdp-tls-key={}", key.display()))
            .args([&format!("--port={port}"), "--address=127.0.0.1"])
            .args(["--width=1024", "--height=768"])
            .env("XDG_RUNTIME_DIR", &runtime)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("weston (apt-get install weston)"),
    );
    support::wait_for_port(port, std::time::Duration::from_secs(15));
    // Weston fades its desktop in over its first seconds: look once it has. It answers no
    // redraw request, so the long run also shows that its silence is not taken for death.
    let png = dir.path().join("out.png");
    let mut command = support::ecsrdp(dir.path());
    command
        .args(["direct", &format!("127.0.0.1:{port}"), "--user", USER])
        .args([
            "--security",
            "tls",
            "--password-stdin",
            "--headless",
            "--trust-new",
        ])
        .args(["--size", "1022x766"])
        .args(extra)
        .args(["--snapshot", png.to_str().unwrap()]);
    let run = Run::with_stdin(&mut command, Some("unused\n"));
    run.succeeds();
    assert!(!run.stderr.contains("reconnecting"), "{}", run.stderr);
    let (w, h, pixels) = read_png(&png);
    assert_eq!((w, h), (1022, 766), "Weston follows the client's size");
    let at = |x: u32, y: u32| {
        let i = ((y * w + x) * 3) as usize;
        [pixels[i], pixels[i + 1], pixels[i + 2]]
    };
    // The panel: a dark bar across the top; the background: mid grey, down to the last column.
    let dark = |p: [u8; 3]| p.iter().all(|&c| c < 70);
    let grey = |p: [u8; 3]| p.iter().all(|&c| (90..170).contains(&c));
    assert!(dark(at(500, 5)), "panel: {:?}", at(500, 5));
    let background = (40..h)
        .step_by(7)
        .flat_map(|y| (0..w).step_by(5).map(move |x| (x, y)))
        .filter(|&(x, y)| grey(at(x, y)))
        .count();
    let samples = (40..h).step_by(7).count() * (0..w).step_by(5).count();
    assert!(
        background * 10 > samples * 9,
        "{background} of {samples} samples grey"
    );
    assert!(
        grey(at(w - 1, h / 2)) && grey(at(w / 2, h - 1)),
        "no black edge"
    );
}

// ---- Session health -----------------------------------------------------------------------

/// `ecsrdp direct` to `port` on loopback, headless and lossless, as a thread to act beside.
fn session_in_background(
    home: &std::path::Path,
    port: u16,
    exit_after: &str,
    debug_log: bool,
    extra: &[&str],
) -> std::thread::JoinHandle<(Run, std::time::Instant)> {
    let mut command = support::ecsrdp(home);
    command
        .args(["direct", &format!("127.0.0.1:{port}"), "--user", USER])
        .args(extra)
        .args([
            "--password-stdin",
            "--headless",
            "--trust-new",
            "--lossless",
        ])
        .args(["--exit-after", exit_after]);
    if debug_log {
        command.env("RUST_LOG", "ecsrdp=debug");
    }
    std::thread::spawn(move || {
        let run = Run::with_stdin(&mut command, Some(&format!("{PASSWORD}\n")));
        (run, std::time::Instant::now())
    })
}

/// A still desktop sends nothing for as long as it stays still; the session must tell that
/// from a dead server by asking for redraws, which FreeRDP answers.
#[test]
fn an_idle_session_stays_up() {
    let xvfb = Xvfb::start(640, 480);
    let shadow = Shadow::start(&xvfb, "nla", USER, PASSWORD);
    let home = tempfile::tempdir().unwrap();
    let (run, _) = session_in_background(home.path(), shadow.port, "35s", true, &[])
        .join()
        .unwrap();
    run.succeeds();
    assert!(
        run.stderr.contains("asking for a redraw"),
        "the desktop never went quiet, so nothing was tested: {}",
        run.stderr
    );
}

/// A shadow server behind a proxy the test controls, and a session through it that has
/// received the whole desktop.
struct Proxied {
    _xvfb: Xvfb,
    shadow: Shadow,
    proxy: support::proxy::Proxy,
    _home: tempfile::TempDir,
    session: std::thread::JoinHandle<(Run, std::time::Instant)>,
}

impl Proxied {
    /// Without reconnection: what the fault does to a session is what is looked at.
    fn start() -> Proxied {
        Proxied::with(&["--reconnect", "0"], "120s", false)
    }

    fn with(extra: &[&str], exit_after: &str, debug_log: bool) -> Proxied {
        let xvfb = Xvfb::start(640, 480);
        let shadow = Shadow::start(&xvfb, "nla", USER, PASSWORD);
        let proxy = support::proxy::Proxy::start(shadow.port);
        let home = tempfile::tempdir().unwrap();
        let session = session_in_background(home.path(), proxy.port, exit_after, debug_log, extra);
        proxy.wait_downstream(20_000, std::time::Duration::from_secs(30));
        Proxied {
            _xvfb: xvfb,
            shadow,
            proxy,
            _home: home,
            session,
        }
    }

    /// Does `fault`, then expects exit 5 mentioning `needle` within `bound` of it.
    fn fault(mut self, fault: impl FnOnce(&mut Proxied), needle: &str, bound: std::time::Duration) {
        let at = std::time::Instant::now();
        fault(&mut self);
        let (run, ended) = self.session.join().unwrap();
        run.fails(5, needle);
        assert!(ended - at <= bound, "took {:?} to notice", ended - at);
    }
}

/// The server stops answering with the socket still open (a proxy that stalls, as a tunnel
/// does when the instance behind it stops): exit 5 within the liveness bound, not a hang.
#[test]
fn a_server_that_stops_answering_ends_the_session() {
    let proxied = Proxied::start();
    // A quiet spell first, whose redraw request the server answers (only a server known to
    // answer is judged by its silence): on a still desktop the client sends nothing but that
    // request, so the server's next bytes after it are the answer. Then silence from the
    // server's side.
    let limit = std::time::Duration::from_secs(20);
    let asked = proxied.proxy.upstream();
    proxied.proxy.wait_upstream(asked + 1, limit);
    let before = proxied.proxy.downstream();
    proxied.proxy.wait_downstream(before + 1, limit);
    proxied.fault(
        |p| p.proxy.stall(),
        "stopped answering",
        std::time::Duration::from_secs(35),
    );
}

/// The server process dies mid-session, and the connection is then cut: exit 5 at once, with
/// a message that says the session was under way.
#[test]
fn a_server_killed_mid_session_ends_the_session() {
    Proxied::start().fault(
        |p| p.shadow.kill(),
        "during the session",
        std::time::Duration::from_secs(5),
    );
}

/// A network blip (the connection reset under a running session): ecsrdp connects again by
/// itself, the server sends the desktop again on the new connection, and the session runs to
/// its end (exit 0) instead of failing.
#[test]
fn a_blip_reconnects_and_the_session_goes_on() {
    let proxied = Proxied::with(&[], "25s", true);
    // A blip before the session is up fails the first connection, which is not retried: the
    // session is surely up once the server has sent the desktop and gone quiet.
    proxied.proxy.wait_still(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(15),
    );
    let before = proxied.proxy.downstream();
    proxied.proxy.blip();
    let started = std::time::Instant::now();
    while proxied.proxy.connections() < 2 {
        if started.elapsed() > std::time::Duration::from_secs(15) {
            // The session ends by `--exit-after` at the latest; what it said tells why.
            let (run, _) = proxied.session.join().unwrap();
            panic!(
                "ecsrdp did not connect again (exit {}): {}",
                run.code, run.stderr
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The desktop again, on the new connection.
    proxied
        .proxy
        .wait_downstream(before + 20_000, std::time::Duration::from_secs(30));
    let (run, _) = proxied.session.join().unwrap();
    run.succeeds();
    assert!(run.stderr.contains("reconnecting"), "{}", run.stderr);
    assert!(run.stderr.contains("reconnected"), "{}", run.stderr);
    assert_eq!(proxied.proxy.connections(), 2);
}

/// The server is gone for good: ecsrdp tries `--reconnect` times, waiting longer each time,
/// then ends with exit 5 saying what was lost and that reconnecting failed.
#[test]
fn a_server_gone_for_good_is_tried_then_given_up() {
    let proxied = Proxied::with(&["--reconnect", "2"], "120s", false);
    let mut proxied = proxied;
    let at = std::time::Instant::now();
    proxied.shadow.kill();
    let (run, ended) = proxied.session.join().unwrap();
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(
        run.stderr.contains("tried to reconnect 2 times"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    // Two waits, 1 s and 2 s, and two refused connections.
    let took = ended - at;
    assert!(
        took >= std::time::Duration::from_secs(3) && took < std::time::Duration::from_secs(15),
        "took {took:?}"
    );
}

/// Something in between cuts every connection 4 s after it opens (a proxy with a short session
/// limit): each reconnection logs on and is lost again, so the tries are counted across them,
/// with the same growing waits, and ecsrdp ends with exit 5 saying the connection keeps
/// dropping. Before, each logon started the count over and it went on until `--exit-after`,
/// then exited 0.
#[test]
fn a_connection_that_keeps_dropping_is_given_up() {
    let proxied = Proxied::with(&["--reconnect", "3"], "150s", false);
    let at = std::time::Instant::now();
    proxied
        .proxy
        .cut_each_after(std::time::Duration::from_secs(4));
    let (run, ended) = proxied.session.join().unwrap();
    // Each loss is logged as a warning before the last word.
    assert_eq!(run.code, 5, "{}", run.stderr);
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.contains("keeps dropping"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    // The first connection and three that came back.
    assert_eq!(proxied.proxy.connections(), 4, "{}", run.stderr);
    // Waits of 1, 2 and 4 s and three short sessions: well before `--exit-after`.
    let took = ended - at;
    assert!(took < std::time::Duration::from_secs(60), "took {took:?}");
}

/// A middlebox resets the connection mid-session (RST): exit 5 at once, the session named.
#[test]
fn a_connection_reset_mid_session_ends_the_session() {
    Proxied::start().fault(
        |p| p.proxy.reset(),
        "during the session",
        std::time::Duration::from_secs(5),
    );
}
