#!/usr/bin/env bash
# Encryption at rest, off against on, in the same minutes: events/s of
#  - copy: 5,000,000 vitals events (700 MB) file → file (every event
#    written to the encrypted sink, with checkpoints every second: the
#    worst case), and
#  - seed: the patient-monitoring query (examples/patient-monitoring/bench)
#    over the same events with checkpoints every second (window state of
#    1,000 patients sealed, each result row sealed).
# Whole process, start-up included; `runs` rounds (default 5), alternating;
# the median of each is printed last.
#   scripts/bench-encryption.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
cargo build --release --locked -q -p weir
weir=target/release/weir
b=target/bench/encryption
mkdir -p "$b"
input=target/bench/vitals-5m.ndjson
if [ ! -s "$input" ]; then
    sed -e 's/^count = 1000000/count = 5000000/' -e "s|target/bench/vitals-1m.ndjson|$input|" \
        examples/patient-monitoring/bench/generate.toml > "$b/generate.toml"
    "$weir" -q run "$b/generate.toml"
fi
events=$(wc -l < "$input")
( umask 077; printf 'bench %s\n' "$(openssl rand -hex 32)" > "$b/keys" )
encryption="[encryption]
keys_file = \"$b/keys\""
for kind in copy seed; do
    for mode in off on; do
        extra=""
        [ "$mode" = on ] && extra="$encryption"
        if [ "$kind" = copy ]; then
            step=""
        else
            step='[[steps]]
name = "monitor"
query = "SELECT PatientId, AVG(HeartRate) AS AvgHeartRate, MAX(Temperature) AS MaxTemperature FROM PatientTelemetry GROUP BY PatientId, TumblingWindow(minute, 5) HAVING AVG(HeartRate) > 100"'
        fi
        cat > "$b/$kind-$mode.toml" <<TOML
[pipeline]
name = "bench-encryption-$kind"

[[sources]]
name = "PatientTelemetry"
kind = "file"
path = "$input"
timestamp_field = "EventTime"
max_out_of_orderness = "1s"

$step

[[sinks]]
name = "out"
kind = "file"
path = "$b/out-$kind-$mode.bin"

[checkpoint]
dir = "$b/ckpt-$kind-$mode"

[dead_letter]
path = "$b/dead-$kind-$mode.bin"

$extra
TOML
    done
done
rm -f "$b/results.txt"
echo "input: $events events; $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); AES-NI: $(grep -qw aes /proc/cpuinfo && echo yes || echo no)"
for i in $(seq "$runs"); do
    for kind in copy seed; do
        for mode in off on; do
            rm -rf "$b/out-$kind-$mode.bin" "$b/ckpt-$kind-$mode" "$b/dead-$kind-$mode.bin"
            /usr/bin/time -f "%e %M" -o "$b/time.txt" "$weir" -q run "$b/$kind-$mode.toml"
            read -r secs rss_kb < "$b/time.txt"
            python3 -c "import sys; e, s, r = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]); print(f'run $i, $kind, encryption $mode: {s:.3f} s, {e / s / 1e6:.2f} M events/s, peak RSS {r / 1024:.0f} MB')" \
                "$events" "$secs" "$rss_kb" | tee -a "$b/results.txt"
        done
    done
done
ls -l "$b"/out-*.bin
python3 - "$b/results.txt" <<'PY'
import re, statistics, sys
rates = {}
for line in open(sys.argv[1]):
    m = re.search(r", (\w+), encryption (\w+): [\d.]+ s, ([\d.]+) M", line)
    rates.setdefault((m[1], m[2]), []).append(float(m[3]))
for kind in ("copy", "seed"):
    off, on = statistics.median(rates[(kind, "off")]), statistics.median(rates[(kind, "on")])
    print(f"median {kind}: off {off:.2f} M events/s, on {on:.2f} M events/s: on is {100 * on / off:.0f} % of off")
PY
