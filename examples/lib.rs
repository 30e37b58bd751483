//! Examples live in this folder; see README.md.
