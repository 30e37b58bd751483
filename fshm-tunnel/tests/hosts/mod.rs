//! Simulated hosts for the tunnel's fault tests (`tests/netns.rs`).
//!
//! A [`Host`] is a long-lived child made with `unshare --net --mount`: a network
//! namespace of its own (only `lo`, brought up) and a mount namespace of its own with a
//! private tmpfs on `/dev/shm`, so that a source and its replica on two hosts have the
//! same name without sharing an object. Every later process of the host enters both
//! namespaces with `setns(2)` before it runs ([`Host::command`]). [`link`] joins two
//! hosts with a veth pair made straight inside their namespaces, with link-local
//! addresses `169.254.N.1` and `169.254.N.2`: neither the devices nor the addresses
//! ever exist in this machine's own namespace, and no packet leaves the pair.
//!
//! Cleanup, also on failure and if the test process dies: every child gets
//! `PR_SET_PDEATHSIG(SIGKILL)`; dropping a [`Proc`] kills and reaps it; dropping a
//! [`Host`] kills every process still in its network namespace, then the host process,
//! whereupon the kernel removes the namespaces, the veth pair and the tmpfs.

#![allow(dead_code)]

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A number unique in this test process (prefixes, subnets, file names).
pub fn unique() -> usize {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Whether the privileged tests must run (`FSHM_TEST_REQUIRE_PRIVILEGES=1`).
pub fn required() -> bool {
    std::env::var("FSHM_TEST_REQUIRE_PRIVILEGES").is_ok_and(|v| v == "1")
}

/// Prints `skipped <test>: <why>` and returns, or fails the test when privileges are
/// required.
pub fn skip(test: &str, why: &str) {
    assert!(
        !required(),
        "{test}: {why} (FSHM_TEST_REQUIRE_PRIVILEGES=1: the test may not be skipped)"
    );
    println!("skipped {test}: {why}");
}

/// Whether this process may make namespaces (root); prints the skip line otherwise.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip(test, "needs root for network namespaces");
    false
}

/// A simulated host: a network and a mount namespace, held by a child process.
pub struct Host {
    name: String,
    child: Child,
    net: File,
    mnt: File,
    net_ino: u64,
}

