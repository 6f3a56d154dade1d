//! The AWS half, as the README describes it, against the real moto emulator over HTTP:
//! `ecsrdp <cluster>`, `ecsrdp resolve`, `ecsrdp password`, and every way they can fail.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::{Emulator, Run};

fn home() -> tempfile::TempDir {
    tempfile::tempdir().expect("home")
}

fn key_file(emu: &Emulator, name: &str) -> String {
    emu.field(name, "key_file")
}

// ---- Listing a cluster --------------------------------------------------------------------

#[test]
fn list_shows_windows_instances_first_with_a_hint() {
    let emu = Emulator::shared();
    let home = home();
    let run = Run::of(emu.ecsrdp(home.path()).arg("demo"));
    run.succeeds();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("CONTAINER INSTANCE"), "{}", run.stdout);
    for column in ["ECS", "AGENT", "TASKS"] {
        assert!(lines[0].contains(column), "{column}: {}", run.stdout);
    }
    assert!(
        lines[1].contains(" active ") && lines[1].contains(" connected "),
        "{}",
        run.stdout
    );
    let linux_row = lines
        .iter()
        .position(|l| l.contains(" linux "))
        .expect("linux row");
    let windows_row = lines
        .iter()
        .position(|l| l.contains(" windows "))
        .expect("windows row");
    assert!(windows_row < linux_row, "Windows first:\n{}", run.stdout);
    assert!(run.stdout.contains("connect with: ecsrdp demo/i-"));
}

#[test]
fn list_of_unknown_cluster_says_so() {
    let emu = Emulator::shared();
    let home = home();
    Run::of(emu.ecsrdp(home.path()).arg("nope")).fails(3, "cluster `nope` was not found");
}

/// A cluster of 250 container instances, with the emulator as strict as AWS (ListContainerInstances
/// pages of 100, DescribeContainerInstances of at most 100, at most 200 values in an EC2 filter):
/// the listing shows every one, and an `i-…` is found through ECS's own filter.
#[test]
fn a_cluster_of_250_instances_is_listed_and_searched_whole() {
    let emu = Emulator::start();
    let output = std::process::Command::new(support::python())
        .arg(support::repo().join("scripts/seed_big.py"))
        .args(["--endpoint", &emu.endpoint, "--count", "250"])
        .output()
        .expect("run seed_big.py");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ids: Vec<String> = serde_json::from_slice(&output.stdout).expect("instance IDs");
    let home = home();
    let run = Run::of(emu.ecsrdp(home.path()).arg("big"));
    run.succeeds();
    let rows = run.stdout.lines().filter(|l| l.contains(" i-")).count();
    assert_eq!(rows, 250, "{}", run.stdout);
    assert!(ids.iter().all(|id| run.stdout.contains(id.as_str())));
    // The last one registered, which a first page would not hold.
    let last = ids.last().unwrap();
    let resolved =
        Run::of(
            emu.ecsrdp(home.path())
                .args(["resolve", "--json", &format!("big/{last}")]),
        );
    resolved.succeeds();
    assert!(
        resolved.stdout.contains(last.as_str()),
        "{}",
        resolved.stdout
    );
}

/// An ARN carries its region, and ecsrdp asks that region whatever the default says.
#[test]
fn an_arn_sets_the_region() {
    let emu = Emulator::shared();
    let home = home();
    let arn = emu.seed["cluster_arn"]
        .as_str()
        .expect("cluster ARN in seed");
    let id = emu.field("win-pkcs1", "ec2_instance_id");
    let run = Run::of(
        emu.ecsrdp(home.path())
            .env("AWS_REGION", "eu-west-3")
            .args(["resolve", "--json", &format!("{arn}/{id}")]),
    );
    run.succeeds();
    assert!(run.stdout.contains(&id), "{}", run.stdout);
    // A --region that contradicts the ARN is a usage error, not a silent choice.
    Run::of(emu.ecsrdp(home.path()).args([
        "resolve",
        &format!("{arn}/{id}"),
        "--region",
        "eu-west-3",
    ]))
    .fails(2, "the ARN decides");
}

/// Credentials without ec2:DescribeSecurityGroups (the emulator refuses it to this access key,
/// with AWS's UnauthorizedOperation): the port check becomes a warning and the connection goes
/// on, here as far as the (closed) port.
#[test]
fn no_permission_for_security_groups_is_a_warning() {
    let emu = Emulator::shared();
    let home = home();
    let target = emu.target("win-pkcs1");
    let resolved = Run::of(
        emu.ecsrdp(home.path())
            .env("AWS_ACCESS_KEY_ID", "deny-DescribeSecurityGroups")
            .args(["resolve", &target]),
    );
    resolved.succeeds();
    assert!(
        resolved.stdout.contains("warn rdp_port") && resolved.stdout.contains("AccessDenied"),
        "{}",
        resolved.stdout
    );
    let port = support::free_port();
    let run = Run::of(
        emu.ecsrdp(home.path())
            .env("AWS_ACCESS_KEY_ID", "deny-DescribeSecurityGroups")
            .arg(&target)
            .args(["--key", &key_file(emu, "win-pkcs1")])
            .args(["--via", &format!("127.0.0.1:{port}"), "--headless"]),
    );
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot connect to 127.0.0.1"),
        "{}",
        run.stderr
    );
}

// ---- Resolving ----------------------------------------------------------------------------

fn resolve_json(emu: &Emulator, target: &str) -> Value {
    let home = home();
    let run = Run::of(emu.ecsrdp(home.path()).args(["resolve", "--json", target]));
    run.succeeds();
    serde_json::from_str(&run.stdout).expect("resolve --json prints JSON")
}

