//! End-to-end tests with real processes: an exporter and an importer (the
//! `fshm-tunnel` binary) talking over tcp/127.0.0.1:<free port>, sources owned by this
//! process or by a child of it, replicas read with the ordinary fshm API. Every test
//! uses a prefix of its own and removes its streams, also on failure.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{free_port, Prefix, Proc, BIN, PATIENCE};

/// A fresh prefix of this file's family.
fn prefix(tag: &str) -> Prefix {
    Prefix::in_family("tun", tag)
}

fn export(prefix: &str, port: u16) -> Proc {
    export_with(prefix, port, &[])
}

fn export_with(prefix: &str, port: u16, args: &[&str]) -> Proc {
    Proc(
        Command::new(BIN)
            .args([
                "export",
                prefix,
                "--listen",
                &format!("tcp/127.0.0.1:{port}"),
            ])
            .args(["--scan-ms", "20"])
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn import(p: &Prefix, port: u16, env: &[(&str, &str)]) -> Proc {
    import_with(p, port, env, &[])
}

fn import_with(p: &Prefix, port: u16, env: &[(&str, &str)], args: &[&str]) -> Proc {
    let mut c = Command::new(BIN);
    c.args(["import", &p.0, "--as", &p.1])
        .args(args)
        .args(["--connect", &format!("tcp/127.0.0.1:{port}")])
        .args(["--resync-ms", "200"])
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    Proc(c.spawn().unwrap())
}

/// The test pattern: byte `p` of every source.
fn byte(p: u64) -> u8 {
    ((p ^ (p >> 11)).wrapping_mul(31) >> 1) as u8
}

fn pattern(from: u64, n: usize) -> Vec<u8> {
    (from..from + n as u64).map(byte).collect()
}

/// Waits until `f` holds, failing after PATIENCE.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn replica_len(name: &str) -> Option<u64> {
    fshm::inspect(name).ok().map(|i| i.len)
}

/// Checks that the replica holds the pattern at every position it holds.
fn check_held(name: &str) -> (u64, u64) {
    let s = fshm::OpenOptions::new().read_only(true).open(name).unwrap();
    let (from, len) = (s.oldest(), s.len());
    let mut buf = vec![0u8; (len - from) as usize];
    let n = s.read_at(from, &mut buf).unwrap();
    let mut at = from + n as u64;
    while at < len {
        let k = s.read_at(at, &mut buf[(at - from) as usize..]).unwrap();
        assert!(k > 0);
        at += k as u64;
    }
    assert!(
        buf == pattern(from, buf.len()),
        "{name}: bytes differ from the source"
    );
    (from, len)
}

#[test]
fn streams_are_mirrored_byte_for_byte_late_joiners_catch_up_and_replicas_are_read_only() {
    let p = prefix("basic");
    let port = free_port();
    // Before any tunnel: a linear stream with 1 MiB and a lossy ring that wrapped.
    let mut lin = fshm::OpenOptions::new()
        .mode(0o640)
        .create(&p.src("lin"))
        .unwrap();
    lin.write_all(&pattern(0, 1 << 20)).unwrap();
    let mut ring = fshm::OpenOptions::new()
        .ring(64 << 10, fshm::RingPolicy::Lossy)
        .create(&p.src("ring"))
        .unwrap();
    ring.write_all(&pattern(0, 200_000)).unwrap();
    let outside = format!("/fshm-tun-out-{}", std::process::id());
    let _out = fshm::Stream::create(&outside).unwrap();
    let _e = export(&p.0, port);
    let _i = import(&p, port, &[]);
    wait_until("the linear replica", || {
        replica_len(&p.rep("lin")) == Some(1 << 20)
    });
    wait_until("the ring replica", || {
        replica_len(&p.rep("ring")) == Some(200_000)
    });
    // Live bytes, in 64-byte writes, and a stream created after the tunnel started.
    let mut at = 1u64 << 20;
    for _ in 0..2000 {
        lin.write_all(&pattern(at, 64)).unwrap();
        at += 64;
    }
    let mut later = fshm::Stream::create(&p.src("later")).unwrap();
    later.write_all(&pattern(0, 5000)).unwrap();
    ring.write_all(&pattern(200_000, 100_000)).unwrap();
    wait_until("live bytes", || {
        replica_len(&p.rep("lin")) == Some(at)
            && replica_len(&p.rep("ring")) == Some(300_000)
            && replica_len(&p.rep("later")) == Some(5000)
    });
    assert_eq!(check_held(&p.rep("lin")), (0, at));
    let (from, len) = check_held(&p.rep("ring"));
    assert_eq!(len, 300_000);
    assert!(
        from <= 300_000 - 65536 + 4096,
        "ring replica holds from {from}"
    );
    check_held(&p.rep("later"));
    // Replicas: read-only for local users, and they say where they come from.
    let mut guest = fshm::Stream::open(&p.rep("lin")).unwrap();
    let e = guest.write_all(b"x").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ReadOnlyFilesystem, "{e}");
    let info = fshm::inspect(&p.rep("lin")).unwrap();
    let src = info.replica_of.expect("a replica");
    assert!(
        src.contains(&format!("127.0.0.1:{port}")) && src.ends_with(&p.src("lin")),
        "{src}"
    );
    assert_eq!(info.mode, 0o640);
    assert_eq!(
        fshm::inspect(&p.rep("ring")).unwrap().ring_capacity,
        Some(64 << 10)
    );
    // Nothing outside the prefix was mirrored.
    assert!(fshm::list_with_prefix(&p.1).unwrap().len() == 3);
    assert!(fshm::list()
        .unwrap()
        .iter()
        .all(|i| !i.name.ends_with(&outside[1..]) || i.replica_of.is_none()));
}

