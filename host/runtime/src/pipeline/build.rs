//! The second stage of checking a pipeline file, in context: every
//! connector checks its sources' and sinks' options (through the registry)
//! and every query is compiled and must read what comes before it. Errors
//! name the file, the line and the key, like the first stage's.

use weir_config::{ConfigError, PipelineSpec, StepSpecKind};
use weir_query::Plan;

/// A pipeline that passed both stages: its compiled queries, by step.
#[derive(Debug)]
pub struct Checked {
    /// `plans[i]`: the plan of step `i`, if it is a query.
    pub plans: Vec<Option<Plan>>,
}

/// Checks what the pipeline file alone could not.
pub fn check(spec: &PipelineSpec) -> Result<Checked, ConfigError> {
    weir_connectors::check(spec)?;
    let mut plans = Vec::new();
    for (i, step) in spec.steps.iter().enumerate() {
        let StepSpecKind::Query(q) = &step.kind else {
            plans.push(None);
            continue;
        };
        let key = format!("steps[{i}].query");
        let plan = weir_query::parse(&q.sql).map_err(|e| spec.text.error(q.span.clone(), &key, e.to_string()))?;
        let from_ok = match i.checked_sub(1) {
            Some(prev) => spec.steps[prev].name == plan.from,
            None => spec.sources.len() == 1 && spec.sources[0].name == plan.from,
        };
        if !from_ok {
            let expected = match i.checked_sub(1) {
                Some(prev) => format!("the step before it, `{}`", spec.steps[prev].name),
                None if spec.sources.len() == 1 => format!("the source `{}`", spec.sources[0].name),
                None => format!(
                    "one source, but this first step receives every source ({}); give the query its own pipeline or a step before it",
                    spec.sources.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            };
            return Err(spec.text.error(
                q.span.clone(),
                key,
                format!("FROM `{}`: this step reads {expected}", plan.from),
            ));
        }
        plans.push(Some(plan));
    }
    Ok(Checked { plans })
}

/// How a pipeline's keyed steps are split among shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sharding {
    /// Shards to run.
    pub parallelism: u16,
    /// The field a source without `key_field` is routed by (the first
    /// query's GROUP BY field), if any; with one shard, what a rescaled
    /// checkpoint's state is split by.
    pub route_field: Option<String>,
    /// The first step closes windows on the pipeline's watermark, computed
    /// where the events enter (so that every shard agrees on it).
    pub watermarks: bool,
}

