//! ecsrdp: remote desktop for Amazon ECS Windows container instances in one command.
//!
//! The data flows one way: command line → [`target`] → [`aws`] (instance, address, checks,
//! encrypted password) → [`keys`] (decrypt) → [`rdp`] (connect, session) → [`render`] (shared
//! framebuffer, damage) → [`window`] or [`headless`]. `app` wires the commands together.

pub mod app;
pub mod aws;
pub mod cli;
pub mod config;
pub mod error;
pub mod headless;
pub mod keyboard;
pub mod keyfile;
pub mod keys;
pub mod launch;
pub mod picker;
pub mod rdp;
pub mod render;
pub mod snapshot;
pub mod status;
pub mod target;
pub mod tunnel;
pub mod window;

pub use error::Error;
