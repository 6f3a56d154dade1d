//! Private instances through an EC2 Instance Connect Endpoint, as the README describes: the
//! emulator holds an instance with no public address in a VPC with an endpoint, and answers
//! `DescribeInstanceConnectEndpoints`; its tunnel service checks each presigned URL with
//! botocore's SigV4 and forwards to FreeRDP's shadow server standing in for the instance.
//! `ecsrdp <cluster>/<instance>` and nothing else reaches the desktop.

mod support;

use support::{read_png, Emulator, Run, Shadow, Xvfb};

const PRIVATE: &str = "win-private";

/// `ecsrdp demo/<instance>` with the instance's key, headless.
fn ecsrdp(emu: &Emulator, home: &std::path::Path, name: &str) -> std::process::Command {
    let mut command = emu.ecsrdp(home);
    command
        .arg(emu.target(name))
        .args(["--key", &emu.field(name, "key_file")])
        .args(["--headless", "--trust-new", "--exit-after", "2s"]);
    command
}

/// On a terminal, one line names each phase as it comes and is gone once the session runs;
/// `-q` shows none of it. (Without a terminal, every other test's stderr shows there is none.)
#[test]
fn a_terminal_shows_each_phase_and_quiet_shows_none() {
    let emu = Emulator::shared();
    let xvfb = Xvfb::start(640, 480);
    let password = emu.field(PRIVATE, "password");
    let shadow = Shadow::start(&xvfb, "nla", "Administrator", &password);
    emu.set_route(PRIVATE, shadow.port);
    let home = tempfile::tempdir().unwrap();
    let run = support::on_a_terminal(&ecsrdp(emu, home.path(), PRIVATE), "");
    run.succeeds();
    let phases = [
        "looking up demo/",
        "opening a tunnel through EC2 Instance Connect Endpoint eice-",
        "connecting to demo/",
        "logging on as Administrator",
    ];
    let mut from = 0;
    for phase in phases {
        let at = run.stdout[from..]
            .find(phase)
            .unwrap_or_else(|| panic!("{phase:?} missing or out of order: {:?}", run.stdout));
        from += at;
    }
    // The last thing on the terminal clears the line (ESC [ K, after a carriage return).
    assert!(
        run.stdout
            .trim_end_matches(['\r', '\n'])
            .ends_with("\r\u{1b}[2K")
            || run.stdout.ends_with("\u{1b}[2K"),
        "{:?}",
        &run.stdout[run.stdout.len().saturating_sub(80)..]
    );
    let quiet = support::on_a_terminal(ecsrdp(emu, home.path(), PRIVATE).arg("-q"), "");
    quiet.succeeds();
    assert!(!quiet.stdout.contains("looking up"), "{:?}", quiet.stdout);
}

#[test]
fn a_private_instance_is_reached_through_its_vpc_endpoint() {
    let emu = Emulator::shared();
    let xvfb = Xvfb::start(800, 600);
    let password = emu.field(PRIVATE, "password");
    let shadow = Shadow::start(&xvfb, "nla", "Administrator", &password);
    xvfb.run("xsetroot", &["-solid", "#2060c0"]);
    emu.set_route(PRIVATE, shadow.port);
    let home = tempfile::tempdir().unwrap();
    let png = home.path().join("out.png");
    let run = Run::of(
        ecsrdp(emu, home.path(), PRIVATE)
            .args(["--snapshot", png.to_str().unwrap()])
            .env("RUST_LOG", "ecsrdp=info"),
    );
    run.succeeds();
    assert!(
        run.stderr
            .contains("opening a tunnel through the EC2 Instance Connect Endpoint"),
        "{}",
        run.stderr
    );
    let (w, h, pixels) = read_png(&png);
    assert_eq!((w, h), (800, 600));
    let blue = pixels
        .chunks_exact(3)
        .filter(|p| {
            p.iter()
                .zip([0x20u8, 0x60, 0xc0])
                .all(|(&a, b)| a.abs_diff(b) <= 8)
        })
        .count();
    assert!(
        blue * 100 > pixels.len() / 3 * 99,
        "{blue} pixels of the instance's desktop"
    );
}

