//! What can go wrong between us and an RDP server, split by who is at fault, and how a failure
//! of IronRDP's connector or of the socket is sorted into those kinds.

use ironrdp_connector::{ConnectorError, ConnectorErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum RdpError {
    #[error(
        "no password: pipe it to --password-stdin, set ECSRDP_PASSWORD, or run on a terminal to \
         be asked"
    )]
    NoPassword,
    #[error("cannot resolve host `{host}`: {detail}; check the name, or use --private or --via")]
    Resolve { host: String, detail: String },
    #[error(
        "cannot connect to {addr}: {detail}; check that the server is running and listens on port \
         {port}, that a security group admits TCP {port} from your address, and that your tunnel \
         is up if you use --via"
    )]
    Unreachable {
        addr: String,
        port: u16,
        detail: String,
    },
    #[error(
        "the connection to {addr} timed out after {after}: nothing answered, so the port is most \
         likely filtered, by a security group (`ecsrdp resolve` shows the instance's rules) or by \
         the instance's own firewall; a private instance can be reached with --tunnel eice \
         where its VPC has an EC2 Instance Connect Endpoint, or through your own tunnel with --via"
    )]
    Timeout { addr: String, after: String },
    #[error(
        "{addr} accepted the connection but the RDP handshake did not finish within {seconds} s; \
         if you use --via, check that the tunnel reaches the instance"
    )]
    HandshakeTimeout { addr: String, seconds: u64 },
    #[error(
        "{addr} redirected the session to another server, which ecsrdp does not follow (a \
         Remote Desktop connection broker); connect to the session host directly"
    )]
    Redirected { addr: String },
    #[error(
        "ecsrdp's session with {addr} failed unexpectedly ({detail}); this is a bug in ecsrdp, \
         please report it with the output of -vv"
    )]
    Crashed { addr: String, detail: String },
    #[error("the TLS handshake with {addr} failed: {detail}")]
    Tls { addr: String, detail: String },
    #[error(
        "the certificate of {key} has CHANGED since it was first trusted (was {old}, now {new}). \
         This happens when an instance is replaced or its certificate renewed, but can also mean \
         someone is intercepting the connection. If you expected it, forget the old one with \
         `ecsrdp trust forget {key}` and connect again"
    )]
    CertificateChanged {
        key: String,
        old: String,
        new: String,
    },
    #[error(
        "{addr} presented a certificate (SHA-256 {fingerprint}) but could not prove it holds the \
         certificate's private key: something is impersonating the server. Nothing was sent; do \
         not connect through this network path until you know what answers on it"
    )]
    Impostor { addr: String, fingerprint: String },
    #[error("the certificate of {key} (SHA-256 {fingerprint}) was not trusted; nothing was sent")]
    CertificateRejected { key: String, fingerprint: String },
    #[error(
        "the certificate of {key} (SHA-256 {fingerprint}) is new and there is no terminal to ask \
         on; check the fingerprint and pass --trust-new to accept it"
    )]
    CertificateUnconfirmed { key: String, fingerprint: String },
    #[error(
        "the certificate presented for {key} (SHA-1 thumbprint {presented}) is not the one the \
         instance's system log names (RDPCERTIFICATE-THUMBPRINT {published}): something between you and \
         the instance may be answering in its place. Nothing was sent. If the certificate \
         changed since the instance booted (EC2Launch writes the thumbprint at boot), compare \
         with `aws ec2 get-console-output --latest --instance-id {key}` and connect again on a \
         terminal to accept it"
    )]
    CertificateNotInLog {
        key: String,
        presented: String,
        published: String,
    },
    #[error("cannot use the trust store {path}: {detail}")]
    TrustStore { path: String, detail: String },
    #[error(
        "{addr} refused the login of `{user}`: wrong user name or password, or the account may not \
         log in remotely ({detail})"
    )]
    LoginFailed {
        addr: String,
        user: String,
        detail: String,
    },
    #[error(
        "{addr} does not offer Network Level Authentication (NLA), only TLS: it would receive \
         the password before proving it can check it. Windows has NLA on by default, so check \
         that this is the server you meant and that nothing in between (a proxy, a tunnel) \
         answers instead; if you trust it (xrdp and Weston, for instance, offer only TLS), \
         connect again with --security tls. Nothing was sent"
    )]
    NlaUnavailable { addr: String },
    #[error("{addr} and ecsrdp share no security protocol: {detail}")]
    Negotiation { addr: String, detail: String },
    #[error(
        "{addr} closed the connection during {stage}; {}",
        if *stage == "the session" {
            "the instance may be restarting or have been stopped, or an administrator ended the \
             connection; connect again"
        } else if *stage == NLA_NEGOTIATION {
            "the server may be overloaded, restarting, or not an RDP server, or it offers only TLS \
             and hangs up on a request for Network Level Authentication (xrdp, Weston): if you \
             trust it, connect with --security tls"
        } else {
            "the server may be overloaded, restarting, or not an RDP server"
        }
    )]
    Dropped { addr: String, stage: &'static str },
    #[error("{addr} sent data ecsrdp cannot understand during {stage} ({detail}); is this an RDP server?")]
    Protocol {
        addr: String,
        stage: &'static str,
        detail: String,
    },
    #[error(
        "{addr} stopped answering: nothing arrived for {seconds} s, not even the redraws ecsrdp \
         asked for. The instance may have stopped or rebooted, or something on the path (NAT, \
         VPN, tunnel) dropped the connection; connect again once it is back"
    )]
    Unresponsive { addr: String, seconds: u64 },
    #[error("the session with {addr} ended: {detail}")]
    SessionLost { addr: String, detail: String },
    #[error(
        "{lost}. ecsrdp tried to reconnect {attempts} times and could not ({last}); connect again \
         once the instance is reachable"
    )]
    ReconnectFailed {
        lost: String,
        attempts: u32,
        last: String,
    },
    #[error(
        "the connection to {addr} keeps dropping: it came back and was lost again within a \
         minute {drops} times, and ecsrdp stopped after {attempts} reconnections. Something \
         between here and the server ends every connection (a VPN or proxy with a short idle or \
         session limit, an unstable link), or the server logs each new one off; check it, then \
         connect again"
    )]
    KeepsDropping {
        addr: String,
        drops: u32,
        attempts: u32,
    },
    #[error("the session with {addr} ended: {why}")]
    ServerEnded { addr: String, why: String },
}

