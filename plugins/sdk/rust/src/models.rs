//! Calling the host's ONNX models: build one tensor for the whole batch,
//! call [`infer`] once, read the outputs by name.

use crate::bindings::weir::plugin::models;

pub use models::{Inference, Tensor, TensorData};

/// Runs the host model `model` (granted to this step by its `models` key)
/// on `inputs`. Errors (an ungranted model, a wrong name, type or shape)
/// come back as text; reject the batch's events with it.
pub fn infer(model: &str, inputs: &[Tensor]) -> Result<Inference, String> {
    models::infer(model, inputs)
}

impl Tensor {
    /// A float32 tensor: `rows` rows of `data.len() / rows` columns.
    pub fn float32_rows(name: &str, rows: usize, data: Vec<f32>) -> Tensor {
        let cols = data.len().checked_div(rows).unwrap_or(0);
        Tensor { name: name.to_string(), shape: vec![rows as u32, cols as u32], data: TensorData::Float32(data) }
    }

    /// The elements, if this is a float32 tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::Float32(v) => Some(v),
            TensorData::Int64(_) => None,
        }
    }

    /// The elements, if this is an int64 tensor.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::Int64(v) => Some(v),
            TensorData::Float32(_) => None,
        }
    }
}

impl Inference {
    /// The output named `name`.
    pub fn output(&self, name: &str) -> Result<&Tensor, String> {
        self.outputs.iter().find(|t| t.name == name).ok_or_else(|| {
            let names: Vec<_> = self.outputs.iter().map(|t| t.name.as_str()).collect();
            format!("the model has no output `{name}` (outputs: {})", names.join(", "))
        })
    }
}
