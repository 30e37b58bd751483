//! Compiles the C side of this crate against `shmfile.h`, which `fshm-ffi` (the package
//! that `links = "shmfile"`) publishes as `DEP_SHMFILE_INCLUDE`. The C archive is linked
//! into this crate's library, next to `fshm-ffi`'s Rust code that defines the C API.
use std::env;

fn main() {
    let include = env::var("DEP_SHMFILE_INCLUDE")
        .expect("DEP_SHMFILE_INCLUDE: fshm-ffi must be a direct dependency of this crate");
    let sources = ["c/producer.c", "c/consumer.c", "c/threads.c"];
    for s in sources.iter().chain(&["c/mixed.h"]) {
        println!("cargo:rerun-if-changed={s}");
    }
    cc::Build::new()
        .include(&include)
        .files(sources)
        .std("c99")
        .flag("-pthread")
        .define("_POSIX_C_SOURCE", "200809L")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("fshm_mixed_c");
}
