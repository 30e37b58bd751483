//! Examples live in this folder; see docs/workspace.md (and the README for the demo).