#[test]
fn resolve_by_ec2_id_container_instance_id_and_arn_agree() {
    let emu = Emulator::shared();
    let arn = emu.field("win-pkcs1", "container_instance_arn");
    let id = emu.field("win-pkcs1", "container_instance_id");
    let by_ec2 = resolve_json(emu, &emu.target("win-pkcs1"));
    let by_id = resolve_json(emu, &format!("demo/{id}"));
    let by_arn = resolve_json(emu, &arn);
    let by_cluster_and_arn = resolve_json(emu, &format!("demo/{arn}"));
    for json in [&by_id, &by_arn, &by_cluster_and_arn] {
        assert_eq!(json, &by_ec2);
    }
    let json = by_ec2;
    assert_eq!(json["cluster"], "demo");
    assert_eq!(json["container_instance_arn"], arn.as_str());
    assert_eq!(
        json["ec2_instance_id"],
        emu.field("win-pkcs1", "ec2_instance_id").as_str()
    );
    assert_eq!(json["platform"], "windows");
    assert_eq!(json["state"], "running");
    assert_eq!(
        json["public_ip"],
        emu.field("win-pkcs1", "public_ip").as_str()
    );
    assert_eq!(json["address"], json["public_ip"]);
    assert_eq!(json["port"], 3389);
    assert_eq!(json["key_name"], "kp-pkcs1");
    assert_eq!(json["security_groups"][0]["name"], "rdp-open");
    let checks = json["checks"].as_array().expect("checks");
    assert!(checks.iter().all(|c| c["ok"] == true), "{checks:?}");
    assert!(
        !serde_json::to_string(&json).unwrap().contains("Pw-"),
        "no secret in resolve"
    );
}

#[test]
fn resolve_private_picks_the_private_ip() {
    let emu = Emulator::shared();
    let home = home();
    let target = emu.target("win-pkcs1");
    let run = Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", "--json", "--private", &target]),
    );
    run.succeeds();
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        json["address"],
        emu.field("win-pkcs1", "private_ip").as_str()
    );
}

#[test]
fn resolve_warns_when_no_security_group_admits_rdp() {
    let emu = Emulator::shared();
    let json = resolve_json(emu, &emu.target("win-closed"));
    let port = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rdp_port")
        .expect("rdp_port check");
    assert_eq!(port["ok"], false);
    let problem = port["problem"].as_str().unwrap();
    assert!(problem.contains("rdp-closed") && problem.contains("authorize-security-group-ingress"));
}

#[test]
fn resolve_text_lists_the_checks() {
    let emu = Emulator::shared();
    let home = home();
    let run = Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", &emu.target("win-closed")]),
    );
    run.succeeds();
    assert!(run.stdout.contains("warn rdp_port"), "{}", run.stdout);
    assert!(run.stdout.contains("ok   windows"), "{}", run.stdout);
}

// ---- Decrypting the password --------------------------------------------------------------

fn password(emu: &Emulator, name: &str, extra: &[&str], envs: &[(&str, &str)]) -> Run {
    let home = home();
    let mut command = emu.ecsrdp(home.path());
    command.args(["password", &emu.target(name)]).args(extra);
    for (k, v) in envs {
        command.env(k, v);
    }
    Run::of(&mut command)
}

fn assert_password(run: &Run, emu: &Emulator, name: &str) {
    run.succeeds();
    assert_eq!(run.stdout, format!("{}\n", emu.field(name, "password")));
}

#[test]
fn password_with_a_pkcs1_key() {
    let emu = Emulator::shared();
    let key = key_file(emu, "win-pkcs1");
    assert_password(
        &password(emu, "win-pkcs1", &["--key", &key], &[]),
        emu,
        "win-pkcs1",
    );
}

#[test]
fn password_with_a_pkcs8_key() {
    let emu = Emulator::shared();
    let key = key_file(emu, "win-pkcs8");
    assert_password(
        &password(emu, "win-pkcs8", &["--key", &key], &[]),
        emu,
        "win-pkcs8",
    );
}

#[test]
fn password_with_an_openssh_key_from_ecsrdp_key() {
    let emu = Emulator::shared();
    let key = key_file(emu, "win-openssh");
    let run = password(emu, "win-openssh", &[], &[("ECSRDP_KEY", &key)]);
    assert_password(&run, emu, "win-openssh");
}

/// The passphrase key of `win-passphrase`, in the file `key_file` + `suffix`, unlocked through
/// `ECSRDP_KEY_PASSPHRASE`.
fn assert_passphrase_key(suffix: &str) {
    let emu = Emulator::shared();
    let key = format!("{}{suffix}", key_file(emu, "win-passphrase"));
    let run = password(
        emu,
        "win-passphrase",
        &["--key", &key],
        &[("ECSRDP_KEY_PASSPHRASE", "correct horse")],
    );
    assert_password(&run, emu, "win-passphrase");
}

#[test]
fn password_with_a_passphrase_openssh_key() {
    assert_passphrase_key("");
}

#[test]
fn password_with_a_passphrase_pkcs8_key() {
    assert_passphrase_key(".p8.pem");
}

#[test]
fn password_with_a_legacy_encrypted_pem_key() {
    let emu = Emulator::shared();
    let key = format!("{}.legacy.pem", key_file(emu, "win-passphrase"));
    assert!(std::fs::read_to_string(key)
        .unwrap()
        .contains("Proc-Type: 4,ENCRYPTED"));
    assert_passphrase_key(".legacy.pem");
}

#[test]
fn password_by_container_instance_id() {
    let emu = Emulator::shared();
    let home = home();
    let id = emu.field("win-pkcs1", "container_instance_id");
    let key = key_file(emu, "win-pkcs1");
    let run =
        Run::of(
            emu.ecsrdp(home.path())
                .args(["password", &format!("demo/{id}"), "--key", &key]),
        );
    assert_password(&run, emu, "win-pkcs1");
}

#[test]
fn key_is_found_in_dot_ssh_by_key_pair_name() {
    let emu = Emulator::shared();
    let home = home();
    let ssh = home.path().join(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    std::fs::copy(key_file(emu, "win-pkcs1"), ssh.join("kp-pkcs1.pem")).unwrap();
    let run = Run::of(
        emu.ecsrdp(home.path())
            .args(["password", &emu.target("win-pkcs1")]),
    );
    assert_password(&run, emu, "win-pkcs1");
}

// ---- Failures, one paragraph each ---------------------------------------------------------

#[test]
fn bad_target_syntax_is_a_usage_error() {
    let home = home();
    let run = Run::of(support::ecsrdp(home.path()).args(["password", "demo/not-an-id"]));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("is not a container instance"),
        "{}",
        run.stderr
    );
}

#[test]
fn unknown_cluster() {
    let emu = Emulator::shared();
    let home = home();
    Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", "nope/i-0123456789abcdef0"]),
    )
    .fails(3, "cluster `nope` was not found");
}

