//! The measurements. Each job runs in its own process (started by the orchestrator with
//! a hidden `--role` argument) and forks the peer processes it needs; it returns its
//! figures, which `main` prints as one `RESULT` line.

use crate::util::*;
use fshm::{OpenOptions, RingPolicy, Stream};
use shmfile::{fshm_open, fshm_open_ex, FshmOptions, FSHM_BLOCK, FSHM_GUEST, FSHM_OWNER};
use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::time::Instant;

/// Capacity of the lossless rings of the streaming benchmark.
pub const RING_CAPACITY: u64 = 16 << 20;
/// Capacity of each ring of the ping-pong benchmark.
pub const PP_RING_CAPACITY: u64 = 64 << 10;
/// Buffer of the Rust and fd readers.
const READ_BUF: usize = 1 << 20;
/// `MADV_POPULATE_WRITE` (Linux 5.14), not in the `libc` crate yet.
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// Streaming channels, in table order.
pub const STREAM_KINDS: &[(&str, &str)] = &[
    ("ring-rust", "fshm ring, Rust API (16 MiB, lossless)"),
    ("ring-file", "fshm ring, `FILE*` (16 MiB, lossless)"),
    ("linear", "fshm linear stream, follow mode"),
    ("pipe", "pipe"),
    ("pipe1m", "pipe, F_SETPIPE_SZ 1 MiB"),
    ("socket", "Unix socketpair"),
    ("pipe-file", "pipe through `FILE*` (fdopen)"),
    ("socket-file", "socketpair through `FILE*` (fdopen)"),
    ("memcpy", "ceiling: memcpy into a 16 MiB buffer, one thread"),
    (
        "fresh",
        "ceiling: fresh pages (new shm, fallocate + populate + memcpy)",
    ),
];

pub fn run(args: &[String]) -> io::Result<Vec<f64>> {
    let kind = args.first().map(String::as_str).unwrap_or("");
    let num = |i: usize| -> io::Result<u64> {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| other(format!("job {kind}: argument {i} missing or not a number")))
    };
    match kind {
        "memcpy" => memcpy_job(num(1)? as usize, num(2)?),
        "fresh" => fresh_job(num(1)? as usize, num(2)?),
        "solo-ring" | "solo-linear" => solo_job(kind, num(1)? as usize, num(2)?),
        // Diagnostic: an optional third number is the ring capacity of `ring-sum` and
        // `ring-inplace`.
        "ring-sum" | "ring-inplace" if args.len() > 3 => {
            stream_job_with(kind, num(1)? as usize, num(2)?, num(3)?)
        }
        k if k == "ring-sum"
            || k == "ring-inplace"
            || STREAM_KINDS.iter().any(|(s, _)| *s == k) =>
        {
            stream_job(k, num(1)? as usize, num(2)?)
        }
        #[cfg(feature = "iceoryx2")]
        "iox2-stream" => crate::iox::stream_job(num(1)? as usize, num(2)?),
        #[cfg(feature = "iceoryx2")]
        "pp-iox2-spin" | "pp-iox2-event" => {
            crate::iox::pingpong_job(kind == "pp-iox2-event", num(1)?)
        }
        "wtr-fshm" | "wtr-stdio" => wtr_job(kind == "wtr-fshm", num(1)? as usize, num(2)?),
        "pp-spin" | "pp-nospin" | "pp-pipe" | "pp-socket" => pingpong_job(kind, num(1)?),
        k if k.starts_with("open-") => open_job(k, num(1)?),
        "copy-shared" | "copy-stable" => crate::copy_cost::run(kind, num(1)? as usize),
        "copy-write" => crate::copy_cost::write(num(1)? as usize, num(2)?),
        #[cfg(feature = "async")]
        k if k.starts_with("async-") => crate::async_jobs::run(k, num),
        k if k.starts_with("ev-") => crate::event_jobs::run(k, num),
        _ => Err(other(format!("unknown job {kind:?}"))),
    }
}

