//! Private instances through Session Manager, as the README describes: the emulator holds an
//! instance with no public address in a VPC with no EC2 Instance Connect Endpoint, makes it
//! managed (scripts/ssm.py), and its SSM agent's data channel (written from the protocol's
//! description, not from ecsrdp's code) forwards to FreeRDP's shadow server standing in for the
//! instance. `ecsrdp <cluster>/<instance>` and nothing else reaches the desktop.

mod support;

use serde_json::{json, Value};
use support::{paint, read_png, Emulator, Run, Shadow, Xvfb};

/// No public address, no endpoint in its VPC, no open port.
const ISOLATED: &str = "win-isolated";

/// An agent as current Windows AMIs ship it: online, multiplexing port sessions with smux.
fn online() -> Value {
    json!({"ping": "Online", "agent": "3.3.40.0"})
}

/// `ecsrdp demo/<instance>` with the instance's key, headless.
fn ecsrdp(emu: &Emulator, home: &std::path::Path) -> std::process::Command {
    let mut command = emu.ecsrdp(home);
    command
        .arg(emu.target(ISOLATED))
        .args(["--key", &emu.field(ISOLATED, "key_file")])
        .args(["--headless", "--trust-new"]);
    command
}

fn events(emu: &Emulator, kind: &str) -> Vec<Value> {
    emu.ssm_events()
        .into_iter()
        .filter(|e| e["event"] == kind)
        .collect()
}

