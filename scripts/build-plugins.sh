#!/usr/bin/env bash
# Builds every plugin in plugins/ into a component:
#   Rust   -> plugins/target/wasm32-wasip2/release/<crate>.wasm
#   Python -> plugins/target/python/<folder>.wasm  (folders with an app.py)
# Python components take seconds to build, so each is rebuilt only when its
# sources, the Python SDK or the WIT contract change.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1mbuild-plugins:\033[0m %s\n' "$*" >&2; }

say "Rust plugins"
cargo build --quiet --release --locked --target wasm32-wasip2 --manifest-path plugins/Cargo.toml

componentize=.cache/venv/bin/componentize-py
mkdir -p plugins/target/python
for app in plugins/*/app.py; do
    dir=$(dirname "$app")
    name=$(basename "$dir" | tr - _)
    out=plugins/target/python/$name.wasm
    digest=$(cat "$dir"/*.py plugins/sdk/python/*.py wit/*/*.wit plugins/sdk/python/requirements.txt | sha256sum | cut -d' ' -f1)
    if [ -f "$out" ] && [ "$(cat "$out.sha256" 2>/dev/null)" = "$digest" ]; then
        continue
    fi
    [ -x "$componentize" ] || { say "componentize-py missing: run scripts/setup.sh"; exit 1; }
    say "Python plugin $dir"
    "$componentize" -d "wit/weir-plugin@0.1.2" -w processor componentize app -p "$dir" -p plugins/sdk/python -o "$out" >/dev/null
    echo "$digest" > "$out.sha256"
done
