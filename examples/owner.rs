//! The classic owner (after shmfile's example pair): creates a stream, writes one record,
//! then waits until standard input ends, and prints the record
//! as the guests left it. Guests (`guest.rs`, or `guest.c` in C) bump its access counter.
//!
//! ```text
//! cargo run -p fshm-examples --example owner -- /fshm-classic
//! ```

use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};

fn main() -> io::Result<()> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/fshm-classic".to_owned());
    let stream = fshm::OpenOptions::new().mode(0o666).create(&name)?;
    let record = b"access-count=0000000000 hello from the owner\n";
    (&stream).write_all(record)?;
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
