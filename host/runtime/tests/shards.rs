//! Property tests of the keyed data path: any keys, disorder, window kind,
//! batching and shard count give the rows one shard gives (as sets: shards
//! interleave keys); and a run stopped at any moment with its windows in
//! the checkpoint, restarted on another number of shards, ends with them too.

use proptest::prelude::*;
use std::path::Path;
use std::sync::atomic::Ordering;
use weir_runtime::pipeline::{RunOptions, start};

#[derive(Debug, Clone)]
struct Case {
    keys: u64,
    events: u64,
    /// Largest displacement of an event's time, ms.
    disorder: u64,
    out_of_orderness: u64,
    lateness: u64,
    window: &'static str,
    batch: u64,
    seed: u64,
}

fn cases() -> impl Strategy<Value = Case> {
    let windows = prop::sample::select(vec![
        "TumblingWindow(second, 2)",
        "HoppingWindow(second, 4, 1)",
        "SlidingWindow(second, 1)",
        "SessionWindow(millisecond, 300)",
    ]);
    (1u64..40, 100u64..1500, 0u64..3000, 0u64..1500, 0u64..1000, windows, 1u64..200, any::<u64>()).prop_map(
        |(keys, events, disorder, out_of_orderness, lateness, window, batch, seed)| Case {
            keys,
            events,
            disorder,
            out_of_orderness,
            lateness,
            window,
            batch,
            seed,
        },
    )
}

fn write_input(dir: &Path, c: &Case) {
    let mut rng = c.seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut text = String::new();
    for i in 0..c.events {
        let t = 1_000_000 + i * 10 + next() % (c.disorder + 1);
        text.push_str(&format!("{{\"k\":\"k{}\",\"t\":{t},\"v\":{}}}\n", next() % c.keys, next() % 50));
    }
    std::fs::write(dir.join("in.ndjson"), text).unwrap();
}

/// Runs the case on `shards` shards into `dir/*.ndjson`; `stop_after`
/// stops it (state kept in the checkpoint) after that long.
fn run(dir: &Path, c: &Case, shards: u16, rate: Option<u64>, stop_after: Option<std::time::Duration>) {
    let p = |name: &str| format!("{:?}", dir.join(name).display().to_string());
    let text = format!(
        r#"
[pipeline]
name = "prop"
batch_size = {batch}
parallelism = {shards}

[[sources]]
name = "s"
kind = "file"
path = {input}
timestamp_field = "t"
max_out_of_orderness = "{ooo}ms"
{rate}

[[steps]]
name = "q"
query = "SELECT k, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY k, {window}"
allowed_lateness = "{lateness}ms"

[[sinks]]
name = "out"
kind = "file"
path = {out}

[[sinks]]
name = "late"
kind = "file"
from = "q.late"
path = {late}

[checkpoint]
dir = {ckpt}
interval = "20ms"

[dead_letter]
path = {dead}
"#,
        batch = c.batch,
        input = p("in.ndjson"),
        ooo = c.out_of_orderness,
        rate = rate.map(|r| format!("rate = {r}")).unwrap_or_default(),
        window = c.window,
        lateness = c.lateness,
        out = p("out.ndjson"),
        late = p("late.ndjson"),
        ckpt = p("ckpt"),
        dead = p("dead.ndjson"),
    );
    let spec = weir_config::load_str(&dir.join("p.toml"), &text).unwrap();
    let running = start(spec, RunOptions::default()).unwrap();
    if let Some(after) = stop_after {
        let stop = running.stop_flag();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            stop.store(true, Ordering::Relaxed);
        });
    }
    running.wait().unwrap();
}

/// Every output line, prefixed by its file, sorted.
fn results(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for f in ["out.ndjson", "late.ndjson", "dead.ndjson"] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        lines.extend(text.lines().map(|l| format!("{f}: {l}")));
    }
    lines.sort();
    lines
}

fn fresh(dir: &Path) {
    for f in ["out.ndjson", "late.ndjson", "dead.ndjson"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let _ = std::fs::remove_dir_all(dir.join("ckpt"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_shard_count_gives_the_rows_of_one_shard(c in cases(), shards in 2u16..6) {
        let dir = tempfile::tempdir().unwrap();
        write_input(dir.path(), &c);
        run(dir.path(), &c, 1, None, None);
        let one = results(dir.path());
        prop_assert!(!one.is_empty());
        fresh(dir.path());
        run(dir.path(), &c, shards, None, None);
        prop_assert_eq!(results(dir.path()), one);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn a_run_stopped_anywhere_and_restarted_on_other_shards_gives_the_same_rows(
        c in cases(),
        from in 1u16..4,
        to in 1u16..4,
        stop_ms in 10u64..300,
    ) {
        let dir = tempfile::tempdir().unwrap();
        write_input(dir.path(), &c);
        run(dir.path(), &c, 1, None, None);
        let straight = results(dir.path());
        fresh(dir.path());
        // Paced to last about 0.4 s, stopped somewhere in it (or after it).
        run(dir.path(), &c, from, Some(c.events * 5 / 2), Some(std::time::Duration::from_millis(stop_ms)));
        run(dir.path(), &c, to, None, None);
        prop_assert_eq!(results(dir.path()), straight, "{} → {} shards, stopped after {} ms", from, to, stop_ms);
    }
}
