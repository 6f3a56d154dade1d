//! What every TCP connection ecsrdp makes is set up with, whether it carries RDP directly or
//! an EC2 Instance Connect tunnel: a dead peer is noticed within about 30 seconds.

use std::time::Duration;

use tracing::debug;

/// How long a silent connection waits before TCP probes whether the peer is still there.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
/// Between unanswered probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered probes before the connection is declared dead.
const KEEPALIVE_PROBES: u32 = 3;
/// How long sent data may go unacknowledged before the connection is declared dead.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const UNACKNOWLEDGED_LIMIT: Duration = Duration::from_secs(30);

/// A stopped instance or a vanished NAT mapping sends no FIN or RST: without keepalive, an idle
/// session would wait forever, and a blocked write for TCP's ~15 minutes of retransmissions.
/// With these, a dead peer ends the session (exit 5) within about 30 seconds. Best effort: a
/// platform without an option keeps its defaults.
pub fn detect_dead_peers(stream: &tokio::net::TcpStream) {
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    let keepalive = keepalive.with_retries(KEEPALIVE_PROBES);
    if let Err(e) = socket.set_tcp_keepalive(&keepalive) {
        debug!(error = %e, "no TCP keepalive");
    }
    #[cfg(target_os = "linux")]
    if let Err(e) = socket.set_tcp_user_timeout(Some(UNACKNOWLEDGED_LIMIT)) {
        debug!(error = %e, "no TCP user timeout");
    }
}
