//! Stream names: the checks of the design brief §8, and the canonical `/name` form.

use crate::error::{invalid, Result};
use std::ffi::CString;

/// Longest name, not counting the leading `/` (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// A checked stream name in canonical form (`/name`), ready for `shm_open`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Name {
    text: String,
    c: CString,
}

impl Name {
    /// Checks `name`: not empty, no `/` after an optional leading one, no NUL, not `.`
    /// or `..`, at most [`NAME_MAX`] bytes after the slash.
    pub fn new(name: &str) -> Result<Name> {
        let bare = name.strip_prefix('/').unwrap_or(name);
        let why = if bare.is_empty() {
            Some("a stream name must not be empty")
        } else if bare.contains('/') {
            Some("a stream name may hold no '/' after the leading one")
        } else if bare.contains('\0') {
            Some("a stream name may not contain a NUL byte")
        } else if bare == "." || bare == ".." {
            Some("a stream name may not be '.' or '..'")
        } else if bare.len() > NAME_MAX {
            Some("a stream name is longer than NAME_MAX (255 bytes)")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(invalid(name, why));
        }
        let text = format!("/{bare}");
        let c = CString::new(text.clone()).map_err(|_| invalid(name, "NUL in name"))?;
        Ok(Name { text, c })
    }

    /// The name as `/name`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The name for `shm_open`.
    pub fn as_c(&self) -> &std::ffi::CStr {
        &self.c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused() {
        let long = "x".repeat(NAME_MAX + 1);
        for bad in ["", "/", "/a/b", "a/b", "/a\0b", ".", "/..", long.as_str()] {
            let e = Name::new(bad).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
            assert_eq!(crate::errno_of(&e), libc_einval(), "{bad:?}");
        }
    }

    #[test]
    fn good_names_are_canonical() {
        assert_eq!(Name::new("abc").unwrap().as_str(), "/abc");
        assert_eq!(Name::new("/abc").unwrap().as_str(), "/abc");
        let longest = "y".repeat(NAME_MAX);
        assert_eq!(Name::new(&longest).unwrap().as_str().len(), NAME_MAX + 1);
    }

    fn libc_einval() -> i32 {
        libc::EINVAL
    }
}
