//! zerocopy-bench: ring streaming between two processes with the copying API
//! (`write_all` / `Follower::read`) against the in-place API (`Stream::reserve` /
//! `BufRead::fill_buf`), beside a single-thread memcpy ceiling.
//!
//! ```text
//! cargo run --release -p fshm-bench --bin zerocopy-bench            # 5 runs, 2 GiB each
//! cargo run --release -p fshm-bench --bin zerocopy-bench -- --reps 3 --mib 64
//! ```
//!
//! `copy` is the API as it was: `write_all`, and a [`fshm::Follower`] reading into a
//! 1 MiB buffer; `in-place` is `reserve` and a [`fshm::FollowerMut`]'s `fill_buf`.
//! Both sides touch every byte in every mode: the producer writes each byte of a
//! message (a fill, into its own buffer for `copy`, into the reservation for
//! `in-place`), the consumer reads each byte (a sum, over its read buffer for `copy`,
//! over the lent bytes for `in-place`) and the sums are checked at the end. The ring is
//! lossless, 16 MiB, the reader attached before the writer starts; MB/s = bytes /
//! (reader done − writer start). Runs of the modes interleave; the median is printed.
//! The writer and the reader are pinned to separate CPUs, and the reader's sum is
//! `fshm-bench`'s (SSE2), as in its other streaming jobs; `FSHM_BENCH_PIN=0` turns
//! pinning off. A run streams enough (2 GiB by default) that the ring's first pass
//! through fresh pages does not weigh on it.

use std::io::{self, BufRead, Read, Write};
use std::time::Instant;

/// The jobs' shared plumbing: the SSE2 byte sum, CPU pinning, the clock, pipes.
#[allow(dead_code)]
#[path = "../util.rs"]
mod util;
use util::{byte_sum, median, now_ns, pin, pipe, Side};

const RING: u64 = 16 << 20;
const MIB: u64 = 1 << 20;

/// The byte value of message `i` (never 0, so a missing byte changes the sum).
fn fill_of(i: u64) -> u8 {
    (i % 251) as u8 + 1
}

/// The sum of every byte of `bytes` streamed in `chunk`-byte messages.
fn expected_sum(chunk: u64, bytes: u64) -> u64 {
    let mut sum = 0u64;
    let mut pos = 0;
    let mut i = 0;
    while pos < bytes {
        let n = chunk.min(bytes - pos);
        sum = sum.wrapping_add(u64::from(fill_of(i)) * n);
        pos += n;
        i += 1;
    }
    sum
}

/// One streaming run; returns MB/s.
fn run(in_place: bool, chunk: u64, bytes: u64) -> io::Result<f64> {
    let name = format!("/fshm-bench-zc-{}", std::process::id());
    let mut w = fshm::OpenOptions::new()
        .ring(RING, fshm::RingPolicy::Lossless)
        .create(&name)?;
    let (mut from_child, mut to_parent) = pipe()?;
    // SAFETY: the child only runs the reader below and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let r = (|| -> io::Result<[u64; 3]> {
            pin(Side::Consumer)?;
            let mut s = fshm::Stream::open(&name)?;
            to_parent.write_all(&[1])?; // attached
            let (mut sum, mut got) = (0u64, 0u64);
            if in_place {
                let mut f = s.follow_mut();
                loop {
                    let buf = f.fill_buf()?;
                    if buf.is_empty() {
                        break;
                    }
                    sum = sum.wrapping_add(byte_sum(buf));
                    let n = buf.len();
                    got += n as u64;
                    f.consume(n);
                }
            } else {
                let mut f = s.follow();
                let mut buf = vec![1u8; (1 << 20).max(chunk as usize)];
                loop {
                    let n = f.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    sum = sum.wrapping_add(byte_sum(&buf[..n]));
                    got += n as u64;
                }
            }
            Ok([now_ns(), got, sum])
        })();
        let code = match r {
            Ok(v) => {
                let mut out = Vec::new();
                for x in v {
                    out.extend_from_slice(&x.to_le_bytes());
                }
                i32::from(to_parent.write_all(&out).is_err())
            }
            Err(_) => 1,
        };
        // SAFETY: leaves the forked child at once.
        unsafe { libc::_exit(code) };
    }
    drop(to_parent);
    pin(Side::Producer)?;
    let mut one = [0u8; 1];
    from_child.read_exact(&mut one)?;
    let start = now_ns();
    let mut own = vec![0u8; chunk as usize];
    let (mut pos, mut i) = (0u64, 0u64);
    while pos < bytes {
        let n = chunk.min(bytes - pos) as usize;
        if in_place {
            let mut r = w.reserve(n)?;
            r.fill(fill_of(i));
            r.commit_all()?;
        } else {
            own[..n].fill(fill_of(i));
            w.write_all(&own[..n])?;
        }
        pos += n as u64;
        i += 1;
    }
    drop(w); // ends the reader's follow
    let mut report = [0u8; 24];
    from_child.read_exact(&mut report)?;
    let mut st = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    let field = |k: usize| u64::from_le_bytes(report[8 * k..8 * k + 8].try_into().unwrap());
    let (end, got, sum) = (field(0), field(1), field(2));
    if got != bytes || sum != expected_sum(chunk, bytes) {
        return Err(io::Error::other(format!(
            "reader got {got} bytes (want {bytes}), sum {sum} (want {})",
            expected_sum(chunk, bytes)
        )));
    }
    Ok(bytes as f64 / ((end - start) as f64 / 1e9) / 1e6)
}

/// Single-thread ceiling: fill a private buffer and copy it into a ring-sized buffer.
fn memcpy(chunk: u64, bytes: u64) -> f64 {
    let cap = RING as usize;
    let mut dst = vec![1u8; cap + chunk as usize];
    let mut own = vec![0u8; chunk as usize];
    let t = Instant::now();
    let (mut pos, mut i) = (0u64, 0u64);
    while pos < bytes {
        let n = chunk.min(bytes - pos) as usize;
        own[..n].fill(fill_of(i));
        let o = (pos % cap as u64) as usize;
        dst[o..o + n].copy_from_slice(&own[..n]);
        std::hint::black_box(&mut dst);
        pos += n as u64;
        i += 1;
    }
    bytes as f64 / t.elapsed().as_secs_f64() / 1e6
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |flag: &str, default: u64| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let reps = arg("--reps", 5) as usize;
    let mib = arg("--mib", 2048);
    println!("ring streaming, 16 MiB lossless ring, median of {reps} interleaved runs (MB/s)");
    println!("| message | copy | in place | in place / copy | memcpy | in place / memcpy |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for chunk in [64, 4 << 10, 64 << 10, MIB] {
        let bytes = if chunk == 64 {
            mib * MIB / 8
        } else {
            mib * MIB
        };
        // One warm-up pass of each mode, then interleaved runs.
        run(false, chunk, bytes / 4)?;
        run(true, chunk, bytes / 4)?;
        let (mut copy, mut inplace, mut ceil) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            copy.push(run(false, chunk, bytes)?);
            inplace.push(run(true, chunk, bytes)?);
            ceil.push(memcpy(chunk, bytes));
        }
        let (c, p, m) = (median(&copy), median(&inplace), median(&ceil));
        let size = match chunk {
            c if c >= MIB => format!("{} MiB", c / MIB),
            c if c >= 1024 => format!("{} KiB", c / 1024),
            c => format!("{c} B"),
        };
        println!(
            "| {size} | {c:.0} | {p:.0} | {:.2}× | {m:.0} | {:.2} |",
            p / c,
            p / m
        );
    }
    Ok(())
}