/// The stage named when a request for NLA alone meets a hang-up.
pub const NLA_NEGOTIATION: &str = "the negotiation of NLA";

impl RdpError {
    /// The network took an established session away (a closed or reset connection, a silent
    /// peer): worth reconnecting. A server that ended the session itself says so instead, and
    /// is not reconnected to.
    pub fn is_network_loss(&self) -> bool {
        matches!(
            self,
            RdpError::Dropped { .. } | RdpError::Unresponsive { .. } | RdpError::SessionLost { .. }
        )
    }

    /// The server could not be reached or did not finish the handshake: perhaps not yet (it is
    /// rebooting, the network is still down); worth another try.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            RdpError::Unreachable { .. }
                | RdpError::Timeout { .. }
                | RdpError::HandshakeTimeout { .. }
                | RdpError::Resolve { .. }
                | RdpError::Dropped { .. }
                | RdpError::SessionLost { .. }
                | RdpError::Tls { .. }
        )
    }
}

/// Sorts a connector failure by who is at fault: the login, the negotiation, a dropped
/// connection, or data we cannot read.
pub fn classify(error: ConnectorError, addr: &str, user: &str, stage: &'static str) -> RdpError {
    let detail = error.report().to_string();
    match error.kind() {
        ConnectorErrorKind::Credssp(e) => RdpError::LoginFailed {
            addr: addr.to_owned(),
            user: user.to_owned(),
            detail: e.to_string(),
        },
        ConnectorErrorKind::AccessDenied => RdpError::LoginFailed {
            addr: addr.to_owned(),
            user: user.to_owned(),
            detail: "access denied".into(),
        },
        ConnectorErrorKind::Negotiation(failure) => RdpError::Negotiation {
            addr: addr.to_owned(),
            detail: failure.to_string(),
        },
        // Some servers (FreeRDP among them) answer bad credentials by hanging up mid-CredSSP.
        _ if is_disconnect(&error) && stage == "login" => RdpError::LoginFailed {
            addr: addr.to_owned(),
            user: user.to_owned(),
            detail: "the server hung up while checking the credentials".into(),
        },
        _ if is_disconnect(&error) => RdpError::Dropped {
            addr: addr.to_owned(),
            stage,
        },
        _ => RdpError::Protocol {
            addr: addr.to_owned(),
            stage,
            detail,
        },
    }
}

/// Whether an error's causes include the peer closing or resetting the connection.
pub fn is_disconnect(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
            ) {
                return true;
            }
        }
        cause = current.source();
    }
    false
}