#[test]
fn unknown_container_instance() {
    let emu = Emulator::shared();
    let home = home();
    Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", "demo/0123456789abcdef0123456789abcdef"]),
    )
    .fails(3, "is not registered in cluster `demo`");
    // An EC2 ID that no instance has is said to be just that.
    Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", "demo/i-0123456789abcdef0"]),
    )
    .fails(3, "EC2 instance `i-0123456789abcdef0` does not exist");
}

#[test]
fn linux_instance_is_refused() {
    let emu = Emulator::shared();
    password(emu, "linux", &[], &[]).fails(3, "not Windows");
}

#[test]
fn stopped_instance_is_refused() {
    let emu = Emulator::shared();
    password(emu, "win-stopped", &[], &[]).fails(3, "is stopped, not running");
}

#[test]
fn instance_without_key_pair_is_refused() {
    let emu = Emulator::shared();
    // What can be done about it: reset the password through Systems Manager.
    password(emu, "win-nokey", &[], &[])
        .fails(3, "without a key pair")
        .fails(3, "AWSSupport-ResetAccess");
}

#[test]
fn password_not_ready_yet() {
    let emu = Emulator::shared();
    let key = key_file(emu, "win-notready");
    password(emu, "win-notready", &["--key", &key], &[]).fails(4, "not ready yet");
}

