//! `fshm`: the command-line tool for fshm streams — list, inspect, read, follow, write
//! and remove them. A thin layer over the `fshm` library.

mod meta;
mod text;
mod top;

use clap::{Parser, Subcommand};
use std::io::{self, BufWriter, Read, Write};
use std::process::ExitCode;
use text::{describe, escape, human, owner_text, parse_size, parse_user};

/// Exit status of a command line that is wrong (clap uses it too).
const EXIT_USAGE: u8 = 2;
/// Exit status of an operation that failed.
const EXIT_FAILED: u8 = 1;

const AFTER_HELP: &str = "\
Stream names are one or more '/'-separated components, as in /streams/my_stream; the
leading '/' is optional. Names in human output have non-printable characters escaped
(\\n, \\t, \\033 for ESC, \\ooo in octal; a space is '\\ ' and a backslash '\\\\');
--json gives names as they are.

Exit status:
  0  success
  1  the operation failed (no such stream, not an fshm stream, permission denied, a
     full /dev/shm...), for at least one of the names given
  2  usage error: unknown command or option, a missing or malformed argument, an
     option without the option it needs, an invalid stream name or option value;
     nothing was done; also when `fshm tunnel` finds no fshm-tunnel program
`fshm tunnel` otherwise exits with fshm-tunnel's own status.";

