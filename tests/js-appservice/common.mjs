// What the application service scenarios share: their input (STRATUS_JS_INPUT: {base_url,
// registration, port, user: {user_id, access_token}, room_id}), a client API for the human user,
// waiting, and the result (one JSON value on stdout; on failure, a report on stderr and exit 1).
import { format } from "node:util";

export const input = JSON.parse(process.env.STRATUS_JS_INPUT ?? "{}");
const started = Date.now();

// The frameworks log a lot: kept, and shown only on failure, so that stdout is the result alone.
const logLines = [];
for (const level of ["debug", "info", "log", "warn", "error", "trace"]) {
  console[level] = (...args) => {
    logLines.push(`${((Date.now() - started) / 1000).toFixed(2)} ${level} ${format(...args).slice(0, 400)}`);
    if (logLines.length > 200) logLines.shift();
  };
}

export function fail(message) {
  process.stderr.write(`${message}\nlast log lines:\n${logLines.slice(-80).join("\n")}\n`);
  process.exit(1);
}

process.on("unhandledRejection", (err) => fail(`unhandled rejection: ${err?.stack ?? err}`));
setTimeout(() => fail("the scenario took too long"), input.timeout_ms ?? 60_000).unref();

/** The human user's client-server API call; fails the scenario on an error status. */
export async function api(method, path, body) {
  const resp = await fetch(`${input.base_url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${input.user.access_token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  if (!resp.ok) fail(`${method} ${path} -> ${resp.status} ${text}`);
  return JSON.parse(text);
}

export const room = (roomId, ...rest) =>
  `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/${rest.map(encodeURIComponent).join("/")}`;

export const txn = () => `t${Date.now()}${Math.random().toString(36).slice(2)}`;

/** Waits until `predicate()` (maybe async) holds, polling; fails the scenario with `what` after 20 s. */
export async function waitFor(predicate, what) {
  const deadline = Date.now() + 20_000;
  while (!(await predicate())) {
    if (Date.now() > deadline) fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function finish(result) {
  process.stdout.write(JSON.stringify(result));
  process.exit(0);
}
