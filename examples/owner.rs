//! The classic owner (after shmfile's example pair): creates a stream, writes one record
//! through the stream's fd, then waits until standard input ends, and prints the record
//! as the guests left it. Guests (`guest.rs`, or `guest.c` in C) bump its access counter.
//!
//! ```text
//! cargo run -p fshm-examples --example owner -- /fshm-classic
//! ```

use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;

fn main() -> io::Result<()> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/fshm-classic".to_owned());
    let stream = fshm::OpenOptions::new().mode(0o666).create(&name)?;
    // Write the record through the fd, as shmfile's owner did, then let the stream take
    // the fd's bytes into its length.
    let record = b"access-count=0000000000 hello from the owner\n";
    let mut fd = std::fs::File::from(stream.as_fd().try_clone_to_owned()?);
    stream.sync_fd_offset()?;
    fd.write_all(record)?;
    stream.absorb_fd_offset()?;
    println!(
        "owner: {name} holds {} bytes; run guests, then press Enter (or close stdin)",
        stream.len()
    );
    io::stdout().flush()?;
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;

    let mut s = &stream;
    s.seek(SeekFrom::Start(0))?;
    let mut now = String::new();
    s.read_to_string(&mut now)?;
    print!("owner: final record: {now}");
    Ok(())
}
