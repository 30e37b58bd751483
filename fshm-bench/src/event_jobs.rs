//! Event-loop jobs (group `events`, `--only events`): the wake-up latency through
//! `EventFd` against a blocking follower and a pipe, `wait_any` / `fshm_poll` over many
//! streams, and the idle cost of many armed descriptors. See BENCHMARKS.md, "Event
//! loops".

use crate::util::{fork_child, median, now_ns, other, pin, quantile, shm_name, Child, Ctl, Side};
use crate::Results;
use fshm::{OpenOptions, RingPolicy, Stream};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// Streams of the many-stream jobs, and the owner processes that hold them.
pub const STREAMS: u64 = 1000;
const OWNERS: u64 = 4;

/// The jobs of one repetition.
pub fn jobs(trips: u64, calls: u64, idle_secs: u64) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let (t, c, i, n) = (
        trips.to_string(),
        calls.to_string(),
        idle_secs.to_string(),
        STREAMS.to_string(),
    );
    vec![
        s(&["ev-lat-fd", &t]),
        s(&["ev-lat-blocking", &t]),
        s(&["ev-lat-pipe", &t]),
        s(&["ev-any-ready", &n, &c]),
        s(&["ev-any-lat", &n, &t]),
        s(&["ev-idle", &n, &i]),
    ]
}

pub fn run(kind: &str, num: impl Fn(usize) -> io::Result<u64>) -> io::Result<Vec<f64>> {
    match kind {
        "ev-lat-fd" | "ev-lat-blocking" | "ev-lat-pipe" => latency_job(kind, num(1)?),
        "ev-any-ready" => any_ready_job(num(1)?, num(2)?),
        "ev-any-lat" => any_latency_job(num(1)?, num(2)?),
        "ev-idle" => idle_job(num(1)?, num(2)?),
        _ => Err(other(format!("unknown job {kind:?}"))),
    }
}

