//! Gives libshmfile.so its soname: major version 1 of the shmfile C API.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libshmfile.so.1");
}
