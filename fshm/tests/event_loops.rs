//! Event loops and many streams: `EventFd` under tokio's `AsyncFd` and under `poll(2)`,
//! and `wait_any`, following streams that other processes write, to their owners'
//! SIGKILL. Every byte is checked, and so is the end.
//!
//! (The C loops — epoll, libuv, GLib, `fshm_poll` — are `c/tests/test_loop_*.c`, run by
//! `fshm-ffi/tests/c_api.rs`.)

mod common;

use common::{fork_child, Child, NameGuard, Signal, PATIENCE};
use fshm::{EventFd, Stream, WaitStatus};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// Bytes each writer process writes.
const TOTAL: usize = 256 * 1024;

/// Byte `i` of stream `s`.
fn byte(s: usize, i: usize) -> u8 {
    (i.wrapping_mul(7) + s * 13 + i / 4093) as u8
}

/// A writer process: the owner of its stream, which writes [`TOTAL`] bytes in chunks
/// of varying size, then blocks until killed (the `Signal` keeps it blocked: keep it
/// until the kill).
fn writer(name: &str, idx: usize) -> (Child, Signal) {
    let (ready, never) = (Signal::new(), Signal::new());
    let child = fork_child(|| {
        let mut s = Stream::create(name).unwrap();
        ready.notify();
        let (mut off, mut chunk) = (0, 0);
        while off < TOTAL {
            let n = (1 + chunk * 977 % 8192).min(TOTAL - off);
            let buf: Vec<u8> = (off..off + n).map(|i| byte(idx, i)).collect();
            s.write_all(&buf).unwrap();
            off += n;
            chunk += 1;
            // Pace the writer now and then, so that readers catch up and wait (nothing
            // depends on it).
            if chunk % 8 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        never.recv_timeout(1, Duration::from_secs(3600));
        1
    });
    ready.wait();
    (child, never)
}

/// A guest following one writer process.
struct Reader {
    idx: usize,
    stream: Stream,
    got: usize,
    writer: Child,
    _never: Signal,
    killed: bool,
}

impl Reader {
    fn start(guard: &NameGuard, idx: usize) -> Reader {
        let (writer, never) = writer(guard.name(), idx);
        Reader {
            idx,
            stream: Stream::open(guard.name()).unwrap(),
            got: 0,
            writer,
            _never: never,
            killed: false,
        }
    }

    /// Reads what is there, checking every byte; kills the writer once all arrived.
    fn read_available(&mut self) {
        let mut buf = vec![0u8; 5000];
        loop {
            let n = self.stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            assert!(self.got + n <= TOTAL, "stream {}: too many bytes", self.idx);
            for (k, b) in buf[..n].iter().enumerate() {
                let at = self.got + k;
                assert_eq!(*b, byte(self.idx, at), "stream {}, byte {at}", self.idx);
            }
            self.got += n;
        }
        if self.got == TOTAL && !self.killed {
            // SAFETY: plain system call on our own, not yet reaped, child.
            unsafe { libc::kill(self.writer.pid(), libc::SIGKILL) };
            self.killed = true;
        }
    }

    /// The end was reported: it must come after every byte, from the killed writer.
    fn assert_ended(&mut self) {
        assert!(
            self.killed && self.got == TOTAL,
            "stream {} ended after {} bytes",
            self.idx,
            self.got
        );
        assert_eq!(self.stream.owner_state(), fshm::OwnerState::Dead);
        assert_eq!(self.writer.wait(), common::Status::Signaled(libc::SIGKILL));
    }

    /// An event loop's callback: reads, then re-arms; `true` once the stream ended.
    fn on_readable(&mut self, ev: &mut EventFd) -> bool {
        loop {
            self.read_available();
            match ev.arm(&self.stream) {
                None => return false,
                Some(WaitStatus::Data) => continue,
                Some(WaitStatus::Ended) => {
                    self.assert_ended();
                    return true;
                }
                Some(other) => panic!("arm gave {other:?}"),
            }
        }
    }
}

/// Whether `fd` is readable within `ms` milliseconds (-1: no limit).
fn readable(fd: RawFd, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: `p` is one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r >= 0 {
            return r == 1 && p.revents & libc::POLLIN != 0;
        }
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINTR)
        );
    }
}

