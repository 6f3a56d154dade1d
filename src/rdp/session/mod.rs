//! The active session: from a connection to its end. A consumer gets a [`Session`] handle,
//! sends [`Command`]s and hears through a [`FrameSink`]; the [`run`] loop decodes each PDU
//! ([`decode`]) into its canvas and shows what changed, follows [`reactivate`]ion, watches the server's
//! [`liveness`], [`reconnect`]s when the network drops it, and says how the server ended it
//! ([`ending`]).

mod decode;
mod ending;
mod events;
mod handle;
mod ignorable;
mod liveness;
mod reactivate;
mod reconnect;
mod recording;
mod run;

pub use self::decode::{decode, Decoded};
pub use self::events::{Command, FrameSink, Layout, Outcome, PointerShape};
pub use self::handle::Session;
pub use self::reconnect::{Reconnect, Reconnector};
