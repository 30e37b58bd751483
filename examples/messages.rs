//! Zero-copy messages: a producer writes length-prefixed messages straight into shared
//! memory ([`fshm::Stream::reserve`]), a consumer in another process parses them where
//! they lie ([`std::io::BufRead::fill_buf`]); no byte is copied in between.
//!
//! ```text
//! cargo run --release -p fshm-examples --example messages            # lossless ring
//! cargo run --release -p fshm-examples --example messages -- --immutable
//! cargo run --release -p fshm-examples --example messages -- --count 100000
//! ```
//!
//! The process creates the stream, starts itself again as the consumer (`consume
//! NAME`), produces, closes the stream (which ends the consumer's follow), and checks
//! the consumer's report. A message is a 4-byte little-endian length, then that many
//! bytes; each commit holds whole messages, so a buffer `fill_buf` lends never ends
//! inside one.

use std::io::{self, BufRead, Write};
use std::process::{Command, Stdio};

/// Payload bytes of message `i`: a size between 16 and 4111 bytes.
fn payload_len(i: u64) -> usize {
    16 + (i.wrapping_mul(2_654_435_761) % 4096) as usize
}

/// The producer writes each payload byte from this (the consumer checks it).
fn payload_byte(i: u64, k: usize) -> u8 {
    (i as u8).wrapping_add((k as u8).wrapping_mul(7))
}

fn produce(stream: &mut fshm::Stream, count: u64) -> io::Result<u64> {
    let mut bytes = 0;
    for i in 0..count {
        let n = payload_len(i);
        let mut r = stream.reserve(4 + n)?;
        r[..4].copy_from_slice(&(n as u32).to_le_bytes());
        for (k, b) in r[4..].iter_mut().enumerate() {
            *b = payload_byte(i, k);
        }
        r.commit_all()?;
        bytes += 4 + n as u64;
    }
    Ok(bytes)
}

/// Follows `name` to its end, parsing and checking every message in place. Returns
/// (messages, bytes).
fn consume(name: &str) -> io::Result<(u64, u64)> {
    let mut stream = fshm::Stream::open(name)?;
    // Open (and, on a lossless ring, attached to a reader slot): the producer may go.
    println!("ready");
    io::stdout().flush()?;
    let mut follower = stream.follow_mut();
    let (mut messages, mut bytes) = (0u64, 0u64);
    loop {
        let buf = follower.fill_buf()?;
        if buf.is_empty() {
            return Ok((messages, bytes)); // the producer closed the stream
        }
        let mut at = 0;
        while at < buf.len() {
            let len = u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            let body = &buf[at + 4..at + 4 + len];
            if len != payload_len(messages)
                || body
                    .iter()
                    .enumerate()
                    .any(|(k, &b)| b != payload_byte(messages, k))
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("message {messages} is wrong"),
                ));
            }
            at += 4 + len;
            messages += 1;
        }
        bytes += at as u64;
        follower.consume(at);
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("consume") {
        let (messages, bytes) = consume(&args[2])?;
        println!("{messages} {bytes}");
        return Ok(());
    }
    let immutable = args.iter().any(|a| a == "--immutable");
    let count = args
        .iter()
        .position(|a| a == "--count")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(20_000), |c| c.parse::<u64>())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let name = format!("/fshm-messages-{}", std::process::id());
    let mut options = fshm::OpenOptions::new();
    if immutable {
        options.immutable(true).max_size(256 << 20);
    } else {
        options.ring(1 << 20, fshm::RingPolicy::Lossless);
    }
    let mut stream = options.create(&name)?;
    let mut consumer = Command::new(std::env::current_exe()?)
        .args(["consume", &name])
        .stdout(Stdio::piped())
        .spawn()?;
    // Wait until the consumer has the stream open: a lossless ring's writer waits only
    // for readers attached before it overwrites.
    let mut from_consumer = io::BufReader::new(consumer.stdout.take().expect("piped"));
    let mut line = String::new();
    from_consumer.read_line(&mut line)?;
    if line != "ready\n" {
        let _ = consumer.wait();
        return Err(io::Error::other("the consumer could not open the stream"));
    }
    let start = std::time::Instant::now();
    let sent = produce(&mut stream, count)?;
    drop(stream); // ends the consumer's follow
    let mut report = String::new();
    io::Read::read_to_string(&mut from_consumer, &mut report)?;
    let status = consumer.wait()?;
    let took = start.elapsed();
    let kind = if immutable {
        "an immutable stream"
    } else {
        "a lossless ring (1 MiB)"
    };
    if !status.success() || report.trim() != format!("{count} {sent}") {
        return Err(io::Error::other(format!(
            "consumer failed ({status}): {report}"
        )));
    }
    let mut stdout = io::stdout().lock();
    writeln!(
        stdout,
        "{count} messages, {sent} bytes through {kind}, written and read in place: {:.0} MB/s",
        sent as f64 / took.as_secs_f64() / 1e6
    )
}
