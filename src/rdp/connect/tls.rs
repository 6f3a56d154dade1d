//! The TLS upgrade (MS-RDPBCGR 5.4.5.1) with a verifier that makes the certificate pin mean
//! something: the handshake only completes when the peer proves, by signing the handshake, that
//! it holds the private key of the certificate it presents.
//!
//! RDP servers present self-signed certificates, so there is no chain to a CA to check. What
//! identifies a server is its certificate, remembered on first use ([`super::trust`]). A
//! certificate is public: anyone can replay it. Only the handshake signature ties it to the
//! peer, and rustls leaves checking it to the verifier — IronRDP's own (`ironrdp-tls` 0.2)
//! accepts every signature, which is why this module exists.

use std::sync::{Arc, Mutex, PoisonError};

use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme,
};

use super::transport::Transport;
use super::trust::fingerprint;

/// The TLS stream a session runs over.
pub type Stream = tokio_rustls::client::TlsStream<Transport>;

/// What went wrong in the TLS handshake, split by who is at fault.
#[derive(Debug)]
pub(in crate::rdp) enum UpgradeError {
    /// The presented certificate is not the pinned one; the handshake was aborted.
    PinMismatch { presented: String },
    /// The peer presented this certificate but could not sign the handshake with its key.
    NoProofOfPossession { presented: String },
    /// Anything else: no common protocol or cipher, a broken or closed connection.
    Handshake(std::io::Error),
}

/// Runs the TLS handshake over `stream`. With `pin` (the fingerprint remembered for this
/// server), a different certificate aborts the handshake; without one, the caller decides
/// about the returned certificate. Either way the peer has proved it holds the certificate's
/// key before this returns, and not one byte of application data has been sent.
pub(in crate::rdp) async fn upgrade(
    stream: Transport,
    host: &str,
    pin: Option<String>,
) -> Result<(Stream, CertificateDer<'static>), UpgradeError> {
    let verifier = Arc::new(PossessionVerifier {
        provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        pin,
        seen: Mutex::new(Seen::default()),
    });
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&verifier.provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| UpgradeError::Handshake(std::io::Error::other(e)))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&verifier) as Arc<dyn ServerCertVerifier>)
        .with_no_client_auth();
    // `key_log` stays rustls's default, which writes nothing: SSLKEYLOGFILE must not put this
    // session's secrets on disk. Resumption is off: CredSSP does not support it (MS-CSSP 3.1.5).
    config.resumption = rustls::client::Resumption::disabled();
    // The name is only sent as SNI; the verifier does not match it (self-signed certificates
    // name the machine, not the address we dial, which may be a tunnel).
    let name = ServerName::try_from(host.to_owned()).unwrap_or_else(|_| {
        // INVARIANT: a literal that is a valid DNS name.
        #[allow(clippy::expect_used)]
        ServerName::try_from("rdp.invalid").expect("a valid DNS name")
    });
    let result = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await;
    let seen = std::mem::take(&mut *verifier.seen());
    match result {
        Ok(tls) => {
            let certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|cert| cert.clone().into_owned())
                .ok_or_else(|| {
                    UpgradeError::Handshake(std::io::Error::other(
                        "the server presented no certificate",
                    ))
                })?;
            Ok((tls, certificate))
        }
        Err(e) => match (seen.presented, verifier.pin.as_deref()) {
            (Some(presented), Some(pin)) if presented != pin => {
                Err(UpgradeError::PinMismatch { presented })
            }
            (Some(presented), _) if seen.bad_signature => {
                Err(UpgradeError::NoProofOfPossession { presented })
            }
            _ => Err(UpgradeError::Handshake(e)),
        },
    }
}

/// Accepts any certificate that matches the pin (or any at all on first contact), and accepts
/// handshake signatures only when they verify against that certificate's public key.
#[derive(Debug)]
struct PossessionVerifier {
    provider: Arc<CryptoProvider>,
    pin: Option<String>,
    /// What the handshake showed, for the error message.
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// The fingerprint of the certificate the server presented.
    presented: Option<String>,
    /// A handshake signature did not verify against that certificate's key.
    bad_signature: bool,
}

impl PossessionVerifier {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        // A panic elsewhere cannot leave `Seen` half-written: each field is set in one store.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers a signature that failed, so the caller can name the impersonation.
    fn note<T>(&self, verdict: Result<T, rustls::Error>) -> Result<T, rustls::Error> {
        if verdict.is_err() {
            self.seen().bad_signature = true;
        }
        verdict
    }
}

impl ServerCertVerifier for PossessionVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint(end_entity);
        let matches = self.pin.as_deref().is_none_or(|pin| pin == presented);
        self.seen().presented = Some(presented);
        if matches {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.note(crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.note(crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        ))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
