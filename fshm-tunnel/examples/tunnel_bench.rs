//! Throughput and latency of a stream mirrored through `fshm-tunnel` over loopback,
//! against a raw TCP socket (64 KiB buffered writer) and Zenoh's own pub/sub on the
//! same path. Run from the workspace root after a release build of the binary:
//!
//! ```text
//! cargo build --release --manifest-path fshm-tunnel/Cargo.toml
//! cargo run --release --manifest-path fshm-tunnel/Cargo.toml --example tunnel_bench -- [MiB per run]
//! ```
//!
//! Throughput: bytes written in writes of 64 B, 4 KiB and 64 KiB, timed from the first
//! write until the receiver holds the last byte (the tunnel: until the replica's length
//! reaches it). Latency: one-way, one 64-byte write at a time, writer and reader in this
//! process (one clock); medians and 99th percentiles of 2,000.

use std::io::{BufWriter, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use zenoh::Wait;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn pct(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

fn tunnel_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("fshm-tunnel")
}

/// The tunnel: (throughput per write size, latency).
fn tunnel(total: u64, sizes: &[usize]) -> (Vec<f64>, (Duration, Duration)) {
    let p = port();
    let prefix = format!("/tbench-{}/", std::process::id());
    let mapped = format!("/tbenchr-{}/", std::process::id());
    let ep = format!("tcp/127.0.0.1:{p}");
    let _e = Kill(
        Command::new(tunnel_bin())
            .args(["export", &prefix, "--listen", &ep, "--scan-ms", "10"])
            .stdin(Stdio::null())
            .spawn()
            .expect("build the binary first: cargo build --release --manifest-path fshm-tunnel/Cargo.toml"),
    );
    let _i = Kill(
        Command::new(tunnel_bin())
            .args(["import", &prefix, "--as", &mapped, "--connect", &ep])
            .args(["--resync-ms", "100"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
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
    for (k, &size) in sizes.iter().enumerate() {
        let src = format!("{prefix}t{k}");
        let mut w = fshm::OpenOptions::new()
            .max_size(total + (1 << 20))
            .create(&src)
            .unwrap();
        let r = open_replica(&format!("{mapped}t{k}"));
        let buf = vec![7u8; size];
        let t = Instant::now();
        let mut n = 0;
        while n < total {
            w.write_all(&buf).unwrap();
            n += size as u64;
        }
        while r.len() < n {
            r.wait_for(r.len(), Some(Duration::from_secs(30)));
        }
        out.push(mib_s(n, t.elapsed()));
        drop(w);
        let _ = fshm::force_destroy(&format!("{mapped}t{k}"));
    }
    let src = format!("{prefix}lat");
    let mut w = fshm::Stream::create(&src).unwrap();
    let r = open_replica(&format!("{mapped}lat"));
    let mut lat = Vec::new();
    for i in 0..2000u64 {
        let t = Instant::now();
        w.write_all(&[1u8; 64]).unwrap();
        let want = (i + 1) * 64;
        while r.len() < want {
            r.wait_for(r.len(), Some(Duration::from_secs(5)));
        }
        lat.push(t.elapsed());
    }
    drop(w);
    let _ = fshm::force_destroy(&format!("{mapped}lat"));
    (out, pct(lat))
}

fn tcp(total: u64, sizes: &[usize]) -> (Vec<f64>, (Duration, Duration)) {
    let mut out = Vec::new();
    for &size in sizes {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let rx = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let mut got = 0u64;
            while got < total {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0);
                got += n as u64;
            }
            Instant::now()
        });
        let mut w = BufWriter::with_capacity(1 << 16, std::net::TcpStream::connect(addr).unwrap());
        let buf = vec![7u8; size];
        let t = Instant::now();
        let mut n = 0;
        while n < total {
            w.write_all(&buf).unwrap();
            n += size as u64;
        }
        w.flush().unwrap();
        let end = rx.join().unwrap();
        out.push(mib_s(n, end - t));
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 64];
        while s.read_exact(&mut buf).is_ok() {
            tx.send(Instant::now()).unwrap();
        }
    });
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut lat = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        s.write_all(&[1u8; 64]).unwrap();
        lat.push(done.recv().unwrap() - t);
    }
    (out, pct(lat))
}

fn zenoh_pubsub(total: u64, sizes: &[usize]) -> (Vec<f64>, (Duration, Duration)) {
    let p = port();
    let ep = format!("tcp/127.0.0.1:{p}");
    let a = fshm_tunnel::open_session(
        fshm_tunnel::zenoh_config(None, std::slice::from_ref(&ep), &[]).unwrap(),
    )
    .unwrap();
    let b =
        fshm_tunnel::open_session(fshm_tunnel::zenoh_config(None, &[], &[ep]).unwrap()).unwrap();
    let got = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel::<Instant>();
    let g = got.clone();
    let _sub = b
        .declare_subscriber("bench/**")
        .callback(move |s| {
            let n = s.payload().len() as u64;
            g.fetch_add(n, Ordering::Relaxed);
            if s.key_expr().as_str() == "bench/lat" {
                let _ = tx.send(Instant::now());
            }
        })
        .wait()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500)); // the subscription reaches the publisher
    let publ = a
        .declare_publisher("bench/tp")
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .wait()
        .unwrap();
    let mut out = Vec::new();
    for &size in sizes {
        let base = got.load(Ordering::Relaxed);
        let buf = vec![7u8; size];
        let t = Instant::now();
        let mut n = 0;
        while n < total {
            publ.put(buf.clone()).wait().unwrap();
            n += size as u64;
        }
        while got.load(Ordering::Relaxed) - base < n {
            std::thread::yield_now();
        }
        out.push(mib_s(n, t.elapsed()));
    }
    let lp = a
        .declare_publisher("bench/lat")
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .wait()
        .unwrap();
    let mut lat = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        lp.put(vec![1u8; 64]).wait().unwrap();
        lat.push(rx.recv().unwrap() - t);
    }
    (out, pct(lat))
}

fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    let total = mib << 20;
    let sizes = [64usize, 4096, 65536];
    println!("{mib} MiB per run; throughput MiB/s at 64 B / 4 KiB / 64 KiB writes; one-way 64 B latency median / p99");
    for (what, (tp, (med, p99))) in [
        ("raw TCP (64 KiB BufWriter)", tcp(total, &sizes)),
        ("Zenoh pub/sub (Block)", zenoh_pubsub(total, &sizes)),
        ("fshm-tunnel (linear stream)", tunnel(total, &sizes)),
    ] {
        println!(
            "| {what} | {:.0} | {:.0} | {:.0} | {:.1} µs | {:.1} µs |",
            tp[0],
            tp[1],
            tp[2],
            med.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
}
