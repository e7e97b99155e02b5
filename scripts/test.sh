#!/usr/bin/env bash
# The whole test suite: installs what is missing (plugin toolchains
# included), builds the plugins the tests load, then runs every Rust test
# (unit, property and end-to-end tests that start the real `weir` binary
# and a real Kafka broker).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/setup-plugin-langs.sh
scripts/build-plugins.sh
# Apache Kafka 4.4.0 for the Kafka tests (Maven Central, cached); the tests
# start a broker from it (or use $WEIR_TEST_KAFKA).
scripts/kafka.sh fetch
cargo test --workspace --locked "$@"
