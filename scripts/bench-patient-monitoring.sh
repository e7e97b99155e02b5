#!/usr/bin/env bash
# The patient-monitoring benchmark: the query of examples/patient-monitoring
# over 1,000,000 NDJSON events (1,000 patients, one event per millisecond,
# ±500 ms out of order), whole process, start-up included. Prints events/s
# and peak RSS of each of `runs` runs (default 5), on one shard and on two
# (`parallelism = 2`), and of the hand-written two-thread loop it is
# compared with (`weir-bench seed-loop`), alternating, in the same minutes.
#   scripts/bench-patient-monitoring.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
cargo build --release --locked -q -p weir -p weir-bench
weir=target/release/weir
sed 's/^name = "bench-patient-monitoring"/name = "bench-patient-monitoring"\nparallelism = 2/' \
    examples/patient-monitoring/bench/query.toml > target/bench/query-2.toml
mkdir -p target/bench
if [ ! -s target/bench/vitals-1m.ndjson ]; then
    rm -f target/bench/vitals-1m.ndjson
    "$weir" -q run examples/patient-monitoring/bench/generate.toml
fi
events=$(wc -l < target/bench/vitals-1m.ndjson)
echo "input: $events events, $(du -m target/bench/vitals-1m.ndjson | cut -f1) MB; $(nproc) cores"
for i in $(seq "$runs"); do
    for shards in 1 2; do
        rm -f target/bench/patient-*.ndjson
        query=examples/patient-monitoring/bench/query.toml
        [ "$shards" = 2 ] && query=target/bench/query-2.toml
        /usr/bin/time -f "%e %M" -o target/bench/time.txt "$weir" -q run "$query"
        read -r secs rss_kb < target/bench/time.txt
        python3 -c "import sys; e, s, r = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]); print(f'run $i, $shards shard(s): {s:.3f} s, {e / s / 1e6:.2f} M events/s, peak RSS {r / 1024:.0f} MB')" \
            "$events" "$secs" "$rss_kb"
    done
    /usr/bin/time -f "%e %M" -o target/bench/time.txt target/release/weir-bench seed-loop target/bench/vitals-1m.ndjson
    read -r secs rss_kb < target/bench/time.txt
    echo "  (whole process ${secs} s, peak RSS $((rss_kb / 1024)) MB)"
done
echo "results: $(wc -l < target/bench/patient-alerts.ndjson) rows, late: $(wc -l < target/bench/patient-late.ndjson), dead letters: $(cat target/bench/patient-dead-letter.ndjson 2>/dev/null | wc -l)"
