#!/usr/bin/env bash
# Installs what Weir's build needs and is missing: OpenSSL's headers and
# pkg-config (apt-get; librdkafka is built with TLS, for Kafka's SSL and
# SASL_SSL), the wasm32-wasip2 Rust target and, in a virtual environment
# under .cache/, componentize-py for Python plugins and ONNX Runtime
# (linked at .cache/onnxruntime/). Safe to run again; it only adds what is
# absent.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

command -v cargo >/dev/null || { say "cargo not found: install Rust with rustup (https://rustup.rs)"; exit 1; }
command -v python3 >/dev/null || { say "python3 not found: install Python 3.10 or newer"; exit 1; }

# shellcheck source=scripts/apt-install.sh
. scripts/apt-install.sh
if ! { command -v pkg-config >/dev/null && pkg-config --exists openssl; }; then
    if command -v apt-get >/dev/null; then
        apt_install libssl-dev pkg-config
    else
        say "install OpenSSL's development files and pkg-config (Debian: libssl-dev pkg-config): librdkafka is built with TLS"
        exit 1
    fi
fi

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    say "adding the wasm32-wasip2 Rust target"
    rustup target add wasm32-wasip2
fi

venv=.cache/venv
requirements=(plugins/sdk/python/requirements.txt scripts/requirements-onnxruntime.txt)
missing=()
frozen=$("$venv/bin/pip" freeze 2>/dev/null || true)
for want in $(cat "${requirements[@]}"); do
    grep -qx "$want" <<<"$frozen" || missing+=("$want")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} into $venv"
    if [ ! -x "$venv/bin/pip" ] && ! python3 -m venv "$venv" 2>/dev/null; then
        say "python3 -m venv failed; on Debian: apt-get install python3-venv"
        exit 1
    fi
    args=()
    for r in "${requirements[@]}"; do args+=(-r "$r"); done
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${args[@]}"
fi

# ONNX Runtime for models in the host: `ort` loads this library at run time
# (ORT_DYLIB_PATH); the PyPI wheel ships it without an unversioned name.
ort_lib=$(ls "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1 2>/dev/null | head -1)
[ -n "$ort_lib" ] || { say "libonnxruntime.so.1.31.1 not found in the onnxruntime wheel"; exit 1; }
mkdir -p .cache/onnxruntime
ln -sf "$(realpath "$ort_lib")" .cache/onnxruntime/libonnxruntime.so.1.31.1

