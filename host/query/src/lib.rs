//! weir-query: Stream Analytics-style SQL over events, with event-time
//! windows. It may depend only on `weir-core`.
//!
//! - [`parse`]: SQL → [`Plan`], refusing what cannot run.
//! - `extract`: the fields a plan reads, from each JSON event (through
//!   ingestion's decoder).
//! - `eval`: values and expressions (WHERE, HAVING, SELECT).
//! - `key`: group keys as bytes.
//! - `output`: results as JSON.
//! - [`QueryStep`]: the step itself, on top of [`window`].
//! - [`window`]: the window operators (tumbling, hopping, sliding, session).

mod eval;
mod extract;
mod key;
mod output;
mod parse;
mod plan;
mod step;
pub mod window;

#[cfg(test)]
mod golden;

pub use parse::{QueryError, WINDOW_END, WINDOW_START, parse};
pub use plan::{Body, Plan};
pub use step::{QueryStep, QueryStepSettings};
