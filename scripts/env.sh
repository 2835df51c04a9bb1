# Sourced by the other scripts: installs (once, into a cache) and puts on PATH every tool the
# build needs, all pinned, so that a clean checkout builds with no tool installed by hand.
# worker-build would download wasm-bindgen, wasm-opt and esbuild from GitHub; the *_BIN
# variables point it at ours instead.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${STRATUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stratus}
WASM_BINDGEN_VERSION=0.2.130 # must equal the wasm-bindgen pinned in Cargo.toml
WORKER_BUILD_VERSION=0.8.7   # must equal the worker pinned in Cargo.toml
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
export WRANGLER_SEND_METRICS=false
export NO_UPDATE_NOTIFIER=1

log() { printf '\033[1m[stratus]\033[0m %s\n' "$*" >&2; }

# cargo_tool NAME CRATE VERSION: installs CRATE@VERSION under the cache unless it is there.
cargo_tool() {
  local dir="$CACHE/tools/$1-$3"
  if [ ! -x "$dir/bin/$1" ]; then
    log "installing $2 $3 (first run only; takes a few minutes)"
    cargo install --quiet "$2" --version "$3" --root "$dir" >&2
  fi
  export PATH="$dir/bin:$PATH"
}

ensure_tools() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown >&2
  fi
  cargo_tool wasm-bindgen wasm-bindgen-cli "$WASM_BINDGEN_VERSION"
  cargo_tool worker-build worker-build "$WORKER_BUILD_VERSION"
  if [ ! -x "$ROOT/node_modules/.bin/wrangler" ] \
    || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
    log "installing wrangler and binaryen from package-lock.json"
    (cd "$ROOT" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >&2)
  fi
  export PATH="$ROOT/node_modules/.bin:$PATH"
  export WASM_BINDGEN_BIN="$CACHE/tools/wasm-bindgen-$WASM_BINDGEN_VERSION/bin/wasm-bindgen"
  export WASM_OPT_BIN="$ROOT/node_modules/binaryen/bin/wasm-opt"
  export ESBUILD_BIN="$ROOT/node_modules/esbuild/bin/esbuild"
}

# build_worker: the release Wasm and its JavaScript shim, into build/.
build_worker() {
  ensure_tools
  log "building the worker"
  (cd "$ROOT" && worker-build --release >&2)
}
