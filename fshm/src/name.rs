//! Stream names and the shm object names they map to: the one place that knows the rule.
//!
//! A stream name is one or more `/`-separated components (`/streams/my_stream`; the
//! leading `/` is optional). `shm_open` takes no `/` after the leading one, and fshm
//! creates no directories in `/dev/shm` (another user could pre-create or swap them),
//! so the name maps to one flat object name: `/` followed by the components joined by
//! `%2F`, where every `%` inside a component is written `%25`. Decoding accepts only
//! those two escapes, so the mapping is reversible and no two names share an object.
//! Names whose object name would start with `sem.` are refused: that prefix is glibc's
//! `sem_open` namespace in `/dev/shm`, which fshm shares with no other facility.

use crate::error::{invalid, Result};
use std::ffi::{CStr, CString};

/// Longest object name, in bytes, not counting its leading `/`: the encoded form of a
/// stream name (each `/` between components counts 3 bytes, each `%` 3) must fit within
/// the system's `NAME_MAX` (255). (A stream's lock object, `<object name>%lock.<key>`, is
/// named to fit as well: `liveness.rs`.)
pub const OBJECT_NAME_MAX: usize = 255;

/// The escape of `/` between components in an object name.
const SLASH: &str = "%2F";
/// The escape of `%` inside a component.
const PERCENT: &str = "%25";
/// The prefix of glibc's named semaphores in `/dev/shm` (`sem_open("/x")` is the file
/// `/dev/shm/sem.x`): no stream's object name starts with it.
const SEMAPHORE_PREFIX: &str = "sem.";

/// A checked stream name: its canonical form (`/a/b`) and its object name (`/a%2Fb`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Name {
    text: String,
    object: CString,
}

impl Name {
    /// Checks `name` and maps it to its object name. Refused (`EINVAL`): an empty name,
    /// an empty component (`//`, a trailing `/`), a component `.` or `..`, a NUL byte,
    /// a name whose object name would pass [`OBJECT_NAME_MAX`], and one whose object
    /// name would start with `sem.` (glibc's semaphores).
    pub fn new(name: &str) -> Result<Name> {
        let bare = name.strip_prefix('/').unwrap_or(name);
        let why = if bare.is_empty() {
            Some("a stream name must not be empty".to_owned())
        } else if bare.contains('\0') {
            Some("a stream name may not contain a NUL byte".to_owned())
        } else if bare.split('/').any(str::is_empty) {
            Some(
                "a stream name may not hold an empty component ('//' or a trailing '/')".to_owned(),
            )
        } else if bare.split('/').any(|c| c == "." || c == "..") {
            Some("a stream name may not hold a component '.' or '..'".to_owned())
        } else if bare.starts_with(SEMAPHORE_PREFIX) {
            // The encoding leaves the first component's leading characters as they
            // are, so the object name starts with `sem.` exactly when the name does.
            Some(format!(
                "a stream name may not start with '{SEMAPHORE_PREFIX}': /dev/shm/{SEMAPHORE_PREFIX}* \
                 are glibc's named semaphores (sem_open), not streams"
            ))
        } else {
            let len = encoded_len(bare);
            (len > OBJECT_NAME_MAX).then(|| {
                format!(
                    "a stream name is too long: its shm object name would be {len} bytes, \
                     more than {OBJECT_NAME_MAX}"
                )
            })
        };
        if let Some(why) = why {
            return Err(invalid(name, why));
        }
        let mut object = String::with_capacity(1 + encoded_len(bare));
        object.push('/');
        for (i, component) in bare.split('/').enumerate() {
            if i > 0 {
                object.push_str(SLASH);
            }
            object.push_str(&component.replace('%', PERCENT));
        }
        // No NUL: checked above, and the escapes hold none.
        let object = CString::new(object).map_err(|_| invalid(name, "NUL in name"))?;
        Ok(Name {
            text: format!("/{bare}"),
            object,
        })
    }

    /// The stream name whose object name is `object` (with or without its leading
    /// `/`), or `None` if `object` is the encoding of no stream name: an escape other
    /// than `%2F` and `%25`, a stray `%`, an empty or `.`/`..` component, a `/`, a
    /// companion object's name, a semaphore's (`sem.*`).
    pub fn from_object(object: &str) -> Option<Name> {
        let bare = object.strip_prefix('/').unwrap_or(object);
        let mut text = String::with_capacity(bare.len() + 1);
        text.push('/');
        let mut rest = bare;
        while let Some(at) = rest.find('%') {
            text.push_str(&rest[..at]);
            let escape = rest.get(at..at + 3)?;
            text.push(match escape {
                SLASH => '/',
                PERCENT => '%',
                _ => return None,
            });
            rest = &rest[at + 3..];
        }
        text.push_str(rest);
        // The encoding is one-to-one: accept only what encodes back to `object`, which
        // also refuses every name `new` refuses.
        let name = Name::new(&text).ok()?;
        (name.object_str() == format!("/{bare}")).then_some(name)
    }

