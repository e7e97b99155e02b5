//! Aggregate functions and their running state.
//!
//! Every aggregate reads one numeric argument (or none, for `COUNT(*)`);
//! null and missing values are skipped, as in SQL. An aggregate over no
//! values is null, except the counts, which are 0.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An aggregate function of the query language.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum AggFunc {
    /// `COUNT(*)`: events in the window.
    CountAll,
    /// `COUNT(x)`: events where `x` is not null.
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// Sample standard deviation (n − 1), as `STDEV`.
    Stdev,
    /// Population standard deviation, as `STDEVP`.
    StdevP,
    /// Sample variance, as `VAR`.
    Var,
    /// Population variance, as `VARP`.
    VarP,
    /// `PERCENTILE_CONT(p)`: linear interpolation between the closest ranks.
    PercentileCont(f64),
    /// `PERCENTILE_DISC(p)`: the smallest value whose cumulative share reaches p.
    PercentileDisc(f64),
}

impl AggFunc {
    /// A fresh accumulator.
    pub fn start(self) -> Acc {
        match self {
            AggFunc::CountAll | AggFunc::Count => Acc::Count(0),
            AggFunc::Sum | AggFunc::Avg => Acc::Sum { n: 0, sum: 0.0 },
            AggFunc::Min | AggFunc::Max => Acc::Extreme(None),
            AggFunc::Stdev | AggFunc::StdevP | AggFunc::Var | AggFunc::VarP => {
                Acc::Moments { n: 0, mean: 0.0, m2: 0.0 }
            }
            AggFunc::PercentileCont(_) | AggFunc::PercentileDisc(_) => Acc::Values(Vec::new()),
        }
    }

    /// Adds one value (`None`: null or missing) to `acc`.
    #[inline]
    pub fn add(self, acc: &mut Acc, value: Option<f64>) {
        match (self, acc) {
            (AggFunc::CountAll, Acc::Count(n)) => *n += 1,
            (_, Acc::Count(n)) => *n += u64::from(value.is_some()),
            (_, acc) => {
                let Some(v) = value else { return };
                match acc {
                    Acc::Sum { n, sum } => {
                        *n += 1;
                        *sum += v;
                    }
                    Acc::Extreme(e) => {
                        *e = Some(match *e {
                            None => v,
                            Some(old) if self == AggFunc::Min => old.min(v),
                            Some(old) => old.max(v),
                        })
                    }
                    Acc::Moments { n, mean, m2 } => {
                        // Welford's update: stable for long windows.
                        *n += 1;
                        let delta = v - *mean;
                        *mean += delta / *n as f64;
                        *m2 += delta * (v - *mean);
                    }
                    Acc::Values(values) => values.push(v),
                    Acc::Count(_) => unreachable!(),
                }
            }
        }
    }

    /// The aggregate's value; `None` is null.
    pub fn finish(self, acc: &Acc) -> Option<f64> {
        match (self, acc) {
            (_, Acc::Count(n)) => Some(*n as f64),
            (AggFunc::Sum, Acc::Sum { n, sum }) => (*n > 0).then_some(*sum),
            (_, Acc::Sum { n, sum }) => (*n > 0).then(|| sum / *n as f64),
            (_, Acc::Extreme(e)) => *e,
            (f, Acc::Moments { n, m2, .. }) => {
                let (n, sample) = (*n as f64, matches!(f, AggFunc::Stdev | AggFunc::Var));
                let divisor = if sample { n - 1.0 } else { n };
                if divisor <= 0.0 {
                    return None;
                }
                let var = (m2 / divisor).max(0.0);
                Some(if matches!(f, AggFunc::Stdev | AggFunc::StdevP) { var.sqrt() } else { var })
            }
            (f, Acc::Values(values)) => percentile(f, values),
        }
    }

    /// The function's name as the query language spells it.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::CountAll | AggFunc::Count => "COUNT",
            AggFunc::Sum => "SUM",
            AggFunc::Avg => "AVG",
            AggFunc::Min => "MIN",
            AggFunc::Max => "MAX",
            AggFunc::Stdev => "STDEV",
            AggFunc::StdevP => "STDEVP",
            AggFunc::Var => "VAR",
            AggFunc::VarP => "VARP",
            AggFunc::PercentileCont(_) => "PERCENTILE_CONT",
            AggFunc::PercentileDisc(_) => "PERCENTILE_DISC",
        }
    }
}

