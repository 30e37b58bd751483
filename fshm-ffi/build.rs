//! Build script of libshmfile.
//!
//! - The C API version has one source, `c-api-version` under `[package.metadata.shmfile]`
//!   in this crate's Cargo.toml. This script hands it to the library (`$OUT_DIR/version.rs`,
//!   read by `shmfile_get_version`), to libshmfile.so's soname (`libshmfile.so.<major>`) and
//!   to dependents' build scripts (`DEP_SHMFILE_VERSION`). The Makefile reads the same line
//!   for the file names, `shmfile.pc` and the CMake package; `make check-version` checks
//!   the places that cannot be generated (man pages, header comments, C tests). The
//!   header's `SHMFILE_VERSION_*` macros are checked here: a header that disagrees with
//!   `c-api-version` fails the build.
//! - As the package that `links = "shmfile"`, it publishes the header to the build
//!   scripts of crates that depend on it directly, the way `-sys` crates do:
//!   `DEP_SHMFILE_INCLUDE` is a directory holding `shmfile.h` (a copy of `c/shmfile.h`,
//!   alone, so nothing else can be included by mistake) and `DEP_SHMFILE_ROOT` the
//!   directory above it. A dependent compiles its C files with
//!   `cc::Build::new().include(env::var("DEP_SHMFILE_INCLUDE")?)`.
//! - It decides whether the `FILE*` may use glibc's `FILE` internals for its in-place
//!   refills and direct writes (`src/file.rs`): `cfg(fshm_file_internals)` only on glibc
//!   for the architectures where those modes are tested (x86_64, aarch64), and where
//!   `tests/file_layout.rs` checks every field and flag used against the C headers.
//!   Everywhere else the `FILE*` uses only what fopencookie(3) documents.
use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let manifest = manifest_dir.join("Cargo.toml");
    // A symlink to c/shmfile.h inside the package, so that `cargo package` carries the
    // header (it copies a symlink's target) and a build from the .crate finds it.
    let header = manifest_dir.join("shmfile.h");
    println!("cargo:rerun-if-changed={}", manifest.display());
    println!("cargo:rerun-if-changed={}", header.display());

    let (major, minor, patch) = c_api_version(&fs::read_to_string(&manifest).expect("Cargo.toml"));
    let version = format!("{major}.{minor}.{patch}");
    check_header_version(
        &fs::read_to_string(&header).expect("read c/shmfile.h"),
        (major, minor, patch),
    );
    fs::write(
        out_dir.join("version.rs"),
        format!(
            "/// Version of the C API (`c-api-version` in fshm-ffi/Cargo.toml): shmfile 1.1.0\n\
             /// plus additions.\n\
             pub const VERSION: (u8, u8, u8) = ({major}, {minor}, {patch});\n"
        ),
    )
    .expect("write version.rs");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libshmfile.so.{major}");

    let include = out_dir.join("include");
    fs::create_dir_all(&include).expect("create $OUT_DIR/include");
    fs::copy(&header, include.join("shmfile.h")).expect("copy c/shmfile.h");
    println!("cargo:include={}", include.display());
    println!("cargo:root={}", out_dir.display());
    println!("cargo:version={version}");

    println!("cargo::rustc-check-cfg=cfg(fshm_file_internals)");
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if target_env == "gnu" && (arch == "x86_64" || arch == "aarch64") {
        println!("cargo::rustc-cfg=fshm_file_internals");
    }
}

/// Panics unless c/shmfile.h's `SHMFILE_VERSION_MAJOR`, `_MINOR`, `_PATCH`, `_NUMBER`
/// (`major * 10000 + minor * 100 + patch`) and `_STRING` say `version`.
fn check_header_version(header: &str, (major, minor, patch): (u8, u8, u8)) {
    assert!(
        minor < 100 && patch < 100,
        "fshm-ffi/Cargo.toml: c-api-version {major}.{minor}.{patch}: minor and patch must \
         stay below 100 (SHMFILE_VERSION_NUMBER is major * 10000 + minor * 100 + patch)"
    );
    let number = u32::from(major) * 10000 + u32::from(minor) * 100 + u32::from(patch);
    let want = [
        ("SHMFILE_VERSION_MAJOR", major.to_string()),
        ("SHMFILE_VERSION_MINOR", minor.to_string()),
        ("SHMFILE_VERSION_PATCH", patch.to_string()),
        ("SHMFILE_VERSION_NUMBER", number.to_string()),
        (
            "SHMFILE_VERSION_STRING",
            format!("\"{major}.{minor}.{patch}\""),
        ),
    ];
    for (macro_name, value) in want {
        let found: Vec<&str> = header
            .lines()
            .filter_map(|l| l.trim().strip_prefix("#define "))
            .filter_map(|l| l.strip_prefix(macro_name))
            .filter(|rest| rest.starts_with([' ', '\t']))
            .map(str::trim)
            .collect();
        assert!(
            found == [value.as_str()],
            "c/shmfile.h: #define {macro_name} is {found:?}, but c-api-version in \
             fshm-ffi/Cargo.toml makes it {value}: update the header"
        );
    }
}

/// The `c-api-version = "X.Y.Z"` line of `[package.metadata.shmfile]`, as three numbers
/// of at most 255 (`shmfile_get_version` hands out unsigned chars).
fn c_api_version(manifest: &str) -> (u8, u8, u8) {
    let mut section = "";
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if section != "[package.metadata.shmfile]" {
            continue;
        }
        let Some(value) = line.strip_prefix("c-api-version") else {
            continue;
        };
        let value = value
            .trim_start()
            .trim_start_matches('=')
            .trim()
            .trim_matches('"');
        let parts: Vec<u8> = value.split('.').filter_map(|p| p.parse().ok()).collect();
        if let [a, b, c] = parts[..] {
            if value.split('.').count() == 3 {
                return (a, b, c);
            }
        }
        panic!(
            "fshm-ffi/Cargo.toml: c-api-version {value:?} is not MAJOR.MINOR.PATCH (each 0-255)"
        );
    }
    panic!("fshm-ffi/Cargo.toml: no c-api-version under [package.metadata.shmfile]");
}
