//! `fshm`: the command-line tool for fshm streams — list, inspect, read, follow, write
//! and remove them. A thin layer over the `fshm` library.

use clap::{Parser, Subcommand};
use std::io::{self, BufWriter, Read, Write};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "fshm",
    version,
    about = "Named byte streams in POSIX shared memory"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the fshm streams in /dev/shm.
    Ls {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one stream's state.
    Stat {
        /// Stream name (`/name` or `name`).
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy a stream's committed bytes to standard output.
    Cat {
        /// Stream name.
        name: String,
    },
    /// Print the last lines of a stream; with -f, follow it until its owner ends it.
    Tail {
        /// Follow: keep printing data as it is committed.
        #[arg(short, long)]
        follow: bool,
        /// Number of lines to print first.
        #[arg(short = 'n', long = "lines", default_value_t = 10)]
        lines: u64,
        /// Stream name.
        name: String,
    },
    /// Copy standard input into a stream: as its owner with --create (the stream lives
    /// until input ends, or beyond with --persist), else appending as a guest.
    Write {
        /// Stream name.
        name: String,
        /// Create the stream and own it.
        #[arg(long)]
        create: bool,
        /// Mode bits of a created stream, in octal.
        #[arg(long, default_value = "600", value_parser = parse_mode)]
        mode: u32,
        /// Keep the created stream after this command ends.
        #[arg(long)]
        persist: bool,
        /// Maximum size of a created stream, in bytes.
        #[arg(long)]
        max_size: Option<u64>,
        /// Create a ring stream keeping the last CAPACITY bytes (a multiple of 4096).
        #[arg(long, value_name = "CAPACITY")]
        ring: Option<u64>,
        /// With --ring: the writer waits for attached readers instead of overrunning them.
        #[arg(long, requires = "ring")]
        lossless: bool,
    },
    /// Remove streams by name.
    Rm {
        /// Stream names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Also remove objects that are not fshm streams.
        #[arg(long)]
        force: bool,
    },
    /// Remove streams whose owner died and that are not persistent.
    Gc,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let m = u32::from_str_radix(s, 8).map_err(|_| format!("invalid octal mode '{s}'"))?;
    if m > 0o7777 {
        return Err(format!("mode '{s}' has bits outside 7777"));
    }
    Ok(m)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fshm: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> io::Result<()> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match command {
        Command::Ls { json } => ls(&mut out, json)?,
        Command::Stat { name, json } => {
            let info = fshm::inspect(&name)?;
            if json {
                writeln!(out, "{}", info_json(&info))?;
            } else {
                stat_text(&mut out, &info)?;
            }
        }
        Command::Cat { name } => {
            let s = fshm::OpenOptions::new().read_only(true).open(&name)?;
            io::copy(&mut &s, &mut out)?;
        }
        Command::Tail {
            follow,
            lines,
            name,
        } => tail(&mut out, &name, lines, follow)?,
        Command::Write {
            name,
            create,
            mode,
            persist,
            max_size,
            ring,
            lossless,
        } => {
            let mut o = fshm::OpenOptions::new();
            if let Some(m) = max_size {
                o.max_size(m);
            }
            if let Some(cap) = ring {
                if !create {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "--ring needs --create",
                    ));
                }
                let policy = if lossless {
                    fshm::RingPolicy::Lossless
                } else {
                    fshm::RingPolicy::Lossy
                };
                o.ring(cap, policy);
            }
            let s = if create {
                o.mode(mode).persist(persist).create(&name)?
            } else {
                o.append(true).open(&name)?
            };
            copy_lines_through(&s)?;
        }
        Command::Rm { names, force } => {
            let mut failed = None;
            for name in names {
                let r = if force {
                    fshm::force_destroy(&name)
                } else {
                    fshm::inspect(&name).and_then(|_| fshm::force_destroy(&name))
                };
                if let Err(e) = r {
                    eprintln!("fshm: rm: {e}");
                    failed = Some(e);
                }
            }
            if let Some(e) = failed {
                return Err(io::Error::new(e.kind(), "some streams were not removed"));
            }
        }
        Command::Gc => {
            let mut failed = None;
            for info in fshm::list()? {
                if info.owner != fshm::OwnerState::Dead || info.persistent {
                    continue;
                }
                match fshm::reclaim(&info.name) {
                    Ok(true) => writeln!(out, "removed {}", info.name)?,
                    Ok(false) => {}
                    // Go on with the others (e.g. another user's stream we may not open).
                    Err(e) => {
                        eprintln!("fshm: gc: {e}");
                        failed = Some(e);
                    }
                }
            }
            if let Some(e) = failed {
                out.flush()?;
                return Err(io::Error::new(
                    e.kind(),
                    "some dead streams were not removed",
                ));
            }
        }
    }
    out.flush()
}

