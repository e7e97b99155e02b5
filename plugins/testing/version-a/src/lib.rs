//! Tags every event with `"version": "a"`: one side of the hot-swap tests.

const VERSION: &str = "a";

include!("tag.rs");
