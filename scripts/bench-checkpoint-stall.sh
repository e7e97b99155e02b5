#!/usr/bin/env bash
# How long outputs stop for a checkpoint (weir_checkpoint_stall_seconds)
# against window state: a generator, `keys` patients in 3-hour tumbling
# windows (all open: 10 events a key, one a millisecond, stay within the
# first window), a checkpoint every second, on 1 and 2 shards. Each
# checkpoint's stall is read from the debug log line "checkpoint stall";
# p50 / p99 / max over the checkpoints taken once every key is in a window
# (files at >= 90 % of the largest).
#   scripts/bench-checkpoint-stall.sh [keys]      (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
keys="${1:-1000000}"
cargo build --release --locked -q -p weir
weir=target/release/weir
b=target/bench/stall
mkdir -p "$b"
echo "keys: $keys; $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for shards in 1 2; do
    cat > "$b/stall-$shards.toml" <<TOML
[pipeline]
name = "stall"
parallelism = $shards

[[sources]]
name = "gen"
kind = "generator"
generate = "vitals"
keys = $keys
count = $((keys * 10))
interval = "1ms"
start = "2026-01-01T00:00:00Z"
max_out_of_orderness = "2h"

[[steps]]
name = "w"
query = "SELECT PatientId, COUNT(*) AS n, AVG(HeartRate) AS hr FROM gen GROUP BY PatientId, TumblingWindow(hour, 3)"

[[sinks]]
name = "out"
kind = "discard"

[checkpoint]
dir = "$b/ckpt-$shards"
interval = "1s"
TOML
    rm -rf "$b/ckpt-$shards"
    RUST_LOG=weir_runtime::pipeline=debug,weir_core::metrics=debug "$weir" -q run "$b/stall-$shards.toml" 2> "$b/log-$shards.txt" > /dev/null
    python3 - "$b/log-$shards.txt" "$shards" <<'PY'
import re, sys
log = re.sub(r"\x1b\[[0-9;]*m", "", open(sys.argv[1]).read())
stalls = [(float(m), float(s)) for m, s in re.findall(r"checkpoint stall ms=([\d.]+) snapshot_ms=([\d.]+)", log)]
taken = [(int(b), float(m)) for b, m in re.findall(r"checkpoint taken epoch=\d+ bytes=(\d+) ms=([\d.]+)", log)]
if not stalls or not taken:
    sys.exit(f"no checkpoint logged in {sys.argv[1]}")
big = max(b for b, _ in taken)
# The checkpoints once every key is in a window: at >= 90 % of the largest.
full = [i for i, (b, _) in enumerate(taken) if b >= 0.9 * big]
ms = sorted(stalls[i][0] for i in full if i < len(stalls))
snap = sorted(stalls[i][1] for i in full if i < len(stalls))
write = sorted(taken[i][1] for i in full)
q = lambda v, p: v[min(len(v) - 1, int(p * len(v)))]
print(f"{sys.argv[2]} shard(s): {len(ms)} checkpoints of {big / 1e6:.1f} MB; stall p50 {q(ms, .5):.1f} ms, "
      f"p99 {q(ms, .99):.1f} ms, max {ms[-1]:.1f} ms, of which the longest shard snapshot p50 {q(snap, .5):.1f} ms; "
      f"written in the background (flush, build, seal, write, fsync) p50 {q(write, .5):.0f} ms")
PY
done
