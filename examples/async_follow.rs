//! Async followers: one tokio task per stream, many streams, no thread per stream.
//!
//! Run it with `cargo run --release -p fshm-examples --features tokio --example async_follow`
//! (optionally followed by the number of streams, default 200). The program starts a
//! writer process (itself, re-run with a role argument) that owns the streams and
//! writes a few lines to each; this process follows every stream with one task on a
//! current-thread runtime, prints each line, and sees each stream end when the writer
//! closes it. It prints the reactor threads the waits used: one per 127 waiting tasks.

use std::io::{self, Write};
use std::process::{Command, Stdio};
use tokio::io::AsyncBufReadExt;

const LINES: u32 = 3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("write") => writer(&args[2], args[3].parse().unwrap_or(0)),
        n => follow_all(n.and_then(|n| n.parse().ok()).unwrap_or(200)),
    };
    if let Err(e) = result {
        eprintln!("async_follow: {e}");
        std::process::exit(1);
    }
}

fn stream_name(prefix: &str, i: u32) -> String {
    format!("{prefix}/s{i}")
}

/// The writer process: owns `count` streams, says so on stdout, waits for a line on
/// stdin, writes `LINES` lines to each, and closes them all (the followers' end).
fn writer(prefix: &str, count: u32) -> io::Result<()> {
    let mut streams = Vec::new();
    for i in 0..count {
        streams.push(
            fshm::OpenOptions::new()
                .max_size(1 << 20)
                .create(&stream_name(prefix, i))?,
        );
    }
    println!("ready");
    io::stdout().flush()?;
    io::stdin().read_line(&mut String::new())?;
    for n in 0..LINES {
        for (i, s) in streams.iter_mut().enumerate() {
            writeln!(s, "stream {i}, line {n}")?;
        }
    }
    Ok(())
}

fn follow_all(count: u32) -> io::Result<()> {
    let prefix = format!("/fshm-async-example-{}", std::process::id());
    let mut child = Command::new(std::env::current_exe()?)
        .args(["write", &prefix, &count.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut from_writer = io::BufReader::new(child.stdout.take().expect("piped stdout"));
    io::BufRead::read_line(&mut from_writer, &mut String::new())?; // "ready"

    // `AsyncStream` is an I/O type: its waits sleep where the runtime's I/O driver sees
    // them (io_uring, Linux 6.7+), so the runtime needs I/O enabled, as for tokio's own.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let lines = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..count {
            let stream = fshm::Stream::open(&stream_name(&prefix, i))?;
            tasks.push(tokio::spawn(async move {
                let mut lines = stream.into_async().lines();
                let mut n = 0;
                while let Some(line) = lines.next_line().await? {
                    println!("[{i:>4}] {line}");
                    n += 1;
                }
                io::Result::Ok(n)
            }));
        }
        // Let the tasks start waiting, then tell the writer to go.
        tokio::task::yield_now().await;
        writeln!(child.stdin.as_ref().expect("piped stdin"))?;
        let mut total = 0;
        for t in tasks {
            total += t.await.map_err(io::Error::other)??;
        }
        io::Result::Ok(total)
    })?;
    child.wait()?;
    let (_, peak, _) = fshm::reactor_stats::threads();
    println!("{lines} lines from {count} streams; every stream ended when its owner closed it");
    println!("the waits used at most {peak} reactor thread(s): one per 127 waiting tasks");
    Ok(())
}
