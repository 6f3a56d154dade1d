//! Certificates and secrets, as docs/security.md promises them, tried the
//! way an attacker would: an impostor that replays an instance's (public) certificate with a key
//! of its own, a server that offers no NLA, and the whole path at trace level searched for the
//! password in every form it could leak in.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use support::{Emulator, Run, Shadow, Xvfb};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// `requestedProtocols` / `selectedProtocol` values (MS-RDPBCGR 2.2.1.1.1).
const PROTOCOL_SSL: u32 = 1;
const PROTOCOL_HYBRID: u32 = 2;

const INSTANCE: &str = "win-pkcs1";

/// `ecsrdp demo/<instance> --via 127.0.0.1:<port>`, headless, with the instance's key.
fn connect(emu: &Emulator, home: &Path, port: u16, extra: &[&str]) -> Command {
    let mut command = emu.ecsrdp(home);
    command
        .arg(emu.target(INSTANCE))
        .args(["--key", &emu.field(INSTANCE, "key_file")])
        .args(["--via", &format!("127.0.0.1:{port}")])
        .args(["--headless", "--exit-after", "1s"])
        .args(extra);
    command
}

/// The instance's desktop: FreeRDP's shadow server holding the instance's password.
fn instance(emu: &Emulator, xvfb: &Xvfb, security: &str) -> Shadow {
    Shadow::start(
        xvfb,
        security,
        "Administrator",
        &emu.field(INSTANCE, "password"),
    )
}

// ---- The pin proves possession ------------------------------------------------------------

#[test]
fn an_impostor_replaying_the_pinned_certificate_receives_nothing() {
    let emu = Emulator::shared();
    let xvfb = Xvfb::start(640, 480);
    let shadow = instance(emu, &xvfb, "nla");
    let home = tempfile::tempdir().unwrap();
    // First contact with the real instance pins its certificate.
    Run::of(&mut connect(
        emu,
        home.path(),
        shadow.port,
        &["--trust-new"],
    ))
    .succeeds();
    let certificate = presented_certificate(shadow.port);
    let key = new_rsa_key();

    // TLS 1.3 signs the handshake's transcript, TLS 1.2 the key exchange (what Windows Server
    // 2016 and 2019 speak): the client checks each signature against the pinned certificate.
    for (selected, extra, version) in [
        (PROTOCOL_HYBRID, &[][..], &rustls::version::TLS13),
        (
            PROTOCOL_SSL,
            &["--security", "tls"][..],
            &rustls::version::TLS13,
        ),
        (PROTOCOL_HYBRID, &[][..], &rustls::version::TLS12),
    ] {
        let impostor = Impostor::start(certificate.clone(), key.clone(), selected, version);
        let run = Run::of(&mut connect(emu, home.path(), impostor.port, extra));
        run.fails(5, "could not prove it holds the certificate's private key");
        assert_eq!(
            impostor.finish(),
            Heard::HandshakeFailed,
            "the impostor selecting protocol {selected} over {version:?} must not complete the handshake"
        );
    }
    // The real instance is still trusted as before.
    Run::of(&mut connect(emu, home.path(), shadow.port, &[])).succeeds();
}

/// What an impostor heard from the client.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    /// The client aborted the TLS handshake: not one byte of session data.
    HandshakeFailed,
    /// The handshake completed and this many bytes of application data followed.
    ApplicationData(usize),
}

/// A TLS server that presents someone else's certificate and signs with its own key, after an
/// X.224 answer selecting `selected`. Serves one connection.
struct Impostor {
    port: u16,
    heard: std::thread::JoinHandle<Heard>,
}