/// Copies standard input into `s` one read at a time, so that followers see each line
/// as soon as it arrives.
fn copy_lines_through(s: &fshm::Stream) -> io::Result<()> {
    let mut input = io::stdin().lock();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        (&*s).write_all(&buf[..n])?;
    }
}

fn ls(out: &mut impl Write, json: bool) -> io::Result<()> {
    let streams = fshm::list()?;
    if json {
        let items: Vec<String> = streams.iter().map(info_json).collect();
        return writeln!(out, "[{}]", items.join(","));
    }
    writeln!(
        out,
        "{:<24} {:>12} {:>12} {:>5} {:<6} {:<7} RING",
        "NAME", "LENGTH", "MAX", "MODE", "OWNER", "PERSIST"
    )?;
    for i in &streams {
        writeln!(
            out,
            "{:<24} {:>12} {:>12} {:>5} {:<6} {:<7} {}",
            i.name,
            i.len,
            i.max_size,
            format!("{:04o}", i.mode),
            i.owner.as_str(),
            if i.persistent { "yes" } else { "no" },
            ring_text(i)
        )?;
    }
    Ok(())
}

fn ring_text(i: &fshm::StreamInfo) -> String {
    match i.ring_capacity {
        None => "-".to_owned(),
        Some(cap) => format!(
            "{cap} {} readers={}",
            if i.lossless { "lossless" } else { "lossy" },
            i.attached_readers
        ),
    }
}

fn stat_text(out: &mut impl Write, i: &fshm::StreamInfo) -> io::Result<()> {
    writeln!(out, "name:        {}", i.name)?;
    writeln!(out, "length:      {}", i.len)?;
    writeln!(out, "max size:    {}", i.max_size)?;
    writeln!(out, "memory:      {}", i.object_size)?;
    writeln!(out, "mode:        {:04o}", i.mode)?;
    writeln!(out, "uid/gid:     {}/{}", i.uid, i.gid)?;
    writeln!(out, "owner:       {}", i.owner.as_str())?;
    writeln!(
        out,
        "persistent:  {}",
        if i.persistent { "yes" } else { "no" }
    )?;
    writeln!(out, "ring:        {}", ring_text(i))
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn info_json(i: &fshm::StreamInfo) -> String {
    format!(
        "{{\"name\":{},\"len\":{},\"max_size\":{},\"object_size\":{},\"mode\":\"{:04o}\",\"uid\":{},\"gid\":{},\"owner\":\"{}\",\"persistent\":{},\"ring_capacity\":{},\"lossless\":{},\"attached_readers\":{}}}",
        json_str(&i.name),
        i.len,
        i.max_size,
        i.object_size,
        i.mode,
        i.uid,
        i.gid,
        i.owner.as_str(),
        i.persistent,
        i.ring_capacity.map_or("null".to_owned(), |c| c.to_string()),
        i.lossless,
        i.attached_readers
    )
}

/// Position where the last `lines` lines of the first `len` bytes start.
fn tail_start(s: &fshm::Stream, len: u64, lines: u64) -> io::Result<u64> {
    if lines == 0 {
        return Ok(len);
    }
    let mut buf = vec![0u8; 64 << 10];
    let mut end = len;
    let mut seen = 0u64;
    let oldest = s.oldest();
    // A final newline ends the last line; it does not start another.
    let mut skip_last = true;
    while end > oldest {
        let start = end.saturating_sub(buf.len() as u64).max(oldest);
        let chunk = &mut buf[..(end - start) as usize];
        let n = s.read_at(start, chunk)?;
        for i in (0..n).rev() {
            if chunk[i] == b'\n' {
                if skip_last && start + i as u64 == len - 1 {
                    continue;
                }
                seen += 1;
                if seen == lines {
                    return Ok(start + i as u64 + 1);
                }
            }
        }
        skip_last = false;
        end = start;
    }
    Ok(oldest)
}

fn tail(out: &mut impl Write, name: &str, lines: u64, follow: bool) -> io::Result<()> {
    let s = fshm::OpenOptions::new().read_only(true).open(name)?;
    let len = s.len();
    let start = tail_start(&s, len, lines)?;
    io::Seek::seek(&mut &s, io::SeekFrom::Start(start))?;
    if !follow {
        return io::copy(&mut (&s).take(len - start), out).map(drop);
    }
    let mut f = s.follow();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match f.read(&mut buf) {
            Ok(n) => n,
            Err(e) => match fshm::overrun_of(&e) {
                // A ring overran this reader: say so, and go on from the oldest byte.
                Some(o) => {
                    out.flush()?;
                    eprintln!("fshm: tail: {name}: overrun, {} bytes lost", o.lost());
                    continue;
                }
                None => return Err(e),
            },
        };
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
}
