//! The query step: restore, cells from ingestion, and every window kind through SQL.

use super::*;
use weir_core::metrics::Metrics;

/// A step named `q` running `sql` over one source.
fn query(metrics: &Metrics, sql: &str, lateness: i64, out_of_orderness: i64, late_to_dead_letter: bool) -> QueryStep {
    let settings = QueryStepSettings {
        name: "q".into(),
        plan: crate::parse(sql).unwrap(),
        lateness,
        out_of_orderness: vec![out_of_orderness],
        late_to_dead_letter,
        pipeline_watermark: false,
        time_range: Default::default(),
    };
    QueryStep::new(settings, metrics.step("q"), metrics.window("q"))
}

/// Metrics and a dead-letter output in `dir`.
fn outputs(dir: &tempfile::TempDir) -> (Metrics, DeadLetters) {
    let metrics = Metrics::new("t");
    let dead = DeadLetters::new(dir.path().join("dead.ndjson"), vec!["s".into()], metrics.clone());
    (metrics, dead)
}

fn step(metrics: &Metrics, lateness: i64) -> QueryStep {
    let sql = "SELECT k, COUNT(*) AS n, AVG(v) AS avg, PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY v) AS med \
               FROM s GROUP BY k, HoppingWindow(second, 10, 5)";
    query(metrics, sql, lateness, 2000, false)
}

