//! fshm-bench: fshm against pipes, sockets, stdio and the memory ceilings, across real
//! processes, in one run.
//!
//! ```text
//! cargo run --release -p fshm-bench -- --quick     # smoke test, under a minute
//! cargo run --release -p fshm-bench -- --full      # 5 repetitions, 256 MiB–1 GiB
//! cargo run --release -p fshm-bench --features iceoryx2 -- --full   # and iceoryx2 beside fshm
//! cargo run --release -p fshm-bench -- --quick --plot docs/charts    # and SVG charts there
//! ```
//!
//! The orchestrator (this process) runs every configuration as its own job process
//! (itself, re-executed with a hidden `--role` argument), interleaved over the
//! repetitions after a warm-up pass; a job forks the peer processes it needs. Each job
//! prints one `RESULT` line. After every job the orchestrator removes whatever the job
//! left in /dev/shm (every name is `fshm-bench-<job pid>-...`), so nothing survives a
//! crash or a timeout. The two processes of every streaming and ping-pong job are pinned
//! to separate CPUs (`--no-pin` leaves them to the scheduler). See BENCHMARKS.md.

#[cfg(feature = "async")]
mod async_jobs;
mod copy_cost;
mod event_jobs;
#[cfg(feature = "iceoryx2")]
mod iox;
mod jobs;
mod plot;
mod progress;
mod util;

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use util::{median, sweep};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const CHUNKS: [u64; 4] = [64, 4 * KIB, 64 * KIB, MIB];
const WTR_CHUNKS: [u64; 3] = [64, 4 * KIB, 64 * KIB];

struct Plan {
    mode: &'static str,
    reps: usize,
    /// Whether charts are drawn (`--plot`): the stream group then also runs the in-place
    /// ring (`ring-inplace`), which the charts show beside the copying API.
    plot: bool,
    /// Streaming volume for chunks ≥ 4 KiB, and for 64-byte chunks.
    stream_bytes: u64,
    stream_bytes_small: u64,
    wtr_bytes: u64,
    trips: u64,
    open_iters: u64,
    timeout: Duration,
}

impl Plan {
    fn quick() -> Plan {
        Plan {
            mode: "--quick",
            reps: 2,
            plot: false,
            stream_bytes: 64 * MIB,
            stream_bytes_small: 8 * MIB,
            wtr_bytes: 32 * MIB,
            trips: 10_000,
            open_iters: 2_000,
            timeout: Duration::from_secs(60),
        }
    }

    fn full() -> Plan {
        Plan {
            mode: "--full",
            reps: 5,
            plot: false,
            stream_bytes: 1024 * MIB,
            stream_bytes_small: 256 * MIB,
            wtr_bytes: 256 * MIB,
            trips: 100_000,
            open_iters: 20_000,
            timeout: Duration::from_secs(600),
        }
    }

    fn stream_bytes(&self, chunk: u64) -> u64 {
        if chunk < 4 * KIB {
            self.stream_bytes_small
        } else {
            self.stream_bytes
        }
    }

    /// Every job of one repetition, as argument lists (the first item names the job).
    fn jobs(&self, groups: &[String]) -> Vec<Vec<String>> {
        let on = |g: &str| groups.is_empty() || groups.iter().any(|x| x == g);
        let mut v = Vec::new();
        if on("stream") {
            for chunk in CHUNKS {
                for (kind, _) in jobs::STREAM_KINDS {
                    v.push(args(&[
                        kind,
                        &chunk.to_string(),
                        &self.stream_bytes(chunk).to_string(),
                    ]));
                }
                // The iox group runs it where it is on.
                if self.plot && !(IOX && on("iox")) {
                    v.push(args(&[
                        "ring-inplace",
                        &chunk.to_string(),
                        &self.stream_bytes(chunk).to_string(),
                    ]));
                }
            }
        }
        if on("wtr") {
            for chunk in WTR_CHUNKS {
                for kind in ["wtr-fshm", "wtr-stdio"] {
                    v.push(args(&[
                        kind,
                        &chunk.to_string(),
                        &self.wtr_bytes.to_string(),
                    ]));
                }
            }
        }
        if on("pp") {
            for kind in PP_KINDS {
                v.push(args(&[kind.0, &self.trips.to_string()]));
            }
        }
        if on("open") {
            for kind in OPEN_KINDS {
                v.push(args(&[kind.0, &self.open_iters.to_string()]));
            }
        }
        // Only when asked for by name (`--only async`), and built with `--features async`.
        #[cfg(feature = "async")]
        if groups.iter().any(|g| g == "async") {
            let (commits, idle) = self.async_sizes();
            v.extend(async_jobs::jobs(commits, self.trips / 10, idle));
        }
        // Only when asked for by name (`--only events`).
        if groups.iter().any(|g| g == "events") {
            let (trips, calls, idle) = self.event_sizes();
            v.extend(event_jobs::jobs(trips, calls, idle));
        }
        if IOX && on("iox") {
            for chunk in CHUNKS {
                for (kind, _) in IOX_STREAM_KINDS {
                    v.push(args(&[
                        kind,
                        &chunk.to_string(),
                        &self.stream_bytes(chunk).to_string(),
                    ]));
                }
            }
            for (kind, _) in IOX_PP_KINDS {
                v.push(args(&[kind, &self.trips.to_string()]));
            }
        }
        v
    }