#[test]
fn resolve_shows_the_endpoint_and_its_checks() {
    let emu = Emulator::shared();
    let home = tempfile::tempdir().unwrap();
    let run = Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", &emu.target(PRIVATE)]),
    );
    run.succeeds();
    let private_ip = emu.field(PRIVATE, "private_ip");
    assert!(
        run.stdout
            .contains(&format!("connects to         {private_ip}:3389")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("through             EC2 Instance Connect Endpoint eice-"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("ok   eice_port"), "{}", run.stdout);
}

#[test]
fn a_private_instance_without_an_endpoint_says_how_to_make_one() {
    let emu = Emulator::shared();
    let home = tempfile::tempdir().unwrap();
    Run::of(&mut ecsrdp(emu, home.path(), "win-isolated")).fails(
        3,
        "aws ec2 create-instance-connect-endpoint --subnet-id subnet-",
    );
}

#[test]
fn forcing_the_endpoint_path_where_the_vpc_has_none_is_refused() {
    let emu = Emulator::shared();
    let home = tempfile::tempdir().unwrap();
    Run::of(ecsrdp(emu, home.path(), "win-pkcs1").args(["--tunnel", "eice"]))
        .fails(3, "has no EC2 Instance Connect Endpoint");
}

/// Credentials the tunnel service does not accept (here a wrong secret; AWS also refuses an
/// expired URL or a caller without `ec2-instance-connect:OpenTunnel`): refused before the
/// upgrade, and the service's reason is shown.
#[test]
fn a_refused_signature_is_a_clear_network_error() {
    let emu = Emulator::shared();
    let home = tempfile::tempdir().unwrap();
    Run::of(ecsrdp(emu, home.path(), PRIVATE).env("AWS_SECRET_ACCESS_KEY", "not-the-secret"))
        .fails(5, "refused the tunnel (HTTP 403: SignatureDoesNotMatch");
}

/// The endpoint cannot reach the instance (stopped, or a security group in the way): the
/// service accepts the tunnel, then closes it with its reason.
#[test]
fn an_endpoint_that_cannot_reach_the_instance_says_so() {
    let emu = Emulator::start();
    let home = tempfile::tempdir().unwrap();
    // No route: the service's connection to the private address fails.
    Run::of(&mut ecsrdp(&emu, home.path(), PRIVATE)).fails(
        5,
        "closed the tunnel (code 1011): Unable to connect to target",
    );
}

/// `ecsrdp tunnel` puts the same tunnel on a local port for another RDP client; here that
/// client is `ecsrdp direct`, and the desktop arrives through it.
#[test]
fn the_tunnel_serves_another_client_on_a_local_port() {
    let emu = Emulator::start();
    let xvfb = Xvfb::start(640, 480);
    let password = emu.field(PRIVATE, "password");
    let shadow = Shadow::start(&xvfb, "nla", "Administrator", &password);
    xvfb.run("xsetroot", &["-solid", "#c04020"]);
    emu.set_route(PRIVATE, shadow.port);
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("tunnel.log");
    // Credentials from a process, as SSO and vaults give them: each run is counted.
    let runs = home.path().join("credential-runs");
    let mut tunnel = emu.ecsrdp(home.path());
    std::fs::write(
        home.path().join("aws-config"),
        format!(
            "[default]\ncredential_process = sh -c 'echo run >>{} && echo \"{{\\\"Version\\\": 1, \\\"AccessKeyId\\\": \\\"testing\\\", \\\"SecretAccessKey\\\": \\\"testing\\\"}}\"'\n",
            runs.display()
        ),
    )
    .unwrap();
    tunnel
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let mut tunnel = support::Daemon(
        tunnel
            .args(["tunnel", &emu.target(PRIVATE), "--local-port", "0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start ecsrdp tunnel"),
    );
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    let wait_until_said = |what: &str, times: usize| {
        let started = std::time::Instant::now();
        while said().matches(what).count() < times {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "{}",
                said()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let (banner, local) = tunnel.tunnel_banner();
    assert!(
        banner.contains("through EC2 Instance Connect Endpoint eice-"),
        "{banner}"
    );

    let png = home.path().join("out.png");
    // Twice: each connection gets a tunnel of its own, and is said. While the first is open, a
    // second connection is refused (one at a time by default) and said.
    for round in 1..=2 {
        let mut direct = support::ecsrdp(home.path());
        direct
            .args(["direct", &local, "--password-stdin", "--security", "nla"])
            .args(["--headless", "--trust-new", "--exit-after", "3s"])
            .args(["--snapshot", png.to_str().unwrap()]);
        let input = format!("{password}\n");
        let session = std::thread::spawn(move || Run::with_stdin(&mut direct, Some(&input)));
        if round == 1 {
            use std::io::Read as _;
            wait_until_said("connected; opening a tunnel for it", 1);
            let mut second = std::net::TcpStream::connect(&local).unwrap();
            second
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            assert_eq!(second.read(&mut [0; 1]).ok(), Some(0), "closed at once");
        }
        session.join().unwrap().succeeds();
        wait_until_said("disconnected", round);
    }
    assert_eq!(
        said().matches("connected; opening a tunnel for it").count(),
        2,
        "{}",
        said()
    );
    assert_eq!(said().matches("already open").count(), 1, "{}", said());
    // Once for the service clients (the SDK's cache), once for the tunnels' signatures, however
    // many tunnels open: a credential process is not run at each.
    let runs = std::fs::read_to_string(&runs).unwrap_or_default();
    assert_eq!(
        runs.lines().count(),
        2,
        "the credential process ran {runs:?}"
    );
    // Another user of the machine is turned away: the tunnel rides this user's credentials.
    // Switching users needs root; without it this part is skipped.
    if support::is_root() {
        let port = local.rsplit(':').next().unwrap();
        let other = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "bash",
                "-c",
            ])
            .arg(format!(
                "exec 3<>/dev/tcp/127.0.0.1/{port} && timeout 10 cat <&3"
            ))
            .output()
            .expect("setpriv (util-linux)");
        assert!(other.status.success(), "{other:?}");
        wait_until_said("another user of this machine (uid 65534)", 1);
    }
    let (_, _, pixels) = read_png(&png);
    let red = pixels
        .chunks_exact(3)
        .filter(|p| {
            p.iter()
                .zip([0xc0u8, 0x40, 0x20])
                .all(|(&a, b)| a.abs_diff(b) <= 8)
        })
        .count();
    assert!(
        red * 100 > pixels.len() / 3 * 99,
        "{red} pixels of the desktop"
    );
}

/// A tunnel ends at its maximum duration (the service's limit is an hour; here 4 s): the user
/// is told that, not that the server dropped the connection.
#[test]
fn a_tunnel_at_its_maximum_duration_says_so_or_is_replaced() {
    let emu = Emulator::start();
    let xvfb = Xvfb::start(640, 480);
    let password = emu.field(PRIVATE, "password");
    let shadow = Shadow::start(&xvfb, "nla", "Administrator", &password);
    emu.set_route(PRIVATE, shadow.port);
    let home = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    Run::of(
        emu.ecsrdp(home.path())
            .arg(emu.target(PRIVATE))
            .args(["--key", &emu.field(PRIVATE, "key_file")])
            .args(["--headless", "--trust-new", "--exit-after", "30s"])
            .args(["--tunnel-duration", "4s", "--reconnect", "0"]),
    )
    .fails(5, "ended the tunnel at its maximum duration (4s)");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));

    // Reconnecting (the default), the session outlives its tunnels: each one that ends is
    // replaced by a new one, and the session runs to its own end.
    let run = Run::of(
        emu.ecsrdp(home.path())
            .arg(emu.target(PRIVATE))
            .args(["--key", &emu.field(PRIVATE, "key_file")])
            .args(["--headless", "--exit-after", "11s"])
            .args(["--tunnel-duration", "4s"])
            .env("RUST_LOG", "ecsrdp=info"),
    );
    run.succeeds();
    assert!(
        run.stderr.matches("reconnected").count() >= 2,
        "{}",
        run.stderr
    );
}

