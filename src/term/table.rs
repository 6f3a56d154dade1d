//! A command's answer on stdout: tables in columns, written so that a reader who stops reading
//! (`| head`) is not an error.

use std::io::Write as _;

/// Stdout could not take the answer (other than a reader closing the pipe).
#[derive(Debug, thiserror::Error)]
#[error("cannot write to stdout: {0}")]
pub struct StdoutError(#[source] pub std::io::Error);

/// Left-aligned columns, each as wide as its widest cell.
pub fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Writes a command's answer to stdout. A closed pipe (`ecsrdp password … | head -c 4`) is the
/// reader's choice, not a failure.
pub fn write_stdout(text: &str) -> Result<(), StdoutError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(StdoutError(e)),
        _ => Ok(()),
    }
}
