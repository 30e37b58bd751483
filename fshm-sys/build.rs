//! Build script for fshm-sys.
//!
//! Always: compiles `probe/layout.c` (with the `cc` crate, so only a C compiler is
//! needed) into a small static library whose functions report the real C layouts;
//! `tests/layout.rs` compares them with the Rust bindings.
//!
//! Only with `--features bindgen`: runs bindgen (needs libclang) on `wrapper.h` and
//! writes `$OUT_DIR/bindings.rs`, which `src/lib.rs` then includes instead of the
//! committed `src/bindings/<target>.rs`. Without the feature this script
//! never touches bindgen or libclang: the `bindgen` build-dependency is optional
//! and the code below that uses it is compiled out.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=probe/layout.c");

    // The probe's `FILE` part reads glibc's `struct _IO_FILE` and is compiled only for
    // glibc; the cookie part is for every Linux libc with `fopencookie` (glibc, musl).
    // On other targets skip it so that the crate's own `compile_error!` (src/lib.rs)
    // is the message the user sees, not a C compiler error.
    let env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") && (env == "gnu" || env == "musl")
    {
        cc::Build::new()
            .file("probe/layout.c")
            .warnings(true)
            .extra_warnings(true)
            .compile("fshm_sys_layout_probe");
    }

    #[cfg(feature = "bindgen")]
    generate::run();
}

#[cfg(feature = "bindgen")]
mod generate {
    //! bindgen configuration: the single place where the generation flags are pinned.
    //! `ci/regen-bindings.sh` drives this code to rewrite the committed file.

    use std::env;
    use std::path::PathBuf;

    /// Functions taken from `<stdio.h>`. `flockfile`/`funlockfile` are here because
    /// the `libc` crate does not bind them on Linux and `set_fileno` needs them.
    const FUNCTIONS: &[&str] = &[
        "fopencookie",
        "fileno",
        "fflush",
        "setvbuf",
        "fclose",
        "flockfile",
        "funlockfile",
    ];

    /// Types taken from `<stdio.h>`; their dependencies (`__off64_t`, `__ssize_t`,
    /// the opaque `_IO_marker`, ...) come along automatically.
    /// On musl `FILE` is opaque and `off64_t` is a macro for `off_t`, so `_IO_FILE` and
    /// `off64_t` bring nothing there; the callback types bring `off_t` along.
    const TYPES: &[&str] = &[
        "FILE",
        "_IO_FILE",
        "off64_t",
        "cookie_io_functions_t",
        "cookie_read_function_t",
        "cookie_write_function_t",
        "cookie_seek_function_t",
        "cookie_close_function_t",
    ];

    /// Set when `ci/regen-bindings.sh` runs the build: a path to copy the output to.
    const COPY_ENV: &str = "FSHM_SYS_BINDINGS_COPY_TO";

    /// Where musl's headers are, if not where Debian's musl-dev puts them.
    const MUSL_INCLUDE_ENV: &str = "FSHM_SYS_MUSL_INCLUDE";

    pub(super) fn run() {
        println!("cargo:rerun-if-env-changed={COPY_ENV}");

        // Pin the Rust version the output targets to the crate's `rust-version`
        // rather than bindgen's default (the rustc running the build), so that the
        // generated text does not depend on the toolchain that produced it.
        let rust_version = env::var("CARGO_PKG_RUST_VERSION")
            .ok()
            .filter(|v| !v.is_empty())
            .expect("fshm-sys needs `rust-version` in Cargo.toml to pin bindgen's --rust-target");
        let rust_target: bindgen::RustTarget = rust_version
            .parse()
            .unwrap_or_else(|e| panic!("rust-version {rust_version:?} is no bindgen target: {e}"));

        // The target's own headers: clang is told the target explicitly (so the
        // output's header records it), finds a Debian cross sysroot
        // (/usr/aarch64-linux-gnu from libc6-dev-arm64-cross) by itself, and for musl
        // gets only musl's headers (Debian's musl-dev puts them in
        // /usr/include/<arch>-linux-musl; FSHM_SYS_MUSL_INCLUDE overrides that).
        println!("cargo:rerun-if-env-changed={MUSL_INCLUDE_ENV}");
        let target = env::var("TARGET").expect("TARGET");
        let mut clang_args = vec![format!("--target={target}")];
        if env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("musl") {
            let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("CARGO_CFG_TARGET_ARCH");
            let include = env::var(MUSL_INCLUDE_ENV)
                .unwrap_or_else(|_| format!("/usr/include/{arch}-linux-musl"));
            clang_args.push("-nostdinc".into());
            clang_args.push(format!("-isystem{include}"));
        }

        let mut builder = bindgen::Builder::default()
            // Relative to the package directory (the build script's working
            // directory), so no absolute path ends up in the output.
            .header("wrapper.h")
            .clang_args(&clang_args)
            .rust_target(rust_target)
            .rust_edition(bindgen::RustEdition::Edition2021)
            .use_core()
            .ctypes_prefix("::libc")
            .formatter(bindgen::Formatter::Prettyplease)
            .generate_comments(false)
            .layout_tests(true)
            // A live FILE is never meaningfully copied by value.
            .no_copy("^_IO_FILE$")
            .merge_extern_blocks(true)
            .sort_semantically(true)
            .allowlist_recursively(true);
        for f in FUNCTIONS {
            builder = builder.allowlist_function(format!("^{f}$"));
        }
        for t in TYPES {
            builder = builder.allowlist_type(format!("^{t}$"));
        }

        // Record the equivalent bindgen command line in the output, so a reader of
        // the committed file sees exactly which flags made it.
        let flags = builder.command_line_flags().join(" ");
        let builder = builder
            .raw_line("// @generated by fshm-sys/build.rs (feature `bindgen`); do not edit.")
            .raw_line("// Regenerate with ci/regen-bindings.sh. Equivalent bindgen-cli flags:")
            .raw_line(format!("//   bindgen {flags}"))
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));

        let bindings = builder
            .generate()
            .expect("bindgen failed on fshm-sys/wrapper.h (is libclang installed?)");

        let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("bindings.rs");
        bindings
            .write_to_file(&out)
            .unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));

        if let Some(copy) = env::var_os(COPY_ENV).filter(|p| !p.is_empty()) {
            std::fs::copy(&out, &copy)
                .unwrap_or_else(|e| panic!("copying bindings to {copy:?}: {e}"));
        }
    }
}
