// End-to-end encryption as Element does it, through matrix-js-sdk's Rust crypto: `node crypto.mjs`.
// Users: "alice" and "bob" (joined to the encrypted room `room_id`), and "alice2", a second device
// of alice's. Alice sends a message that bob decrypts; both set up cross-signing; alice verifies
// bob with SAS in the room, which signs his identity; alice backs her room keys up, and her second
// device, given the backup key, restores them and decrypts the message.
import { MatrixEventEvent } from "matrix-js-sdk";
import {
  CryptoEvent, VerificationPhase, VerificationRequestEvent, VerifierEvent,
} from "matrix-js-sdk/lib/crypto-api/index.js";

import { run, start, waitFor, within } from "./harness.mjs";

const SECRET = "the eagle lands at dawn";
const LONG_MS = 30_000;

/** The next event of `roomId` that `client` decrypts to `body`. */
function decrypted(client, roomId, body, what) {
  return waitFor(client, MatrixEventEvent.Decrypted, (ev) =>
    ev.getRoomId() === roomId && !ev.isDecryptionFailure() && ev.getContent().body === body, what, LONG_MS);
}

/** Cross-signing keys, uploaded without auth: a first upload needs none. */
async function crossSign(client) {
  await client.getCrypto().bootstrapCrossSigning({ authUploadDeviceSigningKeys: (makeRequest) => makeRequest(null) });
}

/** Waits until `request` reaches a phase that `test` accepts. */
function phase(request, test, what) {
  if (test(request.phase)) return Promise.resolve();
  return waitFor(request, VerificationRequestEvent.Change, () => test(request.phase), what, LONG_MS);
}

/** Alice verifies bob through an in-room SAS verification that both sides confirm. */
async function verify(alice, bob, roomId) {
  const incoming = waitFor(bob, CryptoEvent.VerificationRequestReceived, () => true, "bob's verification request",
    LONG_MS);
  const request = await alice.getCrypto().requestVerificationDM(bob.getUserId(), roomId);
  const [bobRequest] = await incoming;
  await bobRequest.accept();
  await phase(request, (p) => p === VerificationPhase.Ready, "alice's request ready");
  const aliceVerifier = await request.startVerification("m.sas.v1");
  await phase(bobRequest, () => Boolean(bobRequest.verifier), "bob's verifier");
  const verifiers = [aliceVerifier, bobRequest.verifier];
  for (const v of verifiers) v.on(VerifierEvent.ShowSas, (sas) => sas.confirm());
  await within(Promise.all(verifiers.map((v) => v.verify())), "both sides' SAS", LONG_MS);
  await phase(request, (p) => p === VerificationPhase.Done, "alice's request done");
}

/** Polls `check` until it returns something truthy. */
async function until(check, what, ms = LONG_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const result = await check();
    if (result) return result;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const scenarios = {
  async conversation({ room_id }) {
    const alice = await start("alice", { crypto: true });
    const bob = await start("bob", { crypto: true });

    // Bob's client uploads its keys as it starts; alice hears of them through her device lists.
    await until(async () => {
      const devices = await alice.getCrypto().getUserDeviceInfo([bob.getUserId()]);
      return devices.get(bob.getUserId())?.has(bob.getDeviceId());
    }, "alice to know bob's device");
    const bobReads = decrypted(bob, room_id, SECRET, "bob decrypting alice's message");
    const { event_id } = await alice.sendTextMessage(room_id, SECRET);
    const [received] = await bobReads;

    await crossSign(alice);
    await crossSign(bob);
    // Each hears of the other's new identity through the device lists.
    await until(() => alice.getCrypto().userHasCrossSigningKeys(bob.getUserId()), "alice to see bob's identity");
    await until(() => bob.getCrypto().userHasCrossSigningKeys(alice.getUserId()), "bob to see alice's identity");
    await verify(alice, bob, room_id);
    const bobTrust = await until(async () => {
      const status = await alice.getCrypto().getUserVerificationStatus(bob.getUserId());
      return status.isCrossSigningVerified() && status;
    }, "alice to trust bob's identity");

    await alice.getCrypto().resetKeyBackup();
    const version = await alice.getCrypto().getActiveSessionBackupVersion();
    // The backup fills in the background, after a random delay of up to 10 s.
    const backedUp = await until(async () => {
      const resp = await fetch(`${alice.baseUrl}/_matrix/client/v3/room_keys/version`,
        { headers: { Authorization: `Bearer ${alice.getAccessToken()}` } });
      const info = await resp.json();
      return info.count > 0 && info;
    }, "alice's room key in the backup");
    const backupKey = await alice.getCrypto().getSessionBackupPrivateKey();

    const alice2 = await start("alice2", { crypto: true });
    const before = alice2.getRoom(room_id)?.findEventById(event_id);
    const undecryptable = Boolean(before?.isDecryptionFailure());
    const restoredRead = decrypted(alice2, room_id, SECRET, "alice's new device decrypting history");
    await alice2.getCrypto().storeSessionBackupPrivateKey(backupKey, version);
    const restored = await alice2.getCrypto().restoreKeyBackup();
    const [history] = await restoredRead;

    return {
      event_id,
      bob: { event_id: received.getId(), wire_type: received.getWireType(), body: received.getContent().body },
      bob_identity_verified: bobTrust.isCrossSigningVerified(),
      backup: { version, count: backedUp.count, total: restored.total, imported: restored.imported },
      new_device: { undecryptable_before: undecryptable, event_id: history.getId(), body: history.getContent().body },
    };
  },
};

const name = process.argv[2] ?? "conversation";
if (!scenarios[name]) throw new Error(`unknown scenario ${name}`);
run(scenarios[name]);
