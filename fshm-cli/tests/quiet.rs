//! `fshm cat` and `fshm tail -f` print the stream's bytes and nothing else: no progress,
//! no status on standard error, so they can sit in pipelines and logs.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn cat_and_tail_follow_print_only_the_data() {
    let name = format!("/fshm-quiet-{}", std::process::id());
    let fshm = env!("CARGO_BIN_EXE_fshm");
    let mut writer = Command::new(fshm)
        .args(["write", "--create", &name])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn fshm write");
    struct Cleanup<'a>(&'a str, &'a mut std::process::Child);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = self.1.kill();
            let _ = self.1.wait();
            let _ = fshm::force_destroy(self.0);
        }
    }
    let mut stdin = writer.stdin.take().expect("stdin");
    let guard = Cleanup(&name, &mut writer);
    stdin.write_all(b"one\ntwo\n").expect("feed");
    stdin.flush().expect("flush");
    let t = Instant::now();
    while fshm::inspect(&name).map(|i| i.len).unwrap_or(0) != 8 {
        assert!(t.elapsed() < TIMEOUT, "the writer did not commit");
        std::thread::yield_now();
    }

    let cat = Command::new(fshm)
        .args(["cat", &name])
        .output()
        .expect("cat");
    assert!(cat.status.success(), "{cat:?}");
    assert_eq!(cat.stdout, b"one\ntwo\n");
    assert!(cat.stderr.is_empty(), "{cat:?}");

    let mut tail = Command::new(fshm)
        .args(["tail", "-f", "-n", "1", &name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tail -f");
    // The follower is on: it printed the last line.
    let mut tail_out = BufReader::new(tail.stdout.take().expect("stdout"));
    let mut out = String::new();
    tail_out.read_line(&mut out).expect("read");
    assert_eq!(out, "two\n");
    stdin.write_all(b"three\n").expect("feed");
    // End of input: the owner closes the stream, which ends the follower.
    drop(stdin);
    tail_out.read_to_string(&mut out).expect("read");
    let mut err = Vec::new();
    tail.stderr
        .take()
        .expect("stderr")
        .read_to_end(&mut err)
        .expect("read");
    let status = tail.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    assert_eq!(out, "two\nthree\n");
    assert!(err.is_empty(), "{:?}", String::from_utf8_lossy(&err));
    drop(guard);
}
