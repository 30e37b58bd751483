//! The tunnel across simulated hosts (`tests/hosts/`): each host a network namespace
//! plus a mount namespace with a private `/dev/shm`, joined by veth pairs with
//! link-local addresses that exist only inside them. Sources, tunnels and checkers run
//! inside the hosts; replicas keep the sources' names (the hosts do not share
//! `/dev/shm`). Every check of a replica runs inside its host (this test binary run
//! again as a helper) and returns a CRC-32 per 64 KiB of positions, which this process
//! compares with the test pattern's: byte for byte, at the same positions.
//!
//! Faults: link down/up for outages shorter and longer than Zenoh's lease, packet loss
//! by nftables inside a host, kill -9 of the exporter, the importer and the source
//! owner, and a reader on the importing host reading in place while the link flaps.
//!
//! The tests need root (namespaces). Without it they print `skipped <test>: ...` and
//! pass, unless `FSHM_TEST_REQUIRE_PRIVILEGES=1`. They run one at a time (a lock): the
//! machine's cores are few and the outages are timed.

mod hosts;

use hosts::{link, privileged, skip, unique, Host, Proc};
use std::io::{BufRead, Read, Write};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fshm-tunnel");
/// How long any wait may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(60);
/// The range of positions one checksum covers.
const BLOCK: u64 = 64 << 10;
/// Zenoh's port inside the hosts.
const PORT: u16 = 7447;

/// The tests run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The test pattern: byte `p` of every source.
fn byte(p: u64) -> u8 {
    ((p ^ (p >> 11)).wrapping_mul(31) >> 1) as u8
}

fn pattern(from: u64, n: usize) -> Vec<u8> {
    (from..from + n as u64).map(byte).collect()
}

/// The blocks `[max(oldest, k·BLOCK), min(len, (k+1)·BLOCK))` covering `[oldest, len)`.
fn blocks(oldest: u64, len: u64) -> Vec<(u64, u64)> {
    let mut v = Vec::new();
    let mut at = oldest;
    while at < len {
        let end = ((at / BLOCK + 1) * BLOCK).min(len);
        v.push((at, end));
        at = end;
    }
    v
}

/// The pattern's checksums over the blocks of `[oldest, len)`.
fn expected_crcs(oldest: u64, len: u64) -> Vec<u32> {
    blocks(oldest, len)
        .into_iter()
        .map(|(a, b)| crc32fast::hash(&pattern(a, (b - a) as usize)))
        .collect()
}

fn helper_cmd(host: &Host, spec: &str) -> Command {
    let mut c = host.command(std::env::current_exe().unwrap().to_str().unwrap());
    c.args(["--exact", "helper", "--nocapture", "--test-threads=1", "-q"])
        .env("FSHM_NETNS_HELPER", spec);
    c
}

/// A helper in `host` (see [`helper`]) whose answers are lines starting with `= `.
struct Helper(Proc);

impl Helper {
    fn start(host: &Host, spec: &str) -> Helper {
        Helper(host.spawn(helper_cmd(host, spec)))
    }
    /// Sends a command and returns its answer (without `= `).
    fn ask(&mut self, cmd: &str, patience: Duration) -> String {
        self.0.send(cmd);
        self.answer(cmd, patience)
    }
    fn answer(&mut self, what: &str, patience: Duration) -> String {
        let t = Instant::now();
        loop {
            let left = patience.saturating_sub(t.elapsed());
            let l = self.0.line(left, what);
            if let Some(a) = l.strip_prefix("= ") {
                assert!(!a.starts_with("FAIL"), "{what}: {a}");
                return a.to_owned();
            }
        }
    }
}

/// A source owner in a host: creates `name` (`lin`, `ring` (lossy, 64 KiB), `lossless`
/// (64 KiB), `immutable`) and writes the pattern on command.
struct Source {
    h: Helper,
    len: u64,
}

impl Source {
    fn new(host: &Host, name: &str, kind: &str) -> Source {
        let mut h = Helper::start(host, &format!("produce {name} {kind}"));
        h.answer("the source's creation", PATIENCE);
        Source { h, len: 0 }
    }
    /// Writes the next `n` bytes of the pattern in writes of `chunk` bytes.
    fn write(&mut self, n: u64, chunk: u64) {
        let a = self.h.ask(&format!("w {n} {chunk}"), PATIENCE);
        self.len += n;
        assert_eq!(a, format!("ok {}", self.len));
    }
}

