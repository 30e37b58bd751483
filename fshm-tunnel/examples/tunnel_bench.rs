//! Throughput and latency of a stream mirrored through `fshm-tunnel`, against a raw TCP
//! socket (the benchmark's own plain program, a 64 KiB buffered writer) and Zenoh's own
//! pub/sub on the same path — over loopback and, when run as root, across two network
//! namespaces joined by a veth pair with link-local addresses (169.254.77.1 and .2),
//! which the benchmark makes and removes itself (as another user it says so and skips
//! that part). Run from the workspace root after a release build of the binary:
//!
//! ```text
//! cargo build --release --manifest-path fshm-tunnel/Cargo.toml --bins --examples
//! ./fshm-tunnel/target/release/examples/tunnel_bench [MiB per run] [runs] [tunnel] [--pin]
//! ```
//!
//! `--pin` gives each side one CPU (side A's processes and the source's writer on CPU 0,
//! side B's and the replica's reader on CPU 1), as two machines would have; `tunnel`
//! measures the tunnel alone (for profiling).
//!
//! Every sender and receiver is a process of its own (this program run again with
//! `--role`, inside `ip netns exec` across namespaces), and times are read from
//! `CLOCK_MONOTONIC`, one clock for every process on the machine. The data flows from
//! the first side (A: TCP sender, Zenoh publisher, exporter, which listens) to the
//! second (B: receiver, subscriber, importer, which connects); the tunnel's source is
//! written and its replica read by this process.
//!
//! Throughput: bytes written in writes of 64 B, 4 KiB and 64 KiB, timed from the first
//! write until the receiver holds the last byte (the tunnel: until the replica's length
//! reaches it). The tunnel is measured twice: with a linear source (every byte lands on
//! fresh pages of the source and of the replica) and with a lossless ring of 16 MiB
//! (pages reused, like the other programs' buffers; the writer waits for the importer's
//! acknowledgements). Latency: one-way, one 64-byte write at a time (the next once the receiver
//! has it), median and 99th percentile of 2,000. Each figure printed is the median of
//! `runs` runs (default 3), the three kinds interleaved within each run.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use zenoh::Wait;

