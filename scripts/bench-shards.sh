#!/usr/bin/env bash
# Scaling with shards: the same keyed pipeline on 1, 2, 4 and 8 shards,
# whole process (start-up included), events/s and peak RSS of each run.
#   - file → the Python vitals analytic of `weir plugin new --lang python`
#     → file: 200,000 events of 1,000 patients, keyed by patient;
#   - the fraud-detection example (generator → Rust fraud scorer with its
#     ONNX model → file): 200,000 transactions of 5,000 cards.
#   scripts/bench-shards.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
cargo build --release --locked -q -p weir
weir=$PWD/target/release/weir
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/.cache/onnxruntime/libonnxruntime.so.1.31.1}
work=target/bench-shards
mkdir -p "$work"
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

wasm=$work/vitals-python/target/weir/vitals-python.wasm
if [ ! -s "$wasm" ]; then
    rm -rf "$work/vitals-python"
    "$weir" -q plugin new --lang python --dir "$work/vitals-python" vitals-python
    "$weir" -q plugin build "$work/vitals-python" >/dev/null
fi
if [ ! -s "$work/vitals-200k.ndjson" ]; then
    python3 - "$work/vitals-200k.ndjson" <<'PY'
import json, random, sys
r = random.Random(7)
with open(sys.argv[1], "w") as f:
    for i in range(200_000):
        f.write(json.dumps({"patient": f"p{r.randrange(1000)}", "t": 1_767_225_600_000 + i * 10,
                            "hr": r.randrange(35, 150), "rr": r.randrange(6, 30), "spo2": r.randrange(85, 100),
                            "temp": round(r.uniform(34.5, 40.0), 1)}) + "\n")
PY
fi

# $1: label, $2: pipeline file, $3: events
measure() {
    local label=$1 pipeline=$2 events=$3
    for i in $(seq "$runs"); do
        rm -rf "$work/out"
        /usr/bin/time -f "%e %M" -o "$work/time.txt" "$weir" -q run "$pipeline"
        read -r secs rss_kb < "$work/time.txt"
        python3 -c "import sys; e, s, r = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]); print(f'{sys.argv[4]:<28} run $i: {s:6.2f} s {e / s / 1e3:8.1f} k events/s  peak RSS {r / 1024:4.0f} MB')" \
            "$events" "$secs" "$rss_kb" "$label"
    done
}

# A first run compiles the component into the cache; it is not measured.
first=1
for shards in 1 2 4 8; do
    cat > "$work/python-$shards.toml" <<TOML
[pipeline]
name = "vitals-python"
parallelism = $shards

[[sources]]
name = "vitals"
kind = "file"
path = "$work/vitals-200k.ndjson"
timestamp_field = "t"
key_field = "patient"

[[steps]]
name = "score"
plugin = "$wasm"

[[sinks]]
name = "alerts"
kind = "file"
from = "score.alerts"
path = "$work/out/alerts.ndjson"

[[sinks]]
name = "scored"
kind = "discard"

[dead_letter]
path = "$work/out/dead-letter.ndjson"
TOML
    if [ "$first" = 1 ]; then "$weir" -q run "$work/python-$shards.toml"; first=0; fi
    measure "python vitals, $shards shard(s)" "$work/python-$shards.toml" 200000
done

for shards in 1 2 4 8; do
    sed "s/^name = \"fraud-detection\"/name = \"fraud-detection\"\nparallelism = $shards/; s#out/fraud-detection#$work/out#" \
        examples/fraud-detection/pipeline.toml > "$work/fraud-$shards.toml"
    measure "fraud scorer, $shards shard(s)" "$work/fraud-$shards.toml" 200000
done