/// A private instance that cannot be used anyway (here stopped) is reported as such, not as a
/// missing endpoint.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_private_instance_is_reported_as_stopped() {
    let emu = Emulator::start();
    emu.ec2()
        .await
        .stop_instances()
        .instance_ids(emu.field("win-isolated", "ec2_instance_id"))
        .send()
        .await
        .expect("stop the instance");
    let home = tempfile::tempdir().unwrap();
    let mut command = ecsrdp(&emu, home.path(), "win-isolated");
    tokio::task::spawn_blocking(move || Run::of(&mut command))
        .await
        .unwrap()
        .fails(3, "is stopped, not running");
}

/// Without `ec2:DescribeInstanceConnectEndpoints`, a private instance cannot be reached; the
/// refusal names the permission and keeps AWS's own words.
#[test]
fn no_permission_to_find_the_endpoint_is_named() {
    let emu = Emulator::shared();
    let home = tempfile::tempdir().unwrap();
    let run = Run::of(
        ecsrdp(emu, home.path(), PRIVATE)
            .env("AWS_ACCESS_KEY_ID", "deny-DescribeInstanceConnectEndpoints"),
    );
    run.fails(3, "access denied for ec2:DescribeInstanceConnectEndpoints");
    assert!(
        run.stderr.contains("(AWS: You are not authorized"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_local_port_in_use_is_a_local_failure() {
    let emu = Emulator::shared();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let home = tempfile::tempdir().unwrap();
    Run::of(
        emu.ecsrdp(home.path())
            .args(["tunnel", &emu.target(PRIVATE), "--local-port", &port]),
    )
    .fails(6, &format!("cannot listen on 127.0.0.1:{port}"));
}

#[test]
fn an_unreachable_endpoint_is_named() {
    let emu = Emulator::shared();
    let home = tempfile::tempdir().unwrap();
    let closed = support::free_port();
    Run::of(ecsrdp(emu, home.path(), PRIVATE).env(
        "AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT",
        format!("ws://127.0.0.1:{closed}"),
    ))
    .fails(
        5,
        "cannot reach the EC2 Instance Connect Endpoint at 127.0.0.1",
    );
}

/// The service sends text where only bytes belong: the tunnel ends with that named, not with
/// a garbled RDP error.
#[test]
fn an_endpoint_breaking_the_protocol_is_named() {
    let emu = Emulator::start();
    emu.set_route_to(PRIVATE, "!text");
    let home = tempfile::tempdir().unwrap();
    Run::of(&mut ecsrdp(&emu, home.path(), PRIVATE))
        .fails(5, "broke the protocol: a text frame instead of data");
}

/// A tunnel that breaks under a running session (the connection behind the endpoint is reset,
/// as when the instance's network blips): ecsrdp opens a new tunnel, freshly signed, logs on
/// again through it and the session goes on to its end (exit 0).
#[test]
fn a_broken_tunnel_is_opened_again_and_the_session_goes_on() {
    let emu = Emulator::start();
    let xvfb = Xvfb::start(800, 600);
    let password = emu.field(PRIVATE, "password");
    let shadow = Shadow::start(&xvfb, "nla", "Administrator", &password);
    let proxy = support::proxy::Proxy::start(shadow.port);
    emu.set_route(PRIVATE, proxy.port);
    let home = tempfile::tempdir().unwrap();
    let mut command = emu.ecsrdp(home.path());
    command
        .arg(emu.target(PRIVATE))
        .args(["--key", &emu.field(PRIVATE, "key_file")])
        .args(["--headless", "--trust-new", "--exit-after", "25s"])
        .env("RUST_LOG", "ecsrdp=info");
    let session = std::thread::spawn(move || Run::of(&mut command));
    // The first desktop (H.264: a still one is small).
    proxy.wait_downstream(5_000, std::time::Duration::from_secs(30));
    let before = proxy.downstream();
    proxy.blip();
    let started = std::time::Instant::now();
    while proxy.connections() < 2 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no second tunnel reached the instance"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    proxy.wait_downstream(before + 5_000, std::time::Duration::from_secs(30));
    let run = session.join().unwrap();
    run.succeeds();
    assert!(run.stderr.contains("reconnected"), "{}", run.stderr);
    assert_eq!(proxy.connections(), 2);
}

/// `ecsrdp tunnel` to an instance that cannot be logged on to says why, not that a tunnel of
/// one's own was named.
#[test]
fn the_tunnel_to_an_instance_without_a_key_pair_says_so() {
    let emu = Emulator::shared();
    let home = tempfile::tempdir().unwrap();
    let run = Run::of(emu.ecsrdp(home.path()).args([
        "tunnel",
        &emu.target("win-nokey"),
        "--local-port",
        "0",
    ]));
    run.fails(3, "without a key pair");
    assert!(!run.stderr.contains("--via"), "{}", run.stderr);
}

/// At trace level, every crate's logs on, the logs hold neither the session token of the AWS
/// credentials nor the presigned tunnel URL's signature: either would let whoever reads the
/// log open tunnels (or make AWS calls) as the user for as long as it lives.
#[test]
fn trace_logs_hold_no_session_token_or_tunnel_signature() {
    let emu = Emulator::shared();
    let xvfb = Xvfb::start(640, 480);
    let password = emu.field(PRIVATE, "password");
    let shadow = Shadow::start(&xvfb, "nla", "Administrator", &password);
    emu.set_route(PRIVATE, shadow.port);
    let home = tempfile::tempdir().unwrap();
    let token = format!("SessionToken{}", std::process::id());
    let run = Run::of(
        ecsrdp(emu, home.path(), PRIVATE)
            .env("RUST_LOG", "trace")
            .env("AWS_SESSION_TOKEN", &token),
    );
    run.succeeds();
    assert!(
        run.stderr.contains("TRACE") && run.stderr.contains("tunnel"),
        "trace logs were on: {}",
        &run.stderr[..run.stderr.len().min(2000)]
    );
    assert!(
        !run.stderr.contains(&token),
        "the session token is in the logs"
    );
    // The SDK's own trace of each request names the header and redacts its value.
    for needle in ["X-Amz-Signature=", "X-Amz-Security-Token="] {
        assert!(!run.stderr.contains(needle), "{needle} is in the logs");
    }
}
