//! JSON Schema validation of events at ingestion (the `jsonschema` crate).
//!
//! Error details name the field and the rule, never the value: a value in a
//! dead-letter detail or a response could be health data.

use jsonschema::error::ValidationErrorKind;
use std::path::{Path, PathBuf};

/// A source's schema, compiled once.
pub struct Schema {
    validator: jsonschema::Validator,
    pub path: PathBuf,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema").field("path", &self.path).finish()
    }
}

impl Schema {
    /// Reads and compiles the schema at `path`; the error names the file.
    pub fn load(path: &Path) -> Result<Schema, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("`{}` is not JSON: {e}", path.display()))?;
        let validator = jsonschema::validator_for(&value)
            .map_err(|e| format!("`{}` is not a valid JSON Schema: {e}", path.display()))?;
        Ok(Schema { validator, path: path.to_path_buf() })
    }

    /// Checks one event (already known to be a JSON object); the error
    /// names the first violation's field and rule.
    pub fn check(&self, bytes: &[u8]) -> Result<(), String> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("malformed JSON: {}", super::decode::without_values(&e.to_string())))?;
        match self.validator.iter_errors(&value).next() {
            None => Ok(()),
            Some(e) => Err(describe(&e)),
        }
    }
}

/// "`/vitals/HeartRate`: must be of type integer" — the path and the rule, no value.
fn describe(e: &jsonschema::ValidationError<'_>) -> String {
    let at = e.instance_path.as_str();
    let at = if at.is_empty() { "the event".to_string() } else { format!("`{at}`") };
    match &e.kind {
        ValidationErrorKind::Required { property } => {
            format!(
                "{at}: missing required field {}",
                property.as_str().map_or(property.to_string(), |p| format!("`{p}`"))
            )
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let names: Vec<String> = unexpected.iter().map(|u| format!("`{u}`")).collect();
            format!("{at}: field{} {} not allowed", if names.len() == 1 { "" } else { "s" }, names.join(", "))
        }
        ValidationErrorKind::Type { kind } => format!("{at}: must be of type {}", type_names(kind)),
        _ => {
            let schema = e.schema_path.as_str();
            let rule = schema.rsplit('/').next().unwrap_or(schema);
            format!("{at}: fails `{rule}` (schema {schema})")
        }
    }
}

fn type_names(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(t) => t.to_string(),
        jsonschema::error::TypeKind::Multiple(ts) => ts.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" or "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(
            &path,
            r#"{"type":"object","required":["PatientId","HeartRate"],"additionalProperties":false,
                "properties":{"PatientId":{"type":"string"},"HeartRate":{"type":"integer","minimum":0},"EventTime":{}}}"#,
        )
        .unwrap();
        Schema::load(&path).unwrap()
    }

    #[test]
    fn violations_name_the_field_and_the_rule_but_not_the_value() {
        let s = schema();
        assert_eq!(s.check(br#"{"PatientId":"P1","HeartRate":80}"#), Ok(()));
        assert_eq!(s.check(br#"{"HeartRate":80}"#).unwrap_err(), "the event: missing required field `PatientId`");
        assert_eq!(
            s.check(br#"{"PatientId":"P1","HeartRate":"eighty"}"#).unwrap_err(),
            "`/HeartRate`: must be of type integer"
        );
        assert_eq!(
            s.check(br#"{"PatientId":"P1","HeartRate":80,"ssn":"123-45-6789"}"#).unwrap_err(),
            "the event: field `ssn` not allowed"
        );
        let e = s.check(br#"{"PatientId":"P1","HeartRate":-7}"#).unwrap_err();
        assert_eq!(e, "`/HeartRate`: fails `minimum` (schema /properties/HeartRate/minimum)");
        assert!(!e.contains("-7"));
    }
}
