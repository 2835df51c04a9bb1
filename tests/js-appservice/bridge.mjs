// matrix-appservice-bridge's Bridge: its bot joins when invited, a ghost relays what the user
// says, a ghost is provisioned with a display name when the user looks it up, and the bridge pings
// itself through the room (an event sent and received back in a transaction).
import { AppServiceRegistration, Bridge, Logger } from "matrix-appservice-bridge";

import { api, fail, finish, input, room, txn, waitFor } from "./common.mjs";

Logger.configure({ console: "warn" });
const { registration, port, user, room_id: roomId } = input;
const prefix = registration.id;
const ghost = `@${prefix}-relay:localhost`;
const events = [];
const bridge = new Bridge({
  homeserverUrl: input.base_url,
  domain: "localhost",
  registration: AppServiceRegistration.fromObject(registration),
  disableStores: true,
  controller: {
    onEvent: async (request) => {
      const e = request.getData();
      events.push({ room_id: e.room_id, type: e.type, sender: e.sender, state_key: e.state_key,
        event_id: e.event_id, body: e.content?.body });
      try {
        if (e.type === "m.room.member" && e.state_key === bridge.getBot().getUserId()
          && e.content.membership === "invite") {
          await bridge.getIntent().join(e.room_id);
        } else if (e.type === "m.room.message" && e.sender === user.user_id && e.content.body.startsWith("relay ")) {
          await bridge.getIntent(ghost).sendText(e.room_id, `relayed ${e.content.body.slice(6)}`);
        }
      } catch (err) {
        fail(`the bridge failed on ${e.type}: ${err?.stack ?? JSON.stringify(err)}`);
      }
    },
    onUserQuery: async (matrixUser) => ({ name: `Remote ${matrixUser.localpart}` }),
  },
});
await bridge.run(port, undefined, "127.0.0.1");
const bot = bridge.getBot().getUserId();

// The bridge hears the invite and the user's message in transactions; what its own users do, it
// does not hear back (the bridge suppresses its echo), so the user sees it in the room.
const joined = async (userId) => userId in (await api("GET", room(roomId, "joined_members"))).joined;
await api("POST", room(roomId, "invite"), { user_id: bot });
await waitFor(() => joined(bot), "the bot's join");
const sent = await api("PUT", room(roomId, "send", "m.room.message", txn()), { msgtype: "m.text", body: "relay hi" });
const relayed = async () => (await api("GET", `${room(roomId, "messages")}?dir=b&limit=20`)).chunk
  .some((e) => e.sender === ghost && e.content?.body === "relayed hi");
await waitFor(relayed, "the relayed message");
const remote = `@${prefix}-remote:localhost`;
const profile = await api("GET", `/_matrix/client/v3/profile/${encodeURIComponent(remote)}`);
const pingMs = await bridge.pingAppserviceRoute(roomId, 20_000);
await bridge.close();
finish({ bot, ghost, sent: sent.event_id, events, remote, profile, ping_ms: pingMs });
