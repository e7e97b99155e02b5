#!/usr/bin/env bash
# One command from a fresh clone to a running pipeline: installs what is
# missing, builds Weir and the plugins, and runs the drug-interaction example
# (no external services needed).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build-plugins.sh
cargo build --quiet --release --locked
rm -rf out/drug-interactions
./target/release/weir run examples/drug-interactions/pipeline.toml
echo
echo "Alerts (out/drug-interactions/alerts.ndjson):"
cat out/drug-interactions/alerts.ndjson
echo
echo "Dead letters (out/drug-interactions/dead-letter.ndjson):"
cat out/drug-interactions/dead-letter.ndjson