/// What a checker saw in a host: the stream's held range and a CRC per block.
#[derive(Debug)]
struct Seen {
    oldest: u64,
    len: u64,
    replica: bool,
    crcs: Vec<u32>,
}

/// Waits in `host` until stream `name` holds `len` bytes, then reads every byte it
/// holds and returns their checksums.
fn check(host: &Host, name: &str, len: u64) -> Seen {
    let mut h = Helper::start(host, &format!("check {name} {len}"));
    let a = h.answer(&format!("the check of {name}"), PATIENCE + PATIENCE / 2);
    let f: Vec<&str> = a.split(' ').collect();
    assert_eq!(f[0], "held", "{a}");
    Seen {
        oldest: f[1].parse().unwrap(),
        len: f[2].parse().unwrap(),
        replica: f[3] == "replica",
        crcs: f
            .get(4)
            .filter(|s| !s.is_empty())
            .map(|s| s.split(',').map(|c| c.parse().unwrap()).collect())
            .unwrap_or_default(),
    }
}

/// Checks that replica `name` in `host` holds exactly `len` bytes, the pattern's at
/// every position it holds, from 0 if `from_0` (a linear stream, or a ring replica
/// large enough for the whole run); returns its oldest position.
fn assert_identical(host: &Host, name: &str, len: u64, from_0: bool) -> u64 {
    let s = check(host, name, len);
    assert!(s.replica, "{name} is not a replica");
    assert_eq!(s.len, len, "{name}: length");
    if from_0 {
        assert_eq!(
            s.oldest, 0,
            "{name}: the replica holds from {}, not 0",
            s.oldest
        );
    }
    let want = expected_crcs(s.oldest, s.len);
    for (i, ((a, b), (got, want))) in blocks(s.oldest, s.len)
        .into_iter()
        .zip(s.crcs.iter().zip(&want))
        .enumerate()
    {
        assert_eq!(got, want, "{name}: bytes [{a}, {b}) differ (block {i})");
    }
    assert_eq!(s.crcs.len(), want.len(), "{name}: blocks");
    s.oldest
}

/// A reader of a replica in a host (`copy`: `Read` through a follower; `inplace`:
/// `fill_buf`/`consume`), checking every byte it gets against the pattern.
struct Reader(Helper);

impl Reader {
    fn new(host: &Host, name: &str, mode: &str) -> Reader {
        let mut h = Helper::start(host, &format!("read {name} {mode}"));
        h.answer("the reader's open", PATIENCE);
        Reader(h)
    }
    /// Reads until position `pos`: (position, bytes lost, overruns).
    fn read_to(&mut self, pos: u64) -> (u64, u64, u64) {
        self.0 .0.send(&format!("to {pos}"));
        self.result(&format!("reading to {pos}"))
    }
    /// Reads to end-of-stream.
    fn read_to_end(&mut self) -> (u64, u64, u64) {
        self.0 .0.send("end");
        self.result("reading to the end")
    }
    fn result(&mut self, what: &str) -> (u64, u64, u64) {
        let a = self.0.answer(what, PATIENCE);
        let f: Vec<u64> = a.split(' ').skip(1).map(|x| x.parse().unwrap()).collect();
        (f[0], f[1], f[2])
    }
}

/// A Zenoh configuration for fast fault tests (a file removed on drop): lease 2 s with 4
/// keep-alives per lease (Zenoh's default: 10 s), a connection retried after 100 ms then
/// up to every 500 ms, handshakes bounded at 2 s, and a blocking publication's wait
/// before Zenoh closes the connection 4 s (the tunnel's default: the 10 s lease). A blocking
/// publication that waits on a dead connection holds Zenoh's transmit side (every
/// stream, query answers and new connections' handshakes) until that wait ends, even
/// past the lease: the wait bounds how late replicas resume after an outage longer
/// than the lease.
struct FastConfig(std::path::PathBuf);

