//! What `fshm` says about itself: shell completions and its man page, both generated
//! from its clap definition so they cannot drift from the commands; and `fshm tunnel`,
//! which runs the fshm-tunnel program.

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

/// The name of the tunnel's program.
const TUNNEL: &str = "fshm-tunnel";

/// `fshm tunnel ARGS...`: replaces this process with fshm-tunnel (next to this
/// executable first, then on `PATH`) run with `args`, so that its exit status and
/// signals are the command's. Returns only if it could not be run.
pub fn tunnel(args: &[std::ffi::OsString]) -> crate::Failure {
    use std::os::unix::process::CommandExt;
    let here = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(TUNNEL)));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(TUNNEL));
    let next_to = match &here {
        Some(p) => format!("at {}", p.display()),
        None => "next to this fshm executable (its path is not known)".to_owned(),
    };
    for p in here.into_iter().chain(on_path) {
        if !is_executable(&p) {
            continue;
        }
        // Returns only on failure.
        let e = std::process::Command::new(&p).args(args).exec();
        return crate::Failure::Failed(io::Error::new(
            e.kind(),
            format!("tunnel: cannot run {}: {e}", p.display()),
        ));
    }
    crate::Failure::Missing(format!(
        "tunnel: the {TUNNEL} program was found neither {next_to} nor on PATH; \
         install it next to fshm (it is built from the fshm-tunnel crate: \
         cargo build --release --manifest-path fshm-tunnel/Cargo.toml)"
    ))
}

/// Whether `p` is a regular file someone may execute.
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
