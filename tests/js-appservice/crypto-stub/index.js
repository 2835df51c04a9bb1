// The SDKs load the native binding at import time but use it only with encryption on, which
// these scenarios never turn on: any use of it fails loudly.
module.exports = new Proxy({}, {
  get(_target, name) {
    if (name === "__esModule" || typeof name === "symbol") return undefined;
    throw new Error(`the native crypto binding (${String(name)}) is not installed in these tests`);
  },
});