impl Host {
    /// Makes a host; `name` is only for messages.
    pub fn new(name: &str) -> io::Result<Host> {
        let mut c = Command::new("unshare");
        c.args(["--net", "--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                "mount -t tmpfs -o size=256m,mode=1777 fshm-netns /dev/shm && \
                 ip link set lo up && echo ready && exec cat >/dev/null",
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        die_with_parent(&mut c);
        let mut child = c.spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            return Err(io::Error::other(format!(
                "cannot make host {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let pid = child.id();
        let net = File::open(format!("/proc/{pid}/ns/net"))?;
        let mnt = File::open(format!("/proc/{pid}/ns/mnt"))?;
        let net_ino = net.metadata()?.ino();
        if net_ino == std::fs::metadata("/proc/self/ns/net")?.ino() {
            return Err(io::Error::other("unshare made no network namespace"));
        }
        Ok(Host {
            name: name.to_owned(),
            child,
            net,
            mnt,
            net_ino,
        })
    }

    /// The host process's pid (what `ip link ... netns PID` takes).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A command that runs `program` inside this host (both namespaces), killed when
    /// the thread that spawns it ends. Paths must be absolute: the mount namespace's
    /// root becomes the working directory.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        let (net, mnt) = (self.net.as_raw_fd(), self.mnt.as_raw_fd());
        // SAFETY: the closure runs in the forked child before exec, which is single
        // threaded; it calls only setns and prctl, async-signal-safe system calls that
        // allocate nothing, on descriptors this host keeps open until it is dropped
        // (which needs `&mut`, so not while this shared borrow spawns).
        unsafe {
            c.pre_exec(move || {
                if libc::setns(net, libc::CLONE_NEWNET) != 0
                    || libc::setns(mnt, libc::CLONE_NEWNS) != 0
                    || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c
    }

    /// Runs `program args` inside the host and returns its standard output; an error
    /// carries its standard error.
    pub fn run(&self, program: &str, args: &[&str]) -> io::Result<String> {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        Err(io::Error::other(format!(
            "{} on host {}: {program} {}: {}",
            out.status,
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }

    /// Spawns a process inside the host whose standard output is read line by line.
    pub fn spawn(&self, mut c: Command) -> Proc {
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn on host {}: {e}", self.name));
        let stdin = child.stdin.take();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            stdin,
            lines: rx,
        }
    }

    /// Sets this host's end of a link down or up.
    pub fn set_link(&self, dev: &str, up: bool) {
        self.run(
            "ip",
            &["link", "set", "dev", dev, if up { "up" } else { "down" }],
        )
        .map(|_| ())
        .unwrap();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Whatever still runs in the namespace (a process a failed test left) goes
        // first: it would keep the namespace, and so its veth, alive.
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                let ino = std::fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| m.ino());
                if pid as u32 != self.child.id() && ino.is_ok_and(|i| i == self.net_ino) {
                    // SAFETY: kill has no memory preconditions; the pid is a process
                    // in this host's namespace, which only this test made.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes the child get SIGKILL when the thread that spawned it ends.
pub fn die_with_parent(c: &mut Command) {
    // SAFETY: runs in the forked child before exec; prctl is async-signal-safe and
    // allocates nothing.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Two hosts' ends of a veth pair.
pub struct Link {
    /// The device's name, the same inside both hosts.
    pub dev: String,
    /// Host a's address (`169.254.N.1`).
    pub a: String,
    /// Host b's address (`169.254.N.2`).
    pub b: String,
}

/// Joins hosts `a` and `b` by a veth pair inside their namespaces, addressed
/// `169.254.N.1/24` (a) and `169.254.N.2/24` (b), both up.
pub fn link(a: &Host, b: &Host, n: u8) -> io::Result<Link> {
    let dev = format!("fst{n}");
    let out = Command::new("ip")
        .args(["link", "add", "name", &dev, "netns", &a.pid().to_string()])
        .args(["type", "veth", "peer", "name", &dev])
        .args(["netns", &b.pid().to_string()])
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ip link add veth: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let l = Link {
        a: format!("169.254.{n}.1"),
        b: format!("169.254.{n}.2"),
        dev,
    };
    for (h, addr) in [(a, &l.a), (b, &l.b)] {
        h.run("ip", &["addr", "add", &format!("{addr}/24"), "dev", &l.dev])?;
        h.run("ip", &["link", "set", "dev", &l.dev, "up"])?;
    }
    Ok(l)
}

/// A process inside a host, killed (SIGKILL) and reaped on drop; its standard output
/// arrives as lines.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    /// Sends a line to its standard input.
    pub fn send(&mut self, line: &str) {
        let w = self.stdin.as_mut().expect("standard input open");
        writeln!(w, "{line}").expect("the helper's standard input");
        w.flush().unwrap();
    }

    /// Closes its standard input.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next line of its standard output, failing after `patience`.
    pub fn line(&self, patience: Duration, what: &str) -> String {
        self.lines
            .recv_timeout(patience)
            .unwrap_or_else(|e| panic!("no answer for {what} within {patience:?}: {e}"))
    }

    /// Kills (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for its exit, failing after `patience`.
    pub fn wait(&mut self, patience: Duration) -> std::process::ExitStatus {
        let t = std::time::Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(t.elapsed() < patience, "the process did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether the running kernel was built with `option` (`=y` or `=m`), as far as
/// `/proc/config.gz` tells; `None` when it cannot be read.
pub fn kernel_has(option: &str) -> Option<bool> {
    let out = Command::new("zcat").arg("/proc/config.gz").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .any(|l| l == format!("{option}=y") || l == format!("{option}=m")),
    )
}
