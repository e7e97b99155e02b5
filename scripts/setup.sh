#!/usr/bin/env bash
# Installs what Weir's build needs and is missing: the wasm32-wasip2 Rust
# target and, in a virtual environment under .cache/, componentize-py for
# Python plugins and ONNX Runtime (linked at .cache/onnxruntime/). Safe to
# run again; it only adds what is absent.
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

# Plugin toolchains (`weir plugin build`): C through clang and Debian's
# wasi-libc, JavaScript through componentize-js (npm), Go from the system.
apt_install() {
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    say "installing $* (apt-get)"
    "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null || {
        "${sudo[@]}" apt-get update -qq >/dev/null && "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null
    }
}
if command -v apt-get >/dev/null; then
    want=()
    command -v clang >/dev/null || want+=(clang)
    command -v wasm-ld >/dev/null || ls /usr/bin/wasm-ld-* >/dev/null 2>&1 || want+=(lld)
    [ -f /usr/include/wasm32-wasi/stdlib.h ] || want+=(wasi-libc)
    [ -f /usr/include/jsmn.h ] || want+=(libjsmn-dev)
    command -v node >/dev/null || want+=(nodejs npm)
    [ ${#want[@]} -eq 0 ] || apt_install "${want[@]}"
    # clang's WebAssembly builtins come in a package named after its version on Debian 12.
    builtins=$(clang --target=wasm32-wasi -print-libgcc-file-name 2>/dev/null || true)
    if [ ! -f "$builtins" ]; then
        major=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
        apt_install "libclang-rt-$major-dev-wasm32" 2>/dev/null || apt_install libclang-rt-dev-wasm32
    fi
else
    say "no apt-get: install clang, lld, wasi-libc, clang's wasm32 builtins, libjsmn-dev and Node.js yourself for C and JavaScript plugins"
fi

componentize_js=.cache/js/node_modules/.bin/componentize-js
if [ ! -x "$componentize_js" ] && command -v npm >/dev/null; then
    say "installing componentize-js into .cache/js (npm)"
    mkdir -p .cache/js
    (cd .cache/js && npm install --silent --no-audit --no-fund --no-save @bytecodealliance/componentize-js@0.23.0 >/dev/null)
fi

go_minor=$(go env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
if [ -z "$go_minor" ] || [ "$go_minor" -lt 24 ]; then
    say "Go 1.24 or newer not found: Go plugins cannot be built (install it from https://go.dev/dl)"
fi