    /// Async group: commits per stream, idle seconds.
    #[cfg(feature = "async")]
    fn async_sizes(&self) -> (u64, u64) {
        if self.mode == "--full" {
            (100, 10)
        } else {
            (20, 2)
        }
    }

    /// Events group: latency trips, calls per `wait_any`/`fshm_poll` figure, idle
    /// seconds.
    fn event_sizes(&self) -> (u64, u64, u64) {
        if self.mode == "--full" {
            (self.trips / 10, 1000, 10)
        } else {
            (self.trips / 10, 200, 2)
        }
    }

    /// A shorter pass of the same kinds, untimed, so first-touch effects settle.
    fn warmup(&self, groups: &[String]) -> Vec<Vec<String>> {
        let on = |g: &str| groups.is_empty() || groups.iter().any(|x| x == g);
        let mut v = Vec::new();
        if on("stream") {
            for (kind, _) in jobs::STREAM_KINDS {
                v.push(args(&[kind, "65536", &(self.stream_bytes / 8).to_string()]));
            }
        }
        if on("wtr") {
            for kind in ["wtr-fshm", "wtr-stdio"] {
                v.push(args(&[kind, "4096", &(self.wtr_bytes / 8).to_string()]));
            }
        }
        if on("pp") {
            for kind in PP_KINDS {
                v.push(args(&[kind.0, &(self.trips / 10).to_string()]));
            }
        }
        if IOX && on("iox") {
            for (kind, _) in IOX_STREAM_KINDS {
                v.push(args(&[kind, "65536", &(self.stream_bytes / 8).to_string()]));
            }
            for (kind, _) in IOX_PP_KINDS {
                v.push(args(&[kind, &(self.trips / 10).to_string()]));
            }
        }
        v
    }
}

const PP_KINDS: [(&str, &str); 4] = [
    (
        "pp-spin",
        "fshm rings, follow with spinning (`DEFAULT_SPIN`)",
    ),
    (
        "pp-nospin",
        "fshm rings, follow without spinning (`spin(0)`)",
    ),
    ("pp-pipe", "pipe pair"),
    ("pp-socket", "Unix socketpair"),
];

const OPEN_KINDS: [(&str, &str); 6] = [
    (
        "open-owner-rust",
        "fshm owner create + close, Rust `Stream::create` + drop",
    ),
    (
        "open-owner-c",
        "fshm owner `fshm_open(FSHM_OWNER)` + `fclose`",
    ),
    ("open-raw-create", "raw `shm_open` create + close + unlink"),
    ("open-guest-rust", "fshm guest `Stream::open` + drop"),
    (
        "open-guest-c",
        "fshm guest `fshm_open(FSHM_GUEST)` + `fclose`",
    ),
    (
        "open-raw-open",
        "raw `shm_open` of an existing object + close",
    ),
];

/// Whether this build has the iceoryx2 jobs (group `iox`).
const IOX: bool = cfg!(feature = "iceoryx2");

/// The version of iceoryx2 this build uses, as pinned in Cargo.toml.
const IOX_VERSION: &str = "0.10.0";

