//! What a ring read's copy costs by kind: an attached lossless reader's unconsumed bytes
//! are copied with `memcpy` (no writer touches them), a lossy or read-only reader's with
//! the per-byte-atomic shared copy (relaxed word loads), which a concurrent writer may
//! race. One process, a 16 MiB lossless ring written once, read whole 20 times by a new
//! handle of each kind, in `chunk`-byte reads.

use fshm::{OpenOptions, RingPolicy};
use std::io::{self, Read, Write};
use std::time::Instant;

/// `copy-shared` (read-only handle) or `copy-stable` (attached reader): MB/s.
pub fn run(kind: &str, chunk: usize) -> io::Result<Vec<f64>> {
    let cap: u64 = 16 << 20;
    let name = format!("/fshm-bench-{}-copy", std::process::id());
    let mut owner = OpenOptions::new()
        .ring(cap, RingPolicy::Lossless)
        .create(&name)?;
    owner.write_all(&vec![7u8; cap as usize])?;
    let mut buf = vec![0u8; chunk.max(1)];
    let read_only = kind == "copy-shared";
    let mut total = 0u64;
    let start = Instant::now();
    for _ in 0..20 {
        let mut r = OpenOptions::new().read_only(read_only).open(&name)?;
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(vec![total as f64 / secs / 1e6])
}

/// `copy-write`: what a ring write's copy costs with nobody reading: one process writes
/// `volume` bytes in `chunk`-byte writes into a 16 MiB lossy ring it owns (warm: the
/// ring is written whole once first). MB/s.
pub fn write(chunk: usize, volume: u64) -> io::Result<Vec<f64>> {
    let cap: u64 = 16 << 20;
    let name = format!("/fshm-bench-{}-copyw", std::process::id());
    let mut owner = OpenOptions::new()
        .ring(cap, RingPolicy::Lossy)
        .create(&name)?;
    let buf = vec![7u8; chunk.max(1)];
    let mut done = 0u64;
    while done < cap {
        owner.write_all(&buf)?;
        done += buf.len() as u64;
    }
    let mut total = 0u64;
    let start = Instant::now();
    while total < volume {
        owner.write_all(&buf)?;
        total += buf.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(vec![total as f64 / secs / 1e6])
}
