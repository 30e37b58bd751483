//! The classic guest: opens the owner's stream, reads the record, bumps its access
//! counter and writes it back in place.
//!
//! ```text
//! cargo run -p fshm-examples --example guest -- /fshm-classic
//! ```

use std::io::{self, Read, Seek, SeekFrom, Write};

const PREFIX: &str = "access-count=";
const DIGITS: usize = 10;

fn main() -> io::Result<()> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/fshm-classic".to_owned());
    let mut stream = fshm::Stream::open(&name)?;
    let mut record = String::new();
    stream.read_to_string(&mut record)?;
    let count: u64 = record
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.get(..DIGITS))
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not a classic record"))?;
    let bumped = format!("{:0width$}", count + 1, width = DIGITS);
    stream.seek(SeekFrom::Start(PREFIX.len() as u64))?;
    stream.write_all(bumped.as_bytes())?;
    println!("guest: access count {count} -> {}", count + 1);
    Ok(())
}