    /// The stream name in canonical form, `/a/b`: what errors and listings show.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The object name for `shm_open` and `shm_unlink`, `/a%2Fb`.
    pub fn as_c(&self) -> &CStr {
        &self.object
    }

    /// The object name as text, `/a%2Fb`; its entry in `/dev/shm` is this without the
    /// leading `/`.
    pub fn object_str(&self) -> &str {
        // The object name was built from a `String`.
        self.object.to_str().unwrap_or_default()
    }
}

/// Bytes of the object name of `bare` (a name without its leading `/`), slash excluded.
fn encoded_len(bare: &str) -> usize {
    bare.len() + 2 * bare.bytes().filter(|&b| b == b'/' || b == b'%').count()
}

/// The shm object name (as `shm_open` takes it, with its leading `/`) that the stream
/// name `name` maps to: `/streams/my_stream` gives `/streams%2Fmy_stream`, `50%` gives
/// `/50%25`.
///
/// # Errors
/// `InvalidInput` (`EINVAL`) for a name no stream may have; see the crate docs, "Names".
pub fn object_name(name: &str) -> Result<String> {
    Name::new(name).map(|n| n.object_str().to_owned())
}

/// The stream name (canonical, with its leading `/`) whose object name is `object`
/// (with or without its leading `/`, as listed in [`SHM_DIR`](crate::SHM_DIR)), or
/// `None` if `object` is the object name of no stream: `streams%2Fmy_stream` gives
/// `/streams/my_stream`; `a%zz`, `a%2f`, `a%2F%2Fb` and companion objects give `None`.
pub fn stream_name(object: &str) -> Option<String> {
    Name::from_object(object).map(|n| n.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused() {
        let long = "x".repeat(OBJECT_NAME_MAX + 1);
        // 254 bytes of name; the escape of its `/` makes 256 of object name.
        let long_by_escapes = format!("{}/{}", "a".repeat(125), "b".repeat(128));
        assert_eq!(encoded_len(&long_by_escapes), OBJECT_NAME_MAX + 1);
        for bad in [
            "",
            "/",
            "//",
            "//a",
            "/a//b",
            "a/",
            "/a/b/",
            "/a\0b",
            ".",
            "/..",
            "a/./b",
            "a/..",
            "../a",
            "sem.x",
            "/sem.x",
            "sem./x",
            "/sem.",
            long.as_str(),
            long_by_escapes.as_str(),
        ] {
            let e = Name::new(bad).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
            assert_eq!(crate::errno_of(&e), libc::EINVAL, "{bad:?}");
            assert!(object_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_map_to_objects() {
        for (name, object) in [
            ("abc", "/abc"),
            ("/abc", "/abc"),
            ("/streams/my_stream", "/streams%2Fmy_stream"),
            ("streams/my_stream", "/streams%2Fmy_stream"),
            ("/app/shard-3/events", "/app%2Fshard-3%2Fevents"),
            ("/50%", "/50%25"),
            ("/a%2Fb", "/a%252Fb"),
            ("/a/%25/b", "/a%2F%2525%2Fb"),
            ("/...", "/..."),
            ("/sem", "/sem"),
            ("/sem/x", "/sem%2Fx"),
            ("/Sem.x", "/Sem.x"),
            ("/x/sem.y", "/x%2Fsem.y"),
            ("/asem.x", "/asem.x"),
            ("/a/.b/c.", "/a%2F.b%2Fc."),
        ] {
            let n = Name::new(name).unwrap();
            assert_eq!(n.object_str(), object, "{name:?}");
            assert_eq!(n.as_c().to_str().unwrap(), object, "{name:?}");
            let canonical = format!("/{}", name.trim_start_matches('/'));
            assert_eq!(n.as_str(), canonical);
            assert_eq!(stream_name(object).as_deref(), Some(canonical.as_str()));
            assert_eq!(
                stream_name(&object[1..]).as_deref(),
                Some(canonical.as_str())
            );
        }
    }

    #[test]
    fn the_limit_is_on_the_object_name() {
        let longest = "y".repeat(OBJECT_NAME_MAX);
        assert_eq!(
            Name::new(&longest).unwrap().as_str().len(),
            OBJECT_NAME_MAX + 1
        );
        let nested = format!("{}/{}", "a".repeat(120), "b".repeat(127));
        let n = Name::new(&nested).unwrap();
        assert_eq!(n.object_str().len(), 120 + 3 + 127 + 1);
    }

    #[test]
    fn objects_that_encode_no_name_do_not_decode() {
        for object in [
            "",
            "/",
            "a%",
            "a%2",
            "a%2f",
            "a%2F",
            "%2Fa",
            "a%2F%2Fb",
            "a%zz",
            "a%lock",
            "a%2Fb%lock",
            "a%lock.0123456789abcdef",
            "a/b",
            "%2E",
            "a%2F.",
            "a%2F..%2Fb",
            "a%00",
            "sem.x",
            "/sem.x",
            "sem.a%2Fb",
        ] {
            assert_eq!(stream_name(object), None, "{object:?}");
        }
    }
}
