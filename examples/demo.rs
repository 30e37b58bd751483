//! The fshm live demo: one owner, two followers and two appenders — five processes —
//! exchanging lines through one named stream.
//!
//! Run it with `cargo run --release -p fshm-examples --example demo`. The demo starts the
//! other processes itself (it re-runs its own program with a role argument).

use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

const FOLLOWERS: u32 = 2;
const APPENDERS: u32 = 2;
const LINES_PER_APPENDER: u32 = 3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("follow") => follower(&args[2], &args[3]),
        Some("append") => appender(&args[2], &args[3]),
        _ => owner(),
    };
    if let Err(e) = result {
        eprintln!("demo: {e}");
        std::process::exit(1);
    }
}

/// Starts `role` as a child process whose output lines are forwarded, and sent to `tx`.
fn spawn(role: &str, name: &str, id: u32, tx: mpsc::Sender<String>) -> io::Result<Child> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([role, name, &id.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let out = child.stdout.take().expect("piped stdout");
    thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            let _ = tx.send(line);
        }
    });
    Ok(child)
}

fn owner() -> io::Result<()> {
    let name = format!("/fshm-demo-{}", std::process::id());
    println!("fshm demo: an owner, {FOLLOWERS} followers and {APPENDERS} appenders — separate processes — share the stream {name}\n");
    let mut stream = fshm::OpenOptions::new()
        .mode(0o600)
        .append(true)
        .create(&name)?;
    println!(
        "[owner]      created {name} in /dev/shm (mode 0600, up to {} MiB)",
        stream.max_size() >> 20
    );

    let (tx, rx) = mpsc::channel();
    let mut followers = Vec::new();
    for id in 1..=FOLLOWERS {
        followers.push(spawn("follow", &name, id, tx.clone())?);
    }
    // Wait until every follower has joined, so that each sees the whole conversation.
    let mut joined = 0;
    while joined < FOLLOWERS {
        let line = rx.recv().map_err(io::Error::other)?;
        if line.contains("joined") {
            joined += 1;
        }
    }

    for text in ["hello, followers", "appenders, your turn"] {
        writeln!(stream, "owner: {text}")?;
        println!("[owner]      wrote     \"owner: {text}\"");
    }

    let mut appenders = Vec::new();
    for id in 1..=APPENDERS {
        appenders.push(spawn("append", &name, id, tx.clone())?);
    }
    for mut a in appenders {
        a.wait()?;
    }
    writeln!(stream, "owner: goodbye")?;
    println!("[owner]      wrote     \"owner: goodbye\"");
    println!(
        "[owner]      the stream holds {} bytes; closing it — followers see end-of-stream",
        stream.len()
    );
    drop(stream);

    let mut ok = true;
    for mut f in followers {
        ok &= f.wait()?.success();
    }
    drop(tx);
    let left = std::path::Path::new(fshm::SHM_DIR)
        .join(name.trim_start_matches('/'))
        .exists();
    println!(
        "\n[owner]      done: {}",
        if left {
            "the stream is still in /dev/shm (unexpected)"
        } else {
            "the name is gone from /dev/shm"
        }
    );
    if left || !ok {
        return Err(io::Error::other("the demo did not end cleanly"));
    }
    Ok(())
}

fn follower(name: &str, id: &str) -> io::Result<()> {
    let stream = fshm::Stream::open(name)?;
    let tag = format!("[follower {id}]");
    println!("{tag} joined {name}, waiting for data");
    let mut lines = 0;
    for line in BufReader::new(stream.follow()).lines() {
        println!("{tag} read      \"{}\"", line?);
        lines += 1;
    }
    println!(
        "{tag} end of stream (the owner {}) after {lines} lines",
        match stream.owner_state() {
            fshm::OwnerState::Dead => "died",
            _ => "closed it",
        }
    );
    Ok(())
}

fn appender(name: &str, id: &str) -> io::Result<()> {
    let mut stream = fshm::OpenOptions::new().append(true).open(name)?;
    for k in 1..=LINES_PER_APPENDER {
        let line = format!("appender {id}: message {k}");
        // One write per line: each lands whole at the end, never mixed with another's.
        stream.write_all(format!("{line}\n").as_bytes())?;
        println!("[appender {id}] appended  \"{line}\"");
    }
    Ok(())
}
