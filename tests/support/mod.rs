//! Fixtures shared by the integration tests: the AWS emulator, the `ecsrdp` binary run in a
//! clean environment, an Xvfb display, FreeRDP's shadow server, and the in-process RDP server.
#![allow(dead_code, reason = "each test binary uses a different part")]

pub mod proxy;
pub mod rdp_server;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's Python, where `.ci/run` (or `scripts/setup`) installed moto.
pub fn python() -> PathBuf {
    std::env::var_os("ECSRDP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"))
}

/// A running emulator, seeded; it exits when this process does (its stdin closes).
pub struct Emulator {
    pub endpoint: String,
    /// Its EC2 Instance Connect Endpoint tunnel service (`ws://…`).
    pub eice: String,
    /// Private IP -> `127.0.0.1:port` for tunnels, in `keys`.
    pub routes: PathBuf,
    /// The emulator's out-of-band passwords (instance ID -> password), in `keys`.
    pub passwords: PathBuf,
    /// Instance ID -> its system log (GetConsoleOutput), in `keys`.
    pub console: PathBuf,
    /// Instance ID -> its SSM agent (see scripts/ssm.py), in `keys`.
    pub ssm: PathBuf,
    /// What the emulator's Session Manager data channels did, one JSON object per line.
    pub ssm_log: PathBuf,
    pub seed: Value,
    pub keys: tempfile::TempDir,
    /// An access key allowed everything: what the seed and the tests' own changes use.
    pub admin: (String, String),
    /// The access key `ecsrdp` runs with, when the emulator enforces IAM.
    caller: Option<(String, String)>,
    child: Child,
    _stdin: ChildStdin,
}

