//! A model's inputs and outputs: names, element types and shapes, read from
//! the model at load and checked before every call.

use ort::value::{TensorElementType, ValueType};
use std::fmt;

/// Element types Weir passes across the plugin boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    Float32,
    Int64,
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Elem::Float32 => "float32",
            Elem::Int64 => "int64",
        })
    }
}

/// One input or output: `features: float32[?,6]` (`?` is a dynamic dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub elem: Elem,
    /// Dimensions; -1 where the model leaves one open (the batch, usually).
    pub shape: Vec<i64>,
}

impl fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}[", self.name, self.elem)?;
        for (i, d) in self.shape.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            if *d < 0 { write!(f, "{sep}?")? } else { write!(f, "{sep}{d}")? }
        }
        f.write_str("]")
    }
}

impl TensorSpec {
    /// Checks a tensor handed in by a plugin; the error names the input.
    pub fn check(&self, elem: Elem, shape: &[u32], len: usize) -> Result<(), String> {
        if elem != self.elem {
            return Err(format!("input `{}` must be {} (got {elem})", self.name, self.elem));
        }
        let fits = shape.len() == self.shape.len()
            && shape.iter().zip(&self.shape).all(|(&got, &want)| want < 0 || i64::from(got) == want);
        if !fits {
            return Err(format!("input `{}` has shape {shape:?}, the model takes {self}", self.name));
        }
        // Checked: a hostile shape must not wrap around to the data's length.
        let elements = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(u64::from(d)));
        if elements != Some(len as u64) {
            let held = elements.map_or("more than 2^64".to_string(), |e| e.to_string());
            return Err(format!("input `{}`: shape {shape:?} holds {held} elements, but {len} were given", self.name));
        }
        Ok(())
    }
}

/// All inputs and outputs of a model, in the model's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |specs: &[TensorSpec]| specs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        write!(f, "({}) -> ({})", list(&self.inputs), list(&self.outputs))
    }
}

impl Signature {
    /// Reads the signature of a loaded session; anything other than float32
    /// and int64 tensors is refused with the name of the input or output.
    pub fn of(session: &ort::session::Session) -> Result<Self, String> {
        let read = |kind: &str, outlets: &[ort::value::Outlet]| -> Result<Vec<TensorSpec>, String> {
            outlets
                .iter()
                .map(|o| match o.dtype() {
                    ValueType::Tensor { ty, shape, .. } => {
                        let elem = match ty {
                            TensorElementType::Float32 => Elem::Float32,
                            TensorElementType::Int64 => Elem::Int64,
                            other => {
                                return Err(format!(
                                    "{kind} `{}` is a tensor of {other:?}; Weir passes float32 and int64 tensors",
                                    o.name()
                                ));
                            }
                        };
                        Ok(TensorSpec { name: o.name().to_string(), elem, shape: shape.to_vec() })
                    }
                    other => Err(format!(
                        "{kind} `{}` is a {other:?}, not a tensor (for scikit-learn classifiers, convert with zipmap=False)",
                        o.name()
                    )),
                })
                .collect()
        };
        Ok(Signature { inputs: read("input", session.inputs())?, outputs: read("output", session.outputs())? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features() -> TensorSpec {
        TensorSpec { name: "features".into(), elem: Elem::Float32, shape: vec![-1, 6] }
    }

    #[test]
    fn a_tensor_spec_reads_like_the_docs() {
        assert_eq!(features().to_string(), "features: float32[?,6]");
    }

    #[test]
    fn checks_name_the_input_and_what_is_wrong() {
        let f = features();
        assert_eq!(f.check(Elem::Float32, &[3, 6], 18), Ok(()));
        assert_eq!(f.check(Elem::Int64, &[3, 6], 18).unwrap_err(), "input `features` must be float32 (got int64)");
        assert_eq!(
            f.check(Elem::Float32, &[3, 5], 15).unwrap_err(),
            "input `features` has shape [3, 5], the model takes features: float32[?,6]"
        );
        assert_eq!(
            f.check(Elem::Float32, &[3, 6], 17).unwrap_err(),
            "input `features`: shape [3, 6] holds 18 elements, but 17 were given"
        );
        let open = TensorSpec { name: "x".into(), elem: Elem::Float32, shape: vec![-1, -1, -1] };
        assert_eq!(
            open.check(Elem::Float32, &[u32::MAX, u32::MAX, u32::MAX], 0).unwrap_err(),
            "input `x`: shape [4294967295, 4294967295, 4294967295] holds more than 2^64 elements, but 0 were given"
        );
    }
}