const SIZES: [usize; 3] = [64, 4096, 65536];
const LAT_N: usize = 2000;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Nanoseconds of `CLOCK_MONOTONIC` (shared by every process on the machine).
fn now_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given, a valid local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn mib_s(bytes: u64, ns: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / (ns as f64 / 1e9)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// (median, p99) in ns.
fn pct(mut v: Vec<u64>) -> (u64, u64) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

/// A path between side A and side B: the command prefix that runs a process on each
/// side and each side's address.
struct Path {
    name: &'static str,
    a: Vec<String>,
    b: Vec<String>,
    addr_a: String,
    addr_b: String,
}

/// With `--pin`, side A runs on CPU 0 and side B on CPU 1 (each simulated host gets one
/// CPU of its own, as two machines would).
static PIN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn pinned() -> bool {
    PIN.load(Ordering::Relaxed)
}

/// Pins the calling thread to `cpu` (with `--pin`).
fn pin_thread(cpu: usize) {
    if !pinned() {
        return;
    }
    // SAFETY: the set is a zeroed local that CPU_SET fills in; sched_setaffinity reads it
    // for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

impl Path {
    fn cmd(&self, side_a: bool, prog: &std::path::Path) -> Command {
        let mut pre = if side_a {
            self.a.clone()
        } else {
            self.b.clone()
        };
        if pinned() {
            let cpu = if side_a { "0" } else { "1" };
            pre.extend(["taskset".into(), "-c".into(), cpu.into()]);
        }
        let mut c = match pre.first() {
            Some(first) => {
                let mut c = Command::new(first);
                c.args(&pre[1..]).arg(prog);
                c
            }
            None => Command::new(prog),
        };
        c.stdin(Stdio::null()).stdout(Stdio::piped());
        c
    }
}

/// Runs `args` (this program's roles) on a side; returns the child and its stdout lines.
fn role(
    path: &Path,
    side_a: bool,
    args: &[String],
) -> (Kill, std::io::Lines<BufReader<std::process::ChildStdout>>) {
    let exe = std::env::current_exe().unwrap();
    let mut c = path.cmd(side_a, &exe);
    c.arg("--role").args(args);
    let mut child = c.spawn().expect("spawn a role");
    let out = BufReader::new(child.stdout.take().unwrap()).lines();
    (Kill(child), out)
}

fn line(lines: &mut std::io::Lines<BufReader<std::process::ChildStdout>>) -> String {
    lines
        .next()
        .expect("a role ended early")
        .expect("a role's output")
}

fn free_port(addr: &str) -> u16 {
    // Loopback: a port the kernel gives; in the namespaces nothing else listens.
    if addr.starts_with("127.") {
        std::net::TcpListener::bind((addr, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        20000 + (now_ns() % 20000) as u16
    }
}

// ---------------------------------------------------------------- roles (child processes)

fn role_main(args: &[String]) {
    let a = |i: usize| args[i].as_str();
    let num = |i: usize| args[i].parse::<u64>().unwrap();
    match a(0) {
        // tcp-recv ADDR TOTAL: prints the port, then the time the last byte arrived.
        "tcp-recv" => {
            let l = std::net::TcpListener::bind((a(1), 0)).unwrap();
            println!("{}", l.local_addr().unwrap().port());
            let total = num(2);
            let (mut s, _) = l.accept().unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let mut got = 0u64;
            while got < total {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0);
                got += n as u64;
            }
            println!("{}", now_ns());
        }
        // tcp-send ADDR PORT SIZE TOTAL: prints the time of the first write.
        "tcp-send" => {
            let s = std::net::TcpStream::connect((a(1), num(2) as u16)).unwrap();
            let mut w = BufWriter::with_capacity(1 << 16, s);
            let buf = vec![7u8; num(3) as usize];
            let total = num(4);
            let t = now_ns();
            let mut n = 0;
            while n < total {
                w.write_all(&buf).unwrap();
                n += buf.len() as u64;
            }
            w.flush().unwrap();
            println!("{t}");
        }
        // tcp-lat-recv ADDR: prints the port, then median and p99 one-way ns.
        "tcp-lat-recv" => {
            let l = std::net::TcpListener::bind((a(1), 0)).unwrap();
            println!("{}", l.local_addr().unwrap().port());
            let (mut s, _) = l.accept().unwrap();
            s.set_nodelay(true).unwrap();
            let mut buf = [0u8; 64];
            let mut lat = Vec::new();
            for _ in 0..LAT_N {
                s.read_exact(&mut buf).unwrap();
                let t = now_ns();
                lat.push(t - u64::from_le_bytes(buf[..8].try_into().unwrap()));
                s.write_all(&[1]).unwrap();
            }
            let (m, p) = pct(lat);
            println!("{m} {p}");
        }
        // tcp-lat-send ADDR PORT
        "tcp-lat-send" => {
            let mut s = std::net::TcpStream::connect((a(1), num(2) as u16)).unwrap();
            s.set_nodelay(true).unwrap();
            let mut ack = [0u8; 1];
            for _ in 0..LAT_N {
                let mut m = [1u8; 64];
                m[..8].copy_from_slice(&now_ns().to_le_bytes());
                s.write_all(&m).unwrap();
                s.read_exact(&mut ack).unwrap();
            }
        }
        // z-pub EP / z-sub EP TOTAL: Zenoh's own pub/sub (below).
        "z-pub" => zenoh_pub(a(1)),
        "z-sub" => zenoh_sub(a(1), num(2)),
        r => panic!("unknown role {r}"),
    }
}

fn zenoh_session(listen: &[String], connect: &[String]) -> zenoh::Session {
    fshm_tunnel::open_session(fshm_tunnel::zenoh_config(None, listen, connect).unwrap()).unwrap()
}

/// Zenoh publisher (side A, listening): waits for "go SIZE" lines on stdin; for each,
/// publishes `TOTAL` bytes in puts of SIZE and prints the time of the first put; on
/// "lat", puts 2,000 timestamped 64-byte messages one at a time, each after the
/// subscriber's acknowledgement of the previous one.
fn zenoh_pub(ep: &str) {
    let s = zenoh_session(&[ep.to_owned()], &[]);
    let publ = s
        .declare_publisher("bench/tp")
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .wait()
        .unwrap();
    let lp = s
        .declare_publisher("bench/lat")
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .wait()
        .unwrap();
    let (tx, acks) = mpsc::channel::<()>();
    let _ack = s
        .declare_subscriber("bench/ack")
        .callback(move |_| {
            let _ = tx.send(());
        })
        .wait()
        .unwrap();
    println!("ready");
    for l in std::io::stdin().lines() {
        let l = l.unwrap();
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            ["go", size, total] => {
                let size: usize = size.parse().unwrap();
                let total: u64 = total.parse().unwrap();
                let buf = vec![7u8; size];
                let t = now_ns();
                let mut n = 0;
                while n < total {
                    publ.put(buf.clone()).wait().unwrap();
                    n += size as u64;
                }
                println!("{t}");
            }
            ["lat"] => {
                for _ in 0..LAT_N {
                    let mut m = vec![1u8; 64];
                    m[..8].copy_from_slice(&now_ns().to_le_bytes());
                    lp.put(m).wait().unwrap();
                    acks.recv().unwrap();
                }
                println!("done");
            }
            _ => return,
        }
    }
}

/// Zenoh subscriber (side B, connecting): prints "ready" once subscribed, then the time at which each `TOTAL` bytes of `bench/tp` were in, and the latency
/// median and p99 (ns) after the latency rounds.
fn zenoh_sub(ep: &str, total: u64) {
    let s = zenoh_session(&[], &[ep.to_owned()]);
    let ack = s.declare_publisher("bench/ack").wait().unwrap();
    let got = Arc::new(AtomicU64::new(0));
    let g = got.clone();
    let (ltx, lrx) = mpsc::channel::<u64>();
    let (etx, erx) = mpsc::channel::<u64>();
    let _sub = s
        .declare_subscriber("bench/**")
        .callback(move |m| {
            if m.key_expr().as_str() == "bench/lat" {
                let t = now_ns();
                let b = m.payload().to_bytes();
                let sent = u64::from_le_bytes(b[..8].try_into().unwrap());
                let _ = ltx.send(t - sent);
                return;
            }
            let n = m.payload().len() as u64;
            let before = g.fetch_add(n, Ordering::Relaxed);
            if (before + n) / total > before / total {
                let _ = etx.send(now_ns());
            }
        })
        .wait()
        .unwrap();
    println!("ready");
    for _ in SIZES {
        println!("{}", erx.recv().unwrap());
    }
    let mut lat = Vec::new();
    for _ in 0..LAT_N {
        lat.push(lrx.recv().unwrap());
        ack.put(vec![0u8]).wait().unwrap();
    }
    let (m, p) = pct(lat);
    println!("{m} {p}");
}

// ---------------------------------------------------------------- measurements

/// Throughput per size (MiB/s) and latency (median, p99 ns).
type Figures = (Vec<f64>, (u64, u64));

fn tcp(path: &Path, total: u64) -> Figures {
    let mut tp = Vec::new();
    for size in SIZES {
        let (_r, mut rl) = role(
            path,
            false,
            &["tcp-recv".into(), path.addr_b.clone(), total.to_string()],
        );
        let port = line(&mut rl);
        let (_s, mut sl) = role(
            path,
            true,
            &[
                "tcp-send".into(),
                path.addr_b.clone(),
                port,
                size.to_string(),
                total.to_string(),
            ],
        );
        let start: u64 = line(&mut sl).parse().unwrap();
        let end: u64 = line(&mut rl).parse().unwrap();
        tp.push(mib_s(total, end - start));
    }
    let (_r, mut rl) = role(path, false, &["tcp-lat-recv".into(), path.addr_b.clone()]);
    let port = line(&mut rl);
    let (_s, _sl) = role(
        path,
        true,
        &["tcp-lat-send".into(), path.addr_b.clone(), port],
    );
    let l = line(&mut rl);
    let mut w = l.split_whitespace().map(|x| x.parse::<u64>().unwrap());
    (tp, (w.next().unwrap(), w.next().unwrap()))
}

fn zenoh_pubsub(path: &Path, total: u64) -> Figures {
    let ep = format!("tcp/{}:{}", path.addr_a, free_port(&path.addr_a));
    let exe = std::env::current_exe().unwrap();
    let mut pc = path.cmd(true, &exe);
    pc.args(["--role", "z-pub", &ep]).stdin(Stdio::piped());
    let mut p = pc.spawn().unwrap();
    let mut pin = p.stdin.take().unwrap();
    let mut pl = BufReader::new(p.stdout.take().unwrap()).lines();
    let _p = Kill(p);
    assert_eq!(line(&mut pl), "ready");
    let (_s, mut sl) = role(
        path,
        false,
        &["z-sub".into(), ep.clone(), total.to_string()],
    );
    assert_eq!(line(&mut sl), "ready");
    // The subscription reaches the publisher.
    std::thread::sleep(Duration::from_millis(500));
    let mut tp = Vec::new();
    for size in SIZES {
        writeln!(pin, "go {size} {total}").unwrap();
        let start: u64 = line(&mut pl).parse().unwrap();
        let end: u64 = line(&mut sl).parse().unwrap();
        tp.push(mib_s(total, end - start));
    }
    writeln!(pin, "lat").unwrap();
    assert_eq!(line(&mut pl), "done");
    let l = line(&mut sl);
    let mut w = l.split_whitespace().map(|x| x.parse::<u64>().unwrap());
    (tp, (w.next().unwrap(), w.next().unwrap()))
}

/// The tunnel's binary: next to the examples directory, or `FSHM_TUNNEL_BIN`.
fn tunnel_bin() -> std::path::PathBuf {
    if let Some(b) = std::env::var_os("FSHM_TUNNEL_BIN") {
        return b.into();
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("fshm-tunnel")
}

/// Capacity of the lossless ring the tunnel is also measured with.
const RING: u64 = 16 << 20;

/// The tunnel's figures for a linear source (`ring` false: every byte lands on fresh
/// pages on both hosts) or a lossless ring of [`RING`] bytes (pages reused; the writer
/// waits for the importer's acknowledgements).
fn tunnel(path: &Path, total: u64, run: usize, ring: bool) -> Figures {
    let kind = if ring { "ring" } else { "linear" };
    let tag = format!("{}-{}-{kind}-{run}", std::process::id(), path.name);
    let prefix = format!("/tbench-{tag}/");
    let mapped = format!("/tbenchr-{tag}/");
    let ep = format!("tcp/{}:{}", path.addr_a, free_port(&path.addr_a));
    let bin = tunnel_bin();
    let mut e = path.cmd(true, &bin);
    e.args(["export", &prefix, "--listen", &ep, "--scan-ms", "10"])
        .stdout(Stdio::null());
    // A Zenoh configuration file for both tunnels (to try Zenoh's settings).
    let config = std::env::var("FSHM_BENCH_TUNNEL_CONFIG").ok();
    if let Some(c) = &config {
        e.args(["--config", c]);
    }
    let _e = Kill(e.spawn().expect(
        "build the binary first: cargo build --release --manifest-path fshm-tunnel/Cargo.toml",
    ));
    let mut i = path.cmd(false, &bin);
    i.args(["import", &prefix, "--as", &mapped, "--connect", &ep])
        .args(["--resync-ms", "100"])
        .stdout(Stdio::null());
    if let Some(c) = &config {
        i.args(["--config", c]);
    }
    let _i = Kill(i.spawn().unwrap());
    let open_replica = |name: &str| -> fshm::Stream {
        let t = Instant::now();
        loop {
            if let Ok(s) = fshm::Stream::open(name) {
                return s;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "no replica {name}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let mut out = Vec::new();
    for (k, &size) in SIZES.iter().enumerate() {
        let src = format!("{prefix}t{k}");
        let mut o = fshm::OpenOptions::new();
        if ring {
            o.ring(RING, fshm::RingPolicy::Lossless);
        } else {
            o.max_size(total + (1 << 20));
        }
        let mut w = o.create(&src).unwrap();
        let r = open_replica(&format!("{mapped}t{k}"));
        // The source's writer on side A's CPU, the replica's reader on side B's.
        pin_thread(1);
        let t = now_ns();
        let n = std::thread::scope(|sc| {
            let writer = sc.spawn(|| {
                pin_thread(0);
                let buf = vec![7u8; size];
                let mut n = 0;
                while n < total {
                    w.write_all(&buf).unwrap();
                    n += size as u64;
                }
                n
            });
            while r.len() < total {
                r.wait_for(r.len(), Some(Duration::from_secs(30)));
            }
            writer.join().unwrap()
        });
        while r.len() < n {
            r.wait_for(r.len(), Some(Duration::from_secs(30)));
        }
        out.push(mib_s(n, now_ns() - t));
        drop(w);
        drop(r);
        let _ = fshm::force_destroy(&format!("{mapped}t{k}"));
    }
    let src = format!("{prefix}lat");
    let mut o = fshm::OpenOptions::new();
    if ring {
        o.ring(RING, fshm::RingPolicy::Lossless);
    }
    let mut w = o.create(&src).unwrap();
    let r = open_replica(&format!("{mapped}lat"));
    let mut lat = Vec::new();
    for i in 0..LAT_N as u64 {
        let t = now_ns();
        w.write_all(&[1u8; 64]).unwrap();
        let want = (i + 1) * 64;
        while r.len() < want {
            r.wait_for(r.len(), Some(Duration::from_secs(5)));
        }
        lat.push(now_ns() - t);
    }
    drop(w);
    drop(r);
    let _ = fshm::force_destroy(&format!("{mapped}lat"));
    eprintln!(
        "{} run {}: CPU time of the exporter {:.2} s, of the importer {:.2} s",
        path.name,
        run + 1,
        cpu_s(_e.0.id()),
        cpu_s(_i.0.id())
    );
    (out, pct(lat))
}

/// User and system CPU time of process `pid` so far, in seconds (`/proc/PID/stat`).
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // Fields 14 and 15 (utime, stime), counted from the state (field 3) at index 0.
    (ticks(11) + ticks(12)) / hz
}

// ---------------------------------------------------------------- namespaces

/// Two network namespaces joined by a veth pair (169.254.77.1/24 in A, .2 in B),
/// removed on drop.
struct Netns {
    a: String,
    b: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl Netns {
    fn make() -> Option<Netns> {
        let id = std::process::id();
        let n = Netns {
            a: format!("fshmbA{id}"),
            b: format!("fshmbB{id}"),
        };
        let (va, vb) = (format!("fbA{id}"), format!("fbB{id}"));
        let ok = ip(&["netns", "add", &n.a])
            && ip(&["netns", "add", &n.b])
            && ip(&[
                "link", "add", &va, "netns", &n.a, "type", "veth", "peer", "name", &vb, "netns",
                &n.b,
            ])
            && ip(&["-n", &n.a, "addr", "add", "169.254.77.1/24", "dev", &va])
            && ip(&["-n", &n.b, "addr", "add", "169.254.77.2/24", "dev", &vb])
            && ip(&["-n", &n.a, "link", "set", &va, "up"])
            && ip(&["-n", &n.b, "link", "set", &vb, "up"])
            && ip(&["-n", &n.a, "link", "set", "lo", "up"])
            && ip(&["-n", &n.b, "link", "set", "lo", "up"]);
        ok.then_some(n)
    }

    fn path(&self) -> Path {
        let pre = |ns: &str| vec!["ip".into(), "netns".into(), "exec".into(), ns.to_owned()];
        Path {
            name: "netns",
            a: pre(&self.a),
            b: pre(&self.b),
            addr_a: "169.254.77.1".into(),
            addr_b: "169.254.77.2".into(),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Removing a namespace removes its end of the veth pair, and so the pair.
        ip(&["netns", "del", &self.a]);
        ip(&["netns", "del", &self.b]);
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--role") {
        role_main(&args[1..]);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--pin") {
        args.remove(i);
        PIN.store(true, Ordering::Relaxed);
    }
    let mib: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(32);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    // A third argument `tunnel` measures the tunnel alone (for profiling).
    let only_tunnel = args.get(2).map(String::as_str) == Some("tunnel");
    let total = mib << 20;
    let loopback = Path {
        name: "loopback",
        a: vec![],
        b: vec![],
        addr_a: "127.0.0.1".into(),
        addr_b: "127.0.0.1".into(),
    };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ns = if root {
        let n = Netns::make();
        if n.is_none() {
            println!("skipped the namespaces: cannot make them (ip netns / veth)");
        }
        n
    } else {
        println!("skipped the namespaces: making them needs root");
        None
    };
    let mut paths = vec![loopback];
    if let Some(n) = &ns {
        paths.push(n.path());
    }
    println!(
        "{mib} MiB per run, medians of {runs} runs; throughput MiB/s at 64 B / 4 KiB / 64 KiB \
         writes; one-way 64 B latency median / p99"
    );
    for path in &paths {
        let mut all: [Vec<Figures>; 4] = Default::default();
        for run in 0..runs {
            let none = || (vec![0.0; SIZES.len()], (0, 0));
            all[0].push(if only_tunnel {
                none()
            } else {
                tcp(path, total)
            });
            all[1].push(if only_tunnel {
                none()
            } else {
                zenoh_pubsub(path, total)
            });
            all[2].push(tunnel(path, total, run, false));
            all[3].push(tunnel(path, total, run, true));
            let show = |f: &Figures| {
                format!(
                    "{:.0}/{:.0}/{:.0} {:.1}/{:.1} µs",
                    f.0[0],
                    f.0[1],
                    f.0[2],
                    f.1 .0 as f64 / 1e3,
                    f.1 .1 as f64 / 1e3
                )
            };
            eprintln!(
                "{} run {}: tcp {} | zenoh {} | tunnel {} | ring {}",
                path.name,
                run + 1,
                show(&all[0][run]),
                show(&all[1][run]),
                show(&all[2][run]),
                show(&all[3][run])
            );
        }
        for (what, figs) in [
            ("raw TCP (64 KiB BufWriter)", &all[0]),
            ("Zenoh pub/sub (Block)", &all[1]),
            ("fshm-tunnel (linear stream)", &all[2]),
            ("fshm-tunnel (lossless ring, 16 MiB)", &all[3]),
        ] {
            let tp: Vec<f64> = (0..SIZES.len())
                .map(|k| median(figs.iter().map(|f| f.0[k]).collect()))
                .collect();
            let m = median(figs.iter().map(|f| f.1 .0 as f64).collect());
            let p = median(figs.iter().map(|f| f.1 .1 as f64).collect());
            println!(
                "| {} | {what} | {:.0} | {:.0} | {:.0} | {:.1} µs | {:.1} µs |",
                path.name,
                tp[0],
                tp[1],
                tp[2],
                m / 1e3,
                p / 1e3
            );
        }
    }
}