/// tokio's `AsyncFd` over each stream's `EventFd` (epoll, edge-triggered, in tokio's
/// I/O driver): three tasks follow three writer processes, every byte, then the end
/// when each writer is killed.
#[test]
fn tokio_async_fd_follows_streams_to_their_owners_death() {
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;
    let guards: Vec<NameGuard> = (0..3).map(|_| NameGuard::new("evfd-tokio")).collect();
    let readers: Vec<Reader> = guards
        .iter()
        .enumerate()
        .map(|(i, g)| Reader::start(g, i))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let done = rt.block_on(async {
        let tasks: Vec<_> = readers
            .into_iter()
            .map(|mut r| {
                tokio::spawn(async move {
                    let ev = r.stream.event_fd().unwrap();
                    // SAFETY: the `EventFd` owns its descriptor and keeps it open, the
                    // same one, until it drops, which the `AsyncFd` does first.
                    let mut afd =
                        unsafe { AsyncFd::register_with_interest(ev, Interest::READABLE) }.unwrap();
                    loop {
                        let mut ready = afd.readable_mut().await.unwrap();
                        // Before re-arming: an arm that finds data makes a new edge.
                        ready.clear_ready();
                        if r.on_readable(ready.get_inner_mut()) {
                            return r;
                        }
                    }
                })
            })
            .collect();
        let mut done = Vec::new();
        for t in tasks {
            done.push(
                tokio::time::timeout(PATIENCE, t)
                    .await
                    .expect("a follower hung")
                    .unwrap(),
            );
        }
        done
    });
    assert_eq!(done.len(), 3);
}