/// Streaming kinds of the comparison with iceoryx2, in table order.
const IOX_STREAM_KINDS: [(&str, &str); 3] = [
    (
        "ring-sum",
        "fshm ring, Rust API (16 MiB, lossless), reader reads every byte",
    ),
    (
        "ring-inplace",
        "fshm ring, in-place API (`reserve` / `fill_buf`), reader reads every byte in place",
    ),
    (
        "iox2-stream",
        "iceoryx2 publish-subscribe `[u8]` (≈16 MiB buffered, lossless), subscriber reads every byte",
    ),
];

const IOX_PP_KINDS: [(&str, &str); 2] = [
    ("pp-iox2-spin", "iceoryx2 publish-subscribe, busy-polling"),
    (
        "pp-iox2-event",
        "iceoryx2 publish-subscribe + event service, sleeping",
    ),
];

const USAGE: &str =
    "usage: fshm-bench --quick|--full [--reps N] [--only stream,wtr,pp,open,async,events,iox] [--no-pin] [--plot DIR]";

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--role") {
        return match jobs::run(&argv[1..]) {
            Ok(v) => {
                let s: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
                println!("RESULT {}", s.join(" "));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("fshm-bench job {}: {e}", argv[1..].join(" "));
                ExitCode::FAILURE
            }
        };
    }
    let mut plan = None;
    let mut groups = Vec::new();
    let mut reps = None;
    let mut pinned = true;
    let mut plot_dir: Option<std::path::PathBuf> = None;
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => plan = Some(Plan::quick()),
            "--full" => plan = Some(Plan::full()),
            "--reps" => reps = it.next().and_then(|s| s.parse().ok()),
            "--no-pin" => pinned = false,
            "--plot" => match it.next() {
                Some(d) => plot_dir = Some(d.into()),
                None => {
                    eprintln!("fshm-bench: --plot needs a directory\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--only" => groups.extend(
                it.next()
                    .into_iter()
                    .flat_map(|s| s.split(','))
                    .map(String::from),
            ),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if groups.iter().any(|g| g == "async") && !cfg!(feature = "async") {
        eprintln!("fshm-bench: the async group needs `--features async`");
        return ExitCode::from(2);
    }
    let Some(mut plan) = plan else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if let Some(g) = groups
        .iter()
        .find(|g| !["stream", "wtr", "pp", "open", "async", "events", "iox"].contains(&g.as_str()))
    {
        eprintln!("fshm-bench: unknown group {g:?}\n{USAGE}");
        return ExitCode::from(2);
    }
    if !IOX && groups.iter().any(|g| g == "iox") {
        eprintln!(
            "fshm-bench: group iox needs the iceoryx2 jobs: build with `--features iceoryx2`"
        );
        return ExitCode::from(2);
    }
    if !pinned {
        // Read by the job processes (`util::pin`), which inherit the environment.
        std::env::set_var(util::PIN_ENV, "0");
    }
    if let Some(r) = reps {
        plan.reps = r;
    }
    plan.plot = plot_dir.is_some();
    // SAFETY: installs a handler that only stores to an atomic (async-signal-safe); job
    // processes get the default disposition back at exec.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    match orchestrate(&plan, &groups, plot_dir.as_deref()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fshm-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Figures per job key, per metric, one per repetition.
type Results = HashMap<String, Vec<Vec<f64>>>;

fn orchestrate(plan: &Plan, groups: &[String], plot_dir: Option<&Path>) -> io::Result<bool> {
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut failures = Vec::new();
    let warmup = plan.warmup(groups);
    let jobs = plan.jobs(groups);
    // A status line on a terminal (standard error) only.
    let mut progress = progress::Progress::new(warmup.len() + plan.reps * jobs.len());
    eprintln!("fshm-bench {}: warm-up", plan.mode);
    for job in warmup {
        progress.start("warm-up", &job);
        if let Err(e) = run_job(&exe, &job, plan.timeout) {
            failures.push(format!("warm-up {}: {e}", job.join(" ")));
        }
        progress.finish();
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err(io::Error::other("interrupted"));
        }
    }
    let mut results: Results = HashMap::new();
    for rep in 0..plan.reps {
        progress.clear();
        eprintln!(
            "fshm-bench {}: repetition {}/{} ({} jobs, {:.0} s so far)",
            plan.mode,
            rep + 1,
            plan.reps,
            jobs.len(),
            started.elapsed().as_secs_f64()
        );
        // Interleave: every configuration once per repetition, starting each repetition
        // at a different place in the list.
        let n = jobs.len();
        for i in 0..n {
            let job = &jobs[(i + rep * 7) % n];
            progress.start(&format!("rep {}/{}", rep + 1, plan.reps), job);
            let outcome = run_job(&exe, job, plan.timeout);
            progress.finish();
            match outcome {
                Ok(v) => {
                    let e = results.entry(job.join(" ")).or_default();
                    e.resize(v.len(), Vec::new());
                    for (k, x) in v.into_iter().enumerate() {
                        e[k].push(x);
                    }
                }
                Err(e) => failures.push(format!("{}: {e}", job.join(" "))),
            }
            if INTERRUPTED.load(Ordering::SeqCst) {
                return Err(io::Error::other("interrupted"));
            }
        }
    }
    progress.clear();
    report(plan, groups, &results, started.elapsed());
    if let Some(dir) = plot_dir {
        for p in plot::write(&results, dir)? {
            eprintln!("fshm-bench: chart {}", p.display());
        }
    }
    if !failures.is_empty() {
        println!("\n### Failures\n");
        for f in &failures {
            println!("- {f}");
        }
    }
    Ok(failures.is_empty())
}

/// Runs one job process; returns its figures. Kills it past `timeout`. Always removes
/// the shm objects it may have left.
fn run_job(exe: &std::path::Path, job: &[String], timeout: Duration) -> io::Result<Vec<f64>> {
    let mut child = Command::new(exe)
        .arg("--role")
        .args(job)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if t.elapsed() > timeout || INTERRUPTED.load(Ordering::SeqCst) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // Forked grandchildren die with the job (PR_SET_PDEATHSIG); give them a moment.
    let left = sweep(pid);
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let Some(status) = status else {
        std::thread::sleep(Duration::from_millis(50));
        sweep(pid);
        return Err(io::Error::other(format!("timed out after {timeout:?}")));
    };
    if !status.success() {
        return Err(io::Error::other(format!("{status}: {}", err.trim())));
    }
    if left > 0 {
        return Err(io::Error::other(format!("left {left} objects in /dev/shm")));
    }
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| io::Error::other(format!("no RESULT line: {out:?}")))?;
    line.split_whitespace()
        .map(|x| x.parse::<f64>().map_err(io::Error::other))
        .collect()
}

// ---------------------------------------------------------------- report

fn machine() -> Vec<(String, String)> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    // SAFETY: `utsname` is plain data; uname fills it with NUL-terminated strings.
    let kernel = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        libc::uname(&mut u);
        let s = |f: &[libc::c_char]| {
            std::ffi::CStr::from_ptr(f.as_ptr())
                .to_string_lossy()
                .into_owned()
        };
        format!("{} {} {}", s(&u.sysname), s(&u.release), s(&u.machine))
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    // SAFETY: returns a static NUL-terminated string.
    let glibc = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) }
        .to_string_lossy()
        .into_owned();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let pinning = match util::pin_cpus() {
        Some((p, c)) => format!(
            "writer / publisher / ping-pong initiator on CPU {p}, reader / subscriber / echo on \
             CPU {c} (sched_setaffinity), every streaming and ping-pong job"
        ),
        None => "none (`--no-pin`, or fewer than two CPUs allowed)".into(),
    };
    vec![
        ("pinning".into(), pinning),
        ("date".into(), date),
        ("CPU".into(), cpu),
        ("cores (available_parallelism)".into(), cores.to_string()),
        ("kernel".into(), kernel),
        ("glibc".into(), glibc),
        (
            "load average at the end".into(),
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        ),
    ]
}