/// Batches of events over 60 s of event time, up to 20 s out of order.
fn batches() -> Vec<Batch> {
    let mut rng = 7u64;
    let mut next = move || {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        rng >> 33
    };
    (0..12)
        .map(|b| {
            let mut batch = Batch::default();
            for i in 0..50u64 {
                let t = (b * 50 + i) * 100 + next() % 20_000;
                let line = format!(r#"{{"k":"k{}","v":{}}}"#, next() % 3, next() % 100);
                batch.push(
                    line.as_bytes(),
                    t as i64,
                    Origin { source: 0, line: b * 50 + i + 1, offset: 0, partition: 0 },
                );
            }
            batch
        })
        .collect()
}

fn lines(out: &Outputs) -> Vec<String> {
    let named =
        out.named.iter().flat_map(|(n, b)| b.iter().map(move |(p, ..)| format!("{n}: {}", String::from_utf8_lossy(p))));
    out.main.iter().map(|(p, ..)| String::from_utf8_lossy(p).into_owned()).chain(named).collect()
}

#[test]
fn a_restored_step_continues_exactly_where_the_snapshot_was_taken() {
    let dir = tempfile::tempdir().unwrap();
    let (metrics, dead) = outputs(&dir);
    let mut straight = Vec::new();
    let mut one = step(&metrics, 1000);
    for b in batches() {
        straight.extend(lines(&one.process(b, &dead).unwrap()));
    }
    straight.extend(lines(&one.finish(&dead).unwrap()));
    let late = metrics.window("q").late.get();
    assert!(late > 0, "20 s of jitter past 2 s of out-of-orderness and 1 s of lateness makes late events");
    assert!(straight.iter().any(|l| l.contains(r#""correction":true"#)), "and corrections");
    assert_eq!(straight.iter().filter(|l| l.starts_with("late: ")).count() as u64, late);

    for cut in [0, 5, 11] {
        let mut got = Vec::new();
        let mut first = step(&metrics, 1000);
        let mut all = batches().into_iter();
        for b in all.by_ref().take(cut + 1) {
            got.extend(lines(&first.process(b, &dead).unwrap()));
        }
        let state = first.snapshot().unwrap();
        drop(first);
        let mut second = step(&metrics, 1000);
        second.restore(&state).unwrap();
        for b in all {
            got.extend(lines(&second.process(b, &dead).unwrap()));
        }
        got.extend(lines(&second.finish(&dead).unwrap()));
        assert_eq!(got, straight, "restored after batch {cut}");
    }
    assert!(step(&metrics, 0).restore(&step(&metrics, 1000).snapshot().unwrap()).is_err(), "another spec");
    assert!(step(&metrics, 0).restore(b"garbage").is_err());
}

#[test]
fn cells_read_at_ingestion_give_the_same_results_as_parsing_in_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let (metrics, dead) = outputs(&dir);
    let sql = "SELECT k, COUNT(*) AS n, MAX(v) AS top FROM s TIMESTAMP BY at WHERE k <> 'skip' \
               GROUP BY k, TumblingWindow(second, 1)";
    let make = || query(&metrics, sql, 0, 0, true);
    let lines = [
        r#"{"k":"a\"b","at":"1970-01-01T00:00:00.500Z","v":3}"#,
        r#"{"k":"skip","at":600,"v":9}"#,
        r#"{"k":"c","at":700,"v":"high"}"#,
        r#"{"k":"c","v":1}"#,
        r#"{"k":"a\"b","at":1500,"v":4}"#,
    ];
    let mut batch = Batch::default();
    for (i, l) in lines.iter().enumerate() {
        batch.push(l.as_bytes(), 0, Origin { source: 0, line: i as u64 + 1, offset: 0, partition: 0 });
    }
    let mut plain = make();
    let a = [lines_of(&plain.process(batch.clone(), &dead).unwrap()), lines_of(&plain.finish(&dead).unwrap())];
    let mut pushed = make();
    let plan = weir_core::event::FieldPlan { columns: Some(pushed.columns()), ..Default::default() };
    weir_core::event::decode_batch(&mut batch, &plan, &mut weir_core::event::Refused::default());
    assert!(batch.columns.is_some());
    let b = [lines_of(&pushed.process(batch, &dead).unwrap()), lines_of(&pushed.finish(&dead).unwrap())];
    assert_eq!(a, b);
    assert_eq!(
        a.concat(),
        vec![
            r#"{"window_start":"1970-01-01T00:00:00.000Z","window_end":"1970-01-01T00:00:01.000Z","k":"a\"b","n":1,"top":3}"#,
            r#"{"window_start":"1970-01-01T00:00:01.000Z","window_end":"1970-01-01T00:00:02.000Z","k":"a\"b","n":1,"top":4}"#,
        ]
    );
    let dead = std::fs::read_to_string(dir.path().join("dead.ndjson")).unwrap();
    assert!(dead.contains("field `v`: expected a number, found a string"), "{dead}");
    assert!(dead.contains("missing field `at`"), "{dead}");
}

fn lines_of(out: &Outputs) -> Vec<String> {
    out.main.iter().map(|(p, ..)| String::from_utf8_lossy(p).into_owned()).collect()
}

/// Runs `sql` over (key, time in ms, value) events and returns the rows.
fn rows(sql: &str, events: &[(&str, i64, f64)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let (metrics, dead) = outputs(&dir);
    let mut step = query(&metrics, sql, 0, 0, true);
    let mut batch = Batch::default();
    for (k, t, v) in events {
        batch.push(format!(r#"{{"k":"{k}","v":{v}}}"#).as_bytes(), *t, Origin::default());
    }
    let mut out = lines_of(&step.process(batch, &dead).unwrap());
    out.extend(lines_of(&step.finish(&dead).unwrap()));
    out
}

#[test]
fn sliding_and_session_windows_through_sql() {
    let events = [("a", 1000, 1.0), ("a", 1500, 2.0), ("a", 4000, 4.0)];
    assert_eq!(
        rows("SELECT k, SUM(v) AS s FROM x GROUP BY k, SlidingWindow(second, 1)", &events),
        [
            // Entries at 1.0 s, 1.5 s and 4.0 s; exits at 2.0 s and 2.5 s (5.0 s is empty).
            r#"{"window_start":"1970-01-01T00:00:00.000Z","window_end":"1970-01-01T00:00:01.000Z","k":"a","s":1}"#,
            r#"{"window_start":"1970-01-01T00:00:00.500Z","window_end":"1970-01-01T00:00:01.500Z","k":"a","s":3}"#,
            r#"{"window_start":"1970-01-01T00:00:01.000Z","window_end":"1970-01-01T00:00:02.000Z","k":"a","s":2}"#,
            r#"{"window_start":"1970-01-01T00:00:03.000Z","window_end":"1970-01-01T00:00:04.000Z","k":"a","s":4}"#,
        ]
    );
    assert_eq!(
        rows("SELECT k, COUNT(*) AS n FROM x GROUP BY k, SessionWindow(second, 2)", &events),
        [
            r#"{"window_start":"1970-01-01T00:00:01.000Z","window_end":"1970-01-01T00:00:03.500Z","k":"a","n":2}"#,
            r#"{"window_start":"1970-01-01T00:00:04.000Z","window_end":"1970-01-01T00:00:06.000Z","k":"a","n":1}"#,
        ]
    );
}
