// The harness of the js scenarios: real matrix-js-sdk clients against a Stratus server, driven by
// tests/e2e/js.py. The input comes as JSON in STRATUS_JS_INPUT: {base_url, users: {name:
// {user_id, access_token, device_id}}, params, timeout_ms}. A scenario's result is written to
// stdout as one JSON value; on failure it exits non-zero and writes to stderr what it was waiting
// for, the requests that failed, and the last requests and log lines.
import { format } from "node:util";

import { ClientEvent, createClient, SyncState } from "matrix-js-sdk";

const input = JSON.parse(process.env.STRATUS_JS_INPUT ?? "{}");
const WAIT_MS = 10_000; // one expected observation; the server is local
const started = Date.now();

// Everything the SDK logs is kept, and shown only on failure: stdout carries the result alone.
const logLines = [];
for (const level of ["debug", "info", "log", "warn", "error", "trace"]) {
  console[level] = (...args) => {
    const line = format(...args).split("\n")[0].slice(0, 400);
    logLines.push(`${((Date.now() - started) / 1000).toFixed(2)} ${level} ${line}`);
    if (logLines.length > 300) logLines.shift();
  };
}

// Every request any client makes, with the status and, for errors, the body.
const requests = [];
function recordingFetch(name) {
  return async (url, init = {}) => {
    const { pathname } = new URL(url);
    const entry = { t: (Date.now() - started) / 1000, name, method: init.method ?? "GET", path: pathname };
    requests.push(entry);
    try {
      const resp = await fetch(url, init);
      entry.status = resp.status;
      if (!resp.ok) entry.body = (await resp.clone().text()).slice(0, 300);
      return resp;
    } catch (err) {
      entry.status = String(err?.name ?? err);
      throw err;
    }
  };
}

function report() {
  const failed = new Map();
  for (const r of requests) {
    if (r.status === undefined || (typeof r.status === "number" && r.status < 400)) continue;
    const key = `${r.method} ${r.path} -> ${r.status} ${r.body ?? ""}`;
    failed.set(key, (failed.get(key) ?? 0) + 1);
  }
  const lines = ["failed requests:"];
  for (const [key, n] of failed) lines.push(`  ${n}x ${key}`);
  lines.push("last requests:");
  for (const r of requests.slice(-40)) {
    lines.push(`  ${r.t.toFixed(2)} [${r.name}] ${r.method} ${r.path} -> ${r.status ?? "(pending)"}`);
  }
  lines.push("last log lines:", ...logLines.slice(-60).map((l) => `  ${l}`));
  return lines.join("\n");
}

function fail(message) {
  process.stderr.write(`${message}\n${report()}\n`, () => process.exit(1));
}

/** Resolves with the arguments of the first `event` of `emitter` for which `test(...args)` holds;
 * rejects after `ms`. Call it before the action that should cause the event. */
export function waitFor(emitter, event, test, what, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out after ${ms / 1000} s waiting for ${what}`));
    }, ms);
    function listener(...args) {
      if (!test(...args)) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args);
    }
    emitter.on(event, listener);
  });
}

/** `promise`, or a rejection after `ms`. */
export function within(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const clients = [];

/** A client of input user `name`, not started. */
export function client(name) {
  const user = input.users?.[name];
  if (!user) throw new Error(`no user "${name}" in the input`);
  const c = createClient({
    baseUrl: input.base_url,
    userId: user.user_id,
    accessToken: user.access_token,
    deviceId: user.device_id,
    fetchFn: recordingFetch(name),
    timelineSupport: true,
  });
  clients.push(c);
  return c;
}

/** A client of input user `name` through `startClient` until its first sync is PREPARED. With
 * `crypto`, the Rust crypto starts first (in memory). `opts` go to `startClient`. The SDK would
 * retry a failed start-up forever; against a healthy server it never fails, so the first ERROR
 * ends the scenario with its cause. */
export async function start(name, { crypto = false, ...opts } = {}) {
  const c = client(name);
  if (crypto) await c.initRustCrypto({ useIndexedDB: false });
  const settled = waitFor(c, ClientEvent.Sync, (state) => state === SyncState.Prepared || state === SyncState.Error,
    `${name}'s PREPARED`);
  await c.startClient({ initialSyncLimit: 20, ...opts });
  const [state, , data] = await settled;
  if (state === SyncState.Error) {
    const err = data?.error;
    throw new Error(`${name}'s start-up sync failed before PREPARED: ${err?.httpStatus ?? ""} ${err?.message ?? err}`);
  }
  return c;
}

/** Runs `scenario(params)` and writes the JSON of what it returns; any failure, or the overall
 * timeout, ends the process with the report on stderr. */
export async function run(scenario) {
  const timeoutMs = input.timeout_ms ?? 30_000;
  // Also keeps Node alive should a scenario wait on nothing at all.
  setTimeout(() => fail(`scenario timed out after ${timeoutMs / 1000} s`), timeoutMs);
  let result;
  try {
    result = await scenario(input.params ?? {});
  } catch (err) {
    return fail(`scenario failed: ${err?.stack ?? err}`);
  } finally {
    for (const c of clients) c.stopClient();
  }
  process.stdout.write(`${JSON.stringify(result ?? null)}\n`, () => process.exit(0));
}