#[derive(Parser)]
#[command(
    name = "fshm",
    version,
    about = "Named byte streams in POSIX shared memory",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the fshm streams in /dev/shm, or those whose name starts with PREFIX.
    ///
    /// OWNER is alive, dead or closed; a replica that its importer (fshm-tunnel) has
    /// marked stale, because it lost the replica's source for now, shows alive,stale.
    Ls {
        /// Only streams whose name starts with this (`/streams/`; leading '/' optional).
        prefix: Option<String>,
        /// Print JSON instead of a table (exact sizes, names as they are).
        #[arg(long)]
        json: bool,
        /// Sizes in bytes instead of K, M, G (powers of 1024).
        #[arg(short, long)]
        bytes: bool,
    },
    /// Show one stream's state.
    ///
    /// A replica (mirrored by fshm-tunnel) also shows its source ("replica of") and
    /// whether its importer has marked it stale ("stale": it lost the source for now
    /// and may be behind it).
    Stat {
        /// Stream name (`/streams/my_stream`; leading '/' optional).
        name: String,
        /// Print JSON (exact sizes, the name as it is).
        #[arg(long)]
        json: bool,
        /// Sizes in bytes instead of K, M, G (powers of 1024).
        #[arg(short, long)]
        bytes: bool,
    },
    /// Copy a stream's committed bytes to standard output.
    Cat {
        /// Stream name.
        name: String,
        /// Only a stream that USER (a user name or uid) owns: one that another user
        /// created under this name is refused.
        #[arg(long, value_parser = parse_user, value_name = "USER")]
        owner: Option<u32>,
    },
    /// Print the last lines of a stream; with -f, follow it until its owner ends it.
    Tail {
        /// Follow: keep printing data as it is committed.
        #[arg(short, long)]
        follow: bool,
        /// Number of lines to print first.
        #[arg(short = 'n', long = "lines", default_value_t = 10)]
        lines: u64,
        /// Only a stream that USER (a user name or uid) owns: one that another user
        /// created under this name is refused.
        #[arg(long, value_parser = parse_user, value_name = "USER")]
        owner: Option<u32>,
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
        /// Mode bits of the created stream, in octal [default: 600].
        #[arg(long, requires = "create", value_parser = parse_mode)]
        mode: Option<u32>,
        /// Keep the created stream after this command ends.
        #[arg(long, requires = "create")]
        persist: bool,
        /// Maximum size of the created stream (bytes, or with K, M, G, T) [default: 1G].
        #[arg(long, requires = "create", value_parser = parse_size, value_name = "SIZE")]
        max_size: Option<u64>,
        /// Create a ring stream keeping the last CAPACITY bytes (a multiple of the
        /// page size; bytes, or with K, M, G, T).
        #[arg(long, requires = "create", value_parser = parse_size, value_name = "CAPACITY")]
        ring: Option<u64>,
        /// With --ring: the writer waits for attached readers instead of overrunning them.
        #[arg(long, requires = "ring")]
        lossless: bool,
        /// Create an immutable stream: committed bytes are never rewritten, every write
        /// appends, and readers may read them in place (not with --ring).
        #[arg(long, requires = "create", conflicts_with = "ring")]
        immutable: bool,
        /// Without --create: write only into a stream that USER (a user name or uid)
        /// owns; one that another user created under this name is refused before a
        /// byte is written.
        #[arg(long, conflicts_with = "create", value_parser = parse_user, value_name = "USER")]
        owner: Option<u32>,
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
    /// Remove the streams whose owner died and that are not persistent (those whose
    /// name starts with PREFIX, if given), and print their names.
    ///
    /// Also removes what creators killed before their stream was ready left (printed
    /// as "removed NAME (unfinished creation)").
    ///
    /// A stream that cannot be removed now (another process holds its reclaim token:
    /// such streams share one wait of a second in all; or this user may not remove it)
    /// is skipped with a line on standard error saying why, and gc goes on with the
    /// others; it then exits with status 1.
    Gc {
        /// Only streams whose name starts with this (leading '/' optional).
        prefix: Option<String>,
    },
    /// Show the streams live: owner, kind, fill, write rate, readers and their lag
    /// (keys: q quit, s sort, / filter by prefix).
    Top {
        /// Only streams whose name starts with this (leading '/' optional).
        prefix: Option<String>,
        /// Print one frame as plain text (rates over one interval) and exit.
        #[arg(long)]
        once: bool,
        /// Seconds between refreshes [default: 1].
        #[arg(long, value_parser = meta::parse_interval, value_name = "SECONDS")]
        interval: Option<std::time::Duration>,
    },
    /// Mirror streams to other hosts over Zenoh: run fshm-tunnel with ARGS.
    ///
    /// `fshm tunnel export PREFIX --listen ENDPOINT` on the sources' host, `fshm tunnel
    /// import PREFIX --connect ENDPOINT` on the replicas' host. The arguments go to
    /// fshm-tunnel as they are. fshm-tunnel is looked for next to this fshm executable first, then on PATH; the
    /// command exits with its status (`fshm tunnel --help` is fshm-tunnel's help). When
    /// it is not found, fshm says where it looked and exits with status 2.
    #[command(disable_help_flag = true)]
    Tunnel {
        /// Arguments for fshm-tunnel (`export ...`, `import ...`, `--help`).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<std::ffi::OsString>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the fshm(1) man page (roff), or with DIR write it and a page per subcommand
    /// (fshm-ls(1)...) there; generated from this command's definition.
    #[command(hide = true)]
    Man {
        /// Directory to write fshm.1 and fshm-SUBCOMMAND.1 into.
        dir: Option<std::path::PathBuf>,
    },
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let m = u32::from_str_radix(s, 8).map_err(|_| format!("invalid octal mode '{s}'"))?;
    if m > 0o7777 {
        return Err(format!("mode '{s}' has bits outside 7777"));
    }
    Ok(m)
}

/// Why a command did not succeed.
pub(crate) enum Failure {
    /// The command line is wrong; nothing was done.
    Usage(io::Error),
    /// The operation failed.
    Failed(io::Error),
    /// Some names failed; each failure was reported as it happened.
    Reported,
    /// A program the command needs is missing (said how); exits with `EXIT_USAGE`.
    Missing(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Failed(e)
    }
}

fn main() -> ExitCode {
    // Usage errors found by clap exit with EXIT_USAGE (its status for them), --help and
    // --version with 0.
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`fshm cat x | head`) ends the command quietly.
        Err(Failure::Failed(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Failed(e)) => {
            eprintln!("fshm: {}", describe(&e));
            ExitCode::from(EXIT_FAILED)
        }
        Err(Failure::Usage(e)) => {
            eprintln!("fshm: {}", describe(&e));
            eprintln!("For more information, try 'fshm --help'.");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Reported) => ExitCode::from(EXIT_FAILED),
        Err(Failure::Missing(what)) => {
            eprintln!("fshm: {}", text::escape_text(&what));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Refuses, before anything is done, a name no stream may have.
fn check_name(name: &str) -> Result<(), Failure> {
    fshm::object_name(name).map(drop).map_err(Failure::Usage)
}

/// The streams whose name starts with `prefix`, with `/dev/shm` named in an error.
fn list(prefix: Option<&str>) -> io::Result<Vec<fshm::StreamInfo>> {
    fshm::list_with_prefix(prefix.unwrap_or("")).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot list {}: {}", fshm::SHM_DIR, describe(&e)),
        )
    })
}

