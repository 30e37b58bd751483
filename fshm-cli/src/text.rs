//! Text for people: stream names with their non-printable bytes escaped, sizes in
//! powers of 1024, and error messages that name the stream once.

use std::fmt::Write as _;
use std::io;

/// `name` as the human output shows it, in the manner of GNU `ls --quoting-style=escape`:
/// a backslash is `\\`, a space `\ `, the C escapes `\a \b \t \n \v \f \r` stand for
/// their control characters, and every other byte of a control character (C0, DEL, C1)
/// or of an invisible formatting character (bidirectional overrides, zero-width
/// characters) is `\ooo`, three octal digits (ESC is `\033`). Printable text, other
/// languages' included, is shown as it is. So a name can neither forge a table line
/// nor send an escape sequence to the terminal, and distinct names look distinct.
pub fn escape(name: &str) -> String {
    escape_with(name, true)
}

/// [`escape`] for free text (an error message): spaces are left alone.
pub fn escape_text(text: &str) -> String {
    escape_with(text, false)
}

fn escape_with(s: &str, space: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            ' ' if space => out.push_str("\\ "),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\x0b' => out.push_str("\\v"),
            '\x0c' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || invisible(c) => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{b:03o}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Formatting characters that print nothing but change what follows (Unicode's
/// bidirectional controls, zero-width characters, separators that break lines).
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// `n` bytes for people, as `ls -h` shows sizes: under 1024 the number itself, else in
/// K, M, G, T, P or E (powers of 1024), with one decimal below 10, rounded up, so that a
/// size is never shown smaller than it is (`6000` is `5.9K`, `1048576` is `1.0M`).
pub fn human(n: u64) -> String {
    if n < 1024 {
        return n.to_string();
    }
    let v = u128::from(n);
    let mut unit: u128 = 1;
    for suffix in ["K", "M", "G", "T", "P", "E"] {
        unit *= 1024;
        let tenths = (v * 10).div_ceil(unit);
        if tenths < 100 {
            return format!("{}.{}{suffix}", tenths / 10, tenths % 10);
        }
        let whole = v.div_ceil(unit);
        if whole < 1024 {
            return format!("{whole}{suffix}");
        }
    }
    // Unreachable for a u64 (under 16E).
    n.to_string()
}

/// A size given on the command line: bytes, or a number followed by K, M, G or T
/// (powers of 1024; `KiB`, `MiB`... and lower case are accepted too).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    let bad = || format!("invalid size '{s}' (bytes, or a number with K, M, G or T)");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KIB" => 10,
        "M" | "MIB" => 20,
        "G" | "GIB" => 30,
        "T" | "TIB" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size '{s}' is too large"))
}

/// A user given on the command line: a user name (looked up with `getpwnam_r`), or a
/// numeric uid.
pub fn parse_user(s: &str) -> Result<u32, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| format!("invalid uid '{s}'"));
    }
    let unknown = || format!("no such user '{s}'");
    let name = std::ffi::CString::new(s).map_err(|_| unknown())?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: an all-zero `passwd` is a valid value of this plain C struct.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `name` is NUL-terminated; `pwd`, `buf` (of the length passed) and
        // `found` are valid out-pointers for the call, and `pwd`'s strings point into
        // `buf`, which is not read after.
        let r = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        match r {
            0 if found.is_null() => return Err(unknown()),
            0 => return Ok(pwd.pw_uid),
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            libc::EINTR => {}
            e => {
                return Err(format!(
                    "cannot look up user '{s}': {}",
                    drop_os_error(&io::Error::from_raw_os_error(e).to_string())
                ))
            }
        }
    }
}