/// Decides the shards. More than one needs a key that every keyed step
/// agrees with; otherwise the reason is the error (naming what to change).
pub fn sharding(spec: &PipelineSpec, checked: &Checked) -> Result<Sharding, String> {
    let windowed = |i: usize| match &checked.plans[i] {
        Some(p) => match &p.body {
            weir_query::Body::Window(w) => Some((p, w)),
            weir_query::Body::Project(_) => None,
        },
        None => None,
    };
    let source = &spec.sources[0];
    let first = (!spec.steps.is_empty()).then(|| windowed(0)).flatten();
    // The pipeline's watermark comes from the sources' event times: a
    // query may close its windows on it if it reads its times from there
    // too (no TIMESTAMP BY of its own, or the sources' timestamp_field
    // when it reads the sources).
    let follows_sources = |i: usize, p: &Plan| {
        p.timestamp_by.is_none()
            || (i == 0 && spec.sources.iter().all(|s| s.timestamp_field.as_ref() == p.timestamp_by.as_ref()))
    };
    let queries: Vec<(usize, &Plan)> = (0..spec.steps.len()).filter_map(|i| windowed(i).map(|(p, _)| (i, p))).collect();
    let watermarks = !queries.is_empty() && queries.iter().all(|(i, p)| follows_sources(*i, p));
    let key_fields: Vec<Option<&String>> = spec.sources.iter().map(|s| s.key_field.as_ref()).collect();
    // Routed by a query's GROUP BY field only when no source names a key.
    let route_field = match first {
        Some((p, w)) if key_fields.iter().all(Option::is_none) => w.keys.first().map(|k| p.fields[*k].clone()),
        _ => None,
    };
    let plain = Sharding { parallelism: 1, route_field: route_field.clone(), watermarks };
    if spec.parallelism <= 1 {
        return Ok(plain);
    }
    let key = |i: usize| key_fields[i].or(route_field.as_ref());
    let Some(name) = key(0) else {
        return Err(format!(
            "source `{}` has no key_field and the first step groups by no field: nothing splits the events among shards",
            source.name
        ));
    };
    if key_fields.iter().any(Option::is_some) && key_fields.iter().any(Option::is_none) {
        return Err("every source needs a key_field to run on more than one shard, or none of them".into());
    }
    if (0..spec.sources.len()).any(|i| key(i).is_none()) {
        return Err("every source needs a key_field to run on more than one shard".into());
    }
    for (i, step) in spec.steps.iter().enumerate() {
        match &step.kind {
            StepSpecKind::Plugin(_) if route_field.is_some() => {
                return Err(format!(
                    "plugin step `{}` keeps its keyed state by the sources' key_field, which is not set",
                    step.name
                ));
            }
            StepSpecKind::Plugin(_) => {}
            StepSpecKind::Query(_) => {
                let Some((p, w)) = windowed(i) else { continue };
                if !follows_sources(i, p) {
                    return Err(format!(
                        "query step `{}` reads its time from TIMESTAMP BY {}, not from the sources' timestamp_field",
                        step.name,
                        p.timestamp_by.as_deref().unwrap_or_default()
                    ));
                }
                if !w.keys.iter().any(|k| key_fields.iter().all(|f| f.unwrap_or(name) == &p.fields[*k])) {
                    return Err(format!(
                        "query step `{}` does not GROUP BY the key field `{name}`: a group would span shards",
                        step.name
                    ));
                }
            }
        }
    }
    Ok(Sharding { parallelism: spec.parallelism, route_field, watermarks })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(sources: &str, steps: &str, parallelism: u16) -> Result<Sharding, String> {
        let text = format!("[pipeline]\nname = \"p\"\nparallelism = {parallelism}\n\n{sources}\n{steps}");
        let spec = weir_config::load_str(std::path::Path::new("p.toml"), &text).unwrap();
        let checked = check(&spec).unwrap();
        sharding(&spec, &checked)
    }

    const KEYED: &str =
        "[[sources]]\nname = \"a\"\nkind = \"generator\"\ngenerate = \"vitals\"\nkey_field = \"PatientId\"\n";
    const UNKEYED: &str = "[[sources]]\nname = \"b\"\nkind = \"generator\"\ngenerate = \"vitals\"\n";
    const WINDOWS: &str = "[[steps]]\nname = \"q\"\nquery = \"SELECT PatientId, COUNT(*) AS n FROM a GROUP BY PatientId, TumblingWindow(second, 1)\"\n";

    #[test]
    fn the_key_is_the_key_field_or_the_first_group_by_field() {
        let keyed = plan(KEYED, WINDOWS, 2).unwrap();
        assert_eq!((keyed.parallelism, keyed.route_field.as_deref(), keyed.watermarks), (2, None, true));
        let by_query = plan(&UNKEYED.replace("\"b\"", "\"a\""), WINDOWS, 2).unwrap();
        assert_eq!(by_query.route_field.as_deref(), Some("PatientId"));
    }

    #[test]
    fn mixing_keyed_and_unkeyed_sources_is_refused() {
        let steps = "";
        let err = plan(&format!("{KEYED}\n{UNKEYED}"), steps, 2).unwrap_err();
        assert!(err.contains("every source needs a key_field"), "{err}");
        assert_eq!(plan(&format!("{KEYED}\n{UNKEYED}"), steps, 1).unwrap().parallelism, 1);
    }

    #[test]
    fn a_query_not_grouping_by_the_key_is_refused() {
        let steps =
            WINDOWS.replace("GROUP BY PatientId", "GROUP BY HeartRate").replace("SELECT PatientId", "SELECT HeartRate");
        let err = plan(KEYED, &steps, 2).unwrap_err();
        assert!(err.contains("does not GROUP BY the key field `PatientId`"), "{err}");
    }
}