fn size(b: u64) -> String {
    if b >= MIB && b % MIB == 0 {
        format!("{} MiB", b / MIB)
    } else if b >= KIB && b % KIB == 0 {
        format!("{} KiB", b / KIB)
    } else {
        format!("{b} B")
    }
}

fn num(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else if x >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// "median [min–max]" (just the value for a single run).
fn cell(v: Option<&Vec<f64>>) -> String {
    match v {
        None => "–".into(),
        Some(v) if v.is_empty() => "–".into(),
        Some(v) if v.len() == 1 => num(v[0]),
        Some(v) => {
            let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            format!("{} [{}–{}]", num(median(v)), num(lo), num(hi))
        }
    }
}

struct View<'a> {
    r: &'a Results,
    plan: &'a Plan,
}

impl View<'_> {
    fn stream_key(&self, kind: &str, chunk: u64) -> String {
        format!("{kind} {chunk} {}", self.plan.stream_bytes(chunk))
    }
    fn get(&self, key: &str, metric: usize) -> Option<&Vec<f64>> {
        self.r.get(key).and_then(|m| m.get(metric))
    }
    fn med(&self, key: &str, metric: usize) -> f64 {
        self.get(key, metric).map_or(f64::NAN, |v| median(v))
    }
    fn stream(&self, kind: &str, chunk: u64) -> f64 {
        self.med(&self.stream_key(kind, chunk), 0)
    }
    fn wtr(&self, kind: &str, chunk: u64, metric: usize) -> f64 {
        self.med(&format!("{kind} {chunk} {}", self.plan.wtr_bytes), metric)
    }
    fn pp(&self, kind: &str, metric: usize) -> f64 {
        self.med(&format!("{kind} {}", self.plan.trips), metric)
    }
    fn open(&self, kind: &str) -> f64 {
        self.med(&format!("{kind} {}", self.plan.open_iters), 0)
    }
}