impl FastConfig {
    fn new() -> FastConfig {
        let path = std::env::temp_dir().join(format!(
            "fshm-netns-{}-{}.json5",
            std::process::id(),
            unique()
        ));
        // A new file of this process's own (`O_EXCL`, which also refuses a symbolic
        // link): the test runs as root, and a name in the shared temporary directory
        // that another user made first must not be written through.
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        f.write_all(
            br#"{
  connect: { retry: { period_init_ms: 100, period_max_ms: 500, period_increase_factor: 2 } },
  transport: {
    unicast: { open_timeout: 2000, accept_timeout: 2000 },
    link: { tx: {
      lease: 2000,
      keep_alive: 4,
      queue: { congestion_control: { block: { wait_before_close: 4000000 } } },
    } },
  },
}
"#,
        )
        .unwrap();
        FastConfig(path)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for FastConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn prefix() -> String {
    format!("/fshm-netns-{}-{}/", std::process::id(), unique())
}

fn export(host: &Host, prefix: &str, listen: &[&str], config: Option<&FastConfig>) -> Proc {
    let mut c = host.command(BIN);
    c.args(["export", prefix, "--scan-ms", "20"]);
    for a in listen {
        c.args(["--listen", &format!("tcp/{a}:{PORT}")]);
    }
    if let Some(f) = config {
        c.args(["--config", f.path()]);
    }
    host.spawn(c)
}

fn import(host: &Host, prefix: &str, connect: &str, config: Option<&FastConfig>) -> Proc {
    import_with(host, prefix, connect, config, &[])
}

fn import_with(
    host: &Host,
    prefix: &str,
    connect: &str,
    config: Option<&FastConfig>,
    args: &[&str],
) -> Proc {
    let mut c = host.command(BIN);
    c.args(["import", prefix, "--resync-ms", "200"])
        .args(args)
        .args(["--connect", &format!("tcp/{connect}:{PORT}")]);
    if let Some(f) = config {
        c.args(["--config", f.path()]);
    }
    host.spawn(c)
}

/// Two hosts joined by a link, or the reason they cannot be made.
fn two_hosts(test: &str) -> Option<(Host, Host, hosts::Link)> {
    if !privileged(test) {
        return None;
    }
    let made = Host::new("a").and_then(|a| {
        let b = Host::new("b")?;
        let l = link(&a, &b, 1)?;
        Ok((a, b, l))
    });
    match made {
        Ok(x) => Some(x),
        Err(e) => {
            skip(test, &format!("cannot make network namespaces: {e}"));
            None
        }
    }
}

#[test]
fn streams_are_mirrored_across_hosts_byte_for_byte_and_a_late_joiner_catches_up() {
    let test = "streams_are_mirrored_across_hosts_byte_for_byte_and_a_late_joiner_catches_up";
    let _g = serial();
    let Some((a, b, ab)) = two_hosts(test) else {
        return;
    };
    let c = Host::new("c").unwrap();
    let ac = link(&a, &c, 2).unwrap();
    let p = prefix();
    let (lin, ring) = (format!("{p}lin"), format!("{p}ring"));
    // Before any tunnel: a linear stream with 1 MiB, a lossy ring that wrapped.
    let mut sl = Source::new(&a, &lin, "lin");
    let mut sr = Source::new(&a, &ring, "ring");
    sl.write(1 << 20, 64 << 10);
    sr.write(200_000, 4096);
    let _e = export(&a, &p, &[&ab.a, &ac.a], None);
    let _ib = import(&b, &p, &ab.a, None);
    assert_identical(&b, &lin, 1 << 20, true);
    assert_identical(&b, &ring, 200_000, false);
    // Live bytes in 64-byte writes, and a stream made after the tunnel started.
    sl.write(128_000, 64);
    sr.write(100_000, 64);
    let later = format!("{p}later");
    let mut sx = Source::new(&a, &later, "lin");
    sx.write(5000, 1000);
    assert_identical(&b, &lin, sl.len, true);
    let oldest = assert_identical(&b, &ring, sr.len, false);
    assert!(
        oldest <= sr.len - (64 << 10) + 4096,
        "ring replica from {oldest}"
    );
    assert_identical(&b, &later, 5000, true);
    // A late joiner on host C catches up with what the sources hold, then follows.
    let _ic = import(&c, &p, &ac.a, None);
    assert_identical(&c, &lin, sl.len, true);
    sl.write(64 << 10, 4096);
    sr.write(64 << 10, 4096);
    for h in [&b, &c] {
        assert_identical(h, &lin, sl.len, true);
        assert_identical(h, &ring, sr.len, false);
        assert_identical(h, &later, 5000, true);
    }
    // The hosts' /dev/shm are their own: host A holds sources, not replicas.
    let s = check(&a, &lin, sl.len);
    assert!(!s.replica);
}

#[test]
fn link_outages_shorter_and_longer_than_the_lease_resume_without_a_hole() {
    let test = "link_outages_shorter_and_longer_than_the_lease_resume_without_a_hole";
    let _g = serial();
    let Some((a, b, ab)) = two_hosts(test) else {
        return;
    };
    let cfg = FastConfig::new();
    let p = prefix();
    let (lin, ring) = (format!("{p}lin"), format!("{p}ring"));
    let mut sl = Source::new(&a, &lin, "lin");
    let mut sr = Source::new(&a, &ring, "ring");
    sl.write(100_000, 4096);
    sr.write(10_000, 4096);
    let _e = export(&a, &p, &[&ab.a], Some(&cfg));
    let mut imp = import(&b, &p, &ab.a, Some(&cfg));
    assert_identical(&b, &lin, sl.len, true);
    assert_identical(&b, &ring, sr.len, false);
    // A reader of the ring replica on host B, at its end.
    let mut r = Reader::new(&b, &ring, "copy");
    assert_eq!(r.read_to(sr.len), (sr.len, 0, 0));
    // A 300 ms outage (the lease is 2 s): the producer writes on, less than the ring
    // holds; nothing is lost, the replicas resume, on the same connection.
    let conn = connections(&b);
    assert_eq!(conn.len(), 1, "{conn:?}");
    b.set_link(&ab.dev, false);
    sl.write(30_000, 1000);
    sr.write(30_000, 1000);
    std::thread::sleep(Duration::from_millis(300));
    b.set_link(&ab.dev, true);
    assert_identical(&b, &lin, sl.len, true);
    assert_identical(&b, &ring, sr.len, false);
    assert_eq!(
        r.read_to(sr.len),
        (sr.len, 0, 0),
        "a short outage lost bytes"
    );
    assert_eq!(
        connections(&b),
        conn,
        "the short outage closed the connection"
    );
    // A 5 s outage (Zenoh closes the connection after the 2 s lease): the ring
    // overwrites bytes the replica never got.
    let before = sr.len;
    b.set_link(&ab.dev, false);
    for _ in 0..50 {
        sl.write(10_000, 1000);
        sr.write(10_000, 1000);
        std::thread::sleep(Duration::from_millis(100));
    }
    b.set_link(&ab.dev, true);
    assert_identical(&b, &lin, sl.len, true);
    let oldest = assert_identical(&b, &ring, sr.len, false);
    assert!(imp.alive(), "the importer died");
    let now = connections(&b);
    assert!(
        now.len() == 1 && now != conn,
        "the long outage did not make a new connection: {conn:?}, then {now:?}"
    );
    // The reader meets the bytes gone at the source as an overrun and counts them as
    // lost; every byte it got is the source's (checked by the reader).
    let (at, lost, overruns) = r.read_to(sr.len);
    assert_eq!(at, sr.len);
    assert!(
        overruns >= 1,
        "no overrun after bytes were gone at the source"
    );
    assert!(
        lost >= sr.len - (64 << 10) - before && lost <= oldest - before,
        "lost {lost} bytes between {before} and {}",
        sr.len
    );
    // The same replicas live on: more bytes reach them.
    sl.write(10_000, 1000);
    sr.write(10_000, 1000);
    assert_identical(&b, &lin, sl.len, true);
    assert_eq!(r.read_to(sr.len).0, sr.len);
}

#[test]
fn an_outage_past_the_default_lease_resumes_soon_after_the_link_returns() {
    let test = "an_outage_past_the_default_lease_resumes_soon_after_the_link_returns";
    let _g = serial();
    let Some((a, b, ab)) = two_hosts(test) else {
        return;
    };
    let p = prefix();
    let lin = format!("{p}lin");
    let mut sl = Source::new(&a, &lin, "lin");
    sl.write(100_000, 4096);
    // Zenoh's defaults as the tunnel sets them: lease 10 s, wait_before_close 10 s.
    let _e = export(&a, &p, &[&ab.a], None);
    let _i = import(&b, &p, &ab.a, None);
    assert_identical(&b, &lin, sl.len, true);
    // An 11 s outage while the producer writes: the exporter's blocking publication
    // fills Zenoh's queue and waits on the dead connection, which the lease closes.
    b.set_link(&ab.dev, false);
    for _ in 0..110 {
        sl.write(20_000, 4096);
        std::thread::sleep(Duration::from_millis(100));
    }
    b.set_link(&ab.dev, true);
    let t = Instant::now();
    assert_identical(&b, &lin, sl.len, true);
    // Zenoh reconnects within its retry period (at most 4 s); the publication's wait
    // ended before the link came back. (With a 60 s wait the replica resumed 52 s
    // after the link came back.)
    let late = t.elapsed();
    assert!(
        late < Duration::from_secs(15),
        "the replica resumed {late:?} after the link came back"
    );
}

#[test]
fn packet_loss_inside_a_host_leaves_replicas_byte_identical() {
    let test = "packet_loss_inside_a_host_leaves_replicas_byte_identical";
    let _g = serial();
    let Some((a, b, ab)) = two_hosts(test) else {
        return;
    };
    // 10 % of the packets each host sends are dropped (both directions: data and
    // acknowledgements).
    for h in [&a, &b] {
        let r = h
            .run("nft", &["add", "table", "inet", "fshmloss"])
            .and_then(|_| {
                h.run(
                    "nft",
                    &["add chain inet fshmloss out { type filter hook output priority 0; }"],
                )
            })
            .and_then(|_| {
                h.run(
                    "nft",
                    &["add rule inet fshmloss out numgen random mod 100 < 10 counter drop"],
                )
            });
        if let Err(e) = r {
            // Under FSHM_TEST_REQUIRE_PRIVILEGES=1 this fails where the machine should
            // have it: a kernel with nf_tables and numgen (ci/setup.sh installs nft).
            let kernel = hosts::kernel_has("CONFIG_NF_TABLES") == Some(true)
                && hosts::kernel_has("CONFIG_NFT_NUMGEN") == Some(true);
            let why = format!("cannot add an nftables rule: {e}");
            assert!(
                !(hosts::required() && kernel),
                "{test}: {why} (the kernel has nf_tables and numgen; is nft installed?)"
            );
            println!("skipped {test}: {why}");
            return;
        }
    }
    let p = prefix();
    let (lin, ring) = (format!("{p}lin"), format!("{p}ring"));
    let ll = format!("{p}lossless");
    let mut sl = Source::new(&a, &lin, "lin");
    let mut sr = Source::new(&a, &ring, "ring");
    let mut sll = Source::new(&a, &ll, "lossless");
    let _e = export(&a, &p, &[&ab.a], None);
    // Ring replicas of 4 MiB: the lossless ring's replica holds the whole run, so that
    // the check sees that no byte of it was lost.
    let _i = import_with(&b, &p, &ab.a, None, &["--ring-min-capacity", "4194304"]);
    sl.write(4096, 4096);
    assert_identical(&b, &lin, sl.len, true);
    assert_eq!(sll.h.ask("attached", PATIENCE), "attached");
    for _ in 0..8 {
        sl.write(128 << 10, 4096);
        sr.write(16 << 10, 512);
        sll.write(128 << 10, 4096);
    }
    assert_identical(&b, &lin, sl.len, true);
    assert_identical(&b, &ring, sr.len, false);
    assert_identical(&b, &ll, sll.len, true);
    // The rules did drop packets on both hosts.
    for h in [&a, &b] {
        let rules = h.run("nft", &["list", "chain", "inet", "fshmloss", "out"]);
        let rules = rules.unwrap();
        let dropped: u64 = rules
            .split("counter packets ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no counter in {rules}"));
        assert!(dropped > 0, "no packet dropped: {rules}");
    }
}

