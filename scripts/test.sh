#!/usr/bin/env bash
# The whole test suite: installs what is missing (plugin toolchains
# included), builds the plugins the tests load, then runs every Rust test
# (unit, property and end-to-end tests that start the real `weir` binary).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/setup-plugin-langs.sh
scripts/build-plugins.sh
cargo test --workspace --locked "$@"
