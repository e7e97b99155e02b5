#!/usr/bin/env bash
# Installs the toolchains `weir plugin build` needs beyond Rust and Python:
# for C, clang, lld, Debian's wasi-libc, clang's wasm32 builtins and
# libjsmn-dev; for JavaScript, Node.js (apt-get, with sudo when not root) and
# componentize-js into .cache/js (npm). Go is checked, not installed.
# scripts/test.sh runs it (the plugin-language tests need every toolchain);
# the demo does not. Safe to run again; it only adds what is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

# shellcheck source=scripts/apt-install.sh
. scripts/apt-install.sh
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