#[test]
fn waiting_gives_up_after_its_limit() {
    let emu = Emulator::shared();
    let key = key_file(emu, "win-notready");
    let run = password(
        emu,
        "win-notready",
        &["--key", &key, "--wait", "1s", "--poll-interval=200ms"],
        &[],
    );
    // After a wait that ran out, the advice is how to find out why, not to wait.
    run.fails(4, "not ready yet")
        .fails(4, "waited 1s")
        .fails(4, "aws ec2 get-console-output --instance-id i-");
    assert!(!run.stderr.contains("add --wait"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn waiting_returns_once_the_password_appears() {
    let emu = Emulator::start();
    let key = key_file(&emu, "win-notready");
    let home = home();
    let mut command = emu.ecsrdp(home.path());
    command.args([
        "password",
        &emu.target("win-notready"),
        "--key",
        &key,
        "--wait=30s",
        "--poll-interval=200ms",
    ]);
    let waiting = tokio::task::spawn_blocking(move || Run::of(&mut command));
    tokio::time::sleep(Duration::from_millis(800)).await;
    emu.set_password("win-notready", "Late-Pw-1!");
    let run = waiting.await.unwrap();
    run.succeeds();
    assert_eq!(run.stdout, "Late-Pw-1!\n");
}

#[test]
fn a_key_readable_by_others_is_used_with_a_warning() {
    use std::os::unix::fs::PermissionsExt as _;
    let emu = Emulator::shared();
    let dir = home();
    let exposed = dir.path().join("exposed.pem");
    std::fs::copy(key_file(emu, "win-pkcs1"), &exposed).unwrap();
    std::fs::set_permissions(&exposed, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = password(emu, "win-pkcs1", &["--key", exposed.to_str().unwrap()], &[]);
    assert_password(&run, emu, "win-pkcs1");
    assert!(
        run.stderr
            .contains("can be read by other users (mode 0644)")
            && run.stderr.contains("chmod 600"),
        "{}",
        run.stderr
    );
    // The owner-only key of the fixture draws no warning.
    let quiet = password(
        emu,
        "win-pkcs1",
        &["--key", &key_file(emu, "win-pkcs1")],
        &[],
    );
    assert_eq!(quiet.stderr, "");
}

#[test]
fn wrong_key_does_not_match_the_key_pair() {
    let emu = Emulator::shared();
    let other = key_file(emu, "win-pkcs8");
    password(emu, "win-pkcs1", &["--key", &other], &[])
        .fails(4, "does not match key pair `kp-pkcs1`");
}

#[test]
fn ed25519_key_is_unsupported() {
    let emu = Emulator::shared();
    // seed.py always writes this key: a missing one is a broken fixture, not a skip.
    let key = emu.field("win-ed25519", "key_file");
    let key = key.as_str();
    // Any RSA instance: the key is rejected before its password matters.
    password(emu, "win-pkcs1", &["--key", key], &[]).fails(4, "only to RSA key pairs");
}

#[test]
fn missing_key_says_where_it_looked() {
    let emu = Emulator::shared();
    let run = password(emu, "win-pkcs1", &[], &[]);
    run.fails(4, "no private key for key pair `kp-pkcs1`");
    assert!(run.stderr.contains(".ssh/kp-pkcs1.pem"), "{}", run.stderr);
    let missing = password(emu, "win-pkcs1", &["--key", "/nonexistent/key.pem"], &[]);
    missing.fails(4, "cannot read the key file /nonexistent/key.pem");
}

#[test]
fn passphrase_key_without_a_terminal_asks_for_the_variable() {
    let emu = Emulator::shared();
    let key = key_file(emu, "win-passphrase");
    password(emu, "win-passphrase", &["--key", &key], &[]).fails(4, "ECSRDP_KEY_PASSPHRASE");
}

#[test]
fn wrong_passphrase() {
    let emu = Emulator::shared();
    let key = key_file(emu, "win-passphrase");
    password(
        emu,
        "win-passphrase",
        &["--key", &key],
        &[("ECSRDP_KEY_PASSPHRASE", "wrong")],
    )
    .fails(4, "passphrase does not unlock");
}

#[test]
fn a_file_that_is_no_key() {
    let emu = Emulator::shared();
    let home = home();
    let junk = home.path().join("junk.pem");
    std::fs::write(&junk, "hello\n").unwrap();
    password(emu, "win-pkcs1", &["--key", junk.to_str().unwrap()], &[])
        .fails(4, "holds no private key");
}

#[test]
fn no_region_is_explained() {
    let emu = Emulator::shared();
    let home = home();
    let mut command = emu.ecsrdp(home.path());
    command.env_remove("AWS_REGION").arg("demo");
    Run::of(&mut command).fails(3, "no AWS region");
}

#[test]
fn no_credentials_is_explained() {
    let emu = Emulator::shared();
    let home = home();
    let mut command = emu.ecsrdp(home.path());
    command
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .arg("demo");
    Run::of(&mut command).fails(3, "no AWS credentials were found");
}

#[test]
fn a_missing_profile_is_named() {
    let emu = Emulator::shared();
    let home = home();
    let mut command = emu.ecsrdp(home.path());
    // After `ecsrdp()`, which writes empty AWS files.
    std::fs::write(
        home.path().join("aws-config"),
        "[profile dev]\nregion = us-east-1\n",
    )
    .unwrap();
    command.args(["demo", "--profile", "nope"]);
    let run = Run::of(&mut command);
    run.fails(3, "the AWS profile `nope` is not defined");
    assert!(run.stderr.contains("profiles found: dev"), "{}", run.stderr);
}

#[test]
fn unreachable_aws_endpoint() {
    let home = home();
    let port = support::free_port();
    let mut command = support::ecsrdp(home.path());
    command
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_MAX_ATTEMPTS", "1")
        .arg("demo");
    Run::of(&mut command).fails(3, "cannot reach AWS");
}

/// An endpoint (or proxy) that takes the connection and never answers: ecsrdp gives up with the
/// same advice as for one that refuses, not hangs.
#[test]
fn an_aws_endpoint_that_never_answers_is_given_up() {
    let home = home();
    // Bound and listening but never accepted: the kernel completes the handshake, nobody reads.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let mut command = support::ecsrdp(home.path());
    command
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_MAX_ATTEMPTS", "1")
        .arg("demo");
    Run::of(&mut command).fails(3, "cannot reach AWS");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

/// On a terminal, a key's passphrase is asked for (with the phase line out of the way) and the
/// password decrypted with it.
#[test]
fn a_passphrase_is_asked_for_on_a_terminal() {
    let emu = Emulator::shared();
    let home = home();
    let mut command = emu.ecsrdp(home.path());
    command.args([
        "password",
        &emu.target("win-passphrase"),
        "--key",
        &key_file(emu, "win-passphrase"),
    ]);
    let run = support::on_a_terminal(&command, "correct horse\n");
    assert!(run.stdout.contains("Passphrase for "), "{:?}", run.stdout);
    assert!(
        run.stdout
            .contains(&emu.field("win-passphrase", "password")),
        "{:?}",
        run.stdout
    );
}

#[test]
fn the_password_never_reaches_logs() {
    let emu = Emulator::shared();
    let key = key_file(emu, "win-pkcs1");
    // Every crate's logs at every level, the SDK's wire log included: the emulator holds the
    // password out of band, so only a leak of ecsrdp's own could show it.
    let run = password(
        emu,
        "win-pkcs1",
        &["--key", &key, "-vv"],
        &[("RUST_LOG", "trace")],
    );
    assert_password(&run, emu, "win-pkcs1");
    assert!(!run.stderr.contains(&emu.field("win-pkcs1", "password")));
    assert!(Path::new(&key).exists(), "the key stays where it was");
}

// ---- AWS on a bad day -----------------------------------------------------------------------
// The emulator plays these for access keys named `deny-…`, `throttle-…` and `skewed-…` (see
// scripts/strict.py), with AWS's own error codes.

#[test]
fn access_denied_names_the_permission_and_keeps_awss_words() {
    let emu = Emulator::shared();
    let run = password(
        emu,
        "win-pkcs1",
        &[],
        &[("AWS_ACCESS_KEY_ID", "deny-DescribeInstances")],
    );
    run.fails(3, "access denied for ec2:DescribeInstances");
    assert!(
        run.stderr.contains("(AWS: You are not authorized"),
        "{}",
        run.stderr
    );
}

#[test]
fn throttling_is_retried_then_reported() {
    let emu = Emulator::shared();
    password(
        emu,
        "win-pkcs1",
        &[],
        &[("AWS_ACCESS_KEY_ID", "throttle-DescribeInstances")],
    )
    .fails(
        3,
        "AWS kept throttling ec2:DescribeInstances (RequestLimitExceeded)",
    );
}

#[test]
fn a_wrong_clock_is_named() {
    let emu = Emulator::shared();
    password(
        emu,
        "win-pkcs1",
        &[],
        &[("AWS_ACCESS_KEY_ID", "skewed-DescribeInstances")],
    )
    .fails(3, "this machine's clock is probably wrong");
}

#[test]
fn ecdsa_key_is_unsupported() {
    let emu = Emulator::shared();
    let dir = home();
    let key = dir.path().join("ecdsa.pem");
    let made = std::process::Command::new(support::python())
        .args([
            "-c",
            "import sys\n\
             from cryptography.hazmat.primitives.asymmetric import ec\n\
             from cryptography.hazmat.primitives import serialization as s\n\
             k = ec.generate_private_key(ec.SECP256R1())\n\
             open(sys.argv[1], 'wb').write(k.private_bytes(s.Encoding.PEM, \
             s.PrivateFormat.PKCS8, s.NoEncryption()))",
        ])
        .arg(&key)
        .status()
        .expect("make an ECDSA key");
    assert!(made.success());
    password(emu, "win-pkcs1", &["--key", key.to_str().unwrap()], &[]).fails(4, "ECDSA");
}

#[test]
fn rejected_credentials_say_so() {
    let emu = Emulator::shared();
    password(
        emu,
        "win-pkcs1",
        &[],
        &[("AWS_ACCESS_KEY_ID", "reject-DescribeInstances")],
    )
    .fails(3, "AWS rejected the credentials (AuthFailure)");
}

/// The instance exists, but in another cluster than the one named.
#[test]
fn an_instance_of_another_cluster_is_not_found_in_this_one() {
    let emu = Emulator::start();
    let output = std::process::Command::new(support::python())
        .arg(support::repo().join("scripts/seed_big.py"))
        .args(["--endpoint", &emu.endpoint, "--count", "1"])
        .output()
        .expect("run seed_big.py");
    assert!(output.status.success());
    let home = home();
    let id = emu.field("win-pkcs1", "ec2_instance_id");
    Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", &format!("big/{id}")]),
    )
    .fails(
        3,
        &format!("EC2 instance {id} is registered in cluster `demo`, not `big`"),
    )
    .fails(3, &format!("ecsrdp demo/{id}"));
}

// ---- Small comforts ---------------------------------------------------------------------------

/// A line break in `--user` would add a setting of its own to the file (a shared drive, say,
/// for whoever opens it): refused, and nothing written.
#[test]
fn rdp_file_refuses_a_user_with_a_line_break() {
    let emu = Emulator::shared();
    let home = home();
    let run = Run::of(emu.ecsrdp(home.path()).args([
        "rdp-file",
        &emu.target("win-pkcs1"),
        "--user",
        "Administrator\r\ndrivestoredirect:s:*",
    ]));
    run.fails(2, "must not contain a line break");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn rdp_file_names_the_address_and_user_never_the_password() {
    let emu = Emulator::shared();
    let home = home();
    let file = home.path().join("win.rdp");
    Run::of(emu.ecsrdp(home.path()).args([
        "rdp-file",
        &emu.target("win-pkcs1"),
        "-o",
        file.to_str().unwrap(),
        "--size",
        "1600x900",
    ]))
    .succeeds();
    let text = std::fs::read_to_string(&file).unwrap();
    let ip = emu.field("win-pkcs1", "public_ip");
    assert!(
        text.contains(&format!("full address:s:{ip}:3389\r\n")),
        "{text}"
    );
    assert!(text.contains("username:s:Administrator\r\n"), "{text}");
    assert!(text.contains("desktopwidth:i:1600\r\n"), "{text}");
    assert!(!text.contains(&emu.field("win-pkcs1", "password")));
    assert!(!text.to_lowercase().contains("password"), "{text}");
    // A private instance has no address an .rdp file could hold: `ecsrdp tunnel` is the way.
    Run::of(
        emu.ecsrdp(home.path())
            .args(["rdp-file", &emu.target("win-private")]),
    )
    .fails(2, "ecsrdp tunnel");
}

#[test]
fn completions_and_man_page_come_from_the_same_definitions() {
    let home = home();
    let bash = Run::of(support::ecsrdp(home.path()).args(["completions", "bash"]));
    bash.succeeds();
    assert!(bash.stdout.contains("_ecsrdp()") && bash.stdout.contains("--tunnel"));
    let man = Run::of(support::ecsrdp(home.path()).arg("man"));
    man.succeeds();
    assert!(
        man.stdout.contains(".TH ecsrdp") && man.stdout.contains("rdp\\-file"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
}

#[test]
fn no_target_lists_the_clusters() {
    let emu = Emulator::shared();
    let home = home();
    let run = Run::of(&mut emu.ecsrdp(home.path()));
    run.succeeds();
    let demo = run
        .stdout
        .lines()
        .find(|l| l.starts_with("demo "))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    let instances = emu.seed["instances"].as_object().unwrap().len();
    assert!(demo.contains(&format!(" {instances} ")), "{demo}");
    let json = Run::of(emu.ecsrdp(home.path()).arg("--json"));
    json.succeeds();
    let rows: Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(rows.as_array().unwrap().iter().any(|r| r["name"] == "demo"));
}

#[test]
fn a_cluster_listing_as_json() {
    let emu = Emulator::shared();
    let home = home();
    let run = Run::of(emu.ecsrdp(home.path()).args(["demo", "--json"]));
    run.succeeds();
    let rows: Value = serde_json::from_str(&run.stdout).unwrap();
    let private = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ec2_instance_id"] == emu.field("win-private", "ec2_instance_id"))
        .expect("the private instance is listed");
    assert_eq!(private["platform"], "windows");
    // What ECS says of it: its status, its agent, its tasks.
    assert_eq!(private["status"], "ACTIVE");
    assert_eq!(private["agent_connected"], true);
    assert!(private["running_tasks"].is_i64(), "{private}");
}

// ---- ECS-shaped targets -----------------------------------------------------------------------

/// Runs `count` tasks of a Windows task definition in `demo` (optionally as a service's, as
/// the group ECS gives them says), or one on Fargate; returns the task IDs.
fn run_tasks(emu: &Emulator, group: Option<&str>, count: u32, fargate: bool) -> Vec<String> {
    let script = format!(
        "import boto3, json, os, sys\n\
         s = boto3.session.Session(region_name='us-east-1', \
         aws_access_key_id=os.environ['AWS_ACCESS_KEY_ID'], \
         aws_secret_access_key=os.environ['AWS_SECRET_ACCESS_KEY'])\n\
         ecs = s.client('ecs', endpoint_url=sys.argv[1])\n\
         ecs.register_task_definition(family='web', containerDefinitions=[{{'name': 'iis', \
         'image': 'iis', 'memory': 64, 'cpu': 16}}])\n\
         args = dict(cluster='demo', taskDefinition='web', count={count})\n\
         if {fargate}: args.update(launchType='FARGATE', networkConfiguration=\
         {{'awsvpcConfiguration': {{'subnets': ['subnet-1']}}}})\n\
         group = {group:?}\n\
         if group: args.update(group=group)\n\
         tasks = ecs.run_task(**args)['tasks']\n\
         print(json.dumps([t['taskArn'].rsplit('/', 1)[-1] for t in tasks]))\n",
        fargate = if fargate { "True" } else { "False" },
        group = group.unwrap_or(""),
    );
    serde_json::from_str(&emu.python_as_admin(&script)).expect("task IDs")
}

#[test]
fn a_task_and_a_service_name_their_instance() {
    let emu = Emulator::start();
    let home = home();
    let task = &run_tasks(&emu, Some("service:site"), 1, false)[0];
    for target in [format!("demo/task/{task}"), "demo/service/site".to_owned()] {
        let run = Run::of(emu.ecsrdp(home.path()).args(["resolve", "--json", &target]));
        // The instance the task landed on may lack something (a key pair, Windows): what
        // matters is that one was found and described.
        let resolved: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|_| panic!("{target}: {}", run.stderr));
        assert!(
            resolved["ec2_instance_id"]
                .as_str()
                .unwrap()
                .starts_with("i-"),
            "{target}: {resolved}"
        );
    }
    Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", "demo/service/nothing-runs"]),
    )
    .fails(3, "service `nothing-runs` has no running task");
    Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", "demo/task/0123456789abcdef"]),
    )
    .fails(3, "task `0123456789abcdef` was not found");
    let fargate = &run_tasks(&emu, None, 1, true)[0];
    Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", &format!("demo/task/{fargate}")]),
    )
    .fails(3, "runs on Fargate");
}

/// A service whose tasks run on several instances: without a terminal the error names them; on
/// a terminal the picker offers just those, and Enter takes the first.
#[test]
fn a_service_on_several_instances_is_picked_on_a_terminal() {
    let emu = Emulator::start();
    let home = home();
    // One task on each of two instances, as ECS spreads a service's tasks.
    let script = "import boto3, sys\n\
         s = boto3.session.Session(region_name='us-east-1', aws_access_key_id='testing', \
         aws_secret_access_key='testing')\n\
         ecs = s.client('ecs', endpoint_url=sys.argv[1])\n\
         ecs.register_task_definition(family='web', containerDefinitions=[{'name': 'iis', \
         'image': 'iis', 'memory': 64, 'cpu': 16}])\n\
         ecs.start_task(cluster='demo', taskDefinition='web', group='service:spread', \
         containerInstances=sys.argv[2:])\n";
    let started = std::process::Command::new(support::python())
        .args(["-c", script, &emu.endpoint])
        .arg(emu.field("win-pkcs1", "container_instance_arn"))
        .arg(emu.field("win-pkcs8", "container_instance_arn"))
        .output()
        .expect("start tasks");
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let refused = Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", "demo/service/spread"]),
    );
    refused.fails(3, "service `spread` runs on");
    let mut command = emu.ecsrdp(home.path());
    command.args(["resolve", "demo/service/spread"]);
    let run = support::on_a_terminal(&command, "\r");
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("pick an instance"), "{}", run.stdout);
    let resolved = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("EC2 instance"))
        .unwrap_or_else(|| panic!("no resolve output: {}", run.stdout));
    let id = resolved.split_whitespace().nth(2).unwrap();
    assert!(
        refused.stderr.contains(id),
        "{id} is not one of the service's: {}",
        refused.stderr
    );
}

