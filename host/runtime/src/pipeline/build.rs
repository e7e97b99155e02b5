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
