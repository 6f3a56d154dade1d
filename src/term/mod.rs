//! Everything that talks to a person at a terminal: the phase line and warnings ([`status`]),
//! tables and the command's answer on stdout ([`table`]), the instance picker ([`picker`]), and
//! the questions ([`prompt`]). Nothing below the command layer prints or asks; it returns data
//! and errors, and the commands decide what a person sees.

pub mod picker;
pub mod prompt;
pub mod status;
pub mod table;

use std::io::IsTerminal as _;

/// Whether there is someone to ask: a terminal on both stdin and stderr.
pub fn can_ask() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}