/// The text of an error for a person: `NAME: what went wrong: reason`, the stream named
/// once (escaped) and no `os error` numbers. Errors that concern no stream are shown as
/// they are, with the number dropped.
pub fn describe(e: &io::Error) -> String {
    let Some(se) = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<fshm::StreamError>())
    else {
        return escape_text(&drop_os_error(&e.to_string()));
    };
    let full = se.to_string();
    let prefix = format!("fshm stream {:?}: ", se.stream());
    let Some(rest) = full.strip_prefix(&prefix) else {
        // A message of another shape: shown whole, made safe to print.
        return escape_text(&drop_os_error(&full));
    };
    let errno = se.errno();
    let mut what = rest.to_owned();
    let mut reason = None;
    if errno != 0 {
        let os = io::Error::from_raw_os_error(errno).to_string();
        if let Some(w) = rest.strip_suffix(&format!(" ({os})")) {
            what = w.to_owned();
            // The reason adds nothing where the message already says it all.
            if ![libc::EINVAL, libc::EPROTO, libc::ENOBUFS].contains(&errno) {
                reason = Some(drop_os_error(&os));
            }
        }
    }
    let mut out = String::new();
    if !se.stream().is_empty() {
        out.push_str(&escape(se.stream()));
        out.push_str(": ");
    }
    out.push_str(&escape_text(&what));
    if let Some(r) = reason {
        out.push_str(": ");
        out.push_str(&r);
    }
    out
}

/// `"No such file or directory (os error 2)"` without its `" (os error 2)"`.
fn drop_os_error(s: &str) -> String {
    match s.rfind(" (os error ") {
        Some(at) if s.ends_with(')') => s[..at].to_owned(),
        _ => s.to_owned(),
    }
}

/// The owner's state, with `,stale` for a replica its importer has marked stale
/// (`ls`, `top`).
pub fn owner_text(i: &fshm::StreamInfo) -> String {
    if i.stale {
        format!("{},stale", i.owner.as_str())
    } else {
        i.owner.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_names_or_uids() {
        assert_eq!(parse_user("0"), Ok(0));
        assert_eq!(parse_user("1002"), Ok(1002));
        assert_eq!(parse_user("root"), Ok(0));
        assert!(parse_user("no-such-user-fshm")
            .unwrap_err()
            .contains("no such user"));
        assert!(parse_user("").is_err());
        assert!(parse_user("99999999999").is_err());
    }

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        assert_eq!(escape("/plain-name_1.2"), "/plain-name_1.2");
        assert_eq!(escape("/a b"), "/a\\ b");
        assert_eq!(escape("/a\\b"), "/a\\\\b");
        assert_eq!(escape("/x\ny"), "/x\\ny");
        assert_eq!(escape("\t\r\x07\x08\x0b\x0c"), "\\t\\r\\a\\b\\v\\f");
        assert_eq!(escape("\x1b[2J"), "\\033[2J");
        assert_eq!(escape("\0\x01\x7f"), "\\000\\001\\177");
        assert_eq!(escape("\u{9b}"), "\\302\\233"); // C1 CSI
        assert_eq!(escape("a\u{202e}b"), "a\\342\\200\\256b"); // right-to-left override
        assert_eq!(escape("/données/日本"), "/données/日本");
        assert_eq!(escape_text("a b\n"), "a b\\n");
    }

    #[test]
    fn sizes_for_people() {
        for (n, s) in [
            (0, "0"),
            (12, "12"),
            (1023, "1023"),
            (1024, "1.0K"),
            (1025, "1.1K"),
            (6000, "5.9K"),
            (10 * 1024, "10K"),
            (10 * 1024 + 1, "11K"),
            (1_048_575, "1.0M"),
            (1 << 20, "1.0M"),
            (1 << 30, "1.0G"),
            (1 << 44, "16T"),
            (u64::MAX, "16E"),
        ] {
            assert_eq!(human(n), s, "{n}");
        }
    }

    #[test]
    fn sizes_from_people() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("64kib"), Ok(65536));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        for bad in ["", "K", "1.5M", "-1", "1Q", "lots", "1 K"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert!(parse_size("99999999999999T").is_err());
    }

    #[test]
    fn errors_name_the_stream_once() {
        let name = format!("/fshm-cli-unit-{}-missing\x1b", std::process::id());
        let e = fshm::inspect(&name).unwrap_err();
        assert_eq!(
            describe(&e),
            format!(
                "/fshm-cli-unit-{}-missing\\033: cannot open: No such file or directory",
                std::process::id()
            )
        );
        let e = fshm::inspect("/a//b").unwrap_err();
        let d = describe(&e);
        assert!(d.starts_with("/a//b: a stream name may not"), "{d}");
        assert!(
            !d.contains("os error") && !d.contains("Invalid argument"),
            "{d}"
        );
        let e = fshm::inspect("").unwrap_err();
        assert_eq!(describe(&e), "a stream name must not be empty");
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(describe(&e), "No such file or directory");
    }
}
