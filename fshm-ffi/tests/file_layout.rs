//! Every field and flag of glibc's `FILE` that the in-place and direct-write modes use
//! (`src/file.rs`) agrees with the C headers and with stdio's behaviour on this
//! target: `file_layout_probe.c`, compiled with the system C compiler, prints offsets
//! and sizes from `struct _IO_FILE` and the flags word of a real `FILE` in each state
//! the modes test for; this compares them with the Rust bindings and constants.
//!
//! The modes are built only where this holds (`cfg(fshm_file_internals)`: glibc on
//! x86_64 and aarch64); elsewhere this test has nothing to check.
#![cfg(fshm_file_internals)]

use fshm_sys::_IO_FILE;
use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The probe's "kind name value" lines, compiled and run once for all tests.
fn probe() -> &'static HashMap<(String, String), i64> {
    static PROBE: OnceLock<HashMap<(String, String), i64>> = OnceLock::new();
    PROBE.get_or_init(run_probe)
}

fn run_probe() -> HashMap<(String, String), i64> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/file_layout_probe.c");
    let dir = std::env::temp_dir().join(format!("fshm-file-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the probe's directory");
    let exe = dir.join("probe");
    let cc = Command::new("gcc")
        .args(["-std=c99", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("run gcc");
    let out = cc
        .status
        .success()
        .then(|| Command::new(&exe).output().expect("run the probe"));
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.unwrap_or_else(|| {
        panic!(
            "compiling the probe failed:\n{}",
            String::from_utf8_lossy(&cc.stderr)
        )
    });
    assert!(out.status.success(), "the probe failed: {}", out.status);
    String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|l| {
            let mut w = l.split(' ');
            let (k, n, v) = (w.next(), w.next(), w.next());
            let v = v.and_then(|v| v.parse().ok()).expect("kind name number");
            ((k.unwrap().to_owned(), n.unwrap().to_owned()), v)
        })
        .collect()
}

/// Size of the type a raw pointer points to, without reading it.
fn size_of_pointee<T>(_: *const T) -> usize {
    size_of::<T>()
}

fn get(p: &HashMap<(String, String), i64>, kind: &str, name: &str) -> i64 {
    *p.get(&(kind.to_owned(), name.to_owned()))
        .unwrap_or_else(|| panic!("the probe printed no {kind} {name}"))
}

#[test]
fn every_file_field_used_matches_the_c_headers() {
    let p = probe();
    let f = std::mem::MaybeUninit::<_IO_FILE>::uninit();
    let f = f.as_ptr();
    macro_rules! field {
        ($name:ident) => {{
            assert_eq!(
                offset_of!(_IO_FILE, $name) as i64,
                get(p, "offset", stringify!($name)),
                "offsetof(struct _IO_FILE, {})",
                stringify!($name)
            );
            // SAFETY: only the field's address is computed; nothing is read.
            let field = unsafe { std::ptr::addr_of!((*f).$name) };
            assert_eq!(
                size_of_pointee(field) as i64,
                get(p, "size", stringify!($name)),
                "sizeof(_IO_FILE::{})",
                stringify!($name)
            );
        }};
    }
    field!(_flags);
    field!(_IO_read_ptr);
    field!(_IO_read_end);
    field!(_IO_read_base);
    field!(_IO_write_base);
    field!(_IO_write_ptr);
    field!(_IO_write_end);
    field!(_IO_buf_base);
    field!(_IO_buf_end);
    field!(_fileno);
    field!(_offset);
    assert_eq!(size_of::<_IO_FILE>() as i64, get(p, "size", "FILE"));
}

#[test]
fn the_flags_used_mean_what_stdio_does() {
    use shmfile::glibc_file::{IO_CURRENTLY_PUTTING, IO_IN_BACKUP, IO_UNBUFFERED};
    let p = probe();
    let has = |state: &str, bit: i32| get(p, "flags", state) as i32 & bit != 0;
    assert!(
        !has("reading", IO_CURRENTLY_PUTTING),
        "reading is not putting"
    );
    assert!(
        has("putting", IO_CURRENTLY_PUTTING),
        "_IO_CURRENTLY_PUTTING"
    );
    assert!(
        !has("reading", IO_IN_BACKUP),
        "reading is not the backup area"
    );
    assert!(
        has("backup", IO_IN_BACKUP),
        "_IO_IN_BACKUP after ungetc of another byte"
    );
    assert!(!has("buffered", IO_UNBUFFERED), "a fresh FILE is buffered");
    assert!(
        has("unbuffered", IO_UNBUFFERED),
        "_IO_UNBUFFERED after setvbuf(_IONBF)"
    );
}