fn report(plan: &Plan, groups: &[String], r: &Results, took: Duration) {
    let v = View { r, plan };
    let on = |g: &str| groups.is_empty() || groups.iter().any(|x| x == g);
    let runs = if plan.reps == 1 {
        "1 run".to_string()
    } else {
        format!("median [min–max] of {} runs", plan.reps)
    };
    println!("## fshm-bench {}\n", plan.mode);
    println!("| machine | |\n|---|---|");
    for (k, val) in machine() {
        println!("| {k} | {val} |");
    }
    println!(
        "| run time | {:.0} s, {} repetition(s) after a warm-up pass |\n",
        took.as_secs_f64(),
        plan.reps
    );

    if on("stream") {
        println!("### Concurrent streaming, writer and reader in two processes (MB/s, {runs})\n");
        println!(
            "Volume: {} per run at 64 B chunks, {} at larger chunks. Writer: one write per \
             chunk; Rust/fd readers read into a 1 MiB buffer, `FILE*` readers `fread` one \
             chunk at a time. Time: writer start to reader end-of-stream. Every byte count \
             and a sample of bytes are checked.\n",
            size(plan.stream_bytes_small),
            size(plan.stream_bytes)
        );
        print!("| channel |");
        for c in CHUNKS {
            print!(" {} |", size(c));
        }
        println!("\n|---|---|---|---|---|");
        for (kind, label) in jobs::STREAM_KINDS {
            print!("| {label} |");
            for c in CHUNKS {
                print!(" {} |", cell(v.get(&v.stream_key(kind, c), 0)));
            }
            println!();
        }
        // Run in this group for the charts (`--plot`), where the iox group is off.
        if plan.plot && !(IOX && on("iox")) {
            print!("| fshm ring, in-place API (`reserve` / `fill_buf`; 16 MiB, lossless) |");
            for c in CHUNKS {
                print!(" {} |", cell(v.get(&v.stream_key("ring-inplace", c), 0)));
            }
            println!();
        }
        println!();
    }

    if on("wtr") {
        println!(
            "### Write {} through `FILE*`, then read it in a new process (MB/s, {runs})\n",
            size(plan.wtr_bytes)
        );
        println!(
            "Write: open + `fwrite` per chunk + `fflush` on a new fshm owner stream / a new \
             `/dev/shm` file (stdio). Read: a new process opens (fshm guest / `fopen`), \
             `fread`s one chunk at a time to the end, closes. Re-read: another new process \
             does the same again on the bytes already in memory.\n"
        );
        println!("| path | chunk | write | read, new process | re-read, new process |");
        println!("|---|---|---|---|---|");
        for c in WTR_CHUNKS {
            for (kind, label) in [
                ("wtr-fshm", "fshm `FILE*`"),
                ("wtr-stdio", "stdio on /dev/shm"),
            ] {
                let key = format!("{kind} {c} {}", plan.wtr_bytes);
                println!(
                    "| {label} | {} | {} | {} | {} |",
                    size(c),
                    cell(v.get(&key, 0)),
                    cell(v.get(&key, 1)),
                    cell(v.get(&key, 2))
                );
            }
        }
        println!();
    }

    if on("pp") {
        println!(
            "### Ping-pong, 8-byte messages, {} round trips per run (µs per round trip; \
             per-run median and p99, then {runs})\n",
            plan.trips
        );
        println!("| mechanism | median | p99 |\n|---|---|---|");
        for (kind, label) in PP_KINDS {
            let key = format!("{kind} {}", plan.trips);
            println!(
                "| {label} | {} | {} |",
                cell(v.get(&key, 0)),
                cell(v.get(&key, 1))
            );
        }
        println!(
            "\nfshm rings: {} lossless, one each way; each side owns the ring it writes and \
             follows the other's.\n",
            size(jobs::PP_RING_CAPACITY)
        );
    }

    if on("open") {
        println!(
            "### Open + close, {} operations per run, each timed (µs per operation; \
             per-run median and p99, then {runs})\n",
            plan.open_iters
        );
        println!("| operation | median | p99 |\n|---|---|---|");
        for (kind, label) in OPEN_KINDS {
            let key = format!("{kind} {}", plan.open_iters);
            println!(
                "| {label} | {} | {} |",
                cell(v.get(&key, 0)),
                cell(v.get(&key, 1))
            );
        }
        println!();
    }

    #[cfg(feature = "async")]
    if groups.iter().any(|g| g == "async") {
        let (commits, idle) = plan.async_sizes();
        async_jobs::report(r, (1000, commits), idle);
    }

    if groups.iter().any(|g| g == "events") {
        let (trips, calls, idle) = plan.event_sizes();
        event_jobs::report(r, trips, calls, idle);
    }

    if IOX && on("iox") {
        iox_report(&v, &runs, on("pp"));
    }

    if groups.is_empty() {
        targets(&v);
    }
}

