//! The RDP half, as the README describes `ecsrdp direct`, against IronRDP's server crate running
//! in this process: exact pixels over TLS and NLA, input, server-side resize, certificate trust,
//! and every way a connection can fail.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use ecsrdp::rdp::{self, Command, ConnectOptions, Endpoint, Outcome, TrustKey, TrustStore};
use ironrdp_input::{MouseButton, MousePosition, Operation, Scancode};
use support::rdp_server::{InputEvent, Security, TestServer, TestServerOptions};
use support::{read_png, Run};

const USER: &str = "Administrator";
const PASSWORD: &str = "S3cret-pw!";

async fn server(security: Security, width: u16, height: u16) -> TestServer {
    TestServer::start(TestServerOptions {
        security,
        user: USER.into(),
        password: PASSWORD.into(),
        width,
        height,
        avc420: false,
    })
    .await
}

/// `ecsrdp direct` against `port`, headless, the password on stdin; `--security tls` unless
/// `extra` says otherwise, since most servers here offer TLS only (NLA is the default, as
/// `direct_requires_nla_by_default` shows).
fn direct(home: &Path, port: u16, extra: &[&str]) -> std::process::Command {
    let mut command = support::ecsrdp(home);
    command
        .args([
            "direct",
            &format!("127.0.0.1:{port}"),
            "--user",
            USER,
            "--password-stdin",
        ])
        .args(["--headless", "--lossless", "--connect-timeout", "3s"])
        .args(extra);
    if !extra.contains(&"--security") {
        command.args(["--security", "tls"]);
    }
    command
}

async fn run_direct(home: &Path, port: u16, extra: &[&str], password: &str) -> Run {
    let mut command = direct(home, port, extra);
    let input = format!("{password}\n");
    tokio::task::spawn_blocking(move || Run::with_stdin(&mut command, Some(&input)))
        .await
        .expect("run ecsrdp")
}

/// Every pixel of the snapshot equals the served pattern.
fn assert_pattern(png: &Path, width: u32, height: u32) {
    let (w, h, rgb) = read_png(png);
    assert_eq!((w, h), (width, height), "snapshot size");
    let mut wrong = 0;
    for y in 0..h {
        for x in 0..w {
            let i = ((y * w + x) * 3) as usize;
            let [b, g, r, _] = TestServer::expected_pixel(x as u16, y as u16);
            if rgb[i..i + 3] != [r, g, b] {
                wrong += 1;
            }
        }
    }
    assert_eq!(
        wrong,
        0,
        "{wrong} of {} pixels differ from what was served",
        w * h
    );
}

