//! The questions ecsrdp asks a person: a password for `direct`, a key's passphrase, and whether
//! to trust a server's certificate on first contact. Each is answered on the terminal with the
//! phase line out of the way, or not at all: without a terminal the caller says what to do
//! instead.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;

use zeroize::Zeroizing;

use super::status;
use crate::keys::Password;

/// The password for `direct`: first line of stdin, else `ECSRDP_PASSWORD`, else a no-echo
/// prompt. Never from a command-line argument, which other users can see in `ps`. `None` when
/// there is none to be had.
pub fn password(from_stdin: bool) -> Option<Password> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).ok()?;
        let password = Password::new(line.trim_end_matches(['\r', '\n']).to_owned());
        zeroize::Zeroize::zeroize(&mut line);
        return (!password.expose().is_empty()).then_some(password);
    }
    if let Some(password) = crate::keys::environment::password() {
        return Some(Password::new(password.as_str().to_owned()));
    }
    if std::io::stdin().is_terminal() {
        return status::suspend(|| rpassword::prompt_password("Password: "))
            .map(Password::new)
            .ok();
    }
    None
}

/// A no-echo prompt for the passphrase of the key at `path`; `None` without a terminal.
pub fn passphrase(path: &Path) -> Option<Zeroizing<String>> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    status::suspend(|| rpassword::prompt_password(format!("Passphrase for {}: ", path.display())))
        .map(Zeroizing::new)
        .ok()
}

/// Asks whether to trust a certificate seen for the first time under `key`, showing its SHA-1
/// thumbprint (what Windows, macOS and AWS's guide show, and what EC2Launch writes to the
/// instance's console output) beside the SHA-256 fingerprint ecsrdp remembers. `None` when
/// nobody can answer (no terminal, or it failed).
pub fn trust_certificate(key: &str, thumbprint: &str, fingerprint: &str) -> Option<bool> {
    let answer = ask(format_args!(
        "First connection to {key}. Its certificate:\n  \
         SHA-1 thumbprint     {thumbprint}\n  \
         SHA-256 fingerprint  {fingerprint}\n\
         Compare the thumbprint with the instance's (`aws ec2 get-console-output --latest` \
         shows it as RDPCERTIFICATE-THUMBPRINT on Windows instances).\n\
         Trust it and connect? [y/N] "
    ))?;
    Some(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// After `warning` (the certificate is not the one the instance's system log names), asks
/// whether to trust it anyway; only `yes` in full accepts. `None` without a terminal.
pub fn trust_despite_log(warning: &str) -> Option<bool> {
    let answer = ask(format_args!(
        "WARNING: {warning}.\nType `yes` to trust this certificate anyway and connect: "
    ))?;
    Some(answer.trim() == "yes")
}

/// Puts `question` on the terminal, with the phase line out of the way, and reads the answer
/// line; `None` without a terminal, or when either fails.
fn ask(question: std::fmt::Arguments<'_>) -> Option<String> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    status::suspend(|| {
        let mut stderr = std::io::stderr().lock();
        stderr
            .write_fmt(question)
            .and_then(|()| stderr.flush())
            .ok()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).ok()?;
        Some(answer)
    })
}
