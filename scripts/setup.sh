#!/usr/bin/env bash
# Installs what Weir's build needs and is missing: the wasm32-wasip2 Rust
# target and, in a virtual environment under .cache/, componentize-py for
# Python plugins. Safe to run again; it only adds what is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

command -v cargo >/dev/null || { say "cargo not found: install Rust with rustup (https://rustup.rs)"; exit 1; }
command -v python3 >/dev/null || { say "python3 not found: install Python 3.10 or newer"; exit 1; }

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    say "adding the wasm32-wasip2 Rust target"
    rustup target add wasm32-wasip2
fi

venv=.cache/venv
want=$(cat plugins/sdk/python/requirements.txt)
if [ ! -x "$venv/bin/componentize-py" ] || ! "$venv/bin/pip" freeze 2>/dev/null | grep -qx "$want"; then
    say "installing $want into $venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        say "python3 -m venv failed; on Debian: apt-get install python3-venv"
        exit 1
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r plugins/sdk/python/requirements.txt
fi
