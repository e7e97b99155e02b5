#!/usr/bin/env bash
# What a checkpoint costs when ~1 % of the state changes between two:
# `keys` patients (default 1,000,000) are posted into 3-hour tumbling
# windows (one event each, as fast as the HTTP source takes them), then
# for 30 s the first 10,000 of them keep changing (10,000 events/s, random
# among them: ~0.6 % of the keys a second). A checkpoint every second. Over
# the checkpoints after the load: the stall (weir_checkpoint_stall_seconds,
# from the debug line "checkpoint stall") and the bytes written. Incremental
# (the default) on 1 and 2 shards, and `incremental = false` (every
# checkpoint whole) on 1 shard.
#   scripts/bench-checkpoint-incremental.sh [keys]
set -euo pipefail
cd "$(dirname "$0")/.."
keys="${1:-1000000}"
cargo build --release --locked -q -p weir
weir=target/release/weir
b=target/bench/incremental
mkdir -p "$b"
port=19471
echo "keys: $keys; $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for run in "incremental 1" "incremental 2" "whole 1"; do
    set -- $run
    mode=$1 shards=$2
    incremental=$([ "$mode" = incremental ] && echo true || echo false)
    cat > "$b/$mode-$shards.toml" <<TOML
[pipeline]
name = "incremental"
parallelism = $shards

[server]
listen = "127.0.0.1:$port"

[[sources]]
name = "vitals"
kind = "http"
timestamp_field = "EventTime"
max_out_of_orderness = "2h"
queue = 200000
queue_bytes = "256MiB"
max_body = "16MiB"

[[steps]]
name = "w"
query = "SELECT PatientId, COUNT(*) AS n, AVG(HeartRate) AS hr FROM vitals GROUP BY PatientId, TumblingWindow(hour, 3)"

[[sinks]]
name = "out"
kind = "discard"

[checkpoint]
dir = "$b/ckpt-$mode-$shards"
interval = "1s"
incremental = $incremental
TOML
    rm -rf "$b/ckpt-$mode-$shards"
    RUST_LOG=weir_runtime=debug,weir_core::metrics=debug "$weir" -q run "$b/$mode-$shards.toml" 2> "$b/log-$mode-$shards.txt" > /dev/null &
    pid=$!
    python3 - "$port" "$keys" <<'PY'
import json, random, sys, time, urllib.error, urllib.request
port, keys = int(sys.argv[1]), int(sys.argv[2])
url = f"http://127.0.0.1:{port}/api/v1/ingest/vitals"
start = 1767225600000  # 2026-01-01T00:00:00Z
def post(lines):
    body = ("\n".join(lines) + "\n").encode()
    while True:
        try:
            urllib.request.urlopen(urllib.request.Request(url, body, {"Content-Type": "application/x-ndjson"}), timeout=30).read()
            return
        except urllib.error.HTTPError as e:
            if e.code != 429:
                raise
            time.sleep(0.01)
        except (ConnectionError, urllib.error.URLError):
            time.sleep(0.1)
def event(key, t):
    return f'{{"PatientId":"P{key:07d}","EventTime":{t},"HeartRate":{60 + key % 40}}}'
# Load: every key once.
for lo in range(0, keys, 50000):
    post([event(k, start + k // 1000) for k in range(lo, min(keys, lo + 50000))])
# Trickle: 1,000 events every 100 ms among the first 10,000 keys, for 30 s.
rng, t = random.Random(1), start + keys // 1000 + 1
begun = time.monotonic()
for tick in range(300):
    post([event(rng.randrange(min(keys, 10000)), t + tick) for _ in range(1000)])
    time.sleep(max(0.0, begun + (tick + 1) * 0.1 - time.monotonic()))
PY
    kill -TERM "$pid"; wait "$pid" || true
    python3 - "$b/log-$mode-$shards.txt" "$mode" "$shards" <<'PY'
import re, sys
log = re.sub(r"\x1b\[[0-9;]*m", "", open(sys.argv[1]).read())
stalls = [(float(m), float(s)) for m, s in re.findall(r"checkpoint stall ms=([\d.]+) snapshot_ms=([\d.]+)", log)]
taken = [(int(b), float(m)) for b, m in re.findall(r"checkpoint taken epoch=\d+ bytes=(\d+) ms=([\d.]+)", log)]
folds = [float(m) for m in re.findall(r"checkpoint chain folded into a whole checkpoint epoch=\d+ bytes=\d+ ms=([\d.]+)", log)]
folded = [int(b) for b in re.findall(r"checkpoint chain folded into a whole checkpoint epoch=\d+ bytes=(\d+)", log)]
if not stalls or not taken:
    sys.exit(f"no checkpoint logged in {sys.argv[1]}")
# The whole state: the largest checkpoint taken or folded (when the load
# outran the first checkpoints, no checkpoint taken holds all of it).
whole = max([b for b, _ in taken] + folded)
# After the load: the checkpoints after the first whole-sized one that
# wrote at most 2 % of it (the one that took the load's tail is larger),
# leaving out the last (the stop); with `incremental = false`, those after
# the first whole-sized one.
big = [i for i, (b, _) in enumerate(taken) if b >= 0.02 * whole]
after = range(big[0] + 1, min(len(taken), len(stalls)) - 1)
small = lambda i: sys.argv[2] == "whole" or taken[i][0] <= 0.02 * whole
steady = [i for i in after if small(i)]
if not steady:
    sys.exit("no checkpoint after the load")
ms = sorted(stalls[i][0] for i in steady)
byt = sorted(taken[i][0] for i in steady)
q = lambda v, p: v[min(len(v) - 1, int(p * len(v)))]
print(f"{sys.argv[2]}, {sys.argv[3]} shard(s): {len(steady)} of {len(after)} checkpoints after the load; whole state {whole / 1e6:.1f} MB; "
      f"written per checkpoint p50 {q(byt, .5) / 1e3:.0f} kB ({100 * q(byt, .5) / whole:.2f} % of whole); "
      f"stall p50 {q(ms, .5):.1f} ms, p99 {q(ms, .99):.1f} ms, max {ms[-1]:.1f} ms"
      + (f"; {len(folds)} chains folded in the background, p50 {q(sorted(folds), .5):.0f} ms" if folds else ""))
PY
    if [ "$mode $shards" = "incremental 1" ]; then
        # Recovery: a new process on the same folder, until it is ready
        # (chain read and folded, state restored, sources open).
        started=$(date +%s.%N)
        "$weir" -q run "$b/$mode-$shards.toml" 2> "$b/log-restart.txt" > /dev/null &
        pid=$!
        until curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; do sleep 0.02; done
        echo "recovery with $keys keys (chain of $(ls "$b/ckpt-$mode-$shards" | grep -c delta) deltas on a whole file): ready after $(python3 -c "import time; print(f'{time.time() - $started:.2f}')") s"
        kill -TERM "$pid"; wait "$pid" || true
    fi
done
