//! Property tests: every window kind and aggregate against the naive
//! reference over random, out-of-order events and random watermarks; and
//! a snapshot taken anywhere, restored, gives the uninterrupted output.

use super::reference::{Reference, aggregates};
use super::*;
use proptest::prelude::*;
use weir_core::entries::{Changes, Entries};

#[derive(Debug, Clone)]
enum Op {
    Event { key: u8, t: i64, args: [Option<f64>; 2] },
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let value = proptest::option::weighted(0.9, (-50i32..50).prop_map(f64::from));
    prop_oneof![
        4 => (0u8..3, 0i64..200, value.clone(), value).prop_map(|(key, t, a, b)| Op::Event { key, t, args: [a, b] }),
        1 => (0i64..260).prop_map(Op::Advance),
    ]
}

fn kind() -> impl Strategy<Value = WindowKind> {
    prop_oneof![
        (1i64..30).prop_map(|size| WindowKind::Tumbling { size }),
        (1i64..30)
            .prop_flat_map(|size| (Just(size), 1..=size))
            .prop_map(|(size, hop)| WindowKind::Hopping { size, hop }),
        (1i64..30).prop_map(|size| WindowKind::Sliding { size }),
        (1i64..20, proptest::option::of(1i64..40)).prop_map(|(timeout, max)| WindowKind::Session { timeout, max }),
    ]
}

fn func() -> impl Strategy<Value = (AggFunc, usize)> {
    let f = prop_oneof![
        Just(AggFunc::CountAll),
        Just(AggFunc::Count),
        Just(AggFunc::Sum),
        Just(AggFunc::Avg),
        Just(AggFunc::Min),
        Just(AggFunc::Max),
        Just(AggFunc::Stdev),
        Just(AggFunc::StdevP),
        Just(AggFunc::Var),
        Just(AggFunc::VarP),
        (0.0f64..=1.0).prop_map(AggFunc::PercentileCont),
        (0.0f64..=1.0).prop_map(AggFunc::PercentileDisc),
    ];
    (f, 0usize..2)
}

fn spec() -> impl Strategy<Value = WindowSpec> {
    (kind(), 0i64..20, proptest::collection::vec(func(), 1..4)).prop_map(|(kind, lateness, funcs)| WindowSpec {
        kind,
        lateness,
        aggregates: aggregates(funcs),
    })
}

/// Rows from one step, with values rounded so that summation order does not matter.
type Rounded = Vec<Option<i64>>;

fn normalized(rows: &[Row]) -> Vec<(Key, i64, i64, RowKind, Rounded, Option<Rounded>)> {
    let round = |v: &[Option<f64>]| v.iter().map(|x| x.map(|x| (x * 1e6).round() as i64)).collect::<Vec<_>>();
    rows.iter()
        .map(|r| (r.key.clone(), r.start, r.end, r.kind, round(&r.values), r.previous.as_deref().map(round)))
        .collect()
}

/// The arguments an operator gets: none when every aggregate is `COUNT(*)`,
/// as a query step does.
fn used<'a>(spec: &WindowSpec, args: &'a [Option<f64>; 2]) -> &'a [Option<f64>] {
    if spec.aggregates.funcs.iter().all(|(f, _)| *f == AggFunc::CountAll) { &[] } else { args }
}

fn key(k: u8) -> [u8; 2] {
    [b'k', k]
}

/// Runs `ops` on an operator, restoring it from a snapshot after the
/// operations listed in `snapshot_after`; returns every step's rows.
fn run(spec: &WindowSpec, ops: &[Op], snapshot_after: &[usize]) -> Vec<(Option<Placed>, Vec<Row>)> {
    let mut w = Windows::new(spec.clone());
    let mut steps = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let mut out = Vec::new();
        let placed = match op {
            Op::Event { key: k, t, args } => Some(w.insert(&key(*k), *t, used(spec, args), &mut out)),
            Op::Advance(to) => {
                w.advance(*to, &mut out);
                None
            }
        };
        steps.push((placed, out));
        if snapshot_after.contains(&i) {
            w = Windows::restore(spec.clone(), &w.snapshot()).expect("a fresh snapshot restores");
        }
    }
    let mut out = Vec::new();
    w.finish(&mut out);
    steps.push((None, out));
    steps
}

