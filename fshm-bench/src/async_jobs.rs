//! Async jobs (feature `async`, group `async`): many async followers on one
//! current-thread tokio runtime, their wake-up latency against the blocking follower's,
//! and their idle CPU. See BENCHMARKS.md, "Async".

use crate::util::{fork_child, median, now_ns, other, pin, quantile, shm_name, Ctl, Side};
use crate::Results;
use fshm::{OpenOptions, RingPolicy, Stream};
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Streams followed at once, and writer processes that own them.
const STREAMS: u64 = 1000;
const WRITERS: u64 = 4;

/// The jobs of one repetition: `(quick, full)` sizes chosen by the caller.
pub fn jobs(commits: u64, trips: u64, idle_secs: u64) -> Vec<Vec<String>> {
    let s = |v: &[String]| v.to_vec();
    vec![
        s(&[
            "async-many".into(),
            STREAMS.to_string(),
            commits.to_string(),
        ]),
        s(&["async-lat-async".into(), trips.to_string()]),
        s(&["async-lat-blocking".into(), trips.to_string()]),
        s(&["async-lat-async-free".into(), trips.to_string()]),
        s(&["async-lat-blocking-free".into(), trips.to_string()]),
        s(&[
            "async-idle".into(),
            STREAMS.to_string(),
            idle_secs.to_string(),
        ]),
        s(&[
            "async-idle-threads".into(),
            STREAMS.to_string(),
            idle_secs.to_string(),
        ]),
    ]
}

pub fn run(kind: &str, num: impl Fn(usize) -> io::Result<u64>) -> io::Result<Vec<f64>> {
    match kind {
        "async-many" => many_job(num(1)?, num(2)?),
        "async-lat-async"
        | "async-lat-blocking"
        | "async-lat-async-free"
        | "async-lat-blocking-free" => latency_job(
            kind.starts_with("async-lat-async"),
            !kind.ends_with("-free"),
            num(1)?,
        ),
        "async-idle" => idle_job(num(1)?, num(2)?),
        "async-idle-threads" => idle_threads_job(num(1)?, num(2)?),
        _ => Err(other(format!("unknown job {kind:?}"))),
    }
}