/// The host's established TCP connections (local and peer address).
fn connections(host: &Host) -> Vec<String> {
    let o = host
        .command("ss")
        .args(["-Htn", "state", "established"])
        .output()
        .unwrap();
    assert!(o.status.success(), "ss: {o:?}");
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
        .collect();
    v.sort();
    v
}

#[test]
fn tunnels_and_the_source_owner_killed_in_their_hosts_resume_without_a_hole() {
    let test = "tunnels_and_the_source_owner_killed_in_their_hosts_resume_without_a_hole";
    let _g = serial();
    let Some((a, b, ab)) = two_hosts(test) else {
        return;
    };
    let p = prefix();
    let (lin, ring) = (format!("{p}lin"), format!("{p}ring"));
    let mut sl = Source::new(&a, &lin, "lin");
    let mut sr = Source::new(&a, &ring, "ring");
    sl.write(50_000, 4096);
    sr.write(50_000, 4096);
    let mut e = export(&a, &p, &[&ab.a], None);
    let mut i = import(&b, &p, &ab.a, None);
    assert_identical(&b, &lin, sl.len, true);
    assert_identical(&b, &ring, sr.len, false);
    // kill -9 of the exporter; the sources go on; a new exporter.
    e.kill();
    sl.write(200_000, 4096);
    sr.write(20_000, 4096);
    let _e2 = export(&a, &p, &[&ab.a], None);
    assert_identical(&b, &lin, sl.len, true);
    assert_identical(&b, &ring, sr.len, false);
    // kill -9 of the importer; the sources go on; a new importer takes the dead one's
    // replicas back and catches up.
    i.kill();
    sl.write(200_000, 4096);
    sr.write(20_000, 4096);
    let _i2 = import(&b, &p, &ab.a, None);
    assert_identical(&b, &lin, sl.len, true);
    assert_identical(&b, &ring, sr.len, false);
    // kill -9 of the source owner: a follower on host B gets every byte, then the end.
    let mut f = Reader::new(&b, &lin, "copy");
    sl.write(10_000, 1000);
    assert_eq!(f.read_to(sl.len), (sl.len, 0, 0));
    let t = Instant::now();
    sl.h.0.kill();
    assert_eq!(f.read_to_end(), (sl.len, 0, 0));
    let death = t.elapsed();
    assert!(
        death < Duration::from_secs(10),
        "the death reached host B after {death:?}"
    );
}

