//! Which job runs and how far the run is, on one status line of standard error, redrawn
//! in place — only when standard error is a terminal: a run logged to a file or a pipe
//! gets no status lines, only the report and its own messages.

use std::io::{self, IsTerminal, Write};
use std::time::Instant;

pub struct Progress {
    /// Whether standard error is a terminal.
    on: bool,
    total: usize,
    done: usize,
    started: Instant,
    /// Whether a status line is on screen (cleared before other messages).
    shown: bool,
}

impl Progress {
    /// Progress over `total` jobs, shown if standard error is a terminal.
    pub fn new(total: usize) -> Progress {
        Progress::with(io::stderr().is_terminal(), total)
    }

    fn with(on: bool, total: usize) -> Progress {
        Progress {
            on,
            total,
            done: 0,
            started: Instant::now(),
            shown: false,
        }
    }

    /// The status line for job `job` of `phase` (`"rep 2/5"`), about to run.
    fn line(&self, phase: &str, job: &[String]) -> String {
        let elapsed = self.started.elapsed().as_secs();
        let left = if self.done > 0 {
            let per = self.started.elapsed().as_secs_f64() / self.done as f64;
            format!(
                ", about {} left",
                clock((per * (self.total - self.done) as f64) as u64)
            )
        } else {
            String::new()
        };
        let mut l = format!(
            "[{}/{} {:.0}%] {phase}: {}  ({} elapsed{left})",
            self.done + 1,
            self.total,
            self.done as f64 * 100.0 / self.total.max(1) as f64,
            job.join(" "),
            clock(elapsed),
        );
        // One terminal line at most: a wrapped line could not be redrawn in place.
        l.truncate(
            l.char_indices()
                .nth(terminal_width().saturating_sub(1))
                .map_or(l.len(), |(i, _)| i),
        );
        l
    }

    /// Shows that job `job` of `phase` starts.
    pub fn start(&mut self, phase: &str, job: &[String]) {
        if self.on {
            let l = self.line(phase, job);
            let mut e = io::stderr().lock();
            let _ = write!(e, "\r\x1b[K{l}");
            let _ = e.flush();
            self.shown = true;
        }
    }

    /// Counts a job as finished.
    pub fn finish(&mut self) {
        self.done += 1;
    }

    /// Removes the status line, so that a message can be printed in its place.
    pub fn clear(&mut self) {
        if self.shown {
            let mut e = io::stderr().lock();
            let _ = write!(e, "\r\x1b[K");
            let _ = e.flush();
            self.shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// `h:mm:ss` or `m:ss`.
fn clock(s: u64) -> String {
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Columns of the terminal on standard error (80 if unknown).
fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills the `winsize` it is given, plain data owned here.
    let cols = unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) == 0 {
            ws.ws_col as usize
        } else {
            0
        }
    };
    if cols == 0 {
        80
    } else {
        cols
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn the_line_says_which_job_and_how_far() {
        let mut p = Progress::with(false, 40);
        let l = p.line("warm-up", &job("ring-rust 65536 8388608"));
        assert!(
            l.starts_with("[1/40 0%] warm-up: ring-rust 65536 8388608"),
            "{l}"
        );
        for _ in 0..10 {
            p.finish();
        }
        let l = p.line("rep 2/5", &job("pp-spin 10000"));
        assert!(l.starts_with("[11/40 25%] rep 2/5: pp-spin 10000"), "{l}");
        assert!(l.contains("left"), "{l}");
        assert!(!l.contains('\n'));
    }

    #[test]
    fn off_terminal_nothing_is_shown() {
        let mut p = Progress::with(false, 3);
        p.start("rep 1/1", &job("pipe 64 100"));
        assert!(!p.shown);
    }

    #[test]
    fn clock_reads_as_minutes_and_hours() {
        assert_eq!(clock(59), "0:59");
        assert_eq!(clock(3599), "59:59");
        assert_eq!(clock(3661), "1:01:01");
    }
}
