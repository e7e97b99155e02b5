#!/usr/bin/env bash
# Nexmark q0, q1, q2 and q11 (examples/nexmark/) over N bids from the
# `nexmark` source into a discard sink, on 1 and 2 shards: whole process,
# start-up included; events/s, events/s per core of the machine, peak RSS.
#   scripts/bench-nexmark.sh [events] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-5000000}"
runs="${2:-3}"
cargo build --release --locked -q -p weir
weir=$PWD/target/release/weir
work=target/bench-nexmark
mkdir -p "$work"
cores=$(nproc)
echo "$cores cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $events bids per run"
for q in q0 q1 q2 q11; do
    for shards in 1 2; do
        sed -e "s/^count = .*/count = $events/" \
            -e "s/^name = \"nexmark-$q\"/name = \"nexmark-$q\"\nparallelism = $shards/" \
            -e 's/^kind = "file"/kind = "discard"/' -e '/^path = "out\/nexmark\/q/d' \
            -e "s#out/nexmark#$work#" \
            "examples/nexmark/$q.toml" > "$work/$q-$shards.toml"
        for i in $(seq "$runs"); do
            /usr/bin/time -f "%e %M" -o "$work/time.txt" "$weir" -q run "$work/$q-$shards.toml"
            read -r secs rss_kb < "$work/time.txt"
            python3 -c "import sys; e, s, r, c = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]); print(f'$q, $shards shard(s), run $i: {s:6.2f} s {e / s / 1e6:6.2f} M events/s = {e / s / c / 1e3:7.0f} k events/s per core, peak RSS {r / 1024:4.0f} MB')" \
                "$events" "$secs" "$rss_kb" "$cores"
        done
    done
done