fn iox_report(v: &View, runs: &str, with_pp: bool) {
    let plan = v.plan;
    // Where the two processes of each row ran (the same for every row).
    let cpus = match util::pin_cpus() {
        Some((p, c)) => format!("CPU {p} / CPU {c}"),
        None => "not pinned".to_string(),
    };
    println!(
        "### iceoryx2 {IOX_VERSION} side by side (issue 19): streaming, writer and reader in \
         two processes (MB/s, {runs})\n"
    );
    println!(
        "Volume: {} per run at 64 B messages, {} at larger ones. Both lossless; one message per \
         write / loaned sample; both readers read every byte (a sum, checked against the \
         data). fshm, copying API: `write_all` of each message into a 16 MiB ring, the \
         follower reads into a 1 MiB buffer (two copies); in-place API: `reserve` + copy + \
         `commit_all`, a `FollowerMut`'s `fill_buf` + `consume` (one copy). iceoryx2: `loan_slice_uninit` + `write_from_slice` \
         (one copy), safe overflow off, `RetryUntilDelivered`, subscriber buffer = 16 MiB / \
         message size (at least 2) messages, busy-polling `receive`.\n",
        size(plan.stream_bytes_small),
        size(plan.stream_bytes)
    );
    print!("| channel | writer / reader |");
    for c in CHUNKS {
        print!(" {} |", size(c));
    }
    println!("\n|---|---|---|---|---|---|");
    for (kind, label) in IOX_STREAM_KINDS {
        print!("| {label} | {cpus} |");
        for c in CHUNKS {
            print!(" {} |", cell(v.get(&v.stream_key(kind, c), 0)));
        }
        println!();
    }
    for (kind, label) in [("ring-sum", "copying"), ("ring-inplace", "in place")] {
        print!("| fshm {label} / iceoryx2 (medians) | |");
        for c in CHUNKS {
            print!(
                " {}× |",
                num(v.stream(kind, c) / v.stream("iox2-stream", c))
            );
        }
        println!();
    }
    println!();

    println!(
        "### iceoryx2 {IOX_VERSION} side by side: ping-pong, 8-byte messages, {} round trips \
         per run (µs per round trip; per-run median and p99, then {runs})\n",
        plan.trips
    );
    println!("| mechanism | initiator / echo | median | p99 |\n|---|---|---|---|");
    let mut rows: Vec<(&str, &str)> = Vec::new();
    if with_pp {
        rows.extend([PP_KINDS[0], PP_KINDS[1], PP_KINDS[2]]);
    }
    rows.extend(IOX_PP_KINDS);
    for (kind, label) in rows {
        let key = format!("{kind} {}", plan.trips);
        println!(
            "| {label} | {cpus} | {} | {} |",
            cell(v.get(&key, 0)),
            cell(v.get(&key, 1))
        );
    }
    println!(
        "\niceoryx2: one publish-subscribe service of `u64` each way, lossless (safe overflow \
         off, `RetryUntilDelivered`); sleeping: after each send the sender's notifier wakes \
         the other side's listener (`blocking_wait`).{}\n",
        if with_pp {
            ""
        } else {
            " The fshm and pipe rows are in the `pp` group (not run)."
        }
    );

    println!("### Goals of issue 19, from the medians above\n");
    println!("| goal | seen | verdict |\n|---|---|---|");
    let goal = |name: &str, pairs: Vec<(String, f64)>, ok: &dyn Fn(f64) -> bool| {
        let checked: Vec<(f64, bool)> = pairs.iter().map(|(_, r)| (*r, ok(*r))).collect();
        println!(
            "| {name} | {} | {} |",
            ratios(&pairs),
            verdict(all_ok(&checked))
        );
    };
    // The copying API at 64 B and 4 KiB, the in-place API at larger messages.
    for c in CHUNKS {
        let (kind, api) = if c <= 4 * KIB {
            ("ring-sum", "copying")
        } else {
            ("ring-inplace", "in-place")
        };
        goal(
            &format!("fshm ≥ 1.2× iceoryx2 at {}, {api} API", size(c)),
            vec![(size(c), v.stream(kind, c) / v.stream("iox2-stream", c))],
            &|r| r >= 1.2,
        );
    }
    goal(
        "round trip with spinning ≤ 0.5× iceoryx2 busy-polling",
        vec![(
            "median".into(),
            v.pp("pp-spin", 0) / v.pp("pp-iox2-spin", 0),
        )],
        &|r| r <= 0.5,
    );
    goal(
        "sleeping round trip ≤ iceoryx2's event-based one and ≤ a pipe pair",
        vec![
            (
                "fshm / iceoryx2".into(),
                v.pp("pp-nospin", 0) / v.pp("pp-iox2-event", 0),
            ),
            (
                "fshm / pipe".into(),
                v.pp("pp-nospin", 0) / v.pp("pp-pipe", 0),
            ),
        ],
        &|r| r <= 1.0,
    );
    goal(
        "while there: C guest `fshm_open(FSHM_GUEST)` + `fclose` ≤ 2× raw `shm_open` + `close`",
        vec![("C".into(), v.open("open-guest-c") / v.open("open-raw-open"))],
        &|r| r <= 2.0,
    );
    goal(
        "while there: followed linear stream at 4 KiB ≥ 0.8× the fresh-page ceiling",
        vec![(
            "4 KiB".into(),
            v.stream("linear", 4 * KIB) / v.stream("fresh", 4 * KIB),
        )],
        &|r| r >= 0.8,
    );
    println!();
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "**met**",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

/// `Some(all ok)` over finite ratios, `None` if none is finite.
fn all_ok(pairs: &[(f64, bool)]) -> Option<bool> {
    let finite: Vec<_> = pairs.iter().filter(|(r, _)| r.is_finite()).collect();
    if finite.is_empty() || finite.len() < pairs.len() {
        None
    } else {
        Some(finite.iter().all(|(_, ok)| *ok))
    }
}

fn ratios(pairs: &[(String, f64)]) -> String {
    pairs
        .iter()
        .map(|(k, r)| {
            if r.is_finite() {
                format!("{k}: {r:.2}×")
            } else {
                format!("{k}: –")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn targets(v: &View) {
    println!("### Targets (issue 6), from the medians above\n");
    println!("| target | ratio seen | verdict |\n|---|---|---|");
    let row = |name: &str, pairs: Vec<(String, f64)>, ok: &dyn Fn(f64) -> bool| {
        let checked: Vec<(f64, bool)> = pairs.iter().map(|(_, r)| (*r, ok(*r))).collect();
        println!(
            "| {name} | {} | {} |",
            ratios(&pairs),
            verdict(all_ok(&checked))
        );
    };
    let big = [4 * KIB, 64 * KIB, MIB];
    row(
        "ring (Rust) ≥ 2× best of pipe / pipe 1 MiB / socketpair, every chunk ≥ 4 KiB",
        big.iter()
            .map(|&c| {
                let best = ["pipe", "pipe1m", "socket"]
                    .iter()
                    .map(|k| v.stream(k, c))
                    .fold(f64::NAN, f64::max);
                (size(c), v.stream("ring-rust", c) / best)
            })
            .collect(),
        &|r| r >= 2.0,
    );
    row(
        "ring (Rust) ≥ 50 % of memcpy, chunks ≥ 64 KiB",
        [64 * KIB, MIB]
            .iter()
            .map(|&c| (size(c), v.stream("ring-rust", c) / v.stream("memcpy", c)))
            .collect(),
        &|r| r >= 0.5,
    );
    row(
        "ring (Rust) at 64 B ≥ 10× a pipe",
        vec![(
            "64 B".into(),
            v.stream("ring-rust", 64) / v.stream("pipe", 64),
        )],
        &|r| r >= 10.0,
    );
    row(
        "linear stream ≥ 80 % of the fresh-page bound (chunks ≥ 4 KiB)",
        big.iter()
            .map(|&c| (size(c), v.stream("linear", c) / v.stream("fresh", c)))
            .collect(),
        &|r| r >= 0.8,
    );
    row(
        "ring `FILE*` ≥ 2× `FILE*` over a pipe, 4 KiB",
        vec![(
            "4 KiB".into(),
            v.stream("ring-file", 4 * KIB) / v.stream("pipe-file", 4 * KIB),
        )],
        &|r| r >= 2.0,
    );
    row(
        "`FILE*` writing a new stream ≥ 1.2× stdio on /dev/shm",
        WTR_CHUNKS
            .iter()
            .map(|&c| (size(c), v.wtr("wtr-fshm", c, 0) / v.wtr("wtr-stdio", c, 0)))
            .collect(),
        &|r| r >= 1.2,
    );
    row(
        "re-read by a new guest ≥ 1.3× stdio",
        WTR_CHUNKS
            .iter()
            .map(|&c| (size(c), v.wtr("wtr-fshm", c, 2) / v.wtr("wtr-stdio", c, 2)))
            .collect(),
        &|r| r >= 1.3,
    );
    let spin = v.pp("pp-spin", 0);
    println!(
        "| ping-pong with spinning, median ≤ 1 µs | {} µs | {} |",
        num(spin),
        verdict(spin.is_finite().then_some(spin <= 1.0))
    );
    row(
        "ping-pong without spinning no worse than a pipe (median, fshm / pipe ≤ 1)",
        vec![("median".into(), v.pp("pp-nospin", 0) / v.pp("pp-pipe", 0))],
        &|r| r <= 1.0,
    );
    row(
        "owner create + close ≤ 2× raw shm_open create + close + unlink",
        vec![
            (
                "Rust".into(),
                v.open("open-owner-rust") / v.open("open-raw-create"),
            ),
            (
                "C".into(),
                v.open("open-owner-c") / v.open("open-raw-create"),
            ),
        ],
        &|r| r <= 2.0,
    );
    row(
        "guest open + close ≤ 2× raw shm_open + close",
        vec![
            (
                "Rust".into(),
                v.open("open-guest-rust") / v.open("open-raw-open"),
            ),
            ("C".into(), v.open("open-guest-c") / v.open("open-raw-open")),
        ],
        &|r| r <= 2.0,
    );
    println!();
}