impl Impostor {
    fn start(
        certificate: Vec<u8>,
        key: Vec<u8>,
        selected: u32,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Impostor {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let signing_key = provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(key.into()))
            .expect("impostor key");
        let certified = Arc::new(rustls::sign::CertifiedKey::new(
            vec![CertificateDer::from(certificate)],
            signing_key,
        ));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Replay(certified)));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heard = std::thread::spawn(move || {
            let (mut tcp, _) = listener.accept().expect("the client connects");
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            read_tpkt(&mut tcp);
            tcp.write_all(&x224_confirm(selected)).unwrap();
            let mut tls = rustls::ServerConnection::new(Arc::new(config)).unwrap();
            while tls.is_handshaking() {
                if tls.complete_io(&mut tcp).is_err() {
                    return Heard::HandshakeFailed;
                }
            }
            let mut stream = rustls::StreamOwned::new(tls, tcp);
            stream
                .sock
                .set_read_timeout(Some(Duration::from_secs(3)))
                .unwrap();
            let mut data = Vec::new();
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buf) {
                data.extend_from_slice(&buf[..n]);
            }
            Heard::ApplicationData(data.len())
        });
        Impostor { port, heard }
    }

    fn finish(self) -> Heard {
        self.heard.join().expect("impostor thread")
    }
}

#[derive(Debug)]
struct Replay(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Replay {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// The certificate a server presents, as anyone on the network can fetch it: an X.224 request,
/// then a TLS handshake that checks nothing.
fn presented_certificate(port: u16) -> Vec<u8> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(&x224_request(PROTOCOL_SSL | PROTOCOL_HYBRID))
        .unwrap();
    read_tpkt(&mut tcp);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything))
        .with_no_client_auth();
    let name = ServerName::try_from("rdp.invalid").unwrap();
    let mut tls = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp)
            .expect("TLS handshake with the server");
    }
    tls.peer_certificates().expect("a certificate")[0].to_vec()
}

#[derive(Debug)]
struct AcceptAnything;

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An X.224 Connection Request with an RDP Negotiation Request (MS-RDPBCGR 2.2.1.1).
fn x224_request(protocols: u32) -> Vec<u8> {
    let mut pdu = vec![0x03, 0x00, 0x00, 0x13, 0x0e, 0xe0, 0, 0, 0, 0, 0];
    pdu.extend_from_slice(&[0x01, 0x00, 0x08, 0x00]);
    pdu.extend_from_slice(&protocols.to_le_bytes());
    pdu
}

/// An X.224 Connection Confirm with an RDP Negotiation Response (MS-RDPBCGR 2.2.1.2).
fn x224_confirm(selected: u32) -> Vec<u8> {
    let mut pdu = vec![0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0, 0, 0x12, 0x34, 0];
    pdu.extend_from_slice(&[0x02, 0x00, 0x08, 0x00]);
    pdu.extend_from_slice(&selected.to_le_bytes());
    pdu
}

/// Reads one TPKT-framed PDU (RFC 1006).
fn read_tpkt(tcp: &mut TcpStream) -> Vec<u8> {
    let mut header = [0; 4];
    tcp.read_exact(&mut header).expect("TPKT header");
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut body = vec![0; length.saturating_sub(4)];
    tcp.read_exact(&mut body).expect("TPKT body");
    body
}

/// A fresh RSA key, PKCS#8 DER, from the venv's `cryptography` (the impostor's own key).
fn new_rsa_key() -> Vec<u8> {
    let output = Command::new(support::python())
        .args([
            "-c",
            "import sys\n\
             from cryptography.hazmat.primitives import serialization as s\n\
             from cryptography.hazmat.primitives.asymmetric import rsa\n\
             k = rsa.generate_private_key(public_exponent=65537, key_size=2048)\n\
             sys.stdout.buffer.write(k.private_bytes(s.Encoding.DER, s.PrivateFormat.PKCS8, \
             s.NoEncryption()))",
        ])
        .output()
        .expect("python");
    assert!(output.status.success());
    output.stdout
}

// ---- A verified first contact -------------------------------------------------------------

