//! Process plumbing shared by the jobs: fork, control pipes, clocks, the data pattern
//! and its verifier, shm names and their cleanup.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Prefix of every shm name (and /dev/shm file) this program creates; followed by the
/// pid of the job process, so the orchestrator can sweep what a dead job left behind.
pub const PREFIX: &str = "fshm-bench-";

/// A unique shm name (`/fshm-bench-<pid>-<tag>`) for this job process.
pub fn shm_name(tag: &str) -> String {
    format!("/{PREFIX}{}-{tag}", job_pid())
}

/// The pid that names this job's objects: the job process itself, also inside the
/// children it forks (they inherit the value computed before the fork).
pub fn job_pid() -> u32 {
    use std::sync::OnceLock;
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// Removes every object in /dev/shm named after job process `pid`. Returns how many.
/// Also removes the job's scratch directory (`/tmp/fshm-bench-<pid>`, where iceoryx2
/// keeps its service and node files), which is not counted: iceoryx2 may leave it behind
/// after a clean run.
pub fn sweep(pid: u32) -> usize {
    let prefix = format!("{PREFIX}{pid}-");
    let _ = std::fs::remove_dir_all(scratch_dir_of(pid));
    let mut n = 0;
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix)
                && std::fs::remove_file(e.path()).is_ok()
            {
                n += 1;
            }
        }
    }
    n
}

/// The scratch directory of job process `pid`.
pub fn scratch_dir_of(pid: u32) -> String {
    format!("/tmp/{PREFIX}{pid}")
}

/// Environment variable through which the orchestrator turns pinning off (`0`).
pub const PIN_ENV: &str = "FSHM_BENCH_PIN";

/// The two sides of a two-process job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The writer / publisher of a stream, the side that times a ping-pong.
    Producer,
    /// The reader / subscriber of a stream, the side that echoes a ping-pong.
    Consumer,
}

/// The CPUs the two sides are pinned to: the first two CPUs this process may run on, in
/// ascending order (producer, consumer). `None` if pinning is off or fewer than two CPUs
/// are allowed.
pub fn pin_cpus() -> Option<(usize, usize)> {
    if std::env::var(PIN_ENV).is_ok_and(|v| v == "0") {
        return None;
    }
    // SAFETY: `cpu_set_t` is plain data; the all-zero value is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a writable `cpu_set_t` of the size passed.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0
    {
        return None;
    }
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `CPU_ISSET` reads the set at an index below its capacity.
    let mut cpus = (0..max).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) });
    Some((cpus.next()?, cpus.next()?))
}

/// Pins the calling process to its side's CPU ([`pin_cpus`]); does nothing when pinning
/// is off. Called by each process of a two-process job, after the fork.
pub fn pin(side: Side) -> io::Result<()> {
    let Some((p, c)) = pin_cpus() else {
        return Ok(());
    };
    let cpu = if side == Side::Producer { p } else { c };
    // SAFETY: as above, the all-zero set is empty; `cpu` is below the set's capacity.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` comes from `pin_cpus`, below the set's capacity.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid `cpu_set_t` of the size passed; 0 is this process.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(errno_err(&format!("sched_setaffinity(CPU {cpu})")));
    }
    Ok(())
}

/// Reads every byte of `data` (their sum, wrapping): what a consumer does with a message
/// so that no system's reader gets away without touching the payload.
///
/// Fast enough (SSE2's sum of absolute differences, 64 bytes a step) that the sum costs
/// each system the same small share of its reader's time.
#[inline]
pub fn byte_sum(data: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_add_epi64, _mm_loadu_si128, _mm_sad_epu8, _mm_setzero_si128,
            _mm_storeu_si128,
        };
        let blocks = data.chunks_exact(64);
        let rest = blocks.remainder();
        // SAFETY: SSE2 is part of the x86_64 baseline, so these instructions exist on
        // every CPU this code runs on; each unaligned load reads 16 bytes inside a
        // 64-byte block of `data`, and the store writes the 16 bytes of `lanes`.
        let lanes = unsafe {
            let zero = _mm_setzero_si128();
            let mut acc = [zero; 4];
            for b in blocks {
                let p = b.as_ptr().cast::<__m128i>();
                for (k, a) in acc.iter_mut().enumerate() {
                    // Each 64-bit lane gains the sum of 8 bytes: never overflows.
                    *a = _mm_add_epi64(*a, _mm_sad_epu8(_mm_loadu_si128(p.add(k)), zero));
                }
            }
            let all = _mm_add_epi64(_mm_add_epi64(acc[0], acc[1]), _mm_add_epi64(acc[2], acc[3]));
            let mut lanes = [0u64; 2];
            _mm_storeu_si128(lanes.as_mut_ptr().cast::<__m128i>(), all);
            lanes
        };
        lanes[0] + lanes[1] + byte_sum_plain(rest)
    }
    #[cfg(not(target_arch = "x86_64"))]
    byte_sum_plain(data)
}