/// Ok if `sum` is the [`byte_sum`] of the first `bytes` bytes of the pattern.
pub fn check_sum(pat: &Pattern, bytes: u64, sum: u64) -> io::Result<()> {
    let want = pat.sum_to(bytes);
    if sum != want {
        return Err(other(format!(
            "data check failed: the reader's byte sum is {sum}, the data's is {want}"
        )));
    }
    Ok(())
}

pub fn mbps(bytes: u64, ns: u64) -> f64 {
    bytes as f64 * 1e3 / ns.max(1) as f64
}

// ---------------------------------------------------------------- FILE* helpers

struct CFile(*mut libc::FILE);

impl CFile {
    fn check(f: *mut libc::FILE, what: &str) -> io::Result<CFile> {
        if f.is_null() {
            Err(errno_err(what))
        } else {
            Ok(CFile(f))
        }
    }

    fn fdopen(fd: File, mode: &str) -> io::Result<CFile> {
        let m = cstring(mode);
        let raw = fd.into_raw_fd();
        // SAFETY: `raw` is an open descriptor whose ownership passes to the FILE.
        CFile::check(unsafe { libc::fdopen(raw, m.as_ptr()) }, "fdopen")
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // SAFETY: `self.0` is an open FILE; `buf` is readable for its length.
        let n = unsafe { libc::fwrite(buf.as_ptr().cast(), 1, buf.len(), self.0) };
        if n != buf.len() {
            return Err(errno_err("fwrite"));
        }
        Ok(())
    }

    /// `fread` of up to `buf.len()` bytes; 0 at end of file.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `self.0` is an open FILE; `buf` is writable for its length.
        let n = unsafe { libc::fread(buf.as_mut_ptr().cast(), 1, buf.len(), self.0) };
        // SAFETY: `self.0` is an open FILE.
        if n == 0 && unsafe { libc::ferror(self.0) } != 0 {
            return Err(errno_err("fread"));
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // SAFETY: `self.0` is an open FILE.
        if unsafe { libc::fflush(self.0) } != 0 {
            return Err(errno_err("fflush"));
        }
        Ok(())
    }

    fn close(mut self) -> io::Result<()> {
        let f = std::mem::replace(&mut self.0, std::ptr::null_mut());
        // SAFETY: `f` is an open FILE, closed exactly once (Drop sees null).
        if unsafe { libc::fclose(f) } != 0 {
            return Err(errno_err("fclose"));
        }
        Ok(())
    }
}

impl Drop for CFile {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: an open FILE not closed yet.
            unsafe { libc::fclose(self.0) };
        }
    }
}

fn fshm_owner_file(name: &str, ring: u64, max_size: u64) -> io::Result<CFile> {
    let c = cstring(name);
    let opts = FshmOptions {
        size: std::mem::size_of::<FshmOptions>(),
        max_size,
        ring_capacity: ring,
        ring_policy: shmfile::FSHM_RING_LOSSLESS,
        check_owner: 0,
        owner_uid: 0,
    };
    // SAFETY: `c` is NUL-terminated; `opts` is a complete options struct.
    let f = unsafe { fshm_open_ex(c.as_ptr(), 0o600, FSHM_OWNER, &opts) };
    CFile::check(f, "fshm_open_ex (owner)")
}

fn fshm_guest_file(name: &str, flags: libc::c_int) -> io::Result<CFile> {
    let c = cstring(name);
    // SAFETY: `c` is NUL-terminated.
    let f = unsafe { fshm_open(c.as_ptr(), 0, FSHM_GUEST | flags) };
    CFile::check(f, "fshm_open (guest)")
}

// ---------------------------------------------------------------- streaming

enum Writer {
    Rust(Box<Stream>),
    CFile(CFile),
    Fd(File),
}

impl Writer {
    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Writer::Rust(s) => s.write_all(b),
            Writer::CFile(f) => f.write_all(b),
            Writer::Fd(f) => f.write_all(b),
        }
    }

    fn close(self) -> io::Result<()> {
        match self {
            Writer::Rust(s) => {
                drop(s);
                Ok(())
            }
            Writer::CFile(f) => f.close(),
            Writer::Fd(f) => {
                drop(f);
                Ok(())
            }
        }
    }
}