/// Plain `poll(2)` over the descriptors of three writer processes' streams.
#[test]
fn poll_on_event_fds_follows_streams_to_their_owners_death() {
    let guards: Vec<NameGuard> = (0..3).map(|_| NameGuard::new("evfd-poll")).collect();
    let mut readers: Vec<(Reader, EventFd)> = guards
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let r = Reader::start(g, i);
            let ev = r.stream.event_fd().unwrap();
            (r, ev)
        })
        .collect();
    let deadline = Instant::now() + PATIENCE;
    while !readers.is_empty() {
        assert!(Instant::now() < deadline, "followers hung");
        let mut fds: Vec<libc::pollfd> = readers
            .iter()
            .map(|(_, ev)| libc::pollfd {
                fd: ev.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` holds `fds.len()` valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
        assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
        let mut ended = Vec::new();
        for (k, p) in fds.iter().enumerate() {
            if p.revents & libc::POLLIN != 0 {
                let (r, ev) = &mut readers[k];
                if r.on_readable(ev) {
                    ended.push(k);
                }
            }
        }
        for k in ended.into_iter().rev() {
            readers.remove(k);
        }
    }
}

/// `wait_any` over three writer processes' streams among 150 idle ones (more than one
/// reactor thread's 127): every byte, the end of each after its writer's SIGKILL, and
/// never an idle stream.
#[test]
fn wait_any_follows_streams_to_their_owners_death_among_idle_ones() {
    const IDLE: usize = 150;
    let guards: Vec<NameGuard> = (0..3).map(|_| NameGuard::new("wait-any")).collect();
    let mut readers: Vec<Reader> = guards
        .iter()
        .enumerate()
        .map(|(i, g)| Reader::start(g, i))
        .collect();
    let idle_guards: Vec<NameGuard> = (0..IDLE).map(|_| NameGuard::new("idle")).collect();
    let idle_owners: Vec<Stream> = idle_guards
        .iter()
        .map(|g| Stream::create(g.name()).unwrap())
        .collect();
    let idle: Vec<Stream> = idle_guards
        .iter()
        .map(|g| Stream::open(g.name()).unwrap())
        .collect();
    let deadline = Instant::now() + PATIENCE;
    while !readers.is_empty() {
        assert!(Instant::now() < deadline, "followers hung");
        let streams: Vec<&Stream> = readers
            .iter()
            .map(|r| &r.stream)
            .chain(idle.iter())
            .collect();
        let ready = fshm::wait_any(&streams, Some(Duration::from_secs(1)));
        assert!(ready.windows(2).all(|w| w[0].0 < w[1].0), "in index order");
        let mut ended = Vec::new();
        for (i, status) in ready {
            assert!(i < readers.len(), "idle stream {i} reported {status:?}");
            match status {
                WaitStatus::Data => readers[i].read_available(),
                WaitStatus::Ended => {
                    readers[i].read_available();
                    readers[i].assert_ended();
                    ended.push(i);
                }
                other => panic!("wait_any gave {other:?}"),
            }
        }
        for i in ended.into_iter().rev() {
            readers.remove(i);
        }
    }
    drop(idle);
    drop(idle_owners);
    for g in &idle_guards {
        g.assert_gone();
    }
}

/// `wait_any`'s edges: an empty slice and a timeout give an empty answer; a dead owner
/// is reported by a zero-timeout call (which probes liveness), and by `wait_any_at`
/// for the end alone (`u64::MAX`) whatever data is left.
#[test]
fn wait_any_reports_a_dead_owner_at_once_and_times_out_empty() {
    assert!(fshm::wait_any(&[], Some(Duration::from_millis(5))).is_empty());
    let g = NameGuard::new("wait-any-dead");
    let (ready, never) = (Signal::new(), Signal::new());
    let mut owner = fork_child(|| {
        let mut s = Stream::create(g.name()).unwrap();
        s.write_all(b"left over").unwrap();
        ready.notify();
        never.recv_timeout(1, Duration::from_secs(3600));
        1
    });
    ready.wait();
    let guest = Stream::open(g.name()).unwrap();
    let t = Some(Duration::from_millis(20));
    assert_eq!(fshm::wait_any(&[&guest], t), [(0, WaitStatus::Data)]);
    // The end alone: nothing while the owner lives.
    assert!(fshm::wait_any_at(&[(&guest, u64::MAX)], t).is_empty());
    let mut rest = Vec::new();
    (&guest).read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"left over");
    assert!(fshm::wait_any(&[&guest], t).is_empty());
    assert_eq!(owner.kill(), common::Status::Signaled(libc::SIGKILL));
    // The owner is gone (reaped): a call that only looks reports it.
    assert_eq!(
        fshm::wait_any(&[&guest], Some(Duration::ZERO)),
        [(0, WaitStatus::Ended)]
    );
    assert_eq!(
        fshm::wait_any_at(&[(&guest, u64::MAX)], None),
        [(0, WaitStatus::Ended)]
    );
    // With data ready elsewhere a call only looks, and a death needs a probe: reported
    // once nothing has data (a closed owner is seen by the look).
    assert_eq!(
        fshm::wait_any_at(&[(&guest, 0), (&guest, u64::MAX)], None),
        [(0, WaitStatus::Data)]
    );
    drop(never);
}

/// An `EventFd` whose handle closes first: nothing stays registered with the reactor,
/// the descriptor is left readable (the loop looks, once), and arming it on another
/// handle works; a disarmed one stays quiet. (In a child: the
/// registration count is per process.)
#[test]
fn an_event_fd_outliving_its_handle_keeps_nothing_registered() {
    let g = NameGuard::new("evfd-outlives");
    let mut child = fork_child(|| {
        let mut owner = Stream::create(g.name()).unwrap();
        let guest = Stream::open(g.name()).unwrap();
        let mut ev = guest.event_fd().unwrap();
        assert!(!readable(ev.as_raw_fd(), 0));
        assert_eq!(fshm::reactor_stats::registrations(), 1);
        drop(guest);
        assert_eq!(fshm::reactor_stats::registrations(), 0);
        // The registration was dropped with the handle, waking it once.
        assert!(readable(ev.as_raw_fd(), 0));
        owner.write_all(b"x").unwrap();
        let other = Stream::open(g.name()).unwrap();
        assert_eq!(ev.arm(&other), Some(WaitStatus::Data));
        assert!(readable(ev.as_raw_fd(), 0));
        (&other).read_to_end(&mut Vec::new()).unwrap();
        assert_eq!(ev.arm(&other), None);
        assert!(!readable(ev.as_raw_fd(), 0));
        ev.disarm();
        assert_eq!(fshm::reactor_stats::registrations(), 0);
        drop(owner);
        assert!(
            !readable(ev.as_raw_fd(), 50),
            "a disarmed descriptor stays quiet"
        );
        assert_eq!(ev.arm(&other), Some(WaitStatus::Ended));
        assert!(readable(ev.as_raw_fd(), 0));
        0
    });
    child.assert_success();
    g.assert_gone();
}

/// A read-only handle cannot announce its waits (the reactor looks after naps instead):
/// its descriptor still reports a commit and the owner's close, and `arm` tells data
/// from none, whatever spurious readiness the naps bring.
#[test]
fn a_read_only_handles_event_fd_reports_data_and_the_end() {
    let g = NameGuard::new("evfd-ro");
    let mut owner = Stream::create(g.name()).unwrap();
    let guest = fshm::OpenOptions::new()
        .read_only(true)
        .open(g.name())
        .unwrap();
    assert!(!guest.is_writable());
    let mut ev = guest.event_fd().unwrap();
    owner.write_all(b"ro").unwrap();
    let deadline = Instant::now() + PATIENCE;
    // Readable without data (a nap's look) is allowed: arm again until the data shows.
    let patience = PATIENCE.as_millis() as i32;
    loop {
        assert!(readable(ev.as_raw_fd(), patience), "never readable");
        assert!(Instant::now() < deadline, "the commit never showed");
        if ev.arm(&guest) == Some(WaitStatus::Data) {
            break;
        }
    }
    let mut got = Vec::new();
    (&guest).read_to_end(&mut got).unwrap();
    assert_eq!(got, b"ro");
    drop(owner);
    loop {
        assert!(readable(ev.as_raw_fd(), patience), "never readable");
        assert!(Instant::now() < deadline, "the end never showed");
        match ev.arm(&guest) {
            Some(WaitStatus::Ended) => break,
            None => {}
            other => panic!("arm gave {other:?} after the last byte"),
        }
    }
    assert!(readable(ev.as_raw_fd(), 0));
    drop(ev);
    drop(guest);
    g.assert_gone();
}