impl fmt::Display for AggFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AggFunc::PercentileCont(p) | AggFunc::PercentileDisc(p) => write!(f, "{}({p})", self.name()),
            _ => f.write_str(self.name()),
        }
    }
}

fn percentile(f: AggFunc, values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = (sorted.len() - 1) as f64;
    match f {
        AggFunc::PercentileCont(p) => {
            let rank = p * last;
            let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
            Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64))
        }
        AggFunc::PercentileDisc(p) => {
            let idx = ((p * sorted.len() as f64).ceil() as usize).max(1) - 1;
            Some(sorted[idx.min(sorted.len() - 1)])
        }
        _ => unreachable!("percentile of a non-percentile aggregate"),
    }
}

/// The running state of one aggregate in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Acc {
    Count(u64),
    Sum { n: u64, sum: f64 },
    Extreme(Option<f64>),
    Moments { n: u64, mean: f64, m2: f64 },
    Values(Vec<f64>),
}

/// The aggregates of a query, each reading one argument column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregates {
    /// (function, index of its argument in an event's argument values).
    pub funcs: Vec<(AggFunc, usize)>,
}

impl Aggregates {
    pub fn start(&self) -> Vec<Acc> {
        self.funcs.iter().map(|(f, _)| f.start()).collect()
    }

    #[inline]
    pub fn add(&self, accs: &mut [Acc], args: &[Option<f64>]) {
        for ((f, arg), acc) in self.funcs.iter().zip(accs) {
            let value = if *f == AggFunc::CountAll { None } else { args[*arg] };
            f.add(acc, value);
        }
    }

    pub fn finish(&self, accs: &[Acc]) -> Vec<Option<f64>> {
        self.funcs.iter().zip(accs).map(|((f, _), acc)| f.finish(acc)).collect()
    }

    /// Aggregates over a list of argument rows at once (windows that keep
    /// their events: sliding and session).
    pub fn over<'a>(&self, rows: impl Iterator<Item = &'a [Option<f64>]>) -> Vec<Option<f64>> {
        let mut accs = self.start();
        for args in rows {
            self.add(&mut accs, args);
        }
        self.finish(&accs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: AggFunc, values: &[Option<f64>]) -> Option<f64> {
        let mut acc = f.start();
        for v in values {
            f.add(&mut acc, *v);
        }
        f.finish(&acc)
    }

    #[test]
    fn aggregates_skip_nulls_and_match_textbook_values() {
        let xs = [Some(2.0), Some(4.0), None, Some(4.0), Some(4.0), Some(5.0), Some(5.0), Some(7.0), Some(9.0)];
        assert_eq!(run(AggFunc::CountAll, &xs), Some(9.0));
        assert_eq!(run(AggFunc::Count, &xs), Some(8.0));
        assert_eq!(run(AggFunc::Sum, &xs), Some(40.0));
        assert_eq!(run(AggFunc::Avg, &xs), Some(5.0));
        assert_eq!(run(AggFunc::Min, &xs), Some(2.0));
        assert_eq!(run(AggFunc::Max, &xs), Some(9.0));
        assert_eq!(run(AggFunc::StdevP, &xs), Some(2.0));
        assert_eq!(run(AggFunc::VarP, &xs), Some(4.0));
        assert!((run(AggFunc::Var, &xs).unwrap() - 32.0 / 7.0).abs() < 1e-12);
        assert_eq!(run(AggFunc::PercentileCont(0.5), &xs), Some(4.5));
        assert_eq!(run(AggFunc::PercentileDisc(0.5), &xs), Some(4.0));
        assert_eq!(run(AggFunc::PercentileCont(1.0), &xs), Some(9.0));
        assert_eq!(run(AggFunc::PercentileDisc(0.0), &xs), Some(2.0));
    }

    #[test]
    fn empty_aggregates_are_null_except_counts() {
        for f in [AggFunc::Sum, AggFunc::Avg, AggFunc::Min, AggFunc::Max, AggFunc::PercentileCont(0.5)] {
            assert_eq!(run(f, &[None]), None, "{f}");
        }
        assert_eq!(run(AggFunc::Count, &[None]), Some(0.0));
        assert_eq!(run(AggFunc::Stdev, &[Some(1.0)]), None, "a sample deviation needs two values");
        assert_eq!(run(AggFunc::StdevP, &[Some(1.0)]), Some(0.0));
    }
}
