#!/usr/bin/env bash
# One command from a fresh clone to a running pipeline: installs what is
# missing, builds Weir and the plugins, and runs the drug-interaction,
# patient-monitoring, fraud-detection and patient-risk examples (no external
# services needed; the last two run ONNX models in the host).
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

# Models run by the host through ONNX Runtime (installed by setup.sh).
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/.cache/onnxruntime/libonnxruntime.so.1.31.1}
echo
rm -rf out/fraud-detection
./target/release/weir run examples/fraud-detection/pipeline.toml
echo
echo "Fraud alerts (out/fraud-detection/alerts.ndjson, first 3 of $(wc -l < out/fraud-detection/alerts.ndjson)):"
head -3 out/fraud-detection/alerts.ndjson

echo
rm -rf out/patient-risk
./target/release/weir run examples/patient-risk/pipeline.toml
echo
echo "Deterioration alerts (out/patient-risk/alerts.ndjson, first 2 of $(wc -l < out/patient-risk/alerts.ndjson)):"
head -2 out/patient-risk/alerts.ndjson