#[test]
fn a_reader_in_place_on_the_importing_host_checks_every_byte_while_the_link_flaps() {
    let test = "a_reader_in_place_on_the_importing_host_checks_every_byte_while_the_link_flaps";
    let _g = serial();
    let Some((a, b, ab)) = two_hosts(test) else {
        return;
    };
    let cfg = FastConfig::new();
    let p = prefix();
    let name = format!("{p}imm");
    // An immutable source: its replica is immutable too, which local readers read in
    // place.
    let mut s = Source::new(&a, &name, "immutable");
    s.write(4096, 4096);
    let _e = export(&a, &p, &[&ab.a], Some(&cfg));
    let _i = import(&b, &p, &ab.a, Some(&cfg));
    assert_identical(&b, &name, s.len, true);
    let mut r = Reader::new(&b, &name, "inplace");
    let total = s.len + 16 * (64 << 10);
    r.0 .0.send(&format!("to {total}"));
    // The link flaps, down on either side for 0.2 s to 2.3 s (past the 2 s lease), then
    // up for 0.3 s, while the producer writes and the reader reads.
    for k in 0..8u64 {
        let h = if k % 2 == 0 { &a } else { &b };
        h.set_link(&ab.dev, false);
        s.write(64 << 10, 4096);
        std::thread::sleep(Duration::from_millis(200 + 300 * k));
        h.set_link(&ab.dev, true);
        s.write(64 << 10, 4096);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(s.len, total);
    assert_identical(&b, &name, total, true);
    assert_eq!(r.result("the in-place reader"), (total, 0, 0));
}

/// Not a test by itself: the processes the tests above run inside their hosts
/// (`FSHM_NETNS_HELPER`). Answers are lines starting with `= `.
#[test]
fn helper() {
    let Ok(spec) = std::env::var("FSHM_NETNS_HELPER") else {
        return;
    };
    let args: Vec<&str> = spec.split(' ').collect();
    match args[0] {
        "produce" => produce(args[1], args[2]),
        "check" => check_here(args[1], args[2].parse().unwrap()),
        "read" => read_here(args[1], args[2]),
        other => panic!("unknown helper {other}"),
    }
}

fn answer(s: &str) {
    let mut o = std::io::stdout().lock();
    writeln!(o, "= {s}").unwrap();
    o.flush().unwrap();
}

/// The source owner: commands `w N CHUNK` on standard input; exits (closing the
/// stream) when it ends.
fn produce(name: &str, kind: &str) {
    let mut o = fshm::OpenOptions::new();
    match kind {
        "lin" => &mut o,
        "ring" => o.ring(64 << 10, fshm::RingPolicy::Lossy),
        "lossless" => o.ring(64 << 10, fshm::RingPolicy::Lossless),
        "immutable" => o.immutable(true),
        _ => panic!("kind {kind}"),
    };
    let mut s = o.create(name).unwrap();
    answer("created");
    let mut at = 0u64;
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        if line == "attached" {
            // Waits for the exporter's attached reader (a lossless ring).
            let t = Instant::now();
            while s.info().unwrap().attached_readers == 0 {
                if t.elapsed() > PATIENCE {
                    answer(&format!("FAIL {name}: no attached reader"));
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            answer("attached");
            continue;
        }
        let f: Vec<u64> = line
            .split(' ')
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        let end = at + f[0];
        while at < end {
            let n = f[1].min(end - at) as usize;
            s.write_all(&pattern(at, n)).unwrap();
            at += n as u64;
        }
        answer(&format!("ok {at}"));
    }
}

/// Waits until `name` holds `len` bytes, then answers `held OLDEST LEN replica|source
/// CRC,...` over every byte it holds.
fn check_here(name: &str, len: u64) {
    let t = Instant::now();
    loop {
        match fshm::inspect(name) {
            Ok(i) if i.len == len => break,
            Ok(i) if t.elapsed() > PATIENCE => {
                answer(&format!("FAIL {name} holds {} bytes, not {len}", i.len));
                return;
            }
            Err(e) if t.elapsed() > PATIENCE => {
                answer(&format!("FAIL {name}: {e}"));
                return;
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let s = fshm::OpenOptions::new().read_only(true).open(name).unwrap();
    let replica = s.info().unwrap().replica_of.is_some();
    let (oldest, len) = (s.oldest(), s.len());
    let mut crcs = Vec::new();
    for (a, b) in blocks(oldest, len) {
        let mut buf = vec![0u8; (b - a) as usize];
        let mut at = a;
        while at < b {
            match s.read_at(at, &mut buf[(at - a) as usize..]) {
                Ok(0) => {
                    answer(&format!("FAIL {name}: nothing at {at} below {len}"));
                    return;
                }
                Ok(k) => at += k as u64,
                Err(e) => {
                    answer(&format!("FAIL {name}: read at {at}: {e}"));
                    return;
                }
            }
        }
        crcs.push(crc32fast::hash(&buf).to_string());
    }
    let kind = if replica { "replica" } else { "source" };
    answer(&format!("held {oldest} {len} {kind} {}", crcs.join(",")));
}

/// A reader of `name`, once it exists: `to POS` reads until POS, `end` to
/// end-of-stream, each answered `at POS LOST OVERRUNS`; any byte that is not the
/// pattern's is a failure.
fn read_here(name: &str, mode: &str) {
    let t = Instant::now();
    let s = loop {
        match fshm::Stream::open(name) {
            Ok(s) => break s,
            Err(e) if t.elapsed() > PATIENCE => {
                answer(&format!("FAIL {name}: {e}"));
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    answer(&format!("open {}", s.position()));
    let (mut lost, mut overruns) = (0u64, 0u64);
    let mut buf = vec![0u8; 256 << 10];
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let until = match line.split_once(' ') {
            Some(("to", p)) => p.parse().unwrap(),
            _ => u64::MAX,
        };
        let mut f = s.follow().timeout(Some(PATIENCE));
        while s.position() < until {
            let pos = s.position();
            let got: std::io::Result<usize> = if mode == "inplace" {
                f.fill_buf().map(|b| {
                    let n = b.len();
                    if b != pattern(pos, n).as_slice() {
                        usize::MAX
                    } else {
                        n
                    }
                })
            } else {
                f.read(&mut buf).map(|n| {
                    if buf[..n] == pattern(pos, n) {
                        n
                    } else {
                        usize::MAX
                    }
                })
            };
            match got {
                Ok(0) => break,
                Ok(usize::MAX) => {
                    answer(&format!(
                        "FAIL {name}: bytes from {pos} are not the source's"
                    ));
                    return;
                }
                Ok(n) => {
                    if mode == "inplace" {
                        f.consume(n);
                    }
                }
                Err(e) => match fshm::overrun_of(&e) {
                    Some(o) => {
                        overruns += 1;
                        lost += o.resume_at() - pos;
                    }
                    None => {
                        let len = fshm::inspect(name).map(|i| i.len);
                        answer(&format!("FAIL {name}: read at {pos} (length {len:?}): {e}"));
                        return;
                    }
                },
            }
        }
        if lost != s.lost_bytes() {
            answer(&format!(
                "FAIL {name}: {lost} bytes skipped, lost_bytes says {}",
                s.lost_bytes()
            ));
            return;
        }
        answer(&format!("at {} {lost} {overruns}", s.position()));
    }
}
