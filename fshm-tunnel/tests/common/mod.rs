//! What the end-to-end test files share: the tunnel binary, fresh prefixes removed on
//! drop, child processes killed on drop, free loopback ports. (Each test file uses a
//! part of it.)
#![allow(dead_code)]

use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_fshm-tunnel");
/// How long any wait may take before the test fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(60);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh pair of prefixes (sources, replicas), whose streams are removed on drop.
pub struct Prefix(pub String, pub String);

impl Prefix {
    /// `/fshm-<family>-<pid>-<n>-<tag>/` for sources and `/fshm-<family>r-…/` for
    /// replicas: the test files use families of their own.
    pub fn in_family(family: &str, tag: &str) -> Prefix {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = std::process::id();
        Prefix(
            format!("/fshm-{family}-{id}-{n}-{tag}/"),
            format!("/fshm-{family}r-{id}-{n}-{tag}/"),
        )
    }
    pub fn src(&self, s: &str) -> String {
        format!("{}{s}", self.0)
    }
    pub fn rep(&self, s: &str) -> String {
        format!("{}{s}", self.1)
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        for p in [&self.0, &self.1] {
            if let Ok(l) = fshm::list_with_prefix(p) {
                for i in l {
                    let _ = fshm::force_destroy(&i.name);
                }
            }
        }
    }
}

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Proc(pub Child);

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
    pub fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
    /// Peak resident memory (`VmHWM`) in bytes.
    pub fn peak_rss(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        let line = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib << 10
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