/// An SSO profile whose cached token has expired, as on the morning after `aws sso login`:
/// the profile is named with the command that renews it.
#[test]
fn an_expired_sso_session_says_to_log_in_again() {
    use sha1::Digest as _;
    let emu = Emulator::shared();
    let home = home();
    let mut command = emu.ecsrdp(home.path());
    let start_url = "https://corp.awsapps.com/start";
    std::fs::write(
        home.path().join("aws-config"),
        format!(
            "[profile work]\nsso_session = corp\nsso_account_id = 123456789012\n\
             sso_role_name = Admin\nregion = us-east-1\n\n\
             [sso-session corp]\nsso_start_url = {start_url}\nsso_region = us-east-1\n"
        ),
    )
    .unwrap();
    let cache = home.path().join(".aws/sso/cache");
    std::fs::create_dir_all(&cache).unwrap();
    let name: String = sha1::Sha1::digest(b"corp")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        cache.join(format!("{name}.json")),
        format!(
            r#"{{"accessToken":"expired-token","expiresAt":"2020-01-01T00:00:00Z","region":"us-east-1","startUrl":"{start_url}"}}"#
        ),
    )
    .unwrap();
    command
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(["demo", "--profile", "work"]);
    Run::of(&mut command).fails(3, "aws sso login --profile work");
}

