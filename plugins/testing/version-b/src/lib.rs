//! Tags every event with `"version": "b"`: the other side of the hot-swap tests.

const VERSION: &str = "b";

include!("../../version-a/src/tag.rs");