/// Raises the soft limit on open descriptors to the hard one (1,000 guests, their
/// event descriptors and the owners' lock objects pass the usual 1,024).
fn raise_nofile() {
    // SAFETY: plain calls with a valid `rlimit` out- and in-pointer.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

/// Whether `fd` is readable within `ms` (-1: no limit).
fn poll_in(fd: RawFd, ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r >= 0 {
            return Ok(r == 1);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Wake-up latency of a sleeping follower: a writer process stamps CLOCK_MONOTONIC into
/// an 8-byte commit (or pipe write), the follower — `poll(2)` on the stream's
/// `EventFd` then a read and a re-arm (`ev-lat-fd`), `follow().spin(0)`
/// (`ev-lat-blocking`), or `poll(2)` on a pipe then a read (`ev-lat-pipe`) — computes
/// now − stamp and acknowledges; the writer waits 200 µs (the follower is asleep again)
/// before the next trip. Writer and follower pinned to separate CPUs. Figures: median
/// and p99 in µs.
fn latency_job(kind: &str, trips: u64) -> io::Result<Vec<f64>> {
    let name = shm_name("evlat");
    let (mut ctl, mut peer) = Ctl::pair()?;
    let (pipe_r, mut pipe_w) = crate::util::pipe()?;
    let over_pipe = kind == "ev-lat-pipe";
    let name2 = name.clone();
    let mut fds = ctl.fds().to_vec();
    fds.push(pipe_r.as_raw_fd());
    let writer = fork_child(&fds, move || {
        pin(Side::Producer)?;
        let mut s = OpenOptions::new()
            .ring(64 * 1024, RingPolicy::Lossy)
            .create(&name2)?;
        peer.send(&[1])?;
        for _ in 0..trips {
            peer.recv::<1>()?; // the follower is ready
            std::thread::sleep(Duration::from_micros(200));
            let stamp = now_ns().to_ne_bytes();
            if over_pipe {
                pipe_w.write_all(&stamp)?;
            } else {
                s.write_all(&stamp)?;
            }
        }
        peer.recv::<1>()?;
        Ok(())
    })?;
    ctl.recv::<1>()?;
    pin(Side::Consumer)?;
    let guest = Stream::open(&name)?;
    let mut lat = Vec::with_capacity(trips as usize);
    let mut rec = [0u8; 8];
    let mut stamp = |rec: &[u8; 8]| {
        lat.push(now_ns().saturating_sub(u64::from_ne_bytes(*rec)) as f64 / 1e3);
    };
    match kind {
        "ev-lat-fd" => {
            let mut ev = guest.event_fd()?;
            for _ in 0..trips {
                ctl.send(&[1])?;
                poll_in(ev.as_raw_fd(), -1)?;
                if (&guest).read(&mut rec)? != 8 {
                    return Err(other("the descriptor was readable without the record"));
                }
                stamp(&rec);
                if ev.arm(&guest).is_some() {
                    return Err(other("data or the end past the record"));
                }
            }
        }
        "ev-lat-blocking" => {
            let mut f = guest.follow().spin(Duration::ZERO);
            for _ in 0..trips {
                ctl.send(&[1])?;
                f.read_exact(&mut rec)?;
                stamp(&rec);
            }
        }
        _ => {
            let mut r = &pipe_r;
            for _ in 0..trips {
                ctl.send(&[1])?;
                poll_in(pipe_r.as_raw_fd(), -1)?;
                r.read_exact(&mut rec)?;
                stamp(&rec);
            }
        }
    }
    ctl.send(&[1])?;
    writer.wait()?;
    Ok(vec![median(&lat), quantile(&lat, 0.99)])
}

/// `OWNERS` owner processes of `streams` linear streams (1 MiB each): each creates its
/// share and says so; then on each message `k` from the job it writes, 2 ms later, the
/// current CLOCK_MONOTONIC stamp to stream `k` if it holds it (every owner acknowledges), and
/// on `u64::MAX` closes its streams and ends.
fn owners(streams: u64) -> io::Result<(Vec<String>, Vec<Ctl>, Vec<Child>)> {
    let names: Vec<String> = (0..streams).map(|i| shm_name(&format!("e{i}"))).collect();
    let (mut ctls, mut children) = (Vec::new(), Vec::new());
    for w in 0..OWNERS {
        let (ctl, mut peer) = Ctl::pair()?;
        let mine: Vec<(u64, String)> = names
            .iter()
            .enumerate()
            .skip(w as usize)
            .step_by(OWNERS as usize)
            .map(|(i, n)| (i as u64, n.clone()))
            .collect();
        children.push(fork_child(&ctl.fds(), move || {
            raise_nofile();
            let mut owned = Vec::new();
            for (i, n) in &mine {
                owned.push((*i, OpenOptions::new().max_size(1 << 20).create(n)?));
            }
            peer.send(&[1])?;
            loop {
                let [k] = peer.recv::<1>()?;
                if k == u64::MAX {
                    return Ok(());
                }
                if let Some((_, s)) = owned.iter_mut().find(|(i, _)| *i == k) {
                    // Long enough for the job's `wait_any` to be asleep.
                    std::thread::sleep(Duration::from_millis(2));
                    s.write_all(&now_ns().to_ne_bytes())?;
                }
                peer.send(&[1])?;
            }
        })?);
        ctls.push(ctl);
    }
    for c in &mut ctls {
        c.recv::<1>()?;
    }
    Ok((names, ctls, children))
}

/// Sends `k` to every owner and waits for their acknowledgements.
fn tell(ctls: &mut [Ctl], k: u64) -> io::Result<()> {
    for c in ctls.iter_mut() {
        c.send(&[k])?;
    }
    if k != u64::MAX {
        for c in ctls.iter_mut() {
            c.recv::<1>()?;
        }
    }
    Ok(())
}

/// Ends the owners (their streams close) and waits for them.
fn end_owners(mut ctls: Vec<Ctl>, children: Vec<Child>) -> io::Result<()> {
    tell(&mut ctls, u64::MAX)?;
    for c in children {
        c.wait()?;
    }
    Ok(())
}

/// `wait_any` (Rust) and `fshm_poll` (C, `FILE*`s) over `streams` streams of other
/// processes, one of which holds unread data: time per call, in µs, for each.
fn any_ready_job(streams: u64, calls: u64) -> io::Result<Vec<f64>> {
    raise_nofile();
    let (names, mut ctls, children) = owners(streams)?;
    tell(&mut ctls, streams / 2)?;
    let guests = names
        .iter()
        .map(|n| Stream::open(n))
        .collect::<io::Result<Vec<_>>>()?;
    let refs: Vec<&Stream> = guests.iter().collect();
    let mut rust = Vec::new();
    for _ in 0..calls {
        let t = Instant::now();
        let ready = fshm::wait_any(&refs, None);
        rust.push(t.elapsed().as_secs_f64() * 1e6);
        if ready.len() != 1 || ready[0].0 as u64 != streams / 2 {
            return Err(other(format!("wait_any gave {ready:?}")));
        }
    }
    let files = names
        .iter()
        .map(|n| {
            let c = crate::util::cstring(n);
            // SAFETY: a valid C string.
            let f = unsafe { shmfile::fshm_guest_open(c.as_ptr()) };
            if f.is_null() {
                Err(io::Error::last_os_error())
            } else {
                Ok(f)
            }
        })
        .collect::<io::Result<Vec<_>>>()?;
    let mut fds: Vec<shmfile::fshm_pollfd> = files
        .iter()
        .map(|&f| shmfile::fshm_pollfd {
            stream: f,
            events: shmfile::FSHM_POLLDATA,
            revents: 0,
        })
        .collect();
    let mut c = Vec::new();
    for _ in 0..calls {
        let t = Instant::now();
        // SAFETY: `fds` holds `fds.len()` entries of open `FILE*`s.
        let n = unsafe { shmfile::fshm_poll(fds.as_mut_ptr(), fds.len(), -1) };
        c.push(t.elapsed().as_secs_f64() * 1e6);
        if n != 1 || fds[(streams / 2) as usize].revents != shmfile::FSHM_POLLDATA {
            return Err(other(format!("fshm_poll gave {n}")));
        }
    }
    for f in files {
        // SAFETY: each `FILE*` is open and closed once.
        unsafe { libc::fclose(f) };
    }
    drop(guests);
    end_owners(ctls, children)?;
    Ok(vec![median(&rust), median(&c)])
}

/// Wake-up latency of `wait_any` over `streams` idle streams of other processes when
/// one of them (a different one each trip) gets an 8-byte stamp 2 ms after the call
/// began: the call registers every stream with the reactor, sleeps, and returns.
/// Figures: median and p99 in µs.
fn any_latency_job(streams: u64, trips: u64) -> io::Result<Vec<f64>> {
    raise_nofile();
    let (names, mut ctls, children) = owners(streams)?;
    let guests = names
        .iter()
        .map(|n| Stream::open(n))
        .collect::<io::Result<Vec<_>>>()?;
    let refs: Vec<&Stream> = guests.iter().collect();
    let mut lat = Vec::with_capacity(trips as usize);
    let mut rec = [0u8; 8];
    for trip in 0..trips {
        let k = trip * 7919 % streams;
        for c in ctls.iter_mut() {
            c.send(&[k])?;
        }
        let ready = fshm::wait_any(&refs, None);
        let got = now_ns();
        if ready.len() != 1 || ready[0].0 as u64 != k {
            return Err(other(format!("wait_any gave {ready:?}, want stream {k}")));
        }
        let mut r = refs[k as usize];
        r.read_exact(&mut rec)?;
        lat.push(got.saturating_sub(u64::from_ne_bytes(rec)) as f64 / 1e3);
        for c in ctls.iter_mut() {
            c.recv::<1>()?;
        }
    }
    drop(guests);
    end_owners(ctls, children)?;
    Ok(vec![median(&lat), quantile(&lat, 0.99)])
}

/// CPU time of this process (every thread), in ms, and its voluntary context switches.
fn cpu_ms() -> (f64, f64) {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct; `ru` is a
    // valid out-pointer.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    (ms(ru.ru_utime) + ms(ru.ru_stime), ru.ru_nvcsw as f64)
}

/// `streams` armed `EventFd`s on idle streams (their owner processes alive, writing
/// nothing) for `secs` seconds. Figures: CPU ms of this process (all threads) over that
/// time, % of one core, voluntary context switches per second, reactor threads,
/// descriptors found readable at the end (spurious readiness: should be 0), and seconds
/// until every descriptor is readable after the owners close.
fn idle_job(streams: u64, secs: u64) -> io::Result<Vec<f64>> {
    raise_nofile();
    let (names, ctls, children) = owners(streams)?;
    let guests = names
        .iter()
        .map(|n| Stream::open(n))
        .collect::<io::Result<Vec<_>>>()?;
    let evs = guests
        .iter()
        .map(|g| g.event_fd())
        .collect::<io::Result<Vec<_>>>()?;
    // Let the reactor's threads settle into their naps.
    std::thread::sleep(Duration::from_millis(200));
    let (c0, t0) = (cpu_ms(), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let c1 = cpu_ms();
    let wall = t0.elapsed().as_secs_f64() * 1e3;
    let (_, threads, _) = fshm::reactor_stats::threads();
    let mut spurious = 0;
    for e in &evs {
        spurious += u64::from(poll_in(e.as_raw_fd(), 0)?);
    }
    let t = Instant::now();
    end_owners(ctls, children)?;
    for e in &evs {
        if !poll_in(e.as_raw_fd(), 10_000)? {
            return Err(other("a descriptor did not report its stream's end"));
        }
    }
    let ended = t.elapsed().as_secs_f64();
    let cpu = c1.0 - c0.0;
    Ok(vec![
        cpu,
        cpu / wall * 100.0,
        (c1.1 - c0.1) / wall * 1e3,
        threads as f64,
        spurious as f64,
        ended,
    ])
}

/// The "Event loops" section of the report.
pub fn report(r: &Results, trips: u64, calls: u64, idle_secs: u64) {
    let get = |key: &str, m: usize| -> String {
        r.get(key)
            .and_then(|v| v.get(m))
            .map_or("–".to_string(), |v| {
                if v.len() == 1 {
                    format!("{:.2}", v[0])
                } else {
                    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
                    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    format!("{:.2} [{lo:.2}–{hi:.2}]", median(v))
                }
            })
    };
    println!("\n#### Event loops (group `events`; median [min–max] over the repetitions)\n");
    println!("| figure | value |\n|---|---|");
    for (kind, label) in [
        (
            "ev-lat-fd",
            "wake-up latency, `poll(2)` on the stream's `EventFd`, read, re-arm",
        ),
        (
            "ev-lat-blocking",
            "… blocking follower (`follow().spin(0)`)",
        ),
        ("ev-lat-pipe", "… a pipe (`poll(2)`, then `read`)"),
    ] {
        let key = format!("{kind} {trips}");
        println!("| {label}: median µs | {} |", get(&key, 0));
        println!("| … p99 µs | {} |", get(&key, 1));
    }
    let key = format!("ev-any-ready {STREAMS} {calls}");
    println!(
        "| `wait_any` over {STREAMS} streams, one ready: µs per call | {} |",
        get(&key, 0)
    );
    println!(
        "| `fshm_poll` over {STREAMS} `FILE*`s, one ready: µs per call | {} |",
        get(&key, 1)
    );
    let key = format!("ev-any-lat {STREAMS} {trips}");
    println!(
        "| `wait_any` over {STREAMS} idle streams until one gets a commit: wake-up median µs | {} |",
        get(&key, 0)
    );
    println!("| … p99 µs | {} |", get(&key, 1));
    let key = format!("ev-idle {STREAMS} {idle_secs}");
    println!(
        "| {STREAMS} armed `EventFd`s on idle streams, {idle_secs} s: CPU ms (all threads) | {} |",
        get(&key, 0)
    );
    println!("| … % of one core | {} |", get(&key, 1));
    println!(
        "| … sleeps (voluntary context switches) per second | {} |",
        get(&key, 2)
    );
    println!("| … reactor threads | {} |", get(&key, 3));
    println!(
        "| … descriptors readable without data (spurious) | {} |",
        get(&key, 4)
    );
    println!(
        "| … seconds until all {STREAMS} are readable after their owners close | {} |",
        get(&key, 5)
    );
}
