//! ecsrdp: remote desktop for Amazon ECS Windows container instances in one command.
//!
//! A connection travels one way through the folders (`docs/architecture.md` draws it):
//! [`cli`] (what was typed) → `commands` (one per subcommand, the only place where the parts
//! meet) → [`target`] → `aws` (the instance, its checks, the way in) → [`keys`] (decrypt the
//! password) → `tunnel` (when the way in needs one) → [`rdp`] (connect, session, channels,
//! graphics) → [`render`] (the shared frame) → `window` or `headless`. `term` is everything a
//! person at the terminal sees or answers; only `commands` uses it.
//!
//! The `client` feature (on by default) is the program around the RDP core; without it only
//! the core builds (`rdp`, `render`, `keys`, `target`, `snapshot`), with no AWS, no window and no
//! X11, as the fuzz targets want it.

#[cfg(feature = "client")]
pub mod aws;
#[cfg(feature = "client")]
pub mod cli;
#[cfg(feature = "client")]
pub mod commands;
#[cfg(feature = "client")]
pub mod headless;
pub mod keys;
pub mod net;
pub mod private_file;
pub mod rdp;
pub mod render;
pub mod snapshot;
pub mod target;
#[cfg(feature = "client")]
pub mod term;
#[cfg(feature = "client")]
pub mod tunnel;
#[cfg(feature = "client")]
pub mod window;

#[cfg(feature = "client")]
pub use commands::Error;