/// Concurrent streaming of `bytes` in `chunk`-byte writes from this process to a forked
/// reader. MB/s = bytes / (reader done − writer start). Writer and reader are pinned to
/// separate CPUs ([`pin`]). Kind `ring-sum` is `ring-rust` whose reader also reads every
/// byte it receives ([`byte_sum`], checked against the pattern's sum): the fshm side of
/// the comparison with iceoryx2, through the copying API; `ring-inplace` is the same
/// through the in-place API (`Stream::reserve` + `commit_all`, one copy into the ring;
/// a `FollowerMut`'s `fill_buf` + `consume`, the sum read in the ring).
fn stream_job(kind: &str, chunk: usize, bytes: u64) -> io::Result<Vec<f64>> {
    stream_job_with(kind, chunk, bytes, RING_CAPACITY)
}

/// [`stream_job`] with rings of `ring` bytes.
fn stream_job_with(kind: &str, chunk: usize, bytes: u64, ring: u64) -> io::Result<Vec<f64>> {
    let name = shm_name("stream");
    let pat = Pattern::new(chunk);
    let (mut ctl, peer) = Ctl::pair()?;
    // Channel ends for the fd kinds: (reader's, writer's).
    let fds: Option<(File, File)> = match kind {
        "pipe" | "pipe-file" => Some(pipe()?),
        "pipe1m" => {
            let (r, w) = pipe()?;
            // SAFETY: `w` is an open pipe descriptor.
            if unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) } < 0 {
                return Err(errno_err("F_SETPIPE_SZ"));
            }
            Some((r, w))
        }
        "socket" | "socket-file" => Some(socketpair()?),
        _ => None,
    };
    let (rfd, wfd) = match fds {
        Some((r, w)) => (Some(r), Some(w)),
        None => (None, None),
    };
    let mut close_in_child: Vec<RawFd> = ctl.fds().to_vec();
    close_in_child.extend(wfd.as_ref().map(|w| w.as_raw_fd()));

    let child = {
        let pat = &pat;
        let name = name.clone();
        let kind = kind.to_string();
        fork_child(&close_in_child, move || {
            pin(Side::Consumer)?;
            let mut ctl = peer;
            ctl.recv::<1>()?; // the stream exists
            let mut v = Verifier::new(pat);
            let mut sum = 0u64;
            let mut buf = vec![0u8; READ_BUF.max(chunk)];
            // Touch the buffer so its first faults are not timed.
            buf.fill(1);
            match kind.as_str() {
                "ring-inplace" => {
                    let mut s = Stream::open(&name)?;
                    ctl.send(&[1])?;
                    let mut f = s.follow_mut();
                    loop {
                        let data = f.fill_buf()?;
                        if data.is_empty() {
                            break;
                        }
                        sum = sum.wrapping_add(byte_sum(data));
                        v.piece(data);
                        let n = data.len();
                        f.consume(n);
                    }
                }
                "ring-rust" | "linear" | "ring-sum" => {
                    let s = Stream::open(&name)?;
                    ctl.send(&[1])?;
                    let mut f = s.follow();
                    let touch = kind == "ring-sum";
                    loop {
                        let n = f.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        if touch {
                            sum = sum.wrapping_add(byte_sum(&buf[..n]));
                        }
                        v.piece(&buf[..n]);
                    }
                }
                "ring-file" => {
                    let mut f = fshm_guest_file(&name, FSHM_BLOCK)?;
                    ctl.send(&[1])?;
                    loop {
                        let n = f.read(&mut buf[..chunk])?;
                        if n == 0 {
                            break;
                        }
                        v.piece(&buf[..n]);
                    }
                    f.close()?;
                }
                "pipe-file" | "socket-file" => {
                    let mut f = CFile::fdopen(rfd.expect("fd kind"), "r")?;
                    ctl.send(&[1])?;
                    loop {
                        let n = f.read(&mut buf[..chunk])?;
                        if n == 0 {
                            break;
                        }
                        v.piece(&buf[..n]);
                    }
                }
                _ => {
                    let mut f = rfd.expect("fd kind");
                    ctl.send(&[1])?;
                    loop {
                        let n = f.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        v.piece(&buf[..n]);
                    }
                }
            }
            let end = now_ns();
            ctl.send(&[end, v.pos, v.bad, sum])
        })?
    };

    let result = (|| -> io::Result<Vec<f64>> {
        pin(Side::Producer)?;
        let mut w = match kind {
            "ring-rust" | "ring-sum" | "ring-inplace" => Writer::Rust(Box::new(
                OpenOptions::new()
                    .ring(ring, RingPolicy::Lossless)
                    .create(&name)?,
            )),
            "linear" => Writer::Rust(Box::new(
                OpenOptions::new()
                    .max_size((bytes + (1 << 20)).next_multiple_of(1 << 20).max(1 << 30))
                    .create(&name)?,
            )),
            "ring-file" => Writer::CFile(fshm_owner_file(&name, ring, 0)?),
            "pipe-file" | "socket-file" => {
                Writer::CFile(CFile::fdopen(wfd.expect("fd kind"), "w")?)
            }
            _ => Writer::Fd(wfd.expect("fd kind")),
        };
        ctl.send(&[1])?;
        ctl.recv::<1>()?; // the reader is attached
        let start = now_ns();
        let mut pos = 0u64;
        while pos < bytes {
            let n = (bytes - pos).min(chunk as u64) as usize;
            match &mut w {
                Writer::Rust(s) if kind == "ring-inplace" => {
                    let mut r = s.reserve(n)?;
                    r.copy_from_slice(pat.at(pos, n));
                    r.commit_all()?;
                }
                _ => w.write_all(pat.at(pos, n))?,
            }
            pos += n as u64;
        }
        w.close()?;
        let [end, got, bad, sum] = ctl.recv::<4>()?;
        let v = Verifier {
            pat: &pat,
            pos: got,
            bad,
        };
        v.check(bytes)?;
        if kind == "ring-sum" || kind == "ring-inplace" {
            check_sum(&pat, bytes, sum)?;
        }
        Ok(vec![mbps(bytes, end.saturating_sub(start))])
    })();
    let waited = child.wait();
    let r = result?;
    waited?;
    Ok(r)
}