impl Emulator {
    /// One emulator for the whole test binary; tests must not change its state.
    pub fn shared() -> &'static Emulator {
        static SHARED: OnceLock<Emulator> = OnceLock::new();
        SHARED.get_or_init(Emulator::start)
    }

    /// A private emulator, for a test that changes state.
    pub fn start() -> Emulator {
        Emulator::launch(false)
    }

    /// A private emulator that enforces IAM as AWS does: seeded by an administrator, with
    /// `ecsrdp` running as a user that holds exactly the policy in the file `policy`.
    pub fn enforcing(policy: &Path) -> Emulator {
        let mut emulator = Emulator::launch(true);
        emulator.caller = Some(emulator.user("ecsrdp-user", policy));
        emulator
    }

    /// Runs a Python `script` against the emulator (its endpoint is `sys.argv[1]`) with the
    /// administrator's key in `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`; what it printed.
    pub fn python_as_admin(&self, script: &str) -> String {
        let output = Command::new(python())
            .args(["-c", script, &self.endpoint])
            .env("AWS_ACCESS_KEY_ID", &self.admin.0)
            .env("AWS_SECRET_ACCESS_KEY", &self.admin.1)
            .output()
            .expect("run python");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 from python")
    }

    /// Another IAM user, holding exactly the policy in the file `policy`; its access key.
    pub fn user(&self, name: &str, policy: &Path) -> (String, String) {
        let output = Command::new(python())
            .arg(repo().join("scripts/iam.py"))
            .args(["--endpoint", &self.endpoint, "user", name])
            .arg(policy)
            .env("AWS_ACCESS_KEY_ID", &self.admin.0)
            .env("AWS_SECRET_ACCESS_KEY", &self.admin.1)
            .output()
            .expect("run iam.py");
        access_key(&output)
    }

    fn launch(enforce_iam: bool) -> Emulator {
        let keys = tempfile::tempdir().expect("keys dir");
        let passwords = keys.path().join("passwords.json");
        let routes = keys.path().join("routes.json");
        let console = keys.path().join("console.json");
        let ssm = keys.path().join("ssm.json");
        let ssm_log = keys.path().join("ssm-log.jsonl");
        let mut emulator = Command::new(python());
        if enforce_iam {
            // moto lets the first three calls through: iam.py spends them on an administrator.
            emulator.env("INITIAL_NO_AUTH_ACTION_COUNT", "3");
        }
        let mut child = emulator
            .arg(repo().join("scripts/emulator.py"))
            .arg("--exit-with-stdin")
            .arg("--passwords")
            .arg(&passwords)
            .arg("--routes")
            .arg(&routes)
            .arg("--console")
            .arg(&console)
            .arg("--ssm")
            .arg(&ssm)
            .arg("--ssm-log")
            .arg(&ssm_log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start scripts/emulator.py (run scripts/setup to make .venv)");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut banner = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut read_url = |scheme: &str| {
            let mut line = String::new();
            banner.read_line(&mut line).expect("emulator banner");
            let url = line
                .trim()
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_owned();
            assert!(url.starts_with(scheme), "banner: {line}");
            url
        };
        let endpoint = read_url("http://127.0.0.1:");
        let eice = read_url("ws://127.0.0.1:");
        let admin = if enforce_iam {
            let output = Command::new(python())
                .arg(repo().join("scripts/iam.py"))
                .args(["--endpoint", &endpoint, "admin"])
                .output()
                .expect("run iam.py");
            access_key(&output)
        } else {
            ("testing".to_owned(), "testing".to_owned())
        };
        let output = Command::new(python())
            .arg(repo().join("scripts/seed.py"))
            .env("AWS_ACCESS_KEY_ID", &admin.0)
            .env("AWS_SECRET_ACCESS_KEY", &admin.1)
            .args(["--endpoint", &endpoint, "--keys-dir"])
            .arg(keys.path())
            .arg("--passwords")
            .arg(&passwords)
            .output()
            .expect("run seed.py");
        assert!(
            output.status.success(),
            "seed.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let seed = serde_json::from_slice(&output.stdout).expect("seed JSON");
        Emulator {
            endpoint,
            eice,
            routes,
            passwords,
            console,
            ssm,
            ssm_log,
            seed,
            keys,
            admin,
            caller: None,
            child,
            _stdin: stdin,
        }
    }

    /// Gives instance `name` a password, as Windows does when it publishes one.
    pub fn set_password(&self, name: &str, password: &str) {
        store_entry(
            &self.passwords,
            self.field(name, "ec2_instance_id"),
            password,
        );
    }

    /// Gives instance `name` a system log (what GetConsoleOutput answers), as Windows writes
    /// it at boot.
    pub fn set_system_log(&self, name: &str, text: &str) {
        store_entry(&self.console, self.field(name, "ec2_instance_id"), text);
    }

    /// Sends tunnels to instance `name`'s private address on to `port` on this machine.
    pub fn set_route(&self, name: &str, port: u16) {
        self.set_route_to(name, &format!("127.0.0.1:{port}"));
    }

    /// Routes tunnels to `name` to `target`: `host:port`, or `!text` for a service that
    /// answers with a text frame.
    pub fn set_route_to(&self, name: &str, target: &str) {
        store_entry(&self.routes, self.field(name, "private_ip"), target);
    }

    /// Makes instance `name` managed by Systems Manager, its agent as `agent` says
    /// (`{"ping": "Online", "agent": "3.3.40.0", "drop": 0.1, ...}`: see scripts/ssm.py).
    pub fn set_agent(&self, name: &str, agent: Value) {
        store_value(&self.ssm, self.field(name, "ec2_instance_id"), agent);
    }

    /// The events the emulator's Session Manager data channels logged, in order.
    pub fn ssm_events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.ssm_log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON event"))
            .collect()
    }

    pub fn instance(&self, name: &str) -> &Value {
        &self.seed["instances"][name]
    }

    pub fn field(&self, name: &str, field: &str) -> String {
        self.instance(name)[field]
            .as_str()
            .unwrap_or_else(|| panic!("{name}.{field} in seed"))
            .to_owned()
    }

    /// `demo/<ec2 instance id>`.
    pub fn target(&self, name: &str) -> String {
        format!("demo/{}", self.field(name, "ec2_instance_id"))
    }

    /// The `ecsrdp` binary pointed at this emulator, with an empty home and trust store.
    pub fn ecsrdp(&self, home: &Path) -> Command {
        let mut command = ecsrdp(home);
        command
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT", &self.eice);
        if let Some((id, secret)) = &self.caller {
            command
                .env("AWS_ACCESS_KEY_ID", id)
                .env("AWS_SECRET_ACCESS_KEY", secret);
        }
        command
    }

    /// An EC2 client for changing the emulator's state mid-test.
    pub async fn ec2(&self) -> aws_sdk_ec2::Client {
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                &self.admin.0,
                &self.admin.1,
                None,
                None,
                "test",
            ))
            .build();
        aws_sdk_ec2::Client::from_conf(config)
    }
}