/// Runs `ops` taking an incremental checkpoint (changes applied to entries,
/// the first whole) after the operations in `checkpoints`, and restoring
/// the operator from those entries after those in `restores`.
fn run_incremental(spec: &WindowSpec, ops: &[Op], checkpoints: &[usize], restores: &[usize]) -> Vec<Vec<Row>> {
    let prefix = b"q";
    let mut w = Windows::new(spec.clone());
    let (mut state, mut whole) = (Entries::new(), true);
    let mut steps = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let mut out = Vec::new();
        match op {
            Op::Event { key: k, t, args } => drop(w.insert(&key(*k), *t, used(spec, args), &mut out)),
            Op::Advance(to) => w.advance(*to, &mut out),
        }
        steps.push(out);
        if checkpoints.contains(&i) || restores.contains(&i) {
            let mut c = Changes { whole, ..Changes::default() };
            w.changes(prefix, std::mem::take(&mut whole), &mut c);
            c.apply(&mut state);
            // The changes add up to what a whole checkpoint holds: nothing
            // stale left behind, nothing missing.
            let mut all = Changes::default();
            w.clone().changes(prefix, true, &mut all);
            let mut whole_state = Entries::new();
            all.apply(&mut whole_state);
            assert_eq!(state, whole_state, "after operation {i}");
        }
        if restores.contains(&i) {
            w = Windows::from_entries(spec.clone(), prefix, &state).expect("fresh entries restore");
        }
    }
    let mut out = Vec::new();
    w.finish(&mut out);
    steps.push(out);
    steps
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn state_restored_from_incremental_changes_continues_like_an_uninterrupted_run(
        spec in spec(),
        ops in proptest::collection::vec(op(), 1..60),
        checkpoints in proptest::collection::vec(0usize..60, 0..8),
        restores in proptest::collection::vec(0usize..60, 1..3),
    ) {
        let straight: Vec<Vec<Row>> = run(&spec, &ops, &[]).into_iter().map(|(_, rows)| rows).collect();
        let restored = run_incremental(&spec, &ops, &checkpoints, &restores);
        prop_assert_eq!(straight, restored);
    }

    #[test]
    fn windows_match_the_naive_reference(spec in spec(), ops in proptest::collection::vec(op(), 0..60)) {
        let got = run(&spec, &ops, &[]);
        let mut reference = Reference::new(spec.clone());
        for (i, op) in ops.iter().enumerate() {
            let mut out = Vec::new();
            let placed = match op {
                Op::Event { key: k, t, args } => Some(reference.insert(&key(*k), *t, used(&spec, args), &mut out)),
                Op::Advance(to) => {
                    reference.advance(*to, &mut out);
                    None
                }
            };
            prop_assert_eq!(got[i].0, placed, "placement at step {} ({:?})", i, op);
            prop_assert_eq!(normalized(&got[i].1), normalized(&out), "rows at step {} ({:?})", i, op);
        }
        let mut out = Vec::new();
        reference.advance(i64::MAX, &mut out);
        prop_assert_eq!(normalized(&got[ops.len()].1), normalized(&out), "rows at the end");
    }

    #[test]
    fn a_restored_snapshot_continues_like_an_uninterrupted_run(
        spec in spec(),
        ops in proptest::collection::vec(op(), 1..60),
        cuts in proptest::collection::vec(0usize..60, 1..4),
    ) {
        let straight = run(&spec, &ops, &[]);
        let restored = run(&spec, &ops, &cuts);
        prop_assert_eq!(straight.len(), restored.len());
        for (a, b) in straight.iter().zip(&restored) {
            prop_assert_eq!(a.0, b.0);
            prop_assert_eq!(&a.1, &b.1);
        }
    }
}

#[test]
fn a_snapshot_refuses_another_spec_and_garbage() {
    let spec = WindowSpec {
        kind: WindowKind::Tumbling { size: 10 },
        lateness: 0,
        aggregates: aggregates(vec![(AggFunc::CountAll, 0)]),
    };
    let mut w = Windows::new(spec.clone());
    w.insert(b"k", 5, &[None], &mut Vec::new());
    let snap = w.snapshot();
    let other = WindowSpec { kind: WindowKind::Tumbling { size: 20 }, ..spec.clone() };
    assert!(matches!(Windows::restore(other, &snap), Err(RestoreError::OtherSpec(_))));
    assert!(matches!(Windows::restore(spec.clone(), &snap[..snap.len() / 2]), Err(RestoreError::Corrupt(_))));
    assert!(matches!(Windows::restore(spec.clone(), &[]), Err(RestoreError::Corrupt(_))));
    let back = Windows::restore(spec, &snap).unwrap();
    assert_eq!((back.open(), back.watermark()), (1, i64::MIN));
}

#[test]
fn a_late_event_within_lateness_corrects_and_beyond_it_is_refused() {
    let spec = WindowSpec {
        kind: WindowKind::Tumbling { size: 10 },
        lateness: 5,
        aggregates: aggregates(vec![(AggFunc::Sum, 0)]),
    };
    let mut w = Windows::new(spec);
    let mut out = Vec::new();
    assert_eq!(w.insert(b"k", 3, &[Some(1.0)], &mut out), Placed::Accepted);
    w.advance(11, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].start, out[0].end, out[0].kind, out[0].values.clone()),
        (0, 10, RowKind::Final, vec![Some(1.0)])
    );
    out.clear();
    // W = 11 > end 10, but 10 + 5 >= 11: the window is still open.
    assert_eq!(w.insert(b"k", 7, &[Some(2.0)], &mut out), Placed::Accepted);
    assert_eq!(out[0].kind, RowKind::Correction);
    assert_eq!(out[0].values, vec![Some(3.0)]);
    assert_eq!(out[0].previous, Some(vec![Some(1.0)]));
    out.clear();
    w.advance(16, &mut out);
    assert_eq!(w.insert(b"k", 8, &[Some(4.0)], &mut out), Placed::Late);
    assert!(out.is_empty());
}
