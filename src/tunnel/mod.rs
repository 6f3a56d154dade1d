//! Tunnels in this process: an EC2 Instance Connect Endpoint (EICE) turned into a byte pipe the
//! RDP session runs over, so that a private instance needs no public address, no local port and
//! no other tool.

mod presign;

pub use self::presign::{presigned_url, TunnelRequest};
