//! `weir:plugin/models`: `infer` on the models a step was granted. Its view
//! of a store is the instance's [`ModelSessions`]; [`add_to_linker`] links it.

use super::bindings::weir::plugin::models;
use super::instance::StoreData;
use wasmtime::component::{HasSelf, Linker};
use weir_models::{ModelSessions, Tensor, TensorData};

/// Links `weir:plugin/models` to each store's [`ModelSessions`].
pub fn add_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    models::add_to_linker::<StoreData, HasSelf<ModelSessions>>(linker, |s| &mut s.models)
}

impl models::Host for ModelSessions {
    fn infer(&mut self, model: String, inputs: Vec<models::Tensor>) -> Result<models::Inference, String> {
        let inputs = inputs
            .into_iter()
            .map(|t| Tensor {
                name: t.name,
                shape: t.shape,
                data: match t.data {
                    models::TensorData::Float32(v) => TensorData::Float32(v),
                    models::TensorData::Int64(v) => TensorData::Int64(v),
                },
            })
            .collect();
        let inference = self.infer(&model, inputs)?;
        let outputs = inference
            .outputs
            .into_iter()
            .map(|t| models::Tensor {
                name: t.name,
                shape: t.shape,
                data: match t.data {
                    TensorData::Float32(v) => models::TensorData::Float32(v),
                    TensorData::Int64(v) => models::TensorData::Int64(v),
                },
            })
            .collect();
        Ok(models::Inference { outputs, version: inference.version })
    }
}