/// Diagnostic (not in the tables): the writer alone, no reader, `write_all` per chunk
/// into a 16 MiB ring (lossless, nobody attached) or a linear stream. Shows the fixed
/// cost of one write through the Rust API.
fn solo_job(kind: &str, chunk: usize, bytes: u64) -> io::Result<Vec<f64>> {
    let pat = Pattern::new(chunk);
    let name = shm_name("solo");
    let mut s = if kind == "solo-ring" {
        OpenOptions::new()
            .ring(RING_CAPACITY, RingPolicy::Lossless)
            .create(&name)?
    } else {
        OpenOptions::new()
            .max_size((bytes + (1 << 20)).next_multiple_of(1 << 20).max(1 << 30))
            .create(&name)?
    };
    let t = Instant::now();
    let mut pos = 0u64;
    while pos < bytes {
        let n = (bytes - pos).min(chunk as u64) as usize;
        s.write_all(pat.at(pos, n))?;
        pos += n as u64;
    }
    let ns = t.elapsed().as_nanos() as u64;
    Ok(vec![mbps(bytes, ns)])
}

/// Ceiling: one thread copies `bytes` in `chunk` pieces into a ring-sized buffer.
fn memcpy_job(chunk: usize, bytes: u64) -> io::Result<Vec<f64>> {
    let pat = Pattern::new(chunk);
    let cap = RING_CAPACITY as usize;
    let mut dst = vec![1u8; cap + chunk];
    let t = Instant::now();
    let mut pos = 0u64;
    while pos < bytes {
        let n = (bytes - pos).min(chunk as u64) as usize;
        let o = (pos % cap as u64) as usize;
        dst[o..o + n].copy_from_slice(pat.at(pos, n));
        std::hint::black_box(&mut dst);
        pos += n as u64;
    }
    let ns = t.elapsed().as_nanos() as u64;
    std::hint::black_box(&dst);
    Ok(vec![mbps(bytes, ns)])
}

