//! Measures the `infer` boundary for `weir-bench models`: each batch becomes
//! a tensor of as many rows (cycled from the config's `rows`, a memcpy per
//! row, no parsing), scored in one call; every event is forwarded unchanged.
//! Config (JSON): `{"model": "...", "input": "...", "rows": [[f32, ...], ...]}`;
//! with `"call": false` it builds the tensor but does not call `infer`
//! (the cost of the plugin call without the model, to subtract).

use serde::Deserialize;
use weir_plugin_sdk::models::{Tensor, infer};
use weir_plugin_sdk::{Batch, Outcomes, Processor, export_processor};

#[derive(Deserialize)]
struct InferBench {
    model: String,
    input: String,
    rows: Vec<Vec<f32>>,
    #[serde(default = "yes")]
    call: bool,
}

fn yes() -> bool {
    true
}

impl Processor for InferBench {
    fn init(config: &str) -> Result<Self, String> {
        let bench: InferBench = serde_json::from_str(config).map_err(|e| e.to_string())?;
        let cols = bench.rows.first().map_or(0, Vec::len);
        if cols == 0 || bench.rows.iter().any(|r| r.len() != cols) {
            return Err("`rows` must be a non-empty list of rows of one length".into());
        }
        Ok(bench)
    }

    fn process(&mut self, batch: &Batch, out: &mut Outcomes) {
        let cols = self.rows[0].len();
        let mut data = Vec::with_capacity(batch.len() * cols);
        for i in 0..batch.len() {
            data.extend_from_slice(&self.rows[i % self.rows.len()]);
        }
        let tensor = Tensor::float32_rows(&self.input, batch.len(), data);
        let result = if self.call {
            infer(&self.model, &[tensor]).map(drop)
        } else {
            std::hint::black_box(&tensor);
            Ok(())
        };
        for event in batch {
            match &result {
                Ok(_) => out.emit(&event, &[]),
                Err(e) => out.reject(&event, e.clone()),
            }
        }
    }
}

export_processor!(InferBench);
