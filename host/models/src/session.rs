//! The models one plugin instance may call, with its own ONNX Runtime
//! sessions, and `infer` itself.

use super::registry::{Model, ModelVersion};
use super::signature::Elem;
use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;
use weir_core::metrics::VersionMetrics;

/// Tensor elements, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Float32(Vec<f32>),
    Int64(Vec<i64>),
}

impl TensorData {
    fn elem(&self) -> Elem {
        match self {
            TensorData::Float32(_) => Elem::Float32,
            TensorData::Int64(_) => Elem::Int64,
        }
    }

    fn len(&self) -> usize {
        match self {
            TensorData::Float32(v) => v.len(),
            TensorData::Int64(v) => v.len(),
        }
    }
}

/// A named tensor, as it crosses the plugin boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<u32>,
    pub data: TensorData,
}

/// What a call returns: every output, and the version that computed them.
#[derive(Debug)]
pub struct Inference {
    pub outputs: Vec<Tensor>,
    pub version: String,
}

/// One granted model, the version pinned for the current batch, and the
/// session for it (built on first use of that version).
struct Granted {
    model: Arc<Model>,
    generation: u64,
    pinned: Arc<ModelVersion>,
    session: Option<(Arc<ModelVersion>, Session)>,
    metrics: VersionMetrics,
}

/// The models of one plugin instance (one step of one worker).
pub struct ModelSessions {
    step: String,
    granted: Vec<Granted>,
}

impl ModelSessions {
    pub fn new(step: &str, models: &[Arc<Model>]) -> Self {
        let granted = models
            .iter()
            .map(|m| {
                let pinned = m.current();
                Granted {
                    metrics: m.metrics.version(&m.name, &pinned.digest),
                    model: m.clone(),
                    generation: m.generation(),
                    pinned,
                    session: None,
                }
            })
            .collect();
        ModelSessions { step: step.to_string(), granted }
    }

    /// Called between batches: a model reloaded since the last batch is
    /// used from the next one on, so a batch never sees two versions.
    pub fn begin_batch(&mut self) {
        for g in &mut self.granted {
            let generation = g.model.generation();
            if generation != g.generation {
                g.generation = generation;
                g.pinned = g.model.current();
                g.metrics = g.model.metrics.version(&g.model.name, &g.pinned.digest);
            }
        }
    }

    /// Runs `model` on `inputs`. Every error names what is wrong and is
    /// returned to the plugin, never a trap.
    pub fn infer(&mut self, model: &str, inputs: Vec<Tensor>) -> Result<Inference, String> {
        let Some(g) = self.granted.iter_mut().find(|g| g.model.name == model) else {
            let names: Vec<_> = self.granted.iter().map(|g| g.model.name.as_str()).collect();
            return Err(format!(
                "model `{model}` is not granted to step `{}` (its `models` key lists: {})",
                self.step,
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ));
        };
        let started = Instant::now();
        let result = run(g, inputs);
        match &result {
            Ok((_, rows)) => {
                g.metrics.seconds.observe(started.elapsed().as_secs_f64());
                g.metrics.rows.inc_by(*rows);
            }
            Err(_) => g.metrics.errors.inc(),
        }
        result.map(|(outputs, _)| Inference { outputs, version: g.pinned.digest.clone() })
    }
}

fn run(g: &mut Granted, inputs: Vec<Tensor>) -> Result<(Vec<Tensor>, u64), String> {
    let sig = &g.pinned.signature;
    let mut values: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(inputs.len());
    for spec in &sig.inputs {
        if !inputs.iter().any(|t| t.name == spec.name) {
            return Err(format!("input `{}` is missing; the model takes {}", spec.name, sig));
        }
    }
    for (i, t) in inputs.iter().enumerate() {
        let Some(spec) = sig.inputs.iter().find(|s| s.name == t.name) else {
            return Err(format!("the model has no input `{}`; it takes {}", t.name, sig));
        };
        if inputs[..i].iter().any(|o| o.name == t.name) {
            return Err(format!("input `{}` is given twice", t.name));
        }
        spec.check(t.data.elem(), &t.shape, t.data.len())?;
        let shape: Vec<i64> = t.shape.iter().map(|&d| i64::from(d)).collect();
        let value: SessionInputValue<'_> = match &t.data {
            TensorData::Float32(v) => TensorRef::from_array_view((shape, v.as_slice())).map(Into::into),
            TensorData::Int64(v) => TensorRef::from_array_view((shape, v.as_slice())).map(Into::into),
        }
        .map_err(|e| format!("input `{}`: {e}", t.name))?;
        values.push((Cow::Borrowed(spec.name.as_str()), value));
    }
    let rows = inputs.first().and_then(|t| t.shape.first()).map_or(1, |&d| u64::from(d));
    if g.session.as_ref().is_none_or(|(v, _)| !Arc::ptr_eq(v, &g.pinned)) {
        let session = g.model.session(&g.pinned)?;
        g.session = Some((g.pinned.clone(), session));
    }
    let (_, session) = g.session.as_mut().expect("session built above");
    let outputs = session.run(values).map_err(|e| format!("ONNX Runtime: {e}"))?;
    let mut out = Vec::with_capacity(sig.outputs.len());
    for spec in &sig.outputs {
        let value = outputs.get(&spec.name).ok_or_else(|| format!("output `{}` was not produced", spec.name))?;
        let (shape, data) = match spec.elem {
            Elem::Float32 => value.try_extract_tensor::<f32>().map(|(s, d)| (s, TensorData::Float32(d.to_vec()))),
            Elem::Int64 => value.try_extract_tensor::<i64>().map(|(s, d)| (s, TensorData::Int64(d.to_vec()))),
        }
        .map_err(|e| format!("output `{}`: {e}", spec.name))?;
        let shape = shape.iter().map(|&d| u32::try_from(d).unwrap_or(u32::MAX)).collect();
        out.push(Tensor { name: spec.name.clone(), shape, data });
    }
    Ok((out, rows))
}