/// Waits up to `seconds` for the emulator to log an event of `kind`.
fn wait_for_event(emu: &Emulator, kind: &str, seconds: u64) {
    let started = std::time::Instant::now();
    while events(emu, kind).is_empty() {
        assert!(
            started.elapsed().as_secs() < seconds,
            "{:?}",
            emu.ssm_events()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `ecsrdp tunnel <instance> --tunnel ssm` on a free local port: the running command, its
/// banner and the address it listens on.
fn ssm_tunnel(emu: &Emulator, home: &std::path::Path) -> (support::Daemon, String, String) {
    let mut tunnel = support::Daemon(
        emu.ecsrdp(home)
            .args(["tunnel", &emu.target(ISOLATED), "--tunnel", "ssm"])
            .args(["--local-port", "0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start ecsrdp tunnel"),
    );
    let (banner, local) = tunnel.tunnel_banner();
    (tunnel, banner, local)
}

/// The shadow server shows a painted display; the client's lossless snapshot through Session
/// Manager (whatever the emulated channel does to the messages) must equal the display's own
/// framebuffer, pixel for pixel. Returns the emulator's events.
fn exact_desktop_through(agent: Value, exit_after: &str) -> Vec<Value> {
    let emu = Emulator::start();
    let (width, height) = (800, 600);
    let xvfb = Xvfb::start(width, height);
    let password = emu.field(ISOLATED, "password");
    let shadow = Shadow::start(&xvfb, "nla", "Administrator", &password);
    emu.set_route(ISOLATED, shadow.port);
    emu.set_agent(ISOLATED, agent);
    let home = tempfile::tempdir().unwrap();
    paint(&xvfb, width, height, home.path());
    let truth = home.path().join("truth.png");
    xvfb.run("import", &["-window", "root", truth.to_str().unwrap()]);
    let png = home.path().join("out.png");
    let run = Run::of(
        ecsrdp(&emu, home.path())
            .args(["--codec", "lossless", "--exit-after", exit_after])
            .args(["--snapshot", png.to_str().unwrap()])
            .env("RUST_LOG", "ecsrdp=info"),
    );
    run.succeeds();
    assert!(
        run.stderr.contains("opening a Session Manager session"),
        "{}",
        run.stderr
    );
    let (w, h, shown) = read_png(&png);
    assert_eq!((w, h), (width, height));
    let (_, _, truth) = read_png(&truth);
    let painted = truth.chunks_exact(3).filter(|p| p != &[0, 0, 0]).count();
    assert!(
        painted * 2 > truth.len() / 3,
        "the display holds the picture"
    );
    let off = shown
        .chunks_exact(3)
        .zip(truth.chunks_exact(3))
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(off, 0, "pixels that differ from the server's framebuffer");
    let all = emu.ssm_events();
    let violations: Vec<_> = all.iter().filter(|e| e["event"] == "violation").collect();
    assert!(
        violations.is_empty(),
        "the agent saw the protocol broken: {violations:?}"
    );
    assert!(
        all.iter().any(|e| e["event"] == "terminated"),
        "the session was terminated at exit: {all:?}"
    );
    all
}

#[test]
fn a_private_instance_without_endpoint_or_open_port_is_reached_through_session_manager() {
    let events = exact_desktop_through(online(), "3s");
    let handshake = events.iter().find(|e| e["event"] == "handshake").unwrap();
    assert_eq!(handshake["smux"], true, "{handshake}");
}

/// Agents up to 3.0.196.0 forward the port's bytes without smux.
#[test]
fn an_older_agent_forwards_without_multiplexing() {
    let events = exact_desktop_through(json!({"ping": "Online", "agent": "2.3.1644.0"}), "3s");
    let handshake = events.iter().find(|e| e["event"] == "handshake").unwrap();
    assert_eq!(handshake["smux"], false, "{handshake}");
}

/// A channel that loses, repeats and reorders a tenth of the messages each way still delivers
/// the exact desktop: what is lost is resent, what is repeated is dropped, what is early waits.
#[test]
fn a_lossy_channel_still_delivers_the_exact_desktop() {
    let agent = json!({"ping": "Online", "agent": "3.3.40.0",
                       "drop": 0.1, "duplicate": 0.1, "reorder": 0.1, "seed": 7});
    let events = exact_desktop_through(agent, "8s");
    let resent = events.iter().filter(|e| e["event"] == "resent").count();
    assert!(resent > 10, "the agent resent {resent} messages");
}

/// The service closes streams (after about an hour, or when idle): the session comes back
/// through a new Session Manager session, and both are terminated at exit.
#[test]
fn a_stream_the_service_closes_is_replaced() {
    let emu = Emulator::start();
    let xvfb = Xvfb::start(640, 480);
    let password = emu.field(ISOLATED, "password");
    let shadow = Shadow::start(&xvfb, "nla", "Administrator", &password);
    xvfb.run("xsetroot", &["-solid", "#30a050"]);
    emu.set_route(ISOLATED, shadow.port);
    emu.set_agent(
        ISOLATED,
        json!({"ping": "Online", "agent": "3.3.40.0", "close_after": 3}),
    );
    let home = tempfile::tempdir().unwrap();
    let png = home.path().join("out.png");
    Run::of(
        ecsrdp(&emu, home.path())
            .args(["--exit-after", "8s"])
            .args(["--snapshot", png.to_str().unwrap()]),
    )
    .succeeds();
    let started = events(&emu, "started").len();
    assert!(started >= 2, "{started} sessions started");
    assert_eq!(events(&emu, "terminated").len(), started);
    let (_, _, pixels) = read_png(&png);
    let green = pixels
        .chunks_exact(3)
        .filter(|p| {
            p.iter()
                .zip([0x30u8, 0xa0, 0x50])
                .all(|(&a, b)| a.abs_diff(b) <= 8)
        })
        .count();
    assert!(green * 100 > pixels.len() / 3 * 99, "{green} pixels");
}

#[test]
fn an_instance_that_is_not_managed_says_how_to_make_it_so() {
    let emu = Emulator::shared();
    let home = tempfile::tempdir().unwrap();
    Run::of(ecsrdp(emu, home.path()).args(["--tunnel", "ssm"]))
        .fails(3, "AmazonSSMManagedInstanceCore");
    // `auto` names every way it tried.
    let run = Run::of(&mut ecsrdp(emu, home.path()));
    run.fails(3, "has no EC2 Instance Connect Endpoint");
    run.fails(3, "is not managed by Systems Manager");
    // `resolve` lists the ways, all closed, before it says so.
    let resolve = Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", &emu.target(ISOLATED)]),
    );
    resolve.fails(3, "is not managed by Systems Manager");
    assert!(
        resolve
            .stdout
            .contains("  -    ssm    not managed by Systems Manager"),
        "{}",
        resolve.stdout
    );
}

#[test]
fn an_agent_that_lost_its_connection_is_named() {
    let emu = Emulator::start();
    emu.set_agent(
        ISOLATED,
        json!({"ping": "ConnectionLost", "agent": "3.3.40.0"}),
    );
    let home = tempfile::tempdir().unwrap();
    Run::of(ecsrdp(&emu, home.path()).args(["--tunnel", "ssm"]))
        .fails(3, "is ConnectionLost (agent 3.3.40.0)");
}

/// Session preferences that demand KMS encryption: said, with what to do, before any RDP byte.
#[test]
fn kms_encryption_demanded_is_refused_with_advice() {
    let emu = Emulator::start();
    emu.set_agent(
        ISOLATED,
        json!({"ping": "Online", "agent": "3.3.40.0", "kms": "arn:aws:kms:us-east-1:123456789012:key/k"}),
    );
    emu.set_route(ISOLATED, support::free_port());
    let home = tempfile::tempdir().unwrap();
    Run::of(&mut ecsrdp(&emu, home.path())).fails(5, "require KMS encryption");
    assert!(
        !events(&emu, "terminated").is_empty(),
        "the session was ended"
    );
}

#[test]
fn an_agent_that_cannot_reach_the_port_says_so() {
    let emu = Emulator::start();
    emu.set_agent(
        ISOLATED,
        json!({"ping": "Online", "agent": "3.3.40.0", "port_error": true}),
    );
    let home = tempfile::tempdir().unwrap();
    Run::of(ecsrdp(&emu, home.path()).args(["--exit-after", "5s"]))
        .fails(5, "could not connect to its port 3389");
}

/// The tunnel command serves other RDP apps through Session Manager, one session per
/// connection.
#[test]
fn the_tunnel_command_serves_another_app_through_session_manager() {
    let emu = Emulator::start();
    let xvfb = Xvfb::start(640, 480);
    let password = emu.field(ISOLATED, "password");
    let shadow = Shadow::start(&xvfb, "nla", "Administrator", &password);
    xvfb.run("xsetroot", &["-solid", "#c04020"]);
    emu.set_route(ISOLATED, shadow.port);
    emu.set_agent(ISOLATED, online());
    let home = tempfile::tempdir().unwrap();
    let (mut tunnel, banner, local) = ssm_tunnel(&emu, home.path());
    assert!(banner.contains("through Session Manager"), "{banner}");
    let png = home.path().join("out.png");
    let mut other = support::ecsrdp(home.path());
    other
        .args(["direct", &local, "--password-stdin", "--security", "nla"])
        .args(["--headless", "--trust-new", "--exit-after", "3s"])
        .args(["--snapshot", png.to_str().unwrap()]);
    Run::with_stdin(&mut other, Some(&format!("{password}\n"))).succeeds();
    let (_, _, pixels) = read_png(&png);
    let red = pixels
        .chunks_exact(3)
        .filter(|p| {
            p.iter()
                .zip([0xc0u8, 0x40, 0x20])
                .all(|(&a, b)| a.abs_diff(b) <= 8)
        })
        .count();
    assert!(red * 100 > pixels.len() / 3 * 99, "{red} pixels");
    assert_eq!(events(&emu, "handshake").len(), 1);
    // The session ends with its connection, while the tunnel goes on listening.
    wait_for_event(&emu, "terminated", 10);
    assert!(
        tunnel.0.try_wait().unwrap().is_none(),
        "the tunnel still listens"
    );
}

/// `resolve` says which way a private instance is reached and why.
#[test]
fn resolve_shows_session_manager_as_the_way_in() {
    let emu = Emulator::start();
    emu.set_agent(ISOLATED, online());
    let home = tempfile::tempdir().unwrap();
    let run = Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", &emu.target(ISOLATED)]),
    );
    run.succeeds();
    assert!(
        run.stdout
            .contains("Session Manager (agent 3.3.40.0, Online)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("ok   ssm_agent"), "{}", run.stdout);
    for way in [
        "  -    direct no public address",
        "  -    eice   no endpoint in vpc-",
        "  open ssm    agent 3.3.40.0, Online",
    ] {
        assert!(run.stdout.contains(way), "{way:?} in {}", run.stdout);
    }
}

/// The two implementations of the wire format meet: what the client encodes, the emulator's
/// independent codec (scripts/ssm_wire.py) decodes with every field intact, and back.
#[test]
fn the_clients_messages_read_the_same_in_the_emulators_codec() {
    use ecsrdp::tunnel::ssm::message::{Message, PayloadType, INPUT};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("message");
    let message = Message::new(INPUT, 41, 0, PayloadType::HandshakeResponse, b"{}".to_vec());
    std::fs::write(&file, message.encode()).unwrap();
    let output = std::process::Command::new(support::python())
        .arg(support::repo().join("scripts/ssm_wire.py"))
        .arg("decode")
        .arg(&file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let decoded: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(decoded["message_type"], "input_stream_data");
    assert_eq!(decoded["sequence"], 41);
    assert_eq!(decoded["payload_type"], 6);
    assert_eq!(decoded["payload"], "7b7d");
    assert_eq!(decoded["message_id"], message.id.to_string());
    assert_eq!(decoded["created_ms"], message.created_ms);

    let fields = json!({"message_type": "output_stream_data", "sequence": 9, "payload_type": 1,
                        "payload": "00ff10", "flags": 1,
                        "message_id": "00112233-4455-6677-8899-aabbccddeeff"});
    let status = std::process::Command::new(support::python())
        .arg(support::repo().join("scripts/ssm_wire.py"))
        .args(["encode", &fields.to_string()])
        .arg(&file)
        .status()
        .unwrap();
    assert!(status.success());
    let read = Message::decode(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(read.message_type, "output_stream_data");
    assert_eq!((read.sequence, read.flags), (9, 1));
    assert_eq!(read.payload_type, PayloadType::Output);
    assert_eq!(read.payload, [0x00, 0xff, 0x10]);
    assert_eq!(read.id.to_string(), "00112233-4455-6677-8899-aabbccddeeff");
}

/// Multiplexing agents before 3.1.1511.0 close a session that sent no smux frame for 30 s
/// (here 12 s; the client sends one every 10 s). ecsrdp's own sessions probe a quiet server
/// every 10 s anyway, but another RDP app behind `ecsrdp tunnel` may say nothing for minutes:
/// an idle connection keeps its one session.
#[test]
fn an_idle_connection_keeps_an_older_multiplexing_agent_alive() {
    let emu = Emulator::start();
    let xvfb = Xvfb::start(640, 480);
    let password = emu.field(ISOLATED, "password");
    let shadow = Shadow::start(&xvfb, "nla", "Administrator", &password);
    emu.set_route(ISOLATED, shadow.port);
    emu.set_agent(
        ISOLATED,
        json!({"ping": "Online", "agent": "3.0.1000.0", "smux_timeout": 12}),
    );
    let home = tempfile::tempdir().unwrap();
    let (_tunnel, _, local) = ssm_tunnel(&emu, home.path());
    let _idle = std::net::TcpStream::connect(&local).unwrap();
    wait_for_event(&emu, "handshake", 20);
    std::thread::sleep(std::time::Duration::from_secs(16));
    let violations = events(&emu, "violation");
    assert!(violations.is_empty(), "{violations:?}");
}

/// A caller whose policy does not let it start port-forwarding sessions is told which action
/// is missing, and where the policy that grants it is.
#[test]
fn a_denied_start_session_names_the_action() {
    let full = support::repo().join("resources/iam-policy.json");
    let emu = Emulator::enforcing(&full);
    emu.set_agent(ISOLATED, online());
    let mut policy: Value = serde_json::from_slice(&std::fs::read(&full).unwrap()).unwrap();
    policy["Statement"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["Sid"] != "EcsrdpSessionManagerPortForwarding");
    let home = tempfile::tempdir().unwrap();
    let without = home.path().join("without-start-session.json");
    std::fs::write(&without, policy.to_string()).unwrap();
    let (id, secret) = emu.user("no-start-session", &without);
    Run::of(
        ecsrdp(&emu, home.path())
            .env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret),
    )
    .fails(3, "access denied for ssm:StartSession")
    .fails(3, "resources/iam-policy.json");
}