/// Ceiling for writing fresh shared pages: a new shm object, fallocate, populate, copy.
fn fresh_job(chunk: usize, bytes: u64) -> io::Result<Vec<f64>> {
    let pat = Pattern::new(chunk);
    let name = shm_name("fresh");
    let c = cstring(&name);
    let t = Instant::now();
    // SAFETY: `c` is NUL-terminated.
    let fd = unsafe {
        libc::shm_open(
            c.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
            0o600,
        )
    };
    if fd < 0 {
        return Err(errno_err("shm_open"));
    }
    let r = (|| {
        // SAFETY: `fd` is our new shm object.
        if unsafe { libc::fallocate(fd, 0, 0, bytes as libc::off_t) } != 0 {
            return Err(errno_err("fallocate"));
        }
        // SAFETY: maps `bytes` of the object we just sized; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(errno_err("mmap"));
        }
        // SAFETY: `p` maps `bytes` bytes.
        if unsafe { libc::madvise(p, bytes as usize, MADV_POPULATE_WRITE) } != 0 {
            let e = errno_err("madvise(MADV_POPULATE_WRITE)");
            // SAFETY: unmaps our own mapping.
            unsafe { libc::munmap(p, bytes as usize) };
            return Err(e);
        }
        let mut pos = 0u64;
        while pos < bytes {
            let n = (bytes - pos).min(chunk as u64) as usize;
            let src = pat.at(pos, n);
            // SAFETY: `pos + n <= bytes`, inside the mapping; `src` does not overlap it.
            unsafe {
                std::ptr::copy_nonoverlapping(src.as_ptr(), (p as *mut u8).add(pos as usize), n)
            };
            pos += n as u64;
        }
        let ns = t.elapsed().as_nanos() as u64;
        // SAFETY: unmaps our own mapping.
        unsafe { libc::munmap(p, bytes as usize) };
        Ok(vec![mbps(bytes, ns)])
    })();
    // SAFETY: our descriptor and our name.
    unsafe {
        libc::close(fd);
        libc::shm_unlink(c.as_ptr());
    }
    r
}

// ---------------------------------------------------------------- write then read

/// `fwrite` `bytes` in `chunk` pieces to a new fshm owner stream (or a new /dev/shm file
/// with stdio), `fflush`; then a new process reads it all with `fread(chunk)`; then another
/// new process reads it again. Returns [write MB/s, read MB/s, re-read MB/s].
fn wtr_job(fshm: bool, chunk: usize, bytes: u64) -> io::Result<Vec<f64>> {
    let pat = Pattern::new(chunk);
    let name = shm_name("wtr");
    let path = format!("/dev/shm{name}");
    let mut children = Vec::new();
    let mut ctls = Vec::new();
    for _ in 0..2 {
        let (me, peer) = Ctl::pair()?;
        let mut close: Vec<RawFd> = me.fds().to_vec();
        for c in &ctls {
            close.extend(Ctl::fds(c));
        }
        let (pat, name, path) = (&pat, name.clone(), path.clone());
        children.push(fork_child(&close, move || {
            let mut ctl = peer;
            ctl.recv::<1>()?;
            let mut buf = vec![1u8; chunk];
            let mut v = Verifier::new(pat);
            let t = Instant::now();
            let mut f = if fshm {
                fshm_guest_file(&name, 0)?
            } else {
                let p = cstring(&path);
                // SAFETY: NUL-terminated path and mode.
                CFile::check(unsafe { libc::fopen(p.as_ptr(), c"r".as_ptr()) }, "fopen")?
            };
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                v.piece(&buf[..n]);
            }
            f.close()?;
            let ns = t.elapsed().as_nanos() as u64;
            ctl.send(&[ns, v.pos, v.bad])
        })?);
        ctls.push(me);
    }
    let result = (|| -> io::Result<Vec<f64>> {
        let t = Instant::now();
        let mut w = if fshm {
            fshm_owner_file(&name, 0, (bytes + (1 << 20)).max(1 << 30))?
        } else {
            let p = cstring(&path);
            // SAFETY: NUL-terminated path and mode.
            CFile::check(unsafe { libc::fopen(p.as_ptr(), c"w".as_ptr()) }, "fopen")?
        };
        let mut pos = 0u64;
        while pos < bytes {
            let n = (bytes - pos).min(chunk as u64) as usize;
            w.write_all(pat.at(pos, n))?;
            pos += n as u64;
        }
        w.flush()?;
        let write_ns = t.elapsed().as_nanos() as u64;
        let mut out = vec![mbps(bytes, write_ns)];
        for ctl in ctls.iter_mut() {
            ctl.send(&[1])?;
            let [ns, got, bad] = ctl.recv::<3>()?;
            Verifier {
                pat: &pat,
                pos: got,
                bad,
            }
            .check(bytes)?;
            out.push(mbps(bytes, ns));
        }
        w.close()?;
        Ok(out)
    })();
    drop(ctls);
    let mut waited = Ok(());
    for c in children {
        waited = waited.and(c.wait());
    }
    if !fshm {
        let _ = std::fs::remove_file(&path);
    }
    let r = result?;
    waited?;
    Ok(r)
}