// ---- Pixels -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn tls_session_reproduces_the_served_pixels_exactly() {
    let server = server(Security::Tls, 320, 200).await;
    let home = tempfile::tempdir().unwrap();
    let png = home.path().join("out.png");
    let png_arg = png.to_str().unwrap();
    let run = run_direct(
        home.path(),
        server.addr.port(),
        &[
            "--trust-new",
            "--size",
            "320x200",
            "--snapshot",
            png_arg,
            "--exit-after",
            "2s",
        ],
        PASSWORD,
    )
    .await;
    run.succeeds();
    assert_pattern(&png, 320, 200);
    // `direct` negotiates, but never downgrades silently.
    assert!(
        run.stderr
            .contains("does not use Network Level Authentication"),
        "{}",
        run.stderr
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nla_session_reproduces_the_served_pixels_exactly() {
    let server = server(Security::Hybrid, 480, 272).await;
    let home = tempfile::tempdir().unwrap();
    let png = home.path().join("out.png");
    let run = run_direct(
        home.path(),
        server.addr.port(),
        &[
            "--trust-new",
            "--size",
            "480x272",
            "--snapshot",
            png.to_str().unwrap(),
            "--exit-after",
            "2s",
        ],
        PASSWORD,
    )
    .await;
    run.succeeds();
    assert_pattern(&png, 480, 272);
    // NLA: nothing to warn about; only how the certificate came to be trusted is said.
    assert!(
        run.stderr
            .lines()
            .all(|line| line.contains("because of --trust-new, unverified")),
        "{}",
        run.stderr
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_side_resize_is_followed() {
    let server = server(Security::Tls, 320, 200).await;
    let home = tempfile::tempdir().unwrap();
    let png = home.path().join("out.png");
    let args = [
        "--trust-new",
        "--size",
        "320x200",
        "--snapshot",
        png.to_str().unwrap(),
        "--exit-after",
        "3s",
    ];
    let running = run_direct(home.path(), server.addr.port(), &args, PASSWORD);
    let resize = async {
        server.wait_painted(1, Duration::from_secs(10)).await;
        server.request_resize(400, 240);
    };
    let (run, ()) = tokio::join!(running, resize);
    run.succeeds();
    assert_pattern(&png, 400, 240);
    server.stop().await;
}

/// `ECSRDP_RECORD` writes the server's stream (on a thread of its own) as the replays read it:
/// the recording of a session, replayed through the session's decoding, paints the pattern
/// the session showed.
#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_session_replays_to_the_desktop_it_showed() {
    let server = server(Security::Tls, 320, 200).await;
    let home = tempfile::tempdir().unwrap();
    let png = home.path().join("out.png");
    let recorded = home.path().join("session.bin");
    let mut command = direct(
        home.path(),
        server.addr.port(),
        &[
            "--trust-new",
            "--size",
            "320x200",
            "--exit-after",
            "2s",
            "--snapshot",
            png.to_str().unwrap(),
        ],
    );
    command.env("ECSRDP_RECORD", &recorded);
    let input = format!("{PASSWORD}\n");
    let run = tokio::task::spawn_blocking(move || Run::with_stdin(&mut command, Some(&input)))
        .await
        .unwrap();
    run.succeeds();
    assert_pattern(&png, 320, 200);
    let stream = std::fs::read(&recorded).expect("the recording");
    let mut canvas = ecsrdp::render::Canvas::new(320, 200);
    let stage = &mut ecsrdp::rdp::replay_stage(rdp::Codecs::Lossless);
    let decoded = ecsrdp::rdp::replay(stage, &mut canvas, &stream, |_| {}).expect("it replays");
    assert!(decoded > 0);
    ecsrdp::snapshot::write_png(&canvas.frame().lock(), &png).unwrap();
    assert_pattern(&png, 320, 200);
    server.stop().await;
}

/// AVC420, what Windows sends when H.264 is on (the shadow servers send AVC444): the server
/// paints its pattern as one H.264 picture through the graphics pipeline, and the client, with
/// its default codecs, shows that picture: up to rounding against the picture as the server
/// decodes it itself, and as close to the pattern as 4:2:0 H.264 gets (PSNR; a black or
/// misplaced picture scores under 10 dB).
#[tokio::test(flavor = "multi_thread")]
async fn avc420_from_the_server_shows_the_picture_it_sent() {
    let (width, height) = (640u16, 480u16);
    let server = TestServer::start(TestServerOptions {
        security: Security::Hybrid,
        user: USER.into(),
        password: PASSWORD.into(),
        width,
        height,
        avc420: true,
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let png = home.path().join("out.png");
    let mut command = support::ecsrdp(home.path());
    command
        .args(["direct", &format!("127.0.0.1:{}", server.addr.port())])
        .args([
            "--user",
            USER,
            "--password-stdin",
            "--headless",
            "--trust-new",
        ])
        .args([
            "--size",
            "640x480",
            "--exit-after",
            "4s",
            "-v",
            "--snapshot",
        ])
        .arg(&png);
    let input = format!("{PASSWORD}\n");
    let run = tokio::task::spawn_blocking(move || Run::with_stdin(&mut command, Some(&input)))
        .await
        .unwrap();
    run.succeeds();
    assert!(
        run.stderr.contains("graphics pipeline codec in use") && run.stderr.contains("Avc420"),
        "{}",
        run.stderr
    );
    let (w, h, got) = read_png(&png);
    assert_eq!((w, h), (u32::from(width), u32::from(height)));
    let truth: Vec<u8> = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .flat_map(|(x, y)| {
            let [b, g, r, _] = TestServer::expected_pixel(x, y);
            [r, g, b]
        })
        .collect();
    let sent = server.avc420_shown().expect("the server sent a picture");
    let (to_sent, to_pattern) = (support::psnr(&got, &sent), support::psnr(&got, &truth));
    eprintln!("AVC420: {to_sent:.1} dB from the picture sent, {to_pattern:.1} dB from the pattern");
    assert!(to_sent > 45.0, "{to_sent:.1} dB from the picture sent");
    assert!(
        to_pattern > 20.0,
        "{to_pattern:.1} dB from the served pattern"
    );
    server.stop().await;
}

// ---- Input --------------------------------------------------------------------------------

/// The library's connection to `port` on loopback, as `ecsrdp direct` makes it, with NLA.
fn endpoint_at(port: u16) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port,
        user: USER.into(),
        domain: None,
        password: ecsrdp::keys::Password::new(PASSWORD.into()),
        trust_key: TrustKey::new("input-test".into()),
        title: "input".into(),
    }
}

fn options_for(desktop: (u16, u16), scale_percent: u32) -> ConnectOptions {
    ConnectOptions {
        security: rdp::Security::Nla,
        desktop,
        scale_percent,
        codecs: rdp::Codecs::Lossless,
        login_screen: false,
        connect_timeout: Duration::from_secs(3),
        keyboard_layout: 0,
        clipboard: None,
        drive: None,
        drive_read_only: false,
        h264_decoder: rdp::DecoderChoice::Auto,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_clicks_arrive_as_scancodes_and_positions() {
    let server = server(Security::Hybrid, 320, 200).await;
    let home = tempfile::tempdir().unwrap();
    let endpoint = endpoint_at(server.addr.port());
    let store = TrustStore::at(home.path().join("known_hosts"));
    let handshake = rdp::connect(&endpoint, options_for((320, 200), 100), &store)
        .await
        .expect("TLS handshake");
    assert!(handshake.is_new() && handshake.nla());
    let connected = handshake.finish(&store, true).await.expect("log in");
    let session = rdp::Session::new(connected, None);
    let commands = session.commands();
    let session = tokio::spawn(session.run(NoSink));

    let a = Scancode::from_u8(false, 0x1E);
    let left = Scancode::from_u8(true, 0x4B);
    for ops in [
        vec![Operation::KeyPressed(a)],
        vec![Operation::KeyReleased(a)],
        vec![Operation::KeyPressed(left)],
        vec![Operation::MouseMove(MousePosition { x: 37, y: 21 })],
        vec![Operation::MouseButtonPressed(MouseButton::Left)],
        vec![Operation::MouseButtonReleased(MouseButton::Left)],
    ] {
        commands.send(Command::Input(ops)).await.unwrap();
    }
    // Losing focus releases the arrow key still held.
    commands.send(Command::ReleaseAll).await.unwrap();
    // Close once everything has arrived (or after a generous limit, for the assertion below).
    let started = std::time::Instant::now();
    while server.input.events().len() < 7 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    commands.send(Command::Close).await.unwrap();
    assert_eq!(session.await.unwrap().expect("session"), Outcome::Closed);

    let events = server.input.events();
    let expected = [
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
        InputEvent::MouseMove { x: 37, y: 21 },
        InputEvent::MouseButton {
            button: 1,
            down: true,
            x: 37,
            y: 21,
        },
        InputEvent::MouseButton {
            button: 1,
            down: false,
            x: 37,
            y: 21,
        },
        InputEvent::Key {
            code: 0x4B,
            extended: true,
            down: false,
        },
    ];
    assert_eq!(events, expected);
    server.stop().await;
}

struct NoSink;

impl rdp::FrameSink for NoSink {
    fn frame_ready(&self) {}
    fn pointer(&self, _shape: rdp::PointerShape) {}
}

/// A sink that tells when the session starts getting a lost connection back.
struct Reconnecting(tokio::sync::mpsc::UnboundedSender<()>);

impl rdp::FrameSink for Reconnecting {
    fn frame_ready(&self) {}
    fn pointer(&self, _shape: rdp::PointerShape) {}
    fn reconnecting(&self, attempt: Option<(u32, u32)>) {
        if attempt.is_some() {
            let _ = self.0.send(());
        }
    }
}

/// The window is resized before the server has opened Display Control (a first logon takes a
/// while): the request waits for the channel and goes out once it opens, exactly as asked.
#[tokio::test(flavor = "multi_thread")]
async fn a_resize_asked_before_display_control_opens_is_sent_once_it_does() {
    let server = TestServer::start(TestServerOptions {
        security: Security::Hybrid,
        user: USER.into(),
        password: PASSWORD.into(),
        width: 320,
        height: 200,
        avc420: true,
    })
    .await;
    server.open_dynamic_channels_after(Duration::from_secs(2));
    let home = tempfile::tempdir().unwrap();
    let store = TrustStore::at(home.path().join("known_hosts"));
    let endpoint = endpoint_at(server.addr.port());
    let connected = rdp::connect(&endpoint, options_for((320, 200), 100), &store)
        .await
        .expect("TLS handshake")
        .finish(&store, true)
        .await
        .expect("log in");
    let session = rdp::Session::new(connected, None);
    let commands = session.commands();
    let (away, _) = tokio::sync::mpsc::unbounded_channel();
    let session = tokio::spawn(session.run(Reconnecting(away)));
    commands
        .send(Command::Resize {
            width: 800,
            height: 600,
            scale_percent: 125,
        })
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while server.layouts().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no layout once Display Control opened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Once the channel opens (2 s), not at the next timer (the 5 s grace before the window
    // scales instead).
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(1500) && after < Duration::from_secs(4),
        "sent {after:?} after it was asked"
    );
    assert_eq!(server.layouts(), [(800, 600, Some(125))]);
    commands.send(Command::Close).await.unwrap();
    assert_eq!(session.await.unwrap().expect("session"), Outcome::Closed);
    server.stop().await;
}

/// The network drops the session (a blip) after the window was resized and Caps Lock turned
/// on, and the window is resized again and Num Lock turned on while it is away: the new
/// connection asks for the window's last desktop and scale factor (not the first 320x200 at
/// 100 %) and the server gets the lock keys as they are now. Both were lost before.
#[tokio::test(flavor = "multi_thread")]
async fn a_reconnection_keeps_the_desktop_and_lock_keys_the_user_had() {
    use ecsrdp::rdp::{Layout, Locks};
    let server = server(Security::Hybrid, 320, 200).await;
    let proxy = support::proxy::Proxy::start(server.addr.port());
    let home = tempfile::tempdir().unwrap();
    let store = TrustStore::at(home.path().join("known_hosts"));
    let endpoint = endpoint_at(proxy.port);
    let handshake = rdp::connect(&endpoint, options_for((320, 200), 100), &store)
        .await
        .expect("TLS handshake");
    let connected = handshake.finish(&store, true).await.expect("log in");

    let (asked_tx, mut asked) = tokio::sync::mpsc::unbounded_channel();
    let reconnect = rdp::Reconnect {
        attempts: 3,
        connect: Box::new(move |layout: Option<Layout>| {
            let (endpoint, store, asked_tx) = (endpoint.clone(), store.clone(), asked_tx.clone());
            Box::pin(async move {
                let _ = asked_tx.send(layout);
                let (desktop, scale) = layout.map_or(((320, 200), 100), Layout::at_connection);
                let options = options_for(desktop, scale);
                rdp::connect(&endpoint, options, &store)
                    .await?
                    .finish(&store, false)
                    .await
            })
        }),
    };
    let session = rdp::Session::new(connected, None).with_reconnect(reconnect);
    let commands = session.commands();
    let (away_tx, mut away) = tokio::sync::mpsc::unbounded_channel();
    let session = tokio::spawn(session.run(Reconnecting(away_tx)));

    let caps = Locks {
        caps: true,
        ..Locks::default()
    };
    commands.send(Command::SyncLocks(caps)).await.unwrap();
    let resize = |width, height, scale_percent| Command::Resize {
        width,
        height,
        scale_percent,
    };
    commands.send(resize(800, 600, 125)).await.unwrap();
    let started = std::time::Instant::now();
    while server.input.syncs() != [4] {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            server.input.syncs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.blip();
    tokio::time::timeout(Duration::from_secs(10), away.recv())
        .await
        .expect("the session noticed the loss");
    // While away.
    commands.send(resize(1001, 700, 150)).await.unwrap();
    let num_too = Locks { num: true, ..caps };
    commands.send(Command::SyncLocks(num_too)).await.unwrap();

    let layout = tokio::time::timeout(Duration::from_secs(10), asked.recv())
        .await
        .expect("a reconnection")
        .unwrap();
    assert_eq!(
        layout,
        Some(Layout {
            width: 1001,
            height: 700,
            scale_percent: 150
        })
    );
    // Asked for as Display Control would: an even width.
    assert_eq!(layout.unwrap().at_connection(), ((1000, 700), 150));
    let started = std::time::Instant::now();
    while server.input.syncs().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no lock keys after reconnecting"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Caps (4) on the first connection; caps and num (4 | 2) first thing on the new one.
    assert_eq!(server.input.syncs(), [4, 6]);
    assert_eq!(proxy.connections(), 2);
    commands.send(Command::Close).await.unwrap();
    assert_eq!(session.await.unwrap().expect("session"), Outcome::Closed);
    server.stop().await;
}

// ---- Trust --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_new_certificate_needs_a_terminal_or_trust_new() {
    let server = server(Security::Tls, 320, 200).await;
    let home = tempfile::tempdir().unwrap();
    let port = server.addr.port();
    run_direct(home.path(), port, &["--exit-after", "1s"], PASSWORD)
        .await
        .fails(5, "pass --trust-new");
    run_direct(
        home.path(),
        port,
        &["--trust-new", "--exit-after", "1s"],
        PASSWORD,
    )
    .await
    .succeeds();
    // Remembered now: no flag needed.
    run_direct(home.path(), port, &["--exit-after", "1s"], PASSWORD)
        .await
        .succeeds();
    let fingerprint = ecsrdp::rdp::fingerprint(&server.cert_der());
    let listed = Run::of(support::ecsrdp(home.path()).args(["trust", "list"]));
    assert!(listed.stdout.contains(&fingerprint), "{}", listed.stdout);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_certificate_is_refused_until_forgotten() {
    let server = server(Security::Tls, 320, 200).await;
    let home = tempfile::tempdir().unwrap();
    let port = server.addr.port();
    let key = format!("127.0.0.1:{port}");
    let store = TrustStore::at(home.path().join("data/known_hosts"));
    let other = vec!["AB"; 32].join(":");
    store.remember(&TrustKey::new(key.clone()), &other).unwrap();

    let run = run_direct(
        home.path(),
        port,
        &["--trust-new", "--exit-after", "1s"],
        PASSWORD,
    )
    .await;
    run.fails(5, "has CHANGED");
    assert!(
        run.stderr.contains(&format!("ecsrdp trust forget {key}")),
        "{}",
        run.stderr
    );

    Run::of(support::ecsrdp(home.path()).args(["trust", "forget", &key])).succeeds();
    run_direct(
        home.path(),
        port,
        &["--trust-new", "--exit-after", "1s"],
        PASSWORD,
    )
    .await
    .succeeds();
    server.stop().await;
}

// ---- Failures -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_desktop_larger_than_any_screen_is_refused() {
    let server = server(Security::Hybrid, 8200, 64).await;
    let home = tempfile::tempdir().unwrap();
    run_direct(home.path(), server.addr.port(), &["--trust-new"], PASSWORD)
        .await
        .fails(5, "at most 8192x8192 is accepted");
    server.stop().await;
}

#[test]
fn no_display_is_a_local_failure_before_any_connection() {
    let home = tempfile::tempdir().unwrap();
    // Nothing listens on the port: the display is checked first, so this is never reached.
    let port = support::free_port();
    let mut command = support::ecsrdp(home.path());
    command
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("WAYLAND_SOCKET")
        .env("ECSRDP_PASSWORD", PASSWORD)
        .args(["direct", &format!("127.0.0.1:{port}")]);
    Run::of(&mut command)
        .fails(6, "there is no display")
        .fails(6, "use --headless");
}

/// The config file's `user` is the one `direct` logs on as when the command line names none (it
/// was ignored for `direct`).
#[tokio::test(flavor = "multi_thread")]
async fn direct_takes_the_user_from_the_config_file() {
    let server = server(Security::Tls, 320, 200).await;
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.toml");
    std::fs::write(&config, "user = \"ops\"\n").unwrap();
    let port = server.addr.port();
    let run = |user: Option<&'static str>| {
        let mut command = support::ecsrdp(home.path());
        command
            .env("ECSRDP_CONFIG", &config)
            .env("ECSRDP_PASSWORD", PASSWORD)
            .args(["direct", &format!("127.0.0.1:{port}"), "--security", "tls"])
            .args(["--headless", "--trust-new", "--exit-after", "1s"]);
        if let Some(user) = user {
            command.args(["--user", user]);
        }
        Run::of(&mut command)
    };
    tokio::task::block_in_place(|| {
        run(None).fails(5, "refused the login of `ops`");
        run(Some(USER)).succeeds();
    });
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_is_a_login_failure() {
    let server = server(Security::Hybrid, 320, 200).await;
    let home = tempfile::tempdir().unwrap();
    run_direct(
        home.path(),
        server.addr.port(),
        &["--trust-new"],
        "not-the-password",
    )
    .await
    .fails(5, "refused the login of `Administrator`");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_port() {
    let home = tempfile::tempdir().unwrap();
    let port = support::free_port();
    run_direct(home.path(), port, &[], PASSWORD)
        .await
        .fails(5, "cannot connect to 127.0.0.1");
}

/// A listener that answers each connection with `reply` after reading the request.
fn fake_server(reply: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 512];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(reply);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn server_closing_mid_handshake() {
    let home = tempfile::tempdir().unwrap();
    let port = fake_server(b"");
    run_direct(home.path(), port, &[], PASSWORD)
        .await
        .fails(5, "closed the connection during negotiation");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_sending_garbage() {
    let home = tempfile::tempdir().unwrap();
    let port = fake_server(b"\x03\x00\x00\x0bHTTP/1.1 400 Bad Request\r\n\r\n garbage garbage");
    run_direct(home.path(), port, &[], PASSWORD)
        .await
        .fails(5, "is this an RDP server?");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_going_away_mid_session() {
    let server = server(Security::Tls, 320, 200).await;
    let home = tempfile::tempdir().unwrap();
    let running = run_direct(
        home.path(),
        server.addr.port(),
        // What the loss itself looks like; reconnecting is tests/peers.rs's.
        &["--trust-new", "--exit-after", "20s", "--reconnect", "0"],
        PASSWORD,
    );
    let stop = async {
        server.wait_painted(1, Duration::from_secs(10)).await;
        server.stop().await;
    };
    let (run, ()) = tokio::join!(running, stop);
    // The server's thread stops without a goodbye: the connection drops under the session.
    // Never a hang until --exit-after, never a panic.
    run.fails(5, "during the session");
}

/// The server ends the session as Windows does (Set Error Info, then the MCS ultimatum), with
/// `code`: the run's result.
async fn ended_by_server_with(code: u32) -> Run {
    let server = server(Security::Tls, 320, 200).await;
    let home = tempfile::tempdir().unwrap();
    let running = run_direct(
        home.path(),
        server.addr.port(),
        &["--trust-new", "--exit-after", "30s"],
        PASSWORD,
    );
    let end = async {
        server.wait_painted(1, Duration::from_secs(10)).await;
        server.end_session(code);
    };
    let (run, ()) = tokio::join!(running, end);
    server.stop().await;
    run
}

/// A server-initiated end says why and exits by who ended it: signing out from inside is the
/// user's own end (exit 0, said); another connection taking the session over, an
/// administrator's disconnect, or a code nobody lists is exit 7 with the reason and the code,
/// not reconnected to. Before, every one of them exited 0.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_ending_the_session_says_why_with_its_own_exit_code() {
    let signed_out = ended_by_server_with(0x0C).await;
    signed_out.succeeds();
    assert!(
        signed_out.stderr.contains("you signed out"),
        "{}",
        signed_out.stderr
    );

    let taken = ended_by_server_with(0x05).await;
    taken.fails(7, "another connection took the session over");
    assert!(
        taken.stderr.contains("(error info 0x00000005)"),
        "{}",
        taken.stderr
    );
    assert!(!taken.stderr.contains("reconnecting"), "{}", taken.stderr);

    ended_by_server_with(0x01)
        .await
        .fails(7, "an administrator disconnected the session");
    // A code IronRDP cannot decode is still an end, not "data ecsrdp cannot understand".
    ended_by_server_with(0x0BAD).await.fails(
        7,
        "for a reason ecsrdp does not know (error info 0x00000BAD)",
    );
}

/// While ecsrdp holds a password it writes no core file: a crash must not leave the password on
/// disk. (The process is also marked not dumpable, which only root could see from here.)
#[test]
fn no_core_file_while_a_password_is_held() {
    // A server that accepts and never answers: ecsrdp waits in the handshake, password in hand.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let home = tempfile::tempdir().unwrap();
    let mut command = support::ecsrdp(home.path());
    command
        .env("ECSRDP_PASSWORD", PASSWORD)
        .args(["direct", &format!("127.0.0.1:{port}"), "--headless"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let client = support::Daemon(command.spawn().expect("start ecsrdp"));
    let _connection = listener.accept().expect("ecsrdp connects");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", client.0.id())).unwrap();
    let core = limits
        .lines()
        .find(|line| line.starts_with("Max core file size"))
        .expect("a core file limit");
    let sizes: Vec<&str> = core.split_whitespace().skip(4).take(2).collect();
    assert_eq!(sizes, ["0", "0"], "{core}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_password_for_direct_is_a_password_problem() {
    let home = tempfile::tempdir().unwrap();
    let mut command = support::ecsrdp(home.path());
    command.args(["direct", "127.0.0.1:1", "--headless"]);
    tokio::task::spawn_blocking(move || Run::of(&mut command))
        .await
        .unwrap()
        .fails(4, "no password");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_that_does_not_resolve() {
    let home = tempfile::tempdir().unwrap();
    let mut command = support::ecsrdp(home.path());
    command
        .args([
            "direct",
            "no-such-host.invalid",
            "--password-stdin",
            "--headless",
        ])
        .stdin(std::process::Stdio::piped());
    tokio::task::spawn_blocking(move || Run::with_stdin(&mut command, Some("pw\n")))
        .await
        .unwrap()
        .fails(5, "cannot resolve host `no-such-host.invalid`");
}

/// The server picks TLS in its X.224 answer, then sends no TLS at all.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_tls_handshake() {
    let home = tempfile::tempdir().unwrap();
    // TPKT (19 bytes), X.224 Connection Confirm, RDP_NEG_RSP selecting PROTOCOL_SSL; then junk.
    let port = fake_server(
        b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00\x02\x00\x08\x00\x01\x00\x00\x00\
          HTTP/1.1 400 Bad Request\r\n\r\n",
    );
    run_direct(home.path(), port, &[], PASSWORD)
        .await
        .fails(5, "the TLS handshake with 127.0.0.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_that_cannot_be_written_is_a_local_failure() {
    let server = server(Security::Tls, 320, 200).await;
    let home = tempfile::tempdir().unwrap();
    let png = home.path().join("no-such-dir").join("out.png");
    let args = [
        "--trust-new",
        "--exit-after",
        "1s",
        "--snapshot",
        png.to_str().unwrap(),
    ];
    run_direct(home.path(), server.addr.port(), &args, PASSWORD)
        .await
        .fails(6, "snapshot");
    server.stop().await;
}

/// A port whose SYNs go unanswered, as a security group that drops them does: a listener with
/// a backlog of 0 whose one queue slot is already taken, so the kernel drops further SYNs.
fn filtered_port() -> (socket2::Socket, Vec<std::net::TcpStream>, u16) {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    // Fill the accept queue; a connect that the kernel has begun dropping times out here.
    let mut fillers = Vec::new();
    while let Ok(stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
        fillers.push(stream);
        assert!(fillers.len() < 16, "the kernel never dropped a SYN");
    }
    (listener, fillers, addr.port())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filtered_port_times_out_with_the_ways_around_it_named() {
    let home = tempfile::tempdir().unwrap();
    let (_listener, _fillers, port) = filtered_port();
    let started = std::time::Instant::now();
    // `direct` asks for --connect-timeout 3s.
    run_direct(home.path(), port, &[], PASSWORD)
        .await
        .fails(5, "timed out after 3s")
        .fails(5, "`ecsrdp resolve` shows the instance's rules")
        .fails(5, "--tunnel eice");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// TCP connects (a tunnel does, whatever is behind it) and then nothing answers: the handshake
/// gives up after its limit rather than hanging.
#[tokio::test(flavor = "multi_thread")]
async fn a_handshake_that_stalls_gives_up() {
    let home = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts, reads what comes, and never answers.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.read(&mut [0u8; 512]);
            held.push(stream);
        }
    });
    let started = std::time::Instant::now();
    run_direct(home.path(), port, &[], PASSWORD)
        .await
        .fails(5, "did not finish within 45 s");
    let took = started.elapsed();
    assert!(
        (Duration::from_secs(44)..Duration::from_secs(55)).contains(&took),
        "{took:?}"
    );
}

/// The server answers the negotiation with a refusal (here: it allows no TLS, the legacy RDP
/// security ecsrdp never offers): named, not a protocol dump.
#[tokio::test(flavor = "multi_thread")]
async fn no_common_security_protocol_is_named() {
    let home = tempfile::tempdir().unwrap();
    // TPKT, X.224 Connection Confirm, RDP_NEG_FAILURE with SSL_NOT_ALLOWED_BY_SERVER (2).
    let port = fake_server(
        b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00\x03\x00\x08\x00\x02\x00\x00\x00",
    );
    run_direct(home.path(), port, &["--security", "tls"], PASSWORD)
        .await
        .fails(5, "share no security protocol");
}

/// `direct` requires NLA as AWS targets do: a server that offers only TLS (or a man in the
/// middle saying so) is refused at the negotiation, before TLS and before the password, with
/// the way to accept it named; nothing is pinned. It was accepted with a warning before.
#[tokio::test(flavor = "multi_thread")]
async fn direct_requires_nla_by_default() {
    let home = tempfile::tempdir().unwrap();
    // What Windows with NLA turned off answers a request for NLA: TPKT, X.224 Connection
    // Confirm, RDP_NEG_FAILURE with SSL_REQUIRED_BY_SERVER (1).
    let windows = fake_server(
        b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00\x03\x00\x08\x00\x01\x00\x00\x00",
    );
    // The flag as a user would leave it: absent.
    let mut command = support::ecsrdp(home.path());
    command.env("ECSRDP_PASSWORD", PASSWORD).args([
        "direct",
        &format!("127.0.0.1:{windows}"),
        "--headless",
        "--trust-new",
    ]);
    let refused = tokio::task::spawn_blocking(move || Run::of(&mut command))
        .await
        .unwrap();
    refused.fails(5, "does not offer Network Level Authentication");
    assert!(
        refused.stderr.contains("--security tls"),
        "{}",
        refused.stderr
    );
    let listed = Run::of(support::ecsrdp(home.path()).args(["trust", "list"]));
    assert_eq!(listed.stdout, "", "nothing pinned");

    // IronRDP's server offering TLS only just hangs up on a request for NLA: the way out is
    // named there too.
    let server = server(Security::Tls, 320, 200).await;
    let port = server.addr.port();
    let dropped = run_direct(
        home.path(),
        port,
        &["--security", "nla", "--trust-new", "--exit-after", "1s"],
        PASSWORD,
    )
    .await;
    dropped.fails(5, "closed the connection during the negotiation of NLA");
    assert!(
        dropped.stderr.contains("--security tls"),
        "{}",
        dropped.stderr
    );
    let listed = Run::of(support::ecsrdp(home.path()).args(["trust", "list"]));
    assert_eq!(listed.stdout, "", "nothing pinned");
}

/// On a terminal, a first certificate is shown and asked about: "n" sends nothing and remembers
/// nothing, "y" connects and remembers it. `script` gives ecsrdp its terminal.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_certificate_is_asked_about_on_a_terminal() {
    let server = server(Security::Tls, 320, 200).await;
    let home = tempfile::tempdir().unwrap();
    let fingerprint = ecsrdp::rdp::fingerprint(&server.cert_der());
    // The thumbprint as Windows shows it: SHA-1 of the certificate, 40 hex digits.
    let thumbprint: String = <sha1::Sha1 as sha1::Digest>::digest(server.cert_der())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let port = server.addr.port();
    let answer = |reply: &'static str| {
        let mut command = support::ecsrdp(home.path());
        command
            .env("ECSRDP_PASSWORD", PASSWORD)
            .args(["direct", &format!("127.0.0.1:{port}"), "--user", USER])
            .args([
                "--security",
                "tls",
                "--headless",
                "--lossless",
                "--exit-after",
                "1s",
            ]);
        tokio::task::spawn_blocking(move || support::on_a_terminal(&command, reply))
    };
    let listed = || Run::of(support::ecsrdp(home.path()).args(["trust", "list"])).stdout;

    let refused = answer("n\n").await.unwrap();
    assert_eq!(refused.code, 5, "{refused:?}");
    // What the terminal showed: the question with the thumbprint and the fingerprint, then the
    // refusal.
    assert!(refused.stdout.contains(&fingerprint), "{}", refused.stdout);
    assert!(refused.stdout.contains(&thumbprint), "{}", refused.stdout);
    assert!(refused.stdout.contains("[y/N]"), "{}", refused.stdout);
    assert!(
        refused.stdout.contains("was not trusted; nothing was sent"),
        "{}",
        refused.stdout
    );
    assert!(!listed().contains(&fingerprint));

    let accepted = answer("y\n").await.unwrap();
    assert_eq!(accepted.code, 0, "{accepted:?}");
    assert!(listed().contains(&fingerprint));
    server.stop().await;
}

/// `ecsrdp trust list | head -1` on a long store: the reader leaving early is its choice, not a
/// failure of ecsrdp's (no panic, exit 0).
#[test]
fn trust_list_into_a_closed_pipe_is_not_a_failure() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let fingerprint = ["AB"; 32].join(":");
    // More than a pipe holds, so that writing runs into the closed end.
    let store: String = (0..3000)
        .map(|n| format!("i-{n:017x} {fingerprint}\n"))
        .collect();
    std::fs::write(data.join("known_hosts"), store).unwrap();
    let mut child = support::ecsrdp(home.path())
        .args(["trust", "list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