#[test]
fn the_source_owner_close_and_death_end_followers_on_the_other_side() {
    let p = prefix("ends");
    let port = free_port();
    let _e = export(&p.0, port);
    let _i = import(&p, port, &[]);
    // A source owned by a child that writes, then closes (exit) or is killed.
    let owner = |name: String, n: usize| -> Proc {
        Proc(
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "helper_owner", "--nocapture", "--test-threads=1"])
                .env("FSHM_TUNNEL_HELPER", format!("{name} {n}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut closer = owner(p.src("closes"), 100_000);
    let mut victim = owner(p.src("dies"), 50_000);
    wait_until("the replicas", || {
        replica_len(&p.rep("closes")) == Some(100_000)
            && replica_len(&p.rep("dies")) == Some(50_000)
    });
    let follow = |name: String| {
        std::thread::spawn(move || {
            let s = fshm::Stream::open(&name).unwrap();
            let mut got = Vec::new();
            s.follow()
                .timeout(Some(PATIENCE))
                .read_to_end(&mut got)
                .unwrap();
            got
        })
    };
    let f1 = follow(p.rep("closes"));
    let f2 = follow(p.rep("dies"));
    // The victim is killed (SIGKILL): its death must end the remote follower.
    let t = Instant::now();
    victim.kill();
    let got2 = f2.join().unwrap();
    let death = t.elapsed();
    assert_eq!(got2, pattern(0, 50_000));
    assert!(
        death < Duration::from_secs(10),
        "death reached the follower after {death:?}"
    );
    // The closer closes its stream when its standard input ends.
    drop(closer.0.stdin.take());
    let status = closer.0.wait().unwrap();
    assert!(status.success());
    let got1 = f1.join().unwrap();
    assert_eq!(got1, pattern(0, 100_000));
    assert!(!closer.alive());
}

/// Not a test by itself: the source owner of the test above, run as a child.
#[test]
fn helper_owner() {
    let Ok(spec) = std::env::var("FSHM_TUNNEL_HELPER") else {
        return;
    };
    let (name, n) = spec.split_once(' ').unwrap();
    let mut s = fshm::Stream::create(name).unwrap();
    s.write_all(&pattern(0, n.parse().unwrap())).unwrap();
    // Closes the stream (drop) once standard input ends.
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(s);
}

#[test]
fn a_slow_importer_holds_a_lossless_producer_back_and_no_byte_is_lost() {
    let p = prefix("lossless");
    let port = free_port();
    let _e = export(&p.0, port);
    // The importer applies at most 8 MiB/s; its replica holds the whole run, so that
    // the check below sees every byte (local readers of a replica are lossy readers).
    let _i = import_with(
        &p,
        port,
        &[("FSHM_TUNNEL_TEST_IMPORT_RATE", "8388608")],
        &["--ring-min-capacity", "67108864"],
    );
    let mut w = fshm::OpenOptions::new()
        .ring(64 << 10, fshm::RingPolicy::Lossless)
        .create(&p.src("ll"))
        .unwrap();
    wait_until("the exporter's attached reader", || {
        fshm::inspect(&p.src("ll")).unwrap().attached_readers == 1
    });
    wait_until("the replica", || replica_len(&p.rep("ll")).is_some());
    let total: u64 = 32 << 20;
    let t = Instant::now();
    let mut at = 0u64;
    while at < total {
        w.write_all(&pattern(at, 4096)).unwrap();
        at += 4096;
    }
    let spent = t.elapsed();
    wait_until("every byte", || replica_len(&p.rep("ll")) == Some(total));
    // Every position from 0 holds the source's byte: nothing was lost or skipped.
    assert_eq!(check_held(&p.rep("ll")), (0, total));
    // 32 MiB at 8 MiB/s is 4 s; Zenoh's queues, the sockets and the importer's channel
    // hold a few MiB: the producer must have waited most of it.
    assert!(
        spent > Duration::from_millis(2000),
        "the producer was not held back: {spent:?}"
    );
}

#[test]
fn outages_resume_without_a_hole_and_bytes_gone_at_the_source_are_recorded_as_lost() {
    let p = prefix("outage");
    let port = free_port();
    let mut lin = fshm::Stream::create(&p.src("lin")).unwrap();
    let mut ring = fshm::OpenOptions::new()
        .ring(64 << 10, fshm::RingPolicy::Lossy)
        .create(&p.src("ring"))
        .unwrap();
    lin.write_all(&pattern(0, 10_000)).unwrap();
    ring.write_all(&pattern(0, 10_000)).unwrap();
    let mut e = export(&p.0, port);
    let _i = import(&p, port, &[]);
    wait_until("the replicas", || {
        replica_len(&p.rep("lin")) == Some(10_000) && replica_len(&p.rep("ring")) == Some(10_000)
    });
    // A reader of the ring replica, sitting at its end.
    let mut r = fshm::Stream::open(&p.rep("ring")).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = r.position();
    while at < 10_000 {
        at += r.read(&mut buf).unwrap() as u64;
    }
    // The exporting tunnel dies; the sources go on: the ring overwrites what the
    // replica has not seen.
    e.kill();
    lin.write_all(&pattern(10_000, 500_000)).unwrap();
    ring.write_all(&pattern(10_000, 500_000)).unwrap();
    let mut e2 = export(&p.0, port);
    wait_until("the resumed replicas", || {
        replica_len(&p.rep("lin")) == Some(510_000) && replica_len(&p.rep("ring")) == Some(510_000)
    });
    assert_eq!(check_held(&p.rep("lin")), (0, 510_000));
    check_held(&p.rep("ring"));
    // The reader meets the loss as an overrun, then reads the source's bytes.
    let e = r.read(&mut buf).unwrap_err();
    let o = fshm::overrun_of(&e).expect("an overrun");
    assert_eq!(o.resume_at(), ring.oldest().max(o.resume_at()));
    assert!(o.resume_at() >= 510_000 - (64 << 10));
    let mut at = o.resume_at();
    while at < 510_000 {
        let n = r.read(&mut buf).unwrap();
        assert!(buf[..n] == pattern(at, n));
        at += n as u64;
    }
    assert_eq!(r.lost_bytes(), o.resume_at() - 10_000);
    // The importer restarted too: it makes the replicas anew and catches up.
    drop(_i);
    let _i2 = import(&p, port, &[]);
    lin.write_all(&pattern(510_000, 1000)).unwrap();
    wait_until("the new replica", || {
        replica_len(&p.rep("lin")) == Some(511_000)
    });
    assert_eq!(check_held(&p.rep("lin")), (0, 511_000));
    e2.kill();
}

/// Bytes whose live frames never arrive — also the last ones before the source goes
/// quiet, which no later frame reveals as missing — are fetched by the next resyncs.
/// (While live frames arrive, resyncs fetch only what is still missing a resync period
/// later: bytes on their way are not asked for twice.)
#[test]
fn bytes_whose_live_frames_are_all_lost_are_fetched_at_the_resyncs() {
    let p = prefix("nolive");
    let port = free_port();
    let mut lin = fshm::Stream::create(&p.src("lin")).unwrap();
    let mut ring = fshm::OpenOptions::new()
        .ring(64 << 10, fshm::RingPolicy::Lossless)
        .create(&p.src("ring"))
        .unwrap();
    let mut e = export(&p.0, port);
    let _i = import(&p, port, &[("FSHM_TUNNEL_TEST_DROP_LIVE_DATA", "1")]);
    wait_until("the replicas", || {
        replica_len(&p.rep("lin")) == Some(0) && replica_len(&p.rep("ring")) == Some(0)
    });
    let mut at = 0u64;
    for burst in [1usize, 70_000, 300_000, 7] {
        lin.write_all(&pattern(at, burst)).unwrap();
        // A lossless ring: the writer waits for room the importer's acknowledgements
        // free, so the burst goes in while the replica catches up.
        ring.write_all(&pattern(at, burst)).unwrap();
        at += burst as u64;
        wait_until("the burst, by resync queries", || {
            replica_len(&p.rep("lin")) == Some(at) && replica_len(&p.rep("ring")) == Some(at)
        });
    }
    assert_eq!(check_held(&p.rep("lin")), (0, at));
    check_held(&p.rep("ring"));
    e.kill();
}

#[test]
fn a_lost_exporter_marks_replicas_stale_while_they_stay_open_and_its_return_clears_the_mark() {
    let p = prefix("stale");
    let port = free_port();
    let mut lin = fshm::Stream::create(&p.src("lin")).unwrap();
    let mut ring = fshm::OpenOptions::new()
        .ring(64 << 10, fshm::RingPolicy::Lossy)
        .create(&p.src("ring"))
        .unwrap();
    lin.write_all(&pattern(0, 10_000)).unwrap();
    ring.write_all(&pattern(0, 10_000)).unwrap();
    let mut e = export(&p.0, port);
    // --resync-ms 200: a replica unheard of for 600 ms is marked stale.
    let _i = import(&p, port, &[]);
    let stale = |s: &str| fshm::inspect(&p.rep(s)).map(|i| i.stale).ok();
    wait_until("the replicas", || {
        replica_len(&p.rep("lin")) == Some(10_000)
            && replica_len(&p.rep("ring")) == Some(10_000)
            && stale("lin") == Some(false)
            && stale("ring") == Some(false)
    });
    let mut reader = fshm::Stream::open(&p.rep("lin")).unwrap();
    let mut got = vec![0u8; 10_000];
    reader.read_exact(&mut got).unwrap();
    assert!(got == pattern(0, 10_000));

    // kill -9 of the exporting tunnel: both replicas are marked stale within the bound
    // (three resync periods and the importer's 100 ms check; slack for a loaded machine).
    e.kill();
    let t = Instant::now();
    wait_until("the stale mark", || {
        stale("lin") == Some(true) && stale("ring") == Some(true)
    });
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // They stay open (their owner, the importer, is alive), readable, and not ended.
    for s in ["lin", "ring"] {
        assert_eq!(
            fshm::inspect(&p.rep(s)).unwrap().owner,
            fshm::OwnerState::Alive
        );
        check_held(&p.rep(s));
    }
    assert_eq!(
        reader.wait_for(10_000, Some(Duration::from_millis(50))),
        fshm::WaitStatus::TimedOut
    );

    // The sources go on while the exporter is away (the ring within its capacity).
    lin.write_all(&pattern(10_000, 300_000)).unwrap();
    ring.write_all(&pattern(10_000, 20_000)).unwrap();
    let _e2 = export(&p.0, port);
    // The mark is cleared only once the replica has caught up: a reader that sees it
    // cleared finds every byte the source held when the exporter came back.
    wait_until("the cleared marks", || {
        let mut cleared = true;
        for (s, len) in [("lin", 310_000), ("ring", 30_000)] {
            if stale(s) == Some(false) {
                let held = replica_len(&p.rep(s));
                assert_eq!(
                    held,
                    Some(len),
                    "{s}: the mark was cleared before catching up"
                );
            } else {
                cleared = false;
            }
        }
        cleared
    });
    assert_eq!(check_held(&p.rep("lin")), (0, 310_000));
    assert_eq!(check_held(&p.rep("ring")), (0, 30_000));
    // No hole for the local reader either: it goes on from where it stood.
    let mut rest = Vec::new();
    while rest.len() < 300_000 {
        let mut buf = vec![0u8; 1 << 16];
        let n = reader.read(&mut buf).unwrap();
        assert!(n > 0, "the replica ended");
        rest.extend_from_slice(&buf[..n]);
    }
    assert!(rest == pattern(10_000, 300_000), "the resumed bytes differ");
    // Live bytes after the return.
    lin.write_all(&pattern(310_000, 1000)).unwrap();
    wait_until("live bytes after the return", || {
        replica_len(&p.rep("lin")) == Some(311_000)
    });
    assert_eq!(stale("lin"), Some(false));
}

#[test]
fn a_hostile_exporter_cannot_write_outside_the_prefix_nor_crash_the_importer() {
    use zenoh::Wait;
    let p = prefix("hostile");
    let port = free_port();
    let cfg = fshm_tunnel::zenoh_config(None, &[format!("tcp/127.0.0.1:{port}")], &[]).unwrap();
    let session = fshm_tunnel::open_session(cfg).unwrap();
    let mut imp = import(&p, port, &[]);
    let put = |key: &str, f: Vec<u8>| session.put(key, f).wait().unwrap();
    let meta = |len: u64, cap: u64| fshm_tunnel::frame::Meta {
        ident: 1,
        ring_capacity: cap,
        lossless: false,
        persistent: false,
        immutable: false,
        mode: 0o644,
        max_size: if cap == 0 { 1 << 20 } else { cap },
        len,
        oldest: 0,
        state: fshm_tunnel::frame::SourceState::Alive,
    };
    use fshm_tunnel::frame::{encode, Kind};
    let outside = format!("/fshm-tun-evil-{}", std::process::id());
    // Names outside the prefix, escaping it, invalid; bad frames; absurd sizes.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        put(&fshm_tunnel::data_key(&outside), meta(10, 0).frame());
        put(
            &fshm_tunnel::data_key(&format!("{}../x", p.0)),
            meta(10, 0).frame(),
        );
        put("fshm/2f2e2e/d", meta(10, 0).frame());
        put(
            &fshm_tunnel::data_key(&p.src("big")),
            meta(10, 1 << 43).frame(),
        );
        put(
            &fshm_tunnel::data_key(&p.src("odd")),
            meta(10, 12345).frame(),
        );
        put(&fshm_tunnel::data_key(&p.src("junk")), vec![0xff; 100]);
        put(&fshm_tunnel::data_key(&p.src("lin")), meta(0, 0).frame());
        put(
            &fshm_tunnel::data_key(&p.src("lin")),
            encode(Kind::Lost, 0, 1 << 40, &[]),
        );
        put(
            &fshm_tunnel::data_key(&p.src("lin")),
            encode(Kind::Data, (1 << 20) - 2, 0, b"past the end"),
        );
        put(
            &fshm_tunnel::data_key(&p.src("lin")),
            encode(Kind::Data, 1 << 61, 0, b"far"),
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(imp.alive(), "the importer died");
    assert!(fshm::inspect(&outside).is_err());
    let base = p.1.trim_end_matches('/');
    assert!(fshm::list_with_prefix(base)
        .unwrap()
        .iter()
        .all(|i| i.name.starts_with(&p.1)));
    if let Ok(i) = fshm::inspect(&p.rep("lin")) {
        assert_eq!(i.len, 0, "bytes out of order or past the end were applied");
    }
    assert!(fshm::inspect(&p.rep("big")).is_err());
    assert!(fshm::inspect(&p.rep("odd")).is_err());
    drop(session);
    imp.kill();
}

/// A lossless ring's producer on a thread of its own, writing the pattern in 4 KiB
/// writes up to `total` once told to go; the thread returns the stream (still open: the
/// source's end would close the replica) when it finished.
fn lossless_producer(
    name: &str,
    cap: u64,
    total: u64,
) -> (
    std::sync::mpsc::Sender<()>,
    std::thread::JoinHandle<fshm::Stream>,
) {
    let mut w = fshm::OpenOptions::new()
        .ring(cap, fshm::RingPolicy::Lossless)
        .create(name)
        .unwrap();
    let (go, wait) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let _ = wait.recv();
        let mut at = 0u64;
        while at < total {
            let n = (total - at).min(4096) as usize;
            w.write_all(&pattern(at, n)).unwrap();
            at += n as u64;
        }
        w
    });
    (go, h)
}

/// Once the replica exists, lets the producer go, and waits until its ring follows the
/// importer's acknowledgements: a first MiB applied, and the exporter's reader no
/// further than the replica (without acknowledgements it runs ahead by what Zenoh's
/// queues hold).
fn following_acks(src: &str, rep: &str, go: &std::sync::mpsc::Sender<()>) {
    wait_until("the replica", || replica_len(rep).is_some());
    go.send(()).unwrap();
    wait_until("the ring following the acknowledgements", || {
        let applied = replica_len(rep).unwrap_or(0);
        let slot = fshm::progress(src).unwrap().readers;
        applied >= 1 << 20 && slot.iter().all(|&r| r <= applied)
    });
}

/// While an importer is dead, for `window`: the exporter never releases past what the
/// dead importer's replica applied (`applied`), so the producer never runs more than
/// the ring's capacity past it.
fn assert_held(src: &str, applied: u64, cap: u64, window: Duration) {
    let t = Instant::now();
    while t.elapsed() < window {
        let pr = fshm::progress(src).unwrap();
        assert!(
            pr.readers.iter().all(|&r| r <= applied),
            "released {:?} past the dead importer's {applied}",
            pr.readers
        );
        assert!(
            pr.len <= applied + cap,
            "the producer ran to {} past the dead importer's {applied} + capacity",
            pr.len
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// (a) End-to-end acknowledgements: an importer killed (SIGKILL) mid-stream holds the
/// lossless producer where its replica stood, and one restarted within the patience
/// takes its place (same importer id) and catches up from the bytes the ring still
/// held: between the dead replica and the new one, no position is missing.
#[test]
fn a_lossless_ring_holds_for_a_killed_importer_and_its_restart_loses_nothing() {
    let p = prefix("ackrestart");
    let port = free_port();
    let cap: u64 = 64 << 10;
    let total: u64 = 8 << 20;
    let _e = export_with(&p.0, port, &["--ack-patience-ms", "120000"]);
    let replica_room = ["--ring-min-capacity", "16777216"];
    let slow = [("FSHM_TUNNEL_TEST_IMPORT_RATE", "4194304")];
    let mut imp = import_with(&p, port, &slow, &replica_room);
    let (go, producer) = lossless_producer(&p.src("ll"), cap, total);
    following_acks(&p.src("ll"), &p.rep("ll"), &go);
    imp.kill();
    let applied = replica_len(&p.rep("ll")).unwrap();
    assert!(applied < total, "the importer was not killed mid-stream");
    // The dead replica holds the source's bytes up to where it stopped.
    let (_, dead_len) = check_held(&p.rep("ll"));
    assert_eq!(dead_len, applied);
    assert_held(&p.src("ll"), applied, cap, Duration::from_secs(1));
    assert!(!producer.is_finished(), "the producer was not held back");
    // The importer comes back well within the patience: the producer resumes and the
    // new replica holds everything from at most where the dead one stopped.
    let t = Instant::now();
    let _imp2 = import_with(&p, port, &[], &replica_room);
    wait_until("the producer's end", || producer.is_finished());
    wait_until("every byte", || replica_len(&p.rep("ll")) == Some(total));
    let resumed = t.elapsed();
    let (from, len) = check_held(&p.rep("ll"));
    assert_eq!(len, total);
    assert!(
        from <= applied,
        "positions {applied}..{from} are in neither replica"
    );
    assert!(
        resumed < Duration::from_secs(60),
        "the restarted importer did not take the dead one's place: {resumed:?}"
    );
    drop(producer.join().unwrap());
}

/// (b) An importer away for longer than the patience is no longer waited for: the
/// producer, held meanwhile, resumes.
#[test]
fn a_lossless_ring_stops_waiting_for_an_importer_away_longer_than_the_patience() {
    let p = prefix("ackpatience");
    let port = free_port();
    let cap: u64 = 64 << 10;
    let total: u64 = 8 << 20;
    let patience = Duration::from_millis(1500);
    let _e = export_with(&p.0, port, &["--ack-patience-ms", "1500"]);
    let slow = [("FSHM_TUNNEL_TEST_IMPORT_RATE", "4194304")];
    let mut imp = import_with(&p, port, &slow, &["--ring-min-capacity", "16777216"]);
    let (go, producer) = lossless_producer(&p.src("ll"), cap, total);
    following_acks(&p.src("ll"), &p.rep("ll"), &go);
    imp.kill();
    let killed = Instant::now();
    let applied = replica_len(&p.rep("ll")).unwrap();
    assert!(
        applied + cap < total,
        "the importer was not killed mid-stream"
    );
    // Held for most of the patience (it counts from the importer's last progress).
    assert_held(&p.src("ll"), applied, cap, patience / 2);
    assert!(!producer.is_finished(), "the producer was not held back");
    wait_until("the producer's end", || producer.is_finished());
    let held = killed.elapsed();
    assert!(
        held >= patience / 2,
        "the producer resumed after {held:?}, before the patience"
    );
    drop(producer.join().unwrap());
}