/// A container instance still registered whose EC2 instance is gone: AWS forgets a terminated
/// instance after about an hour (DescribeInstances: InvalidInstanceID.NotFound); before that it
/// shows it as terminated.
#[test]
fn a_registered_instance_whose_ec2_instance_is_gone() {
    let emu = Emulator::start();
    let script = r#"
import json, sys, boto3
session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="testing",
                                aws_secret_access_key="testing")
ec2 = session.client("ec2", endpoint_url=sys.argv[1])
ecs = session.client("ecs", endpoint_url=sys.argv[1])
ecs.create_cluster(clusterName="gone")
ids = []
for forget in [False, True]:
    tags = [{"Key": "emulator:forgotten", "Value": "yes"}] if forget else []
    run = dict(ImageId="ami-03cf127a", MinCount=1, MaxCount=1, KeyName="kp-pkcs1")
    if tags:
        run["TagSpecifications"] = [{"ResourceType": "instance", "Tags": tags}]
    instance = ec2.run_instances(**run)["Instances"][0]["InstanceId"]
    ecs.register_container_instance(cluster="gone",
        instanceIdentityDocument=json.dumps({"instanceId": instance, "region": "us-east-1"}))
    ec2.terminate_instances(InstanceIds=[instance])
    ids.append(instance)
print(" ".join(ids))
"#;
    let output = std::process::Command::new(support::python())
        .args(["-c", script, &emu.endpoint])
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ids = String::from_utf8(output.stdout).unwrap();
    let (terminated, forgotten) = ids.trim().split_once(' ').unwrap();
    let home = home();
    Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", &format!("gone/{forgotten}")]),
    )
    .fails(3, &format!("EC2 instance `{forgotten}` does not exist"));
    Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", &format!("gone/{terminated}")]),
    )
    .fails(3, "is terminated");
}

/// The config file fills in what the command line leaves open (the user; a cluster's region,
/// over AWS_REGION), the command line wins, and a file that cannot be understood is named.
#[test]
fn the_config_file_fills_in_what_the_command_line_leaves_open() {
    let emu = Emulator::shared();
    let home = home();
    let config = home.path().join("config.toml");
    let file = home.path().join("win.rdp");
    let rdp_file = |extra: &[&str]| {
        let mut command = emu.ecsrdp(home.path());
        command
            .env("ECSRDP_CONFIG", &config)
            // The emulator's instances are in us-east-1 only: the cluster's region must win.
            .env("AWS_REGION", "eu-west-3")
            .args([
                "rdp-file",
                &emu.target("win-pkcs1"),
                "-o",
                file.to_str().unwrap(),
            ])
            .args(extra);
        Run::of(&mut command)
    };
    std::fs::write(
        &config,
        "user = \"ops\"\nsize = \"1600x900\"\n\n[clusters.demo]\nregion = \"us-east-1\"\n",
    )
    .unwrap();
    rdp_file(&[]).succeeds();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("username:s:ops\r\n"), "{text}");
    // The size too (it was ignored for rdp-file), unless the command line gives one.
    assert!(text.contains("desktopwidth:i:1600\r\n"), "{text}");
    rdp_file(&["--user", "Administrator", "--size", "800x600"]).succeeds();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("username:s:Administrator\r\n"), "{text}");
    assert!(text.contains("desktopwidth:i:800\r\n"), "{text}");

    std::fs::write(&config, "scale = \"huge\"\n").unwrap();
    rdp_file(&[]).fails(2, "is not valid: scale: `huge` is not `fit` or `none`");
    std::fs::write(&config, "colour = \"blue\"\n").unwrap();
    rdp_file(&[]).fails(2, "line 1: unknown field `colour`");

    // `key_dir` is searched before ~/.ssh.
    std::fs::write(&config, "key_dir = \"~/keys\"\n").unwrap();
    let password = || {
        let mut command = emu.ecsrdp(home.path());
        command
            .env("ECSRDP_CONFIG", &config)
            .args(["password", &emu.target("win-pkcs1")]);
        Run::of(&mut command)
    };
    let expected = home.path().join("keys/kp-pkcs1.pem");
    password().fails(4, &expected.display().to_string());
    std::fs::create_dir(home.path().join("keys")).unwrap();
    std::fs::copy(emu.field("win-pkcs1", "key_file"), &expected).unwrap();
    set_private(&expected);
    let run = password();
    run.succeeds();
    assert_eq!(run.stdout.trim(), emu.field("win-pkcs1", "password"));
}

fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

// ---- Picking an instance ------------------------------------------------------------------

/// `ecsrdp <cluster>/` on a terminal: the picker shows the cluster's instances; typing part of
/// one's ID narrows the list to it and Enter picks it, as if its ID had been typed.
#[test]
fn a_cluster_and_a_slash_picks_the_instance_on_a_terminal() {
    let emu = Emulator::shared();
    let home = home();
    let wanted = emu.field("win-pkcs8", "ec2_instance_id");
    let mut command = emu.ecsrdp(home.path());
    command.args(["resolve", "demo/"]);
    let run = support::on_a_terminal(&command, &format!("{}\r", &wanted[2..]));
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("pick an instance"),
        "the picker: {}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&emu.field("win-pkcs1", "ec2_instance_id")),
        "every instance is offered: {}",
        run.stdout
    );
    let resolved = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("EC2 instance"))
        .unwrap_or_else(|| panic!("no resolve output: {}", run.stdout));
    assert!(
        resolved.contains(&wanted),
        "picked {resolved}, not {wanted}"
    );
}

#[test]
fn a_cluster_and_a_slash_without_a_terminal_says_what_to_type() {
    let emu = Emulator::shared();
    let home = home();
    Run::of(emu.ecsrdp(home.path()).args(["resolve", "demo/"]))
        .fails(2, "picks an instance on a terminal");
}

// ---- What AWS must allow ------------------------------------------------------------------

/// Every command, run as a user holding exactly the policy the README documents
/// (`resources/iam-policy.json`), against an emulator that enforces IAM as AWS does: listing
/// the region's clusters and a cluster, resolving instances, task and service targets and a
/// private instance, the password, an .rdp file, `ecsrdp tunnel`, and connections through the
/// EC2 Instance Connect Endpoint and through Session Manager (whose session is terminated as
/// the caller's own).
#[test]
fn the_shipped_policy_allows_every_command() {
    use std::io::{BufRead as _, BufReader};
    let policy = support::repo().join("resources/iam-policy.json");
    let emu = Emulator::enforcing(&policy);
    let home = home();
    let open = emu.target("win-pkcs1");
    let private = emu.target("win-private");
    let task = &run_tasks(&emu, Some("service:site"), 1, false)[0];
    let allowed = |run: &Run, what: &str| {
        assert!(
            !run.stderr.contains("access denied"),
            "{what}: {}",
            run.stderr
        );
    };

    let clusters = Run::of(&mut emu.ecsrdp(home.path()));
    clusters.succeeds();
    assert!(clusters.stdout.contains("demo"), "{}", clusters.stdout);
    Run::of(emu.ecsrdp(home.path()).arg("demo")).succeeds();
    for target in [&open, &private] {
        Run::of(emu.ecsrdp(home.path()).args(["resolve", target])).succeeds();
    }
    for target in [format!("demo/task/{task}"), "demo/service/site".to_owned()] {
        let run = Run::of(emu.ecsrdp(home.path()).args(["resolve", "--json", &target]));
        allowed(&run, &target);
        let resolved: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|_| panic!("{target}: {}", run.stderr));
        assert!(
            resolved["ec2_instance_id"].is_string(),
            "{target}: {resolved}"
        );
    }
    let password = Run::of(emu.ecsrdp(home.path()).args([
        "password",
        &open,
        "--key",
        &key_file(&emu, "win-pkcs1"),
    ]));
    password.succeeds();
    assert_eq!(password.stdout.trim(), emu.field("win-pkcs1", "password"));
    let file = Run::of(emu.ecsrdp(home.path()).args(["rdp-file", &open]));
    file.succeeds();
    assert!(file.stdout.contains("full address:s:"), "{}", file.stdout);

    // `ecsrdp tunnel` finds the endpoint and says where it listens.
    let mut tunnel = support::Daemon(
        emu.ecsrdp(home.path())
            .args(["tunnel", &private, "--local-port", "0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start ecsrdp tunnel"),
    );
    let mut banner = String::new();
    BufReader::new(tunnel.0.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    assert!(
        banner.contains("through EC2 Instance Connect Endpoint eice-"),
        "{banner:?}"
    );
    drop(tunnel);

    // The whole connection through the endpoint, to a desktop.
    let xvfb = support::Xvfb::start(640, 480);
    let shadow = support::Shadow::start(
        &xvfb,
        "nla",
        "Administrator",
        &emu.field("win-private", "password"),
    );
    emu.set_route("win-private", shadow.port);
    Run::of(
        emu.ecsrdp(home.path())
            .arg(&private)
            .args(["--key", &key_file(&emu, "win-private")])
            .args(["--headless", "--trust-new", "--exit-after", "2s"]),
    )
    .succeeds();

    // Through Session Manager, to the instance with no endpoint and no open port.
    let isolated = support::Shadow::start(
        &xvfb,
        "nla",
        "Administrator",
        &emu.field("win-isolated", "password"),
    );
    emu.set_route("win-isolated", isolated.port);
    emu.set_agent(
        "win-isolated",
        serde_json::json!({"ping": "Online", "agent": "3.3.40.0"}),
    );
    let run = Run::of(
        emu.ecsrdp(home.path())
            .arg(emu.target("win-isolated"))
            .args(["--key", &key_file(&emu, "win-isolated")])
            .args(["--headless", "--trust-new", "--exit-after", "2s"]),
    );
    run.succeeds();
    allowed(&run, "Session Manager");
    let terminated = emu
        .ssm_events()
        .iter()
        .filter(|e| e["event"] == "terminated")
        .count();
    assert_eq!(terminated, 1, "{:?}", emu.ssm_events());
}

/// The shipped policy's Session Manager grant is scoped as AWS's guide scopes it: the
/// port-forwarding document only (not a shell on the instance), and only the caller's own
/// sessions to end or resume.
#[test]
fn the_shipped_policy_allows_port_forwarding_and_the_callers_own_sessions_only() {
    let policy = support::repo().join("resources/iam-policy.json");
    let emu = Emulator::enforcing(&policy);
    emu.set_agent(
        "win-isolated",
        serde_json::json!({"ping": "Online", "agent": "3.3.40.0"}),
    );
    let (id, secret) = emu.user("ssm-user", &policy);
    let script = r#"
import sys, boto3, botocore
ssm = boto3.client("ssm", endpoint_url=sys.argv[1], region_name="us-east-1")
def denied(call):
    try:
        call()
        return "allowed"
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
target = sys.argv[2]
own = ssm.start_session(Target=target, DocumentName="AWS-StartPortForwardingSession",
                        Parameters={"portNumber": ["3389"]})["SessionId"]
print(own.split("-")[0] == "ssm", denied(lambda: ssm.terminate_session(SessionId=own)))
print(denied(lambda: ssm.start_session(Target=target)))
print(denied(lambda: ssm.terminate_session(SessionId="someone-0123456789abcdef")))
"#;
    let output = std::process::Command::new(support::python())
        .args(["-c", script, &emu.endpoint])
        .arg(emu.field("win-isolated", "ec2_instance_id"))
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        said.lines().collect::<Vec<_>>(),
        [
            "True allowed",
            "AccessDeniedException",
            "AccessDeniedException"
        ],
        "{said}"
    );
}