/// [`byte_sum`] a byte at a time (in 64 KiB blocks, whose sums fit a u32).
fn byte_sum_plain(data: &[u8]) -> u64 {
    data.chunks(1 << 16)
        .map(|b| b.iter().map(|&x| x as u32).sum::<u32>() as u64)
        .fold(0u64, u64::wrapping_add)
}

pub fn cstring(s: &str) -> CString {
    CString::new(s).expect("no NUL in names")
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for all processes of the machine, so a
/// writer's start and a reader's end can be subtracted.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn errno_err(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

pub fn other(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// A pipe pair `(read, write)` without `O_CLOEXEC` problems: both ends are plain
/// `File`s; children are made by `fork`, so close-on-exec does not matter.
pub fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(errno_err("pipe2"));
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// A connected Unix stream socket pair.
pub fn socketpair() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(errno_err("socketpair"));
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// One side of a control channel between a job and its forked child: u64 messages.
pub struct Ctl {
    r: File,
    w: File,
}

impl Ctl {
    /// Two connected ends.
    pub fn pair() -> io::Result<(Ctl, Ctl)> {
        let (r1, w1) = pipe()?;
        let (r2, w2) = pipe()?;
        Ok((Ctl { r: r1, w: w2 }, Ctl { r: r2, w: w1 }))
    }

    pub fn fds(&self) -> [RawFd; 2] {
        [self.r.as_raw_fd(), self.w.as_raw_fd()]
    }

    pub fn send(&mut self, v: &[u64]) -> io::Result<()> {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_ne_bytes()).collect();
        self.w.write_all(&bytes)
    }

    pub fn recv<const N: usize>(&mut self) -> io::Result<[u64; N]> {
        let mut out = [0u64; N];
        for x in out.iter_mut() {
            let mut b = [0u8; 8];
            self.r
                .read_exact(&mut b)
                .map_err(|e| other(format!("peer process gone: {e}")))?;
            *x = u64::from_ne_bytes(b);
        }
        Ok(out)
    }
}

/// A forked child process, to be waited for.
pub struct Child {
    pid: libc::pid_t,
}

/// Forks; the child closes `close_in_child` (the parent's ends), runs `f` and exits
/// with 0 on success (never returning into the caller's code). The closure, and what it
/// owns, is dropped in the parent. The child dies with the parent (`PR_SET_PDEATHSIG`).
/// Call only while this process is single-threaded.
pub fn fork_child<F: FnOnce() -> io::Result<()>>(
    close_in_child: &[RawFd],
    f: F,
) -> io::Result<Child> {
    io::stdout().flush()?;
    io::stderr().flush()?;
    // Fix the job's pid before the fork, so the child names its objects after the job.
    job_pid();
    // SAFETY: the job processes are single-threaded, so the child may run arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(errno_err("fork"));
    }
    if pid == 0 {
        // SAFETY: plain syscalls on our own process and descriptors we own a copy of.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            for &fd in close_in_child {
                libc::close(fd);
            }
        }
        let code = match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(())) => 0,
            Ok(Err(e)) => {
                eprintln!("fshm-bench child: {e}");
                1
            }
            Err(_) => 2,
        };
        let _ = io::stderr().flush();
        // SAFETY: ends the child without running the parent's destructors (which would,
        // e.g., close the parent's streams a second time).
        unsafe { libc::_exit(code) };
    }
    Ok(Child { pid })
}

impl Child {
    pub fn wait(self) -> io::Result<()> {
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is writable.
        let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
        if r < 0 {
            return Err(errno_err("waitpid"));
        }
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Ok(())
        } else {
            Err(other(format!("child process failed (status {status:#x})")))
        }
    }
}

/// The test data: byte `i` of every stream is `PATTERN[i % PERIOD]`. The period is
/// prime, so it divides no chunk size and a misplaced chunk shows.
pub const PERIOD: usize = 65521;

