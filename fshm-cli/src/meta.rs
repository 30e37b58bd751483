//! What `fshm` says about itself: shell completions and its man page, both generated
//! from its clap definition so they cannot drift from the commands.

use clap::CommandFactory;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

/// Writes the completion script of `shell` for `fshm`.
pub fn completions(shell: clap_complete::Shell, out: &mut impl Write) {
    clap_complete::generate(shell, &mut crate::Cli::command(), "fshm", out);
}

/// Writes the fshm(1) man page (roff) to `out`, or with `dir`, fshm.1 and a page per
/// subcommand (fshm-ls.1...) into `dir`.
pub fn man(out: &mut impl Write, dir: Option<&Path>) -> io::Result<()> {
    match dir {
        None => clap_mangen::Man::new(crate::Cli::command()).render(out),
        Some(d) => clap_mangen::generate_to(crate::Cli::command(), d).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot write the man pages to {}: {e}", d.display()),
            )
        }),
    }
}

/// Parses a refresh interval in seconds (`0.5`, `2`): positive, at most a day.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("invalid number of seconds '{s}'"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("interval '{s}' is not between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}