/// A call the policy does not allow names the action and where the policy is.
#[test]
fn a_denied_call_names_the_action_and_the_policy() {
    let full = support::repo().join("resources/iam-policy.json");
    let emu = Emulator::enforcing(&full);
    let mut policy: Value = serde_json::from_slice(&std::fs::read(&full).unwrap()).unwrap();
    let actions = policy["Statement"][0]["Action"].as_array_mut().unwrap();
    actions.retain(|a| a != "ecs:ListClusters");
    let home = home();
    let without = home.path().join("without-list-clusters.json");
    std::fs::write(&without, policy.to_string()).unwrap();
    let (id, secret) = emu.user("no-list", &without);
    Run::of(
        emu.ecsrdp(home.path())
            .env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret),
    )
    .fails(3, "access denied for ecs:ListClusters")
    .fails(3, "resources/iam-policy.json");
}

// ---- An EC2 instance alone ----------------------------------------------------------------

/// `ecsrdp i-…` (and its ARN), as the EC2 console names an instance: found in its cluster,
/// which ecsrdp names.
#[test]
fn an_ec2_instance_alone_is_found_in_its_cluster() {
    let emu = Emulator::shared();
    let home = home();
    let id = emu.field("win-pkcs1", "ec2_instance_id");
    let run = Run::of(emu.ecsrdp(home.path()).args(["resolve", "--json", &id]));
    run.succeeds();
    assert!(
        run.stderr.contains(&format!("{id} is in ECS cluster demo")),
        "{}",
        run.stderr
    );
    let resolved: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(resolved["cluster"], "demo");
    assert!(resolved["container_instance_arn"].is_string(), "{resolved}");
    let arn = format!("arn:aws:ec2:us-east-1:123456789012:instance/{id}");
    let password = Run::of(emu.ecsrdp(home.path()).args([
        "password",
        &arn,
        "-i",
        &key_file(emu, "win-pkcs1"),
    ]));
    password.succeeds();
    assert_eq!(password.stdout.trim(), emu.field("win-pkcs1", "password"));
}

/// A Windows instance in no ECS cluster is reached all the same by its EC2 ID; named in a
/// cluster it is not registered in, ecsrdp says so (not that it does not exist) and how to reach
/// it; an ID no instance has is said to be that.
#[test]
fn a_windows_instance_in_no_cluster_is_reached_by_its_id() {
    let emu = Emulator::start();
    let script = r#"
import boto3, os, sys
s = boto3.session.Session(region_name="us-east-1",
                          aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"])
ec2 = s.client("ec2", endpoint_url=sys.argv[1])
group = ec2.describe_security_groups(
    Filters=[{"Name": "group-name", "Values": ["rdp-open"]}])["SecurityGroups"][0]["GroupId"]
reservation = ec2.run_instances(ImageId="ami-03cf127a", InstanceType="m5.large", MinCount=1,
                                MaxCount=1, KeyName="kp-pkcs1", SecurityGroupIds=[group])
print(reservation["Instances"][0]["InstanceId"])
"#;
    let id = emu.python_as_admin(script).trim().to_owned();
    let home = home();

    let run = Run::of(emu.ecsrdp(home.path()).args(["resolve", "--json", &id]));
    run.succeeds();
    assert!(
        run.stderr.contains("is in no ECS cluster"),
        "{}",
        run.stderr
    );
    let resolved: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(resolved["cluster"], Value::Null);
    assert_eq!(resolved["ec2_instance_id"], id.as_str());
    let text = Run::of(emu.ecsrdp(home.path()).args(["resolve", &id]));
    text.succeeds();
    assert!(text.stdout.contains("in no ECS cluster"), "{}", text.stdout);

    Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", &format!("demo/{id}")]),
    )
    .fails(3, "exists but is not registered in cluster `demo`")
    .fails(3, &format!("`ecsrdp {id}`"));
    Run::of(
        emu.ecsrdp(home.path())
            .args(["resolve", "demo/i-0123456789abcdef0"]),
    )
    .fails(3, "EC2 instance `i-0123456789abcdef0` does not exist");
}
