//! Integration tests of the public API: `.wat` snippets run end to end.

mod calls;