// ---------------------------------------------------------------- ping-pong

/// 8-byte messages bounced `trips` times between this process and a forked one, pinned
/// to separate CPUs ([`pin`]). Returns [median µs, p99 µs] per round trip.
fn pingpong_job(kind: &str, trips: u64) -> io::Result<Vec<f64>> {
    let spin = if kind == "pp-spin" {
        fshm::DEFAULT_SPIN
    } else {
        std::time::Duration::ZERO
    };
    let fshm = kind == "pp-spin" || kind == "pp-nospin";
    let (ab, ba) = (shm_name("ab"), shm_name("ba"));
    let (mut ctl, peer) = Ctl::pair()?;
    // fd channels: (a→b read, a→b write), (b→a read, b→a write).
    let (ch_ab, ch_ba) = match kind {
        "pp-pipe" => (Some(pipe()?), Some(pipe()?)),
        "pp-socket" => {
            let (a, b) = socketpair()?;
            let (a2, b2) = (a.try_clone()?, b.try_clone()?);
            // a writes to b through `a`, b writes back through `b`.
            (Some((b, a)), Some((a2, b2)))
        }
        _ => (None, None),
    };
    let (ab_r, ab_w) = ch_ab.map_or((None, None), |(r, w)| (Some(r), Some(w)));
    let (ba_r, ba_w) = ch_ba.map_or((None, None), |(r, w)| (Some(r), Some(w)));
    let mut close: Vec<RawFd> = ctl.fds().to_vec();
    close.extend(ab_w.as_ref().map(|f| f.as_raw_fd()));
    close.extend(ba_r.as_ref().map(|f| f.as_raw_fd()));
    let (ab2, ba2) = (ab.clone(), ba.clone());
    let child = fork_child(&close, move || {
        pin(Side::Consumer)?;
        let mut ctl = peer;
        let mut msg = [0u8; 8];
        if fshm {
            ctl.recv::<1>()?; // ab exists
            let own = OpenOptions::new()
                .ring(PP_RING_CAPACITY, RingPolicy::Lossless)
                .create(&ba2)?;
            let guest = Stream::open(&ab2)?;
            ctl.send(&[1])?;
            let mut f = guest.follow().spin(spin);
            let mut w = own;
            for i in 0..trips {
                f.read_exact(&mut msg)?;
                if u64::from_ne_bytes(msg) != i {
                    return Err(other("ping-pong: wrong message"));
                }
                w.write_all(&msg)?;
            }
            ctl.recv::<1>()?; // the other side is done with ba
        } else {
            let (mut r, mut w) = (ab_r.expect("fd kind"), ba_w.expect("fd kind"));
            ctl.send(&[1])?;
            for i in 0..trips {
                r.read_exact(&mut msg)?;
                if u64::from_ne_bytes(msg) != i {
                    return Err(other("ping-pong: wrong message"));
                }
                w.write_all(&msg)?;
            }
        }
        Ok(())
    })?;
    let result = (|| -> io::Result<Vec<f64>> {
        pin(Side::Producer)?;
        let mut times = Vec::with_capacity(trips as usize);
        let mut msg = [0u8; 8];
        let mut bounce = |w: &mut dyn Write, r: &mut dyn Read| -> io::Result<()> {
            for i in 0..trips {
                let t = Instant::now();
                w.write_all(&i.to_ne_bytes())?;
                r.read_exact(&mut msg)?;
                times.push(t.elapsed().as_nanos() as f64 / 1e3);
                if u64::from_ne_bytes(msg) != i {
                    return Err(other("ping-pong: wrong reply"));
                }
            }
            Ok(())
        };
        if fshm {
            let own = OpenOptions::new()
                .ring(PP_RING_CAPACITY, RingPolicy::Lossless)
                .create(&ab)?;
            ctl.send(&[1])?;
            ctl.recv::<1>()?; // ba exists, the child follows ab
            let guest = Stream::open(&ba)?;
            let mut f = guest.follow().spin(spin);
            let mut w = own;
            bounce(&mut w, &mut f)?;
            drop(guest);
            ctl.send(&[1])?;
        } else {
            let (mut w, mut r) = (ab_w.expect("fd kind"), ba_r.expect("fd kind"));
            ctl.recv::<1>()?;
            bounce(&mut w, &mut r)?;
        }
        Ok(vec![median(&times), quantile(&times, 0.99)])
    })();
    let waited = child.wait();
    let r = result?;
    waited?;
    Ok(r)
}