/// The instance's system log as EC2Launch writes it at boot, naming `thumbprint`.
fn system_log(thumbprint: &str) -> String {
    format!(
        "2026/12/04 06:00:01Z: Windows is being configured.\r\n\
         2026/12/04 06:00:09Z: HOSTNAME: EC2AMAZ-TEST01\r\n\
         2026/12/04 06:00:09Z: RDPCERTIFICATE-SUBJECTNAME: EC2AMAZ-TEST01\r\n\
         2026/12/04 06:00:09Z: RDPCERTIFICATE-THUMBPRINT: {thumbprint}\r\n\
         2026/12/04 06:00:11Z: Windows is Ready to use\r\n"
    )
}

/// A first connection is checked against the thumbprint EC2Launch wrote to the instance's
/// system log (ec2:GetConsoleOutput): the certificate it names is trusted with no question and
/// no --trust-new, and the user is told how; another certificate is refused before anything is
/// sent, --trust-new or not, and nothing is pinned; a log that names none leaves it to
/// --trust-new, with a warning that it is unverified. Before, the log was never read.
#[test]
fn a_first_connection_is_verified_against_the_system_log() {
    let emu = Emulator::start();
    let xvfb = Xvfb::start(640, 480);
    let shadow = instance(&emu, &xvfb, "nla");
    let presented = ecsrdp::rdp::thumbprint(&shadow.certificate());
    let listed = |home: &Path| Run::of(support::ecsrdp(home).args(["trust", "list"])).stdout;

    // Named: trusted without asking (stdin is no terminal, and no --trust-new).
    emu.set_system_log(INSTANCE, &system_log(&presented));
    let home = tempfile::tempdir().unwrap();
    let run = Run::of(&mut connect(&emu, home.path(), shadow.port, &[]));
    run.succeeds();
    assert!(
        run.stderr.contains("is the one its system log names"),
        "{}",
        run.stderr
    );
    let instance_id = emu.field(INSTANCE, "ec2_instance_id");
    assert!(listed(home.path()).contains(&instance_id), "pinned");

    // Another certificate named (the instance's was replaced on the way): refused even with
    // --trust-new, and nothing remembered.
    let other = "AB".repeat(20);
    emu.set_system_log(INSTANCE, &system_log(&other));
    let home = tempfile::tempdir().unwrap();
    let refused = Run::of(&mut connect(
        &emu,
        home.path(),
        shadow.port,
        &["--trust-new"],
    ));
    refused.fails(5, "is not the one the instance's system log names");
    assert!(refused.stderr.contains(&presented), "{}", refused.stderr);
    assert!(refused.stderr.contains(&other), "{}", refused.stderr);
    assert_eq!(listed(home.path()), "", "nothing pinned");

    // No thumbprint in the log (moto's own answer has none either): --trust-new decides, and
    // says it is unverified.
    emu.set_system_log(
        INSTANCE,
        "2026/12/04 06:00:01Z: Windows is being configured.\r\n",
    );
    let home = tempfile::tempdir().unwrap();
    let run = Run::of(&mut connect(
        &emu,
        home.path(),
        shadow.port,
        &["--trust-new"],
    ));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("names no RDP certificate"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("because of --trust-new, unverified"),
        "{}",
        run.stderr
    );
}

// ---- NLA for cloud targets ----------------------------------------------------------------

#[test]
fn an_instance_without_nla_is_refused_unless_tls_is_asked_for() {
    let emu = Emulator::shared();
    let xvfb = Xvfb::start(640, 480);
    let shadow = instance(emu, &xvfb, "tls");
    let home = tempfile::tempdir().unwrap();

    let refused = Run::of(&mut connect(
        emu,
        home.path(),
        shadow.port,
        &["--trust-new"],
    ));
    refused.fails(5, "does not offer Network Level Authentication");
    assert!(
        refused.stderr.contains("--security tls"),
        "{}",
        refused.stderr
    );
    // Refused at the X.224 negotiation: not even TLS was started, so nothing was pinned.
    let listed = Run::of(support::ecsrdp(home.path()).args(["trust", "list"]));
    assert_eq!(listed.stdout, "", "nothing pinned");

    let asked = Run::of(&mut connect(
        emu,
        home.path(),
        shadow.port,
        &["--trust-new", "--security", "tls"],
    ));
    asked.succeeds();
    assert!(
        asked
            .stderr
            .contains("does not use Network Level Authentication"),
        "the user is told: {}",
        asked.stderr
    );
}

