//! ecsrdp: remote desktop for Amazon ECS Windows container instances in one command.
//!
//! The data flows one way: command line → [`target`] → `aws` (instance, address, checks,
//! encrypted password) → [`keys`] (decrypt) → [`rdp`] (connect, session) → [`render`] (shared
//! framebuffer, damage) → `window` or `headless`. `app` wires the commands together.
//!
//! The `client` feature (on by default) is the program around the RDP core; without it only
//! the core builds, as the fuzz targets want it.

#[cfg(feature = "client")]
pub mod app;
#[cfg(feature = "client")]
pub mod aws;
#[cfg(feature = "client")]
pub mod cli;
#[cfg(feature = "client")]
pub mod config;
#[cfg(feature = "client")]
pub mod error;
#[cfg(feature = "client")]
pub mod headless;
pub mod keyboard;
pub mod keyfile;
pub mod keys;
#[cfg(feature = "client")]
pub mod launch;
#[cfg(feature = "client")]
pub mod picker;
pub mod rdp;
pub mod render;
pub mod snapshot;
#[cfg(feature = "client")]
pub mod status;
pub mod target;
#[cfg(feature = "client")]
pub mod tunnel;
#[cfg(feature = "client")]
pub mod window;

#[cfg(feature = "client")]
pub use error::Error;
