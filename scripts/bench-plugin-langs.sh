#!/usr/bin/env bash
# The same analytic (the vital-signs early-warning rule of `weir plugin new`)
# in Rust, C, Go, JavaScript and Python: for each, `weir plugin bench`
# (component size, compile time cold and from the cache, instantiate time,
# ns/event at batch 1,000), then the Python function in native CPython and
# the JavaScript function under `node --jitless` and `node`, on the same events.
#   scripts/bench-plugin-langs.sh [events]
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-100000}"
scripts/setup.sh
scripts/setup-plugin-langs.sh
cargo build --release --locked -q -p weir
weir=target/release/weir
work=target/bench-langs
export CARGO_TARGET_DIR=$PWD/target/plugin-templates
mkdir -p "$work"
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for lang in rust c go js python; do
    dir=$work/vitals-$lang
    rm -rf "$dir"
    "$weir" -q plugin new --lang "$lang" --dir "$dir" "vitals-$lang"
    "$weir" -q plugin build "$dir" >/dev/null 2>&1 || "$weir" plugin build "$dir"
    echo "== $lang"
    "$weir" plugin bench "$dir" --events "$events" --events-out "$work/events.ndjson"
done
echo "== the same functions, natively"
.cache/venv/bin/python scripts/bench/vitals_native.py "$work/vitals-python" "$work/events.ndjson"
node --jitless scripts/bench/vitals_native.mjs "$work/vitals-js" "$work/events.ndjson"
node scripts/bench/vitals_native.mjs "$work/vitals-js" "$work/events.ndjson"
