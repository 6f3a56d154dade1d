//! Choosing one line of a listing on the terminal (type to filter, arrows, Enter), instead of
//! copying an ID out of a table.

/// Lets the user pick one of `lines`, starting on `default`; `None` when they cancel (Esc). The
/// error is the terminal's, said for a person.
pub fn pick(prompt: &str, lines: &[String], default: usize) -> Result<Option<usize>, String> {
    super::status::suspend(|| {
        dialoguer::FuzzySelect::new()
            .with_prompt(prompt)
            .items(lines)
            .default(default)
            .max_length(15)
            .interact_on_opt(&dialoguer::console::Term::stderr())
    })
    .map_err(|e| e.to_string())
}
