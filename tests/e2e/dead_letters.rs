//! Nothing is lost: refused events land in the dead-letter file with their
//! reason and line; every other event reaches the output.

use crate::harness::*;
use serde_json::Value;

#[test]
fn rejected_events_are_dead_lettered_and_the_rest_pass() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    write_lines(&input, (0..100).map(|i| format!(r#"{{"seq":{i},"v":"x{i}"}}"#)));
    let pipeline = one_step_pipeline(dir.path(), &input, &plugin("reject_odd"), "");
    assert_ok(&run(&pipeline));

    let out = ndjson(&dir.path().join("out.ndjson"));
    let seqs: Vec<u64> = out.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..100).filter(|i| i % 2 == 0).collect::<Vec<_>>());

    let dead = ndjson(&dir.path().join("dead.ndjson"));
    assert_eq!(dead.len(), 50);
    for (k, d) in dead.iter().enumerate() {
        let seq = 2 * k as u64 + 1;
        assert_eq!(d["reason"], "rejected");
        assert_eq!(d["detail"], format!("seq {seq} is odd"));
        assert_eq!(d["step"], "step");
        assert_eq!(d["source"], "input");
        assert_eq!(d["line"], seq + 1);
        assert_eq!(d["original"], format!(r#"{{"seq":{seq},"v":"x{seq}"}}"#));
    }
}

#[test]
fn malformed_lines_are_dead_lettered_with_their_line_numbers() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    let bad = [3usize, 7, 8, 15];
    let lines: Vec<String> = (1..=20)
        .map(|line| match line {
            3 => r#"{"seq": 3"#.to_string(),
            7 => "not json at all".to_string(),
            8 => "[1, 2, 3]".to_string(),
            10 => String::new(),
            15 => r#"{"seq": 15} {"seq": 15}"#.to_string(),
            n => format!(r#"{{"seq":{n}}}"#),
        })
        .collect();
    write_lines(&input, lines);
    let pipeline = one_step_pipeline(dir.path(), &input, &plugin("identity"), "");
    assert_ok(&run(&pipeline));

    let out = ndjson(&dir.path().join("out.ndjson"));
    let seqs: Vec<usize> = out.iter().map(|e| e["seq"].as_u64().unwrap() as usize).collect();
    let good: Vec<usize> = (1..=20).filter(|l| !bad.contains(l) && *l != 10).collect();
    assert_eq!(seqs, good, "every good line is processed, in order; the blank line is skipped");

    let dead = ndjson(&dir.path().join("dead.ndjson"));
    let lines: Vec<u64> = dead.iter().map(|d| d["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![3, 7, 8, 15]);
    assert!(dead.iter().all(|d| d["reason"] == "invalid-json" && d.get("step").is_none()));
    assert_eq!(dead[1]["original"], "not json at all");
    assert!(dead[0]["detail"].as_str().unwrap().starts_with("malformed JSON: EOF while parsing an object"));
}

#[test]
fn events_without_the_timestamp_or_key_field_are_refused_by_name() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    write_lines(
        &input,
        [
            r#"{"id":"a","t":1000}"#.to_string(),
            r#"{"t":1001}"#.to_string(),
            r#"{"id":"c","t":"soon"}"#.to_string(),
            r#"{"id":"d"}"#.to_string(),
        ],
    );
    let pipeline = one_step_pipeline(dir.path(), &input, &plugin("identity"), "");
    let text = std::fs::read_to_string(&pipeline)
        .unwrap()
        .replace("name = \"input\"\n", "name = \"input\"\ntimestamp_field = \"t\"\nkey_field = \"id\"\n");
    std::fs::write(&pipeline, text).unwrap();
    assert_ok(&run(&pipeline));
    assert_eq!(ndjson(&dir.path().join("out.ndjson")).len(), 1);
    let details: Vec<Value> =
        ndjson(&dir.path().join("dead.ndjson")).into_iter().map(|d| d["detail"].clone()).collect();
    assert_eq!(details.len(), 3);
    assert_eq!(details[0], "missing field `id`");
    assert!(details[1].as_str().unwrap().starts_with("field `t`: not an RFC 3339 time ("), "{}", details[1]);
    assert_eq!(details[2], "missing field `t`");
}

#[test]
fn the_readme_plugin_filters_and_refuses_as_documented() {
    let dir = scratch();
    let input = dir.path().join("in.ndjson");
    write_lines(
        &input,
        [
            r#"{"PatientId":"a","HeartRate":120}"#.to_string(),
            r#"{"PatientId":"b","HeartRate":80}"#.to_string(),
            r#"{"PatientId":"c"}"#.to_string(),
            r#"{"PatientId":"d","HeartRate":111.5}"#.to_string(),
        ],
    );
    let pipeline = one_step_pipeline(dir.path(), &input, &plugin("tachycardia"), r#"config = "110""#);
    assert_ok(&run(&pipeline));
    let ids: Vec<Value> = ndjson(&dir.path().join("out.ndjson")).into_iter().map(|e| e["PatientId"].clone()).collect();
    assert_eq!(ids, vec!["a", "d"]);
    let dead = ndjson(&dir.path().join("dead.ndjson"));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["detail"], "missing field `HeartRate`");
    assert_eq!(dead[0]["line"], 3);
}
