//! Events as the runtime moves them: in flat batches, never one by one.

mod batch;
mod decode;

pub use batch::{Batch, Origin};
pub use decode::{DecodeError, Decoded, FieldPlan, decode};
