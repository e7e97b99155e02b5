//! Events as the runtime moves them: in flat batches, never one by one.

mod batch;
pub(crate) mod decode;
mod schema;

pub use batch::{Batch, Cell, Columns, Origin};
pub use decode::{DecodeError, Decoded, FieldPlan, decode, decode_into};
pub use schema::Schema;
