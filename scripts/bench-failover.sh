#!/usr/bin/env bash
# Failover in a consumer group: three `weir` processes (Kafka → a stateless
# query → Kafka, exactly-once) share a 4-partition topic
# fed at 2,000 events/s; one is killed with SIGKILL. A fourth process reads
# the output read_committed and prints each event as it arrives; for every
# event the time from its event time (≈ when it was produced) to its arrival
# is its delay. Reported: the delay before the kill (p50 / p99), and the
# longest delay of an event produced around the kill (from 2 s before to
# 20 s after it): how long committed output stopped for the killed
# process's partitions. Round 1 with the default session timeout (45 s),
# round 2 with `session.timeout.ms` = 10 s.
#   scripts/bench-failover.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p weir
weir=$PWD/target/release/weir
work=$PWD/target/bench/failover
rm -rf "$work" && mkdir -p "$work"
port=29094
scripts/kafka.sh start "$work/broker" $port > "$work/broker.out" 2>&1 &
broker=$!
pids=()
trap 'kill -9 "${pids[@]}" 2>/dev/null || true; kill $broker 2>/dev/null; wait $broker 2>/dev/null; true' EXIT
until (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 0.5; done
brokers=127.0.0.1:$port
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

for round in 1 2; do
    r=$work/round-$round
    if [ $round = 1 ]; then session=""; after=75; else
        session='properties = { "session.timeout.ms" = "10000", "heartbeat.interval.ms" = "1000" }'; after=40; fi
    mkdir -p "$r"
    cat > "$r/feed.toml" <<TOML
[pipeline]
name = "feed-$round"
[[sources]]
name = "gen"
kind = "generator"
generate = "vitals"
keys = 1000
rate = 2000
seed = $round
[[sinks]]
name = "k"
kind = "kafka"
brokers = "$brokers"
topic = "fo-in-$round"
key_field = "PatientId"
TOML
    for i in a b c; do
        cat > "$r/$i.toml" <<TOML
[pipeline]
name = "fo-$round"
[[sources]]
name = "vitals"
kind = "kafka"
brokers = "$brokers"
topic = "fo-in-$round"
timestamp_field = "EventTime"
$session
[[steps]]
name = "pass"
query = "SELECT PatientId, EventTime, HeartRate FROM vitals"
[[sinks]]
name = "out"
kind = "kafka"
brokers = "$brokers"
topic = "fo-out-$round"
[checkpoint]
dir = "$r/ckpt-$i"
TOML
    done
    cat > "$r/reader.toml" <<TOML
[pipeline]
name = "reader-$round"
[[sources]]
name = "out"
kind = "kafka"
brokers = "$brokers"
topic = "fo-out-$round"
[[sinks]]
name = "print"
kind = "stdout"
[checkpoint]
dir = "$r/ckpt-reader"
exactly_once = false
TOML
    "$weir" -q run "$r/feed.toml" 2> "$r/feed.log" &
    pids+=($!)
    for i in a b c; do
        RUST_LOG=info "$weir" run "$r/$i.toml" --instance "$i" 2> "$r/$i.log" > /dev/null &
        pids+=($!)
        eval "pid_$i=\$!"
    done
    "$weir" -q run "$r/reader.toml" 2> "$r/reader.log" \
        | python3 -u -c '
import sys, time
for line in sys.stdin:
    print(f"{time.time():.3f} {line}", end="", flush=True)' > "$r/arrivals.txt" &
    pids+=($!)
    sleep 25
    killed_at=$(python3 -c 'import time; print(f"{time.time():.3f}")')
    kill -9 "$pid_a"
    sleep $after
    kill -9 "${pids[@]}" 2>/dev/null || true
    pids=()
    python3 - "$r/arrivals.txt" "$killed_at" "$r" <<'PY'
import datetime, json, sys
path, killed = sys.argv[1], float(sys.argv[2])
before, around = [], []
for line in open(path):
    at, _, body = line.partition(" ")
    try:
        t = datetime.datetime.fromisoformat(json.loads(body)["EventTime"].replace("Z", "+00:00")).timestamp()
    except (ValueError, KeyError):
        continue
    delay = float(at) - t
    if t < killed - 5:
        before.append(delay)
    elif killed - 2 <= t <= killed + 20:
        around.append(delay)
if not before or not around:
    sys.exit(f"no output around the kill in {path}")
before.sort()
q = lambda v, p: v[min(len(v) - 1, int(p * len(v)))]
fenced = "fenced" if any("fenced the previous owner" in open(f"{sys.argv[3]}/{i}.log").read() for i in "bc") else "nobody fenced"
print(f"round {sys.argv[3][-1]}: before the kill: delay p50 {q(before, .5):.2f} s, p99 {q(before, .99):.2f} s ({len(before)} events); "
      f"around it: longest delay {max(around):.1f} s ({len(around)} events; {fenced})")
PY
done