/// A current-thread runtime with its timer and I/O driver (`AsyncStream`'s waits sleep
/// in io_uring requests the I/O driver sees, where the kernel has them).
fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Waits (on the runtime's timer) until every one of `n` followers is registered.
async fn all_registered(n: u64) -> io::Result<()> {
    let t = Instant::now();
    while (fshm::reactor_stats::registrations() as u64) < n {
        if t.elapsed() > Duration::from_secs(30) {
            return Err(other("followers did not all register"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// `WRITERS` owner processes of `streams` linear streams: each creates its share,
/// says so, waits for `go`, then writes `commits` 8-byte records (0, 1, …) to each of
/// its streams, one round over them every millisecond, and closes them (the end).
fn writers(
    streams: u64,
    commits: u64,
) -> io::Result<(Vec<String>, Vec<Ctl>, Vec<crate::util::Child>)> {
    let names: Vec<String> = (0..streams).map(|i| shm_name(&format!("a{i}"))).collect();
    let (mut ctls, mut children) = (Vec::new(), Vec::new());
    for w in 0..WRITERS {
        let (ctl, mut peer) = Ctl::pair()?;
        let mine: Vec<String> = names
            .iter()
            .skip(w as usize)
            .step_by(WRITERS as usize)
            .cloned()
            .collect();
        children.push(fork_child(&ctl.fds(), move || {
            let mut owned = Vec::new();
            for n in &mine {
                owned.push(OpenOptions::new().max_size(1 << 20).create(n)?);
            }
            peer.send(&[1])?;
            peer.recv::<1>()?;
            for k in 0..commits {
                for s in &mut owned {
                    s.write_all(&k.to_ne_bytes())?;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        })?);
        ctls.push(ctl);
    }
    for c in &mut ctls {
        c.recv::<1>()?;
    }
    Ok((names, ctls, children))
}

/// One current-thread runtime, one task per stream, follows `streams` streams written
/// by `WRITERS` other processes. Figures: commits delivered, commits written, seconds
/// from go to the last end-of-stream, reactor threads at most and started.
fn many_job(streams: u64, commits: u64) -> io::Result<Vec<f64>> {
    let (names, mut ctls, children) = writers(streams, commits)?;
    let rt = runtime()?;
    let (delivered, secs) = rt.block_on(async {
        let mut tasks = Vec::new();
        for n in &names {
            let mut r = Stream::open(n)?.into_async();
            tasks.push(tokio::spawn(async move {
                let mut k = 0u64;
                let mut rec = [0u8; 8];
                loop {
                    match r.read_exact(&mut rec).await {
                        Ok(_) if u64::from_ne_bytes(rec) == k => k += 1,
                        Ok(_) => return Err(other("a record out of order")),
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(k),
                        Err(e) => return Err(e),
                    }
                }
            }));
        }
        all_registered(streams).await?;
        let t = Instant::now();
        for c in &mut ctls {
            c.send(&[1])?;
        }
        let mut delivered = 0;
        for t in tasks {
            delivered += t.await.map_err(other_join)??;
        }
        io::Result::Ok((delivered, t.elapsed().as_secs_f64()))
    })?;
    for c in children {
        c.wait()?;
    }
    let (_, peak, started) = fshm::reactor_stats::threads();
    if delivered != streams * commits {
        return Err(other(format!(
            "{delivered} commits delivered of {}",
            streams * commits
        )));
    }
    Ok(vec![
        delivered as f64,
        (streams * commits) as f64,
        secs,
        peak as f64,
        started as f64,
    ])
}

fn other_join(e: tokio::task::JoinError) -> io::Error {
    other(format!("follower task: {e}"))
}

/// Wake-up latency of a sleeping follower (async: a task on a current-thread runtime;
/// blocking: `follow().spin(0)`): a writer process stamps CLOCK_MONOTONIC into an
/// 8-byte commit, the follower computes now − stamp, acknowledges, and the writer waits
/// 200 µs (the follower is asleep again) before the next trip. Figures: median and p99
/// in µs. `pinned`: the writer on the first CPU, the follower's process (its runtime and
/// reactor threads) on the second, as in every two-process job ([`pin`]); otherwise
/// the kernel places them (the `-free` jobs).
fn latency_job(async_follower: bool, pinned: bool, trips: u64) -> io::Result<Vec<f64>> {
    let pin = |side| if pinned { pin(side) } else { Ok(()) };
    let name = shm_name("lat");
    let (mut ctl, mut peer) = Ctl::pair()?;
    let name2 = name.clone();
    let writer = fork_child(&ctl.fds(), move || {
        pin(Side::Producer)?;
        let mut s = OpenOptions::new()
            .ring(64 * 1024, RingPolicy::Lossy)
            .create(&name2)?;
        peer.send(&[1])?;
        for _ in 0..trips {
            peer.recv::<1>()?; // the follower is ready
            std::thread::sleep(Duration::from_micros(200));
            s.write_all(&now_ns().to_ne_bytes())?;
        }
        peer.recv::<1>()?;
        Ok(())
    })?;
    ctl.recv::<1>()?;
    // The follower on the other CPU: this process, its runtime and its reactor threads
    // (which inherit the mask when they start).
    pin(Side::Consumer)?;
    let guest = Stream::open(&name)?;
    let mut lat = Vec::with_capacity(trips as usize);
    let mut rec = [0u8; 8];
    if async_follower {
        let rt = runtime()?;
        rt.block_on(async {
            let mut r = guest.into_async();
            for _ in 0..trips {
                ctl.send(&[1])?;
                r.read_exact(&mut rec).await?;
                lat.push(now_ns().saturating_sub(u64::from_ne_bytes(rec)) as f64 / 1e3);
            }
            io::Result::Ok(())
        })?;
    } else {
        let mut f = guest.follow().spin(Duration::ZERO);
        for _ in 0..trips {
            ctl.send(&[1])?;
            f.read_exact(&mut rec)?;
            lat.push(now_ns().saturating_sub(u64::from_ne_bytes(rec)) as f64 / 1e3);
        }
    }
    ctl.send(&[1])?;
    writer.wait()?;
    Ok(vec![median(&lat), quantile(&lat, 0.99)])
}

/// CPU time of this process's user and system time, in ms (every thread: the
/// runtime's and the reactor's).
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

/// `streams` async followers of idle streams (their owner process alive, writing
/// nothing) for `secs` seconds. Figures: CPU ms of this process over that time, the
/// same as % of one core, reactor threads at most, voluntary context switches per
/// second (every thread's sleeps), and whether the reactor sleeps in `futex_waitv` (1)
/// or polls (0).
fn idle_job(streams: u64, secs: u64) -> io::Result<Vec<f64>> {
    let (names, mut ctls, children) = writers(streams, 0)?;
    let rt = runtime()?;
    let cpu = rt.block_on(async {
        let mut tasks = Vec::new();
        for n in &names {
            let mut r = Stream::open(n)?.into_async();
            tasks.push(tokio::spawn(async move {
                let mut v = Vec::new();
                r.read_to_end(&mut v).await
            }));
        }
        all_registered(streams).await?;
        let (c0, t0) = (cpu_ms(), Instant::now());
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let c1 = cpu_ms();
        let (cpu, sleeps) = (c1.0 - c0.0, c1.1 - c0.1);
        let wall = t0.elapsed().as_secs_f64() * 1e3;
        for c in &mut ctls {
            c.send(&[1])?; // the owners close: every follower ends
        }
        for t in tasks {
            t.await.map_err(other_join)??;
        }
        io::Result::Ok((cpu, cpu / wall * 100.0, sleeps / wall * 1e3))
    })?;
    for c in children {
        c.wait()?;
    }
    let (_, peak, _) = fshm::reactor_stats::threads();
    Ok(vec![
        cpu.0,
        cpu.1,
        peak as f64,
        cpu.2,
        f64::from(u8::from(fshm::reactor_stats::uses_futex_waitv())),
    ])
}

/// For comparison: `streams` blocking followers (`follow()`, one thread each) of idle
/// streams for `secs` seconds. Figures: CPU ms, % of one core, sleeps per second.
fn idle_threads_job(streams: u64, secs: u64) -> io::Result<Vec<f64>> {
    let (names, mut ctls, children) = writers(streams, 0)?;
    let guests = names
        .iter()
        .map(|n| Stream::open(n))
        .collect::<io::Result<Vec<_>>>()?;
    let (cpu, pct, sleeps) = std::thread::scope(|s| {
        let threads: Vec<_> = guests
            .iter()
            .map(|g| {
                std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn_scoped(s, move || {
                        let mut v = Vec::new();
                        g.follow().read_to_end(&mut v)
                    })
            })
            .collect::<io::Result<Vec<_>>>()?;
        // Let every thread reach its first sleep before measuring.
        std::thread::sleep(Duration::from_millis(200));
        let (c0, t0) = (cpu_ms(), Instant::now());
        std::thread::sleep(Duration::from_secs(secs));
        let c1 = cpu_ms();
        let wall = t0.elapsed().as_secs_f64() * 1e3;
        for c in &mut ctls {
            c.send(&[1])?;
        }
        for t in threads {
            t.join().map_err(|_| other("follower thread panicked"))??;
        }
        io::Result::Ok((
            c1.0 - c0.0,
            (c1.0 - c0.0) / wall * 100.0,
            (c1.1 - c0.1) / wall * 1e3,
        ))
    })?;
    for c in children {
        c.wait()?;
    }
    Ok(vec![cpu, pct, sleeps])
}

/// The "Async" section of the report.
pub fn report(r: &Results, streams_commits: (u64, u64), idle_secs: u64) {
    let med = |key: &str, m: usize| {
        r.get(key)
            .and_then(|v| v.get(m))
            .map_or(f64::NAN, |v| median(v))
    };
    let span = |key: &str, m: usize| {
        r.get(key)
            .and_then(|v| v.get(m))
            .map_or("–".to_string(), |v| {
                let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
                let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                format!("{:.3} [{lo:.3}–{hi:.3}]", median(v))
            })
    };
    let (streams, commits) = streams_commits;
    let many = format!("async-many {streams} {commits}");
    println!("\n#### Async followers (feature `async`; median [min–max] over the repetitions)\n");
    println!("| figure | value |\n|---|---|");
    println!(
        "| {streams} streams, {WRITERS} writer processes, {commits} commits each, one current-thread runtime: commits delivered / written | {:.0} / {:.0} |",
        med(&many, 0),
        med(&many, 1)
    );
    println!(
        "| … seconds from go to the last end-of-stream | {} |",
        span(&many, 2)
    );
    println!(
        "| … reactor threads at most / started | {:.0} / {:.0} |",
        med(&many, 3),
        med(&many, 4)
    );
    let keys = |k: &str| {
        r.keys()
            .find(|x| x.split(' ').next() == Some(k))
            .cloned()
            .unwrap_or_default()
    };
    for (suffix, placed) in [
        ("", "writer and follower pinned to separate CPUs"),
        ("-free", "not pinned, placed by the kernel"),
    ] {
        let a = keys(&format!("async-lat-async{suffix}"));
        let b = keys(&format!("async-lat-blocking{suffix}"));
        println!(
            "| wake-up latency ({placed}), async follower: median µs | {} |",
            span(&a, 0)
        );
        println!("| … p99 µs | {} |", span(&a, 1));
        println!(
            "| … blocking follower (`spin(0)`): median µs | {} |",
            span(&b, 0)
        );
        println!("| … p99 µs | {} |", span(&b, 1));
        println!(
            "| … async / blocking, medians (goal ≤ 2) | {:.2} |",
            med(&a, 0) / med(&b, 0)
        );
    }
    let idle = keys("async-idle");
    println!(
        "| {streams} idle async followers, {idle_secs} s: CPU ms (all threads) | {} |",
        span(&idle, 0)
    );
    println!("| … % of one core | {} |", span(&idle, 1));
    println!(
        "| … reactor threads; sleeping in `futex_waitv` (1) or polling (0) | {:.0}; {:.0} |",
        med(&idle, 2),
        med(&idle, 4)
    );
    println!(
        "| … sleeps (voluntary context switches) per second, all threads | {} |",
        span(&idle, 3)
    );
    let threads = keys("async-idle-threads");
    println!(
        "| for comparison, {streams} idle blocking followers (a thread each), {idle_secs} s: CPU ms | {} |",
        span(&threads, 0)
    );
    println!("| … % of one core | {} |", span(&threads, 1));
    println!(
        "| … sleeps per second, all threads | {} |",
        span(&threads, 2)
    );
}
