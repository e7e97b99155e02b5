//! Events as the runtime moves them: in flat batches, never one by one.

mod batch;
pub mod decode;
pub mod ingest;
mod schema;

pub use batch::{Batch, Cell, Columns, Origin, Watermarks};
pub use decode::{DecodeError, Decoded, FieldPlan, decode, decode_into};
pub use ingest::{Ingested, Refused, decode_batch};
pub use schema::Schema;
