#!/usr/bin/env bash
# One command from a fresh clone to a running pipeline: installs what is
# missing, builds Weir and the plugins, and runs the drug-interaction and
# patient-monitoring examples (no external services needed).
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

echo
rm -rf out/patient-monitoring
./target/release/weir run examples/patient-monitoring/pipeline.toml
echo
echo "Tachycardia windows (out/patient-monitoring/alerts.ndjson, first 5 of $(wc -l < out/patient-monitoring/alerts.ndjson)):"
head -5 out/patient-monitoring/alerts.ndjson