fn run(command: Command) -> Result<(), Failure> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match command {
        Command::Ls {
            prefix,
            json,
            bytes,
        } => ls(&mut out, prefix.as_deref(), json, bytes)?,
        Command::Stat { name, json, bytes } => {
            check_name(&name)?;
            let info = fshm::inspect(&name)?;
            if json {
                writeln!(out, "{}", info_json(&info))?;
            } else {
                stat_text(&mut out, &info, bytes)?;
            }
        }
        Command::Cat { name, owner } => {
            check_name(&name)?;
            let s = guest_options(owner).read_only(true).open(&name)?;
            io::copy(&mut &s, &mut out)?;
        }
        Command::Tail {
            follow,
            lines,
            owner,
            name,
        } => {
            check_name(&name)?;
            tail(&mut out, &name, lines, follow, owner)?
        }
        Command::Write {
            name,
            create,
            mode,
            persist,
            max_size,
            ring,
            lossless,
            immutable,
            owner,
        } => {
            check_name(&name)?;
            let s = if create {
                let mut o = fshm::OpenOptions::new();
                o.mode(mode.unwrap_or(0o600))
                    .persist(persist)
                    .immutable(immutable);
                if let Some(m) = max_size {
                    o.max_size(m);
                }
                if let Some(cap) = ring {
                    let policy = if lossless {
                        fshm::RingPolicy::Lossless
                    } else {
                        fshm::RingPolicy::Lossy
                    };
                    o.ring(cap, policy);
                }
                // The name was checked: what the library refuses as invalid now is an
                // option value (a ring capacity that is no multiple of the page size...).
                o.create(&name).map_err(|e| match e.kind() {
                    io::ErrorKind::InvalidInput => Failure::Usage(e),
                    _ => Failure::Failed(e),
                })?
            } else {
                guest_options(owner).append(true).open(&name)?
            };
            copy_lines_through(&s)?;
        }
        Command::Rm { names, force } => {
            for name in &names {
                check_name(name)?;
            }
            let mut failed = false;
            for name in &names {
                let r = if force {
                    fshm::force_destroy(name)
                } else {
                    fshm::inspect(name).and_then(|_| fshm::force_destroy(name))
                };
                if let Err(e) = r {
                    eprintln!("fshm: {}", describe(&e));
                    failed = true;
                }
            }
            if failed {
                return Err(Failure::Reported);
            }
        }
        Command::Gc { prefix } => {
            let mut failed = false;
            let mut report = |out: &mut BufWriter<_>, name: &str, r: io::Result<bool>| {
                match r {
                    Ok(true) => writeln!(out, "removed {}", escape(name))?,
                    Ok(false) => {}
                    // Go on with the others: a stream whose reclaim token another
                    // process holds, another user's stream we may not open.
                    Err(e) => {
                        out.flush()?;
                        eprintln!("fshm: gc: skipped {}: {}", escape(name), describe(&e));
                        failed = true;
                    }
                }
                io::Result::Ok(())
            };
            // Every dead stream tried without waiting first; those whose reclaim token
            // another process holds then share one wait of fshm::RECLAIM_PATIENCE, so
            // that however many are held, gc is held up by one second at most. A reclaim
            // without patience does not look for dead creations: the sweep below reads
            // the directory once for every name, so gc's cost does not multiply the
            // dead streams by the objects in /dev/shm.
            let mut held = Vec::new();
            for info in list(prefix.as_deref())? {
                if info.owner != fshm::OwnerState::Dead || info.persistent {
                    continue;
                }
                match fshm::reclaim_within(&info.name, std::time::Duration::ZERO) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => held.push(info.name),
                    r => report(&mut out, &info.name, r)?,
                }
            }
            let deadline = std::time::Instant::now() + fshm::RECLAIM_PATIENCE;
            for name in held {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                report(&mut out, &name, fshm::reclaim_within(&name, left))?;
            }
            // What creators killed before publishing their stream left (never under
            // the stream's name: under `<object>%new.<key>`).
            for name in fshm::reclaim_unfinished(prefix.as_deref().unwrap_or(""))? {
                writeln!(out, "removed {} (unfinished creation)", escape(&name))?;
            }
            if failed {
                out.flush()?;
                return Err(Failure::Reported);
            }
        }
        Command::Top {
            prefix,
            once,
            interval,
        } => top::run(
            &mut out,
            prefix,
            once,
            interval.unwrap_or(std::time::Duration::from_secs(1)),
        )?,
        Command::Tunnel { args } => return Err(meta::tunnel(&args)),
        Command::Completions { shell } => meta::completions(shell, &mut out),
        Command::Man { dir } => meta::man(&mut out, dir.as_deref())?,
    }
    out.flush()?;
    Ok(())
}

