//! `fshm-mixed`: runs one side of the mixed example in a process of its own, so the tests
//! can pair C and Rust across processes.
//!
//! ```text
//! fshm-mixed c-produce NAME TAG COUNT   # C appends COUNT lines "TAG i" through a FILE*
//! fshm-mixed c-consume NAME             # C reads through the fd until the owner closes; prints the bytes
//! fshm-mixed rust-follow NAME           # Rust follows until the owner closes; prints the bytes
//! ```
//!
//! A missing stream or a wait of more than 10 s for new data is an error (exit status 1,
//! a message on stderr).
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Longest wait for new data before a reader gives up.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes the C consumer takes.
const CAP: usize = 16 << 20;

fn run(args: &[String]) -> std::io::Result<()> {
    let usage = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "usage: fshm-mixed c-produce NAME TAG COUNT | c-consume NAME | rust-follow NAME",
        )
    };
    match args {
        [role, name, tag, count] if role == "c-produce" => {
            let count = count.parse().map_err(|_| usage())?;
            fshm_mixed::c_produce(name, tag, count)
        }
        [role, name] if role == "c-consume" => {
            let bytes = fshm_mixed::c_consume(name, CAP, TIMEOUT)?;
            std::io::stdout().write_all(&bytes)
        }
        [role, name] if role == "rust-follow" => {
            let guest = fshm::OpenOptions::new().read_only(true).open(name)?;
            let mut bytes = Vec::new();
            guest
                .follow()
                .timeout(Some(TIMEOUT))
                .read_to_end(&mut bytes)?;
            std::io::stdout().write_all(&bytes)
        }
        _ => Err(usage()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fshm-mixed: {e}");
            ExitCode::FAILURE
        }
    }
}