/// The access key `scripts/iam.py` printed.
fn access_key(output: &std::process::Output) -> (String, String) {
    assert!(
        output.status.success(),
        "iam.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key: Value = serde_json::from_slice(&output.stdout).expect("iam.py JSON");
    let field = |name: &str| key[name].as_str().expect("access key field").to_owned();
    (field("access_key_id"), field("secret_access_key"))
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary with an environment that cannot reach a real AWS account or the user's files.
pub fn ecsrdp(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ecsrdp"));
    // Empty AWS config files: nothing of the developer's own AWS setup leaks in.
    for file in ["aws-config", "aws-credentials"] {
        std::fs::write(home.join(file), "").expect("empty AWS config");
    }
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("AWS_") || key.starts_with("ECSRDP_") || key == "RUST_LOG" {
            command.env_remove(&key);
        }
    }
    command
        .env("HOME", home)
        // The developer's own config file stays out of it too.
        .env_remove("XDG_CONFIG_HOME")
        .env("ECSRDP_DATA_DIR", home.join("data"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", home.join("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("aws-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null());
    command
}

/// What a finished command said.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(command: &mut Command) -> Run {
        Run::with_stdin(command, None)
    }

    pub fn with_stdin(command: &mut Command, input: Option<&str>) -> Run {
        if input.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ecsrdp");
        if let Some(input) = input {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        let output = child.wait_with_output().expect("wait for ecsrdp");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts a failure: the exit code, one clear paragraph mentioning `needle`, no panic.
    pub fn fails(&self, code: i32, needle: &str) -> &Self {
        assert_eq!(self.code, code, "exit code; stderr: {}", self.stderr);
        assert!(
            self.stderr.contains(needle),
            "stderr should mention {needle:?}: {}",
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "a panic: {}",
            self.stderr
        );
        assert!(
            self.stderr.starts_with("ecsrdp: "),
            "one paragraph: {}",
            self.stderr
        );
        self
    }

    pub fn succeeds(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "stderr: {}\nstdout: {}",
            self.stderr, self.stdout
        );
        self
    }
}

/// Runs `command` with a terminal of its own (util-linux `script`), `input` typed into it.
/// Everything it wrote to the terminal, stdout and stderr alike, is in `stdout`.
pub fn on_a_terminal(command: &Command, input: &str) -> Run {
    let line = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| format!("'{}'", a.to_str().expect("UTF-8 argument")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = Command::new("script");
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    script.args(["-q", "-e", "-c", &line, "/dev/null"]);
    Run::with_stdin(&mut script, Some(input))
}

/// A free TCP port on loopback (bound and released; fine for tests on one machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn wait_for_port(port: u16, limit: Duration) {
    let started = Instant::now();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(started.elapsed() < limit, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed when dropped.
pub struct Daemon(pub Child);

impl Daemon {
    /// The two lines `ecsrdp tunnel` (spawned with its stdout piped) prints once it listens, and
    /// the local address they name.
    pub fn tunnel_banner(&mut self) -> (String, String) {
        let mut banner = String::new();
        let mut lines = BufReader::new(self.0.stdout.take().expect("stdout piped"));
        lines.read_line(&mut banner).unwrap();
        lines.read_line(&mut banner).unwrap();
        let local = banner
            .split_whitespace()
            .find(|word| word.starts_with("127.0.0.1:"))
            .unwrap_or_else(|| panic!("no local address in {banner:?}"))
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .to_owned();
        (banner, local)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An Xvfb display of its own.
pub struct Xvfb {
    pub display: String,
    _server: Daemon,
}

impl Xvfb {
    pub fn start(width: u32, height: u32) -> Xvfb {
        // Tests run in parallel threads: each call takes its own numbers to try.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let base = 100 + (std::process::id() % 200) * 20;
        loop {
            let n = base + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            assert!(n < base + 4000, "no free X display number");
            let socket = format!("/tmp/.X11-unix/X{n}");
            if Path::new(&format!("/tmp/.X{n}-lock")).exists() || Path::new(&socket).exists() {
                continue;
            }
            let display = format!(":{n}");
            let child = Command::new("Xvfb")
                .args([
                    &display,
                    "-screen",
                    "0",
                    &format!("{width}x{height}x24"),
                    "-nolisten",
                    "tcp",
                    "-noreset",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start Xvfb (apt-get install xvfb)");
            let mut server = Daemon(child);
            let started = Instant::now();
            // Ours only if our process is still alive once the socket is there.
            let ours = loop {
                if let Ok(Some(_)) = server.0.try_wait() {
                    break false;
                }
                if Path::new(&socket).exists() {
                    break true;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "Xvfb did not start"
                );
                std::thread::sleep(Duration::from_millis(50));
            };
            if ours {
                return Xvfb {
                    display,
                    _server: server,
                };
            }
        }
    }

    /// Runs an X client on this display and checks it succeeded.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let output = Command::new(program)
            .args(args)
            .env("DISPLAY", &self.display)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// FreeRDP's shadow server sharing an Xvfb display: a real RDP server nobody here wrote.
/// Debian 12's FreeRDP 2 by default; FreeRDP 3 (from bookworm-backports, which `scripts/setup
/// tests` unpacks into .peers/freerdp3) where a test asks for it.
pub struct Shadow {
    pub port: u16,
    _server: Daemon,
    /// Holds the SAM file and the server's log.
    dir: tempfile::TempDir,
}

impl Shadow {
    /// `security` is `tls` or `nla`; NLA logs in `user`/`password` from a SAM file.
    pub fn start(xvfb: &Xvfb, security: &str, user: &str, password: &str) -> Shadow {
        // FreeRDP 2's `-auth` turns off its own (PAM) check of the user; NLA still checks the
        // password against the SAM file.
        Shadow::launch(
            Command::new("freerdp-shadow-cli"),
            Command::new("winpr-hash"),
            xvfb,
            security,
            user,
            password,
            &["-auth"],
        )
    }

    /// FreeRDP 3's shadow server, over NLA, with `extra` switches (its codecs); `None` when
    /// `scripts/setup tests` could not unpack it (not Debian 12 on amd64).
    pub fn start_freerdp3(
        xvfb: &Xvfb,
        user: &str,
        password: &str,
        extra: &[&str],
    ) -> Option<Shadow> {
        let root = repo().join(".peers/freerdp3");
        let bin = root.join("usr/bin");
        if !bin.join("freerdp-shadow-cli3").exists() {
            return None;
        }
        let libs = root.join("usr/lib/x86_64-linux-gnu");
        let with_libs = |program: &str| {
            let mut command = Command::new(bin.join(program));
            command.env("LD_LIBRARY_PATH", &libs);
            command
        };
        Some(Shadow::launch(
            with_libs("freerdp-shadow-cli3"),
            with_libs("winpr-hash3"),
            xvfb,
            "nla",
            user,
            password,
            extra,
        ))
    }

    fn launch(
        mut server: Command,
        mut hasher: Command,
        xvfb: &Xvfb,
        security: &str,
        user: &str,
        password: &str,
        extra: &[&str],
    ) -> Shadow {
        let dir = tempfile::tempdir().expect("sam dir");
        let sam = dir.path().join("sam");
        let hash = hasher
            .args(["-u", user, "-p", password, "-f", "sam"])
            .output()
            .expect("winpr-hash (apt-get install winpr-utils)");
        assert!(hash.status.success());
        std::fs::write(&sam, &hash.stdout).expect("write sam");
        let port = free_port();
        // FreeRDP logs to stdout, its libx264 encoder to stderr: both go to one file.
        let log = std::fs::File::create(dir.path().join("log")).expect("shadow log");
        // Its certificate and key go to the test's own folder, not ~/.config/freerdp.
        let config = dir.path().join("config");
        let child = server
            .env("XDG_CONFIG_HOME", &config)
            .arg(format!("/port:{port}"))
            .arg("/bind-address:127.0.0.1")
            .arg(format!("/sec:{security}"))
            .arg(format!("/sam-file:{}", sam.display()))
            .args(extra)
            .env("DISPLAY", &xvfb.display)
            .stdout(log.try_clone().expect("shadow log"))
            .stderr(log)
            .spawn()
            .expect("freerdp-shadow-cli (apt-get install freerdp2-shadow-x11)");
        let server = Daemon(child);
        wait_for_port(port, Duration::from_secs(15));
        Shadow {
            port,
            _server: server,
            dir,
        }
    }

    /// Kills the server process, as a crash would.
    pub fn kill(&mut self) {
        let _ = self._server.0.kill();
        let _ = self._server.0.wait();
    }

    /// The certificate the server presents (FreeRDP makes one at its first start), as DER.
    pub fn certificate(&self) -> Vec<u8> {
        let pem = std::fs::read_to_string(self.dir.path().join("config/freerdp/shadow/shadow.crt"))
            .expect("the shadow server's certificate");
        // FreeRDP ends the file with a NUL byte.
        let body: String = pem
            .lines()
            .skip_while(|line| !line.starts_with("-----BEGIN CERTIFICATE"))
            .skip(1)
            .take_while(|line| !line.starts_with("-----END"))
            .collect();
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).expect("PEM body")
    }

    /// What the server logged so far (its encoders among it: libx264 lines mean H.264).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

/// Pixels of a window, seen in a screenshot, that are not the desktop pixel under them when the
/// window scales the desktop to fit: `window` is where its inside is in the screenshot (left,
/// top, width, height) and `desktop` the served size. The aspect is kept, so a `w`×`h` window
/// over a `dw`×`dh` desktop shows it `w` wide and `w·dh/dw` tall, each window pixel sampling
/// the desktop under its centre; rows left below it (at most two) continue the last row. Each
/// wrong pixel comes as (x, y in the window, seen, wanted).
pub fn fitted_errors(
    shot: &Path,
    window: (u32, u32, u32, u32),
    desktop: (u16, u16),
) -> Vec<(u32, u32, [u8; 3], [u8; 3])> {
    let (left, top, w, h) = window;
    let (sw, sh, rgb) = read_png(shot);
    assert!(
        left + w <= sw && top + h <= sh,
        "the window is not all on the screen"
    );
    let (dw, dh) = (u32::from(desktop.0), u32::from(desktop.1));
    let view_h = w * dh / dw;
    assert!(
        view_h <= h && h - view_h <= 2,
        "this check is for thin bars"
    );
    let under = |i: u32, len: u32, size: u32| ((2 * i + 1) * size / (2 * len)).min(size - 1);
    let mut wrong = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = (under(x, w, dw), under(y.min(view_h - 1), view_h, dh));
            let [b, g, r, _] = rdp_server::TestServer::expected_pixel(sx as u16, sy as u16);
            let i = (((top + y) * sw + left + x) * 3) as usize;
            let seen = [rgb[i], rgb[i + 1], rgb[i + 2]];
            if seen != [r, g, b] {
                wrong.push((x, y, seen, [r, g, b]));
            }
        }
    }
    wrong
}

/// Peak signal-to-noise ratio between two images of the same layout, in dB: how close a lossy
/// codec's picture is to the truth (infinite when they are equal).
#[must_use]
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&p, &q)| (f64::from(p) - f64::from(q)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// Reads a PNG as (width, height, RGB bytes).
pub fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let mut decoder = png::Decoder::new(std::fs::File::open(path).expect("open png"));
    // ImageMagick writes palette PNGs when few colours are used, and 16-bit ones for
    // gradients: expand them to 8-bit RGB.
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    buf.truncate(info.buffer_size());
    let rgb = match info.color_type {
        png::ColorType::Rgb => buf,
        png::ColorType::Rgba => buf
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        // ImageMagick writes a screen that is still all black or grey as greyscale.
        png::ColorType::Grayscale => buf.iter().flat_map(|&v| [v, v, v]).collect(),
        png::ColorType::GrayscaleAlpha => buf
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    (info.width, info.height, rgb)
}

/// Whether the tests run as root (what creating accounts or switching users needs).
pub fn is_root() -> bool {
    extern "C" {
        fn geteuid() -> u32;
    }
    // SAFETY: geteuid has no preconditions.
    unsafe { geteuid() == 0 }
}

/// Paints the display with something codecs find hard: gradients, hard edges and small text.
pub fn paint(xvfb: &Xvfb, width: u32, height: u32, dir: &Path) {
    let image = dir.join("wallpaper.png");
    let font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    let status = Command::new("convert")
        .args([
            "-size",
            &format!("{width}x{height}"),
            "gradient:#1e3c72-#f0a040",
        ])
        .args(["-font", font, "-fill", "white", "-pointsize", "12"])
        .args([
            "-annotate",
            "+13+37",
            "The quick brown fox jumps over the lazy dog 0123456789",
        ])
        .args([
            "-fill",
            "#ff00ff",
            "-draw",
            &format!("rectangle {} 5 {} 60", width - 7, width - 1),
        ])
        .args([
            "-fill",
            "#00ff00",
            "-draw",
            &format!("rectangle 5 {} 90 {}", height - 5, height - 1),
        ])
        .arg(&image)
        .status()
        .expect("convert (apt-get install imagemagick)");
    assert!(status.success());
    // `display -window root` paints the root window and exits 1 (no window of its own).
    Command::new("display")
        .args(["-window", "root"])
        .arg(&image)
        .env("DISPLAY", &xvfb.display)
        .status()
        .expect("display");
}

/// Sets `key` to `value` in one of the emulator's JSON files (`{"key": "value"}`, read again on
/// every call), replacing the file whole so that the emulator never reads half of it.
fn store_entry(path: &Path, key: String, value: &str) {
    store_value(path, key, value.into());
}

/// [`store_entry`] with any JSON value.
fn store_value(path: &Path, key: String, value: Value) {
    let mut stored: serde_json::Map<String, Value> = std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    stored.insert(key, value);
    let temp = path.with_extension("new");
    std::fs::write(&temp, serde_json::to_vec(&stored).unwrap()).expect("write the emulator's file");
    std::fs::rename(&temp, path).expect("replace the emulator's file");
}