/// A guest's options: with `--owner`, only a stream that user owns.
fn guest_options(owner: Option<u32>) -> fshm::OpenOptions {
    let mut o = fshm::OpenOptions::new();
    if let Some(uid) = owner {
        o.owner_uid(uid);
    }
    o
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

fn ls(out: &mut impl Write, prefix: Option<&str>, json: bool, bytes: bool) -> io::Result<()> {
    let streams = list(prefix)?;
    if json {
        let items: Vec<String> = streams.iter().map(info_json).collect();
        return writeln!(out, "[{}]", items.join(","));
    }
    let size = |n: u64| if bytes { n.to_string() } else { human(n) };
    let rows: Vec<[String; 7]> = streams
        .iter()
        .map(|i| {
            [
                escape(&i.name),
                size(i.len),
                size(i.max_size),
                format!("{:04o}", i.mode),
                owner_text(i),
                if i.persistent { "yes" } else { "no" }.to_owned(),
                ring_text(i, bytes),
            ]
        })
        .collect();
    let header = ["NAME", "LENGTH", "MAX", "MODE", "OWNER", "PERSIST", "RING"].map(String::from);
    let mut width = [0usize; 7];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        writeln!(
            out,
            "{:<w0$} {:>w1$} {:>w2$} {:>w3$} {:<w4$} {:<w5$} {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3],
            w4 = width[4],
            w5 = width[5],
        )?;
    }
    Ok(())
}

fn ring_text(i: &fshm::StreamInfo, bytes: bool) -> String {
    match i.ring_capacity {
        None => "-".to_owned(),
        Some(cap) => format!(
            "{} {} readers={}",
            if bytes { cap.to_string() } else { human(cap) },
            if i.lossless { "lossless" } else { "lossy" },
            i.attached_readers
        ),
    }
}

fn stat_text(out: &mut impl Write, i: &fshm::StreamInfo, bytes: bool) -> io::Result<()> {
    let size = |n: u64| if bytes { n.to_string() } else { human(n) };
    writeln!(out, "name:        {}", escape(&i.name))?;
    writeln!(out, "length:      {}", size(i.len))?;
    writeln!(out, "max size:    {}", size(i.max_size))?;
    writeln!(out, "memory:      {}", size(i.object_size))?;
    writeln!(out, "mode:        {:04o}", i.mode)?;
    writeln!(out, "uid/gid:     {}/{}", i.uid, i.gid)?;
    writeln!(out, "owner:       {}", i.owner.as_str())?;
    writeln!(
        out,
        "persistent:  {}",
        if i.persistent { "yes" } else { "no" }
    )?;
    writeln!(
        out,
        "immutable:   {}",
        if i.immutable { "yes" } else { "no" }
    )?;
    writeln!(out, "ring:        {}", ring_text(i, bytes))?;
    if let Some(src) = &i.replica_of {
        writeln!(
            out,
            "replica of:  {} (read-only here)",
            text::escape_text(src)
        )?;
        writeln!(
            out,
            "stale:       {}",
            if i.stale {
                "yes (its importer has lost the source for now: it may be behind)"
            } else {
                "no"
            }
        )?;
    }
    Ok(())
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
        "{{\"name\":{},\"len\":{},\"max_size\":{},\"object_size\":{},\"mode\":\"{:04o}\",\"uid\":{},\"gid\":{},\"owner\":\"{}\",\"persistent\":{},\"immutable\":{},\"ring_capacity\":{},\"lossless\":{},\"attached_readers\":{},\"replica_of\":{},\"stale\":{}}}",
        json_str(&i.name),
        i.len,
        i.max_size,
        i.object_size,
        i.mode,
        i.uid,
        i.gid,
        i.owner.as_str(),
        i.persistent,
        i.immutable,
        i.ring_capacity.map_or("null".to_owned(), |c| c.to_string()),
        i.lossless,
        i.attached_readers,
        i.replica_of.as_deref().map_or("null".to_owned(), json_str),
        i.stale
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

fn tail(
    out: &mut impl Write,
    name: &str,
    lines: u64,
    follow: bool,
    owner: Option<u32>,
) -> io::Result<()> {
    let s = guest_options(owner).read_only(true).open(name)?;
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
                    eprintln!(
                        "fshm: {}: reader overrun, {} bytes lost",
                        escape(name),
                        o.lost()
                    );
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