// ---------------------------------------------------------------- open + close

/// `iters` operations, each timed alone. Returns [median µs, p99 µs].
fn open_job(kind: &str, iters: u64) -> io::Result<Vec<f64>> {
    let name = shm_name("open");
    let c = cstring(&name);
    // Guest kinds open an existing stream, made once here.
    let _owner = if kind.contains("-guest-") || kind == "open-raw-open" {
        Some(Stream::create(&name)?)
    } else {
        None
    };
    let mut times = Vec::with_capacity(iters as usize);
    for _ in 0..iters {
        let t = Instant::now();
        match kind {
            "open-owner-rust" => drop(Stream::create(&name)?),
            "open-owner-c" => {
                // SAFETY: NUL-terminated name.
                let f = unsafe { fshm_open(c.as_ptr(), 0o600, FSHM_OWNER) };
                CFile::check(f, "fshm_open (owner)")?.close()?
            }
            "open-guest-rust" => drop(Stream::open(&name)?),
            "open-guest-c" => fshm_guest_file(&name, 0)?.close()?,
            "open-raw-create" => {
                // SAFETY: NUL-terminated name; the descriptor is closed at once.
                unsafe {
                    let fd = libc::shm_open(
                        c.as_ptr(),
                        libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
                        0o600,
                    );
                    if fd < 0 {
                        return Err(errno_err("shm_open"));
                    }
                    libc::close(fd);
                    libc::shm_unlink(c.as_ptr());
                }
            }
            "open-raw-open" => {
                // SAFETY: NUL-terminated name; the descriptor is closed at once.
                unsafe {
                    let fd = libc::shm_open(c.as_ptr(), libc::O_RDWR, 0);
                    if fd < 0 {
                        return Err(errno_err("shm_open"));
                    }
                    libc::close(fd);
                }
            }
            _ => return Err(other(format!("unknown job {kind}"))),
        }
        times.push(t.elapsed().as_nanos() as f64 / 1e3);
    }
    Ok(vec![median(&times), quantile(&times, 0.99)])
}