pub struct Pattern {
    src: Vec<u8>,
}

impl Pattern {
    /// Covers chunks up to `max_chunk` bytes.
    pub fn new(max_chunk: usize) -> Pattern {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let table: Vec<u8> = (0..PERIOD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let src = (0..PERIOD + max_chunk).map(|i| table[i % PERIOD]).collect();
        Pattern { src }
    }

    /// The `n` bytes at stream position `pos`.
    pub fn at(&self, pos: u64, n: usize) -> &[u8] {
        let o = (pos % PERIOD as u64) as usize;
        &self.src[o..o + n]
    }

    fn byte(&self, pos: u64) -> u8 {
        self.src[(pos % PERIOD as u64) as usize]
    }

    /// [`byte_sum`] of the first `bytes` bytes of the stream.
    pub fn sum_to(&self, bytes: u64) -> u64 {
        let period = byte_sum(&self.src[..PERIOD]);
        let rest = byte_sum(&self.src[..(bytes % PERIOD as u64) as usize]);
        (bytes / PERIOD as u64)
            .wrapping_mul(period)
            .wrapping_add(rest)
    }
}

/// Checks what a reader receives: the byte count, and each piece's first and last byte
/// plus one byte per 4 KiB of stream position (cheap, so it does not slow the reader,
/// yet a lost, repeated or misplaced piece is caught).
pub struct Verifier<'a> {
    pub pat: &'a Pattern,
    pub pos: u64,
    pub bad: u64,
}

impl<'a> Verifier<'a> {
    pub fn new(pat: &'a Pattern) -> Self {
        Verifier {
            pat,
            pos: 0,
            bad: 0,
        }
    }

    #[inline]
    pub fn piece(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let n = data.len() as u64;
        let mut bad = (data[0] != self.pat.byte(self.pos)) as u64;
        bad += (data[data.len() - 1] != self.pat.byte(self.pos + n - 1)) as u64;
        let mut p = self.pos.next_multiple_of(4096);
        while p < self.pos + n {
            bad += (data[(p - self.pos) as usize] != self.pat.byte(p)) as u64;
            p += 4096;
        }
        self.bad += bad;
        self.pos += n;
    }

    /// Ok if exactly `expected` bytes arrived and every checked byte matched.
    pub fn check(&self, expected: u64) -> io::Result<()> {
        if self.pos != expected || self.bad != 0 {
            return Err(other(format!(
                "data check failed: {} of {expected} bytes arrived, {} wrong bytes seen",
                self.pos, self.bad
            )));
        }
        Ok(())
    }
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// The `q` quantile (0..=1) by nearest rank.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    s[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sum_reads_every_byte() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let plain: u64 = data.iter().map(|&b| b as u64).sum();
        assert_eq!(byte_sum(&data), plain);
        for cut in [0, 1, 63, 64, 65, 1000] {
            assert_eq!(
                byte_sum(&data[cut..]),
                byte_sum_plain(&data[cut..]),
                "from {cut}"
            );
        }
        let mut changed = data.clone();
        changed[150_000] ^= 1;
        assert_ne!(byte_sum(&changed), plain);
        assert_eq!(byte_sum(&[]), 0);
    }

    #[test]
    fn pattern_sum_matches_the_bytes_across_periods() {
        let chunk = 4096;
        let pat = Pattern::new(chunk);
        for bytes in [
            0,
            1,
            4096,
            PERIOD as u64 - 1,
            PERIOD as u64,
            3 * PERIOD as u64 + 17,
        ] {
            let mut sum = 0u64;
            let mut pos = 0u64;
            while pos < bytes {
                let n = (bytes - pos).min(chunk as u64) as usize;
                sum += byte_sum(pat.at(pos, n));
                pos += n as u64;
            }
            assert_eq!(pat.sum_to(bytes), sum, "{bytes} bytes");
        }
    }

    #[test]
    fn pin_cpus_are_two_distinct_allowed_cpus_or_none() {
        if std::env::var(PIN_ENV).is_ok_and(|v| v == "0") {
            assert_eq!(pin_cpus(), None, "pinning is off");
        } else if let Some((p, c)) = pin_cpus() {
            assert!(p < c, "producer CPU {p} before consumer CPU {c}");
        } else {
            assert!(std::thread::available_parallelism().map_or(1, |n| n.get()) < 2);
        }
    }
}