// ---- The password leaves no trace ---------------------------------------------------------

#[test]
fn the_password_leaves_no_trace_at_trace_level() {
    let emu = Emulator::shared();
    let xvfb = Xvfb::start(640, 480);
    let shadow = instance(emu, &xvfb, "nla");
    let home = tempfile::tempdir().unwrap();
    let key_log = home.path().join("tls-keys.log");
    let run = Run::of(
        connect(emu, home.path(), shadow.port, &["--trust-new", "-vv"])
            .env(
                "RUST_LOG",
                "trace,sspi=trace,ironrdp_connector::credssp=trace",
            )
            .env("SSLKEYLOGFILE", &key_log),
    );
    run.succeeds();
    assert!(
        run.stderr.contains("TRACE") && run.stderr.contains("GetPasswordData"),
        "trace logs of every crate were on: {}",
        &run.stderr[..run.stderr.len().min(2000)]
    );
    assert!(
        !key_log.exists(),
        "SSLKEYLOGFILE must not write TLS secrets"
    );

    let mut haystacks = vec![
        ("stdout".to_owned(), run.stdout.clone().into_bytes()),
        ("stderr".to_owned(), run.stderr.clone().into_bytes()),
    ];
    for file in files_under(home.path()) {
        let bytes = std::fs::read(&file).unwrap();
        haystacks.push((file.display().to_string(), bytes));
    }
    let password = emu.field(INSTANCE, "password");
    for needle in forms_of(password.as_bytes()) {
        for (name, haystack) in &haystacks {
            assert!(
                !contains(haystack, &needle),
                "{name} holds the password as {:?}",
                String::from_utf8_lossy(&needle)
            );
        }
    }
    // The NTLM messages (the AUTHENTICATE one holds a hash that can be cracked offline).
    for needle in forms_of(b"NTLMSSP\0") {
        assert!(
            !contains(run.stderr.as_bytes(), &needle),
            "the logs show an NTLM message as {:?}",
            String::from_utf8_lossy(&needle)
        );
    }
}

/// The ways a secret can show up in text or files: as is, UTF-16 (what RDP and NTLM send), hex,
/// base64, and Rust's `Debug` of its bytes.
fn forms_of(secret: &[u8]) -> Vec<Vec<u8>> {
    let utf16: Vec<u8> = String::from_utf8_lossy(secret)
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let mut forms = Vec::new();
    for bytes in [secret.to_vec(), utf16] {
        forms.push(hex::encode(&bytes).into_bytes());
        forms.push(hex::encode_upper(&bytes).into_bytes());
        forms.push(
            base64::engine::general_purpose::STANDARD
                .encode(&bytes)
                .trim_end_matches('=')
                .as_bytes()
                .to_vec(),
        );
        // Inside a larger buffer the secret may start 1 or 2 bytes into a base64 group: the
        // characters that depend on the secret alone, without the groups it shares.
        for shift in 1..=2 {
            let mut shifted = vec![0u8; shift];
            shifted.extend_from_slice(&bytes);
            let encoded = base64::engine::general_purpose::STANDARD.encode(&shifted);
            if encoded.len() > 12 {
                forms.push(encoded.as_bytes()[4..encoded.len() - 4].to_vec());
            }
        }
        let debug = format!("{bytes:?}");
        forms.push(debug.trim_end_matches(']').as_bytes().to_vec());
        forms.push(bytes);
    }
    forms
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}
