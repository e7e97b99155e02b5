//! Golden tests of the SQL front end: queries to plans, bad queries to the
//! exact error text.

use super::parse;

fn plan(sql: &str) -> String {
    parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}")).to_string()
}

fn error(sql: &str) -> String {
    parse(sql).map(|p| format!("unexpectedly parsed:\n{p}")).unwrap_or_else(|e| e.to_string())
}

#[test]
fn queries_become_these_plans() {
    let cases: &[(&str, &str)] = &[
        (
            "SELECT PatientId, AVG(HeartRate) AS AvgHeartRate, MAX(Temperature) AS MaxTemperature FROM PatientTelemetry GROUP BY PatientId, TumblingWindow(minute, 5) HAVING AVG(HeartRate) > 100",
            "from: PatientTelemetry
event time: as ingested
fields: field0=PatientId, field1=HeartRate, field2=Temperature
window: tumbling 5m
group by: key0=field0
aggregates: agg0=AVG(field1), agg1=MAX(field2)
having: (agg0 > 100)
select: PatientId=key0, AvgHeartRate=agg0, MaxTemperature=agg1
",
        ),
        (
            "SELECT card, COUNT(*) AS n, SUM(amount), PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY amount) AS p90, STDEV(amount) AS sd FROM tx TIMESTAMP BY ts WHERE amount > 0 AND merchant <> 'atm' GROUP BY card, HoppingWindow(second, 60, 10)",
            "from: tx
event time: field `ts`
fields: field0=amount, field1=merchant, field2=card
where: ((field0 > 0) AND (field1 <> 'atm'))
window: hopping 1m every 10s
group by: key0=field2
aggregates: agg0=COUNT(*), agg1=SUM(field0), agg2=PERCENTILE_CONT(field0, 0.9), agg3=STDEV(field0)
select: card=key0, n=agg0, SUM(amount)=agg1, p90=agg2, sd=agg3
",
        ),
        (
            "SELECT a, VAR(x) AS v FROM s GROUP BY a, SlidingWindow(second, 30) HAVING COUNT(*) >= 3 AND a IS NOT NULL",
            "from: s
event time: as ingested
fields: field0=a, field1=x
window: sliding 30s
group by: key0=field0
aggregates: agg0=VAR(field1), agg1=COUNT(*)
having: ((agg1 >= 3) AND (key0 IS NOT NULL))
select: a=key0, v=agg0
",
        ),
        (
            "SELECT UserId, COUNT(*) AS clicks FROM clicks GROUP BY UserId, SessionWindow(minute, 5, 60)",
            "from: clicks
event time: as ingested
fields: field0=UserId
window: session timeout 5m max 1h
group by: key0=field0
aggregates: agg0=COUNT(*)
select: UserId=key0, clicks=agg0
",
        ),
        (
            "SELECT COUNT(*) AS n FROM s GROUP BY TumblingWindow(hour, 1)",
            "from: s
event time: as ingested
fields: 
window: tumbling 1h
group by: (none)
aggregates: agg0=COUNT(*)
select: n=agg0
",
        ),
        (
            "SELECT * FROM s WHERE HeartRate > 120 OR SpO2 < 90",
            "from: s
event time: as ingested
fields: field0=HeartRate, field1=SpO2
where: ((field0 > 120) OR (field1 < 90))
select: *
",
        ),
        (
            "SELECT PatientId AS id, HeartRate * 2 AS double FROM s",
            "from: s
event time: as ingested
fields: field0=PatientId, field1=HeartRate
select: id=field0, double=(field1 * 2)
",
        ),
    ];
    for (sql, expected) in cases {
        assert_eq!(plan(sql), *expected, "{sql}");
    }
}

