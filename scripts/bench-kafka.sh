#!/usr/bin/env bash
# Kafka benchmarks against a local single-node Kafka 4.4 broker:
#  1. Kafka → plugin (tachycardia) → Kafka throughput, exactly-once on and off;
#  2. checkpoint duration against window state size (1k, 100k, 1M keys);
#  3. recovery after kill -9: start until the first checkpoint after the
#     restore (the first moment new results are visible to read_committed).
#   scripts/bench-kafka.sh [events]      (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-1000000}"
cargo build --release --locked -q -p weir
cargo build --release --locked -q --target wasm32-wasip2 --manifest-path plugins/Cargo.toml -p tachycardia
weir=$PWD/target/release/weir
plugin=$PWD/plugins/target/wasm32-wasip2/release/tachycardia.wasm
work=$PWD/target/bench/kafka
rm -rf "$work" && mkdir -p "$work"
port=29092
scripts/kafka.sh start "$work/broker" $port > "$work/broker.out" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null; true' EXIT
until (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 0.5; done
brokers=127.0.0.1:$port
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $events events"

cat > "$work/fill.toml" <<TOML
[pipeline]
name = "fill"
[[sources]]
name = "gen"
kind = "generator"
generate = "vitals"
keys = 1000
count = $events
seed = 7
[[sinks]]
name = "k"
kind = "kafka"
brokers = "$brokers"
topic = "bench-in"
key_field = "PatientId"
TOML
"$weir" -q run "$work/fill.toml"

pipeline() { # name exactly_once stop_at_end [topic]
    cat > "$work/$1.toml" <<TOML
[pipeline]
name = "$1"
[[sources]]
name = "in"
kind = "kafka"
brokers = "$brokers"
topic = "${4:-bench-in}"
timestamp_field = "EventTime"
key_field = "PatientId"
stop_at_end = $3
[[steps]]
name = "fast"
plugin = "$plugin"
[[sinks]]
name = "out"
kind = "kafka"
brokers = "$brokers"
topic = "bench-out-$1"
[checkpoint]
dir = "$work/ckpt-$1"
exactly_once = $2
TOML
}

echo "== throughput (whole run, consumer-group join included)"
for round in $(seq "${THROUGHPUT_ROUNDS:-2}"); do
    for eos in true false; do
        name=tp-$eos-$round
        pipeline "$name" "$eos" true
        "$weir" run "$work/$name.toml" 2> "$work/$name.log" >/dev/null || { cat "$work/$name.log"; exit 1; }
        echo "exactly_once=$eos round $round: $(grep -E '^weir: pipeline|^  read' "$work/$name.log" | tr -s ' ' | tr '\n' ' ')"
    done
done

echo "== checkpoint duration against window state"
for keys in 1000 100000 1000000; do
    cat > "$work/state-$keys.toml" <<TOML
[pipeline]
name = "state-$keys"
[[sources]]
name = "gen"
kind = "generator"
generate = "vitals"
keys = $keys
count = $((keys * 3 > 1000000 ? keys * 3 : 1000000))
interval = "1ms"
start = "2026-01-01T00:00:00Z"
max_out_of_orderness = "2h"
[[steps]]
name = "w"
query = "SELECT PatientId, COUNT(*) AS n, AVG(HeartRate) AS hr FROM gen GROUP BY PatientId, TumblingWindow(hour, 3)"
[[sinks]]
name = "d"
kind = "discard"
[checkpoint]
dir = "$work/ckpt-state-$keys"
interval = "200ms"
TOML
    RUST_LOG=weir_core::metrics=debug "$weir" -q run "$work/state-$keys.toml" 2> "$work/state-$keys.log"
    python3 - "$keys" "$work/state-$keys.log" <<'PY'
import re, sys
keys, log = sys.argv[1], open(sys.argv[2]).read()
rows = [(int(b), float(m)) for b, m in re.findall(r"checkpoint taken epoch=\d+ bytes=(\d+) ms=([\d.]+)", log)]
if not rows:
    sys.exit(f"{keys} keys: no checkpoint logged")
big = max(rows)
full = [m for b, m in rows if b >= 0.9 * big[0]]
print(f"{int(keys):>9} keys: largest checkpoint {big[0] / 1e6:.2f} MB; {len(full)} checkpoints at >= 90% of it took "
      f"{min(full):.1f}-{max(full):.1f} ms; {len(rows)} checkpoints in all")
PY
done

echo "== recovery after kill -9 (input arriving at 20,000 events/s)"
sed -e 's/name = "fill"/name = "live"/' -e "s/count = $events/rate = 20000/" -e 's/bench-in/bench-live/' \
    "$work/fill.toml" > "$work/live.toml"
"$weir" -q run "$work/live.toml" &
feed=$!
pipeline recover true false bench-live
for i in 1 2 3 4 5; do
    "$weir" run "$work/recover.toml" 2>> "$work/recover.log" >/dev/null &
    pid=$!
    sleep 3
    kill -9 $pid; wait $pid 2>/dev/null || true
    RUST_LOG=info "$weir" run "$work/recover.toml" 2> "$work/recover-$i.log" >/dev/null &
    pid=$!
    for _ in $(seq 100); do grep -q 'recovered' "$work/recover-$i.log" && break; sleep 0.1; done
    kill -TERM $pid; wait $pid 2>/dev/null || true
    echo "kill $i: $(grep -o 'recovered.*' "$work/recover-$i.log" | head -1 | sed 's/\x1b\[[0-9;]*m//g')"
done
kill $feed; wait $feed 2>/dev/null || true