#[test]
fn bad_queries_get_these_errors() {
    let cases: &[(&str, &str)] = &[
        ("SELECT", "the query needs FROM (a source or an earlier step)"),
        ("SELECT a FROM s ORDER BY a", "ORDER BY is not supported in a stream: `ORDER BY a`"),
        ("SELECT a FROM s LIMIT 5", "LIMIT is not supported in a stream: `LIMIT 5`"),
        (
            "SELECT a, COUNT(*) FROM s GROUP BY a",
            "GROUP BY needs a window: add TumblingWindow, HoppingWindow, SlidingWindow or SessionWindow to `GROUP BY a`",
        ),
        ("SELECT COUNT(*) FROM s", "aggregates need GROUP BY with a window, e.g. `GROUP BY TumblingWindow(minute, 5)`"),
        (
            "SELECT a, b, COUNT(*) AS n FROM s GROUP BY a, TumblingWindow(minute, 5)",
            "`b` must be in GROUP BY or inside an aggregate",
        ),
        ("SELECT x.a FROM s JOIN t ON s.a = t.a", "JOIN is not supported: `JOIN t ON s.a = t.a`"),
        ("SELECT a FROM s, t", "FROM takes one input, not `s, t`"),
        ("SELECT DISTINCT a FROM s", "DISTINCT is not supported in a stream"),
        (
            "SELECT MEDIAN(a) AS m FROM s GROUP BY TumblingWindow(minute, 1)",
            "unknown function `MEDIAN` in `MEDIAN(a)` (aggregates: COUNT, SUM, AVG, MIN, MAX, STDEV, STDEVP, VAR, VARP, PERCENTILE_CONT, PERCENTILE_DISC)",
        ),
        (
            "SELECT SUM(a + b) AS m FROM s GROUP BY TumblingWindow(minute, 1)",
            "aggregate arguments must be a field, not `a + b`: `SUM(a + b)`; expected SUM(field)",
        ),
        (
            "SELECT COUNT(*) AS n FROM s GROUP BY TumblingWindow(week, 1)",
            "unknown time unit `week` (day, hour, minute, second, millisecond) in `TumblingWindow(week, 1)`; expected TumblingWindow(unit, size)",
        ),
        (
            "SELECT COUNT(*) AS n FROM s GROUP BY TumblingWindow(day, 8)",
            "windows are at most 7 days long in `TumblingWindow(day, 8)`; expected TumblingWindow(unit, size)",
        ),
        (
            "SELECT COUNT(*) AS n FROM s GROUP BY HoppingWindow(minute, 1, 5)",
            "the hop must not be longer than the window in `HoppingWindow(minute, 1, 5)`; expected HoppingWindow(unit, size, hop)",
        ),
        (
            "SELECT COUNT(*) AS n FROM s GROUP BY TumblingWindow(minute, 1), SlidingWindow(minute, 1)",
            "GROUP BY takes one window; found a second one: `SlidingWindow(minute, 1)`",
        ),
        (
            "SELECT COUNT(*) AS window_start FROM s GROUP BY TumblingWindow(minute, 1)",
            "`window_start` is added to every windowed result; choose another name for `COUNT(*) AS window_start`",
        ),
        ("SELECT a FROM (SELECT a FROM s)", "FROM must name a source or a step, not `(SELECT a FROM s)`"),
        (
            "SELECT a FROM s UNION SELECT a FROM t",
            "only a plain SELECT is supported, not `SELECT a FROM s UNION SELECT a FROM t`",
        ),
        ("DELETE FROM s", "only SELECT queries run in a step, not `DELETE FROM s`"),
        ("SELECT a FROM s; SELECT b FROM s", "a step runs one query; found several statements"),
        (
            "SELECT COUNT(*) AS n FROM s GROUP BY TumblingWindow(minute, 1) HAVING COUNT(*) > 1 ORDER BY n",
            "ORDER BY is not supported in a stream: `ORDER BY n`",
        ),
        ("SELECT a FROM s WHERE a LIKE 'x%'", "unsupported expression: `a LIKE 'x%'`"),
        ("SELECT a, a FROM s", "the output name `a` is used twice; add AS to tell them apart"),
        ("SELECT a FROM s TIMESTAMP BY", "TIMESTAMP BY needs a field name"),
        (
            "SELECT PERCENTILE_CONT(2) WITHIN GROUP (ORDER BY a) AS p FROM s GROUP BY TumblingWindow(minute, 1)",
            "the fraction must be a number from 0 to 1: `PERCENTILE_CONT(2) WITHIN GROUP (ORDER BY a)`; expected PERCENTILE_CONT(fraction) WITHIN GROUP (ORDER BY field)",
        ),
        ("SELECT a FROM s HAVING a > 1", "HAVING needs GROUP BY with a window: `HAVING a > 1`"),
    ];
    for (sql, expected) in cases {
        assert_eq!(error(sql), *expected, "{sql}");
    }
}

#[test]
fn the_patient_query_runs_verbatim_with_its_line_breaks() {
    let sql = "SELECT PatientId, AVG(HeartRate) AS AvgHeartRate, MAX(Temperature) AS MaxTemperature\nFROM PatientTelemetry\nGROUP BY PatientId, TumblingWindow(minute, 5)\nHAVING AVG(HeartRate) > 100\n";
    assert!(plan(sql).contains("window: tumbling 5m"));
    let with_time = "SELECT COUNT(*) AS n FROM s TIMESTAMP BY EventTime GROUP BY TumblingWindow(second, 10)";
    assert!(plan(with_time).contains("event time: field `EventTime`"));
}

/// SQL fragments the fuzzer below strings together.
const TOKENS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "HAVING",
    "TIMESTAMP BY",
    "AS",
    "AND",
    "OR",
    "NOT",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "COUNT(*)",
    "AVG(",
    "SUM(",
    "MIN(",
    "MAX(",
    "PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY",
    "(",
    ")",
    ",",
    "*",
    "+",
    "-",
    "/",
    "%",
    "=",
    "<>",
    "<",
    ">=",
    "'x'",
    "''",
    "1",
    "0",
    "-1",
    "9223372036854775807",
    "1e309",
    "a",
    "b",
    "s",
    "t",
    "TumblingWindow(second, 5)",
    "HoppingWindow(minute, 10, 3)",
    "SlidingWindow(hour, 1)",
    "SessionWindow(second, 2, 6)",
    "TumblingWindow(day, 9999999999)",
    "TumblingWindow(second, 0)",
    "TumblingWindow(",
    "IS NULL",
    "IN (1, 2)",
    "LIKE 'a%'",
    "CAST(a AS float)",
    ";",
    "--",
    "/*",
    "\"q\"",
    "[b]",
];

proptest::proptest! {
    /// Fuzzing the SQL front end (issue 19): any string of SQL pieces (and
    /// any text) is planned or refused with a message — never a panic.
    #[test]
    fn any_query_text_is_planned_or_refused_with_a_message(
        pieces in proptest::collection::vec(proptest::sample::select(TOKENS), 0..30),
        text in "\\PC{0,60}",
    ) {
        for sql in [pieces.join(" "), format!("SELECT {text} FROM s"), text.clone()] {
            if let Err(e) = parse(&sql) {
                proptest::prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}
