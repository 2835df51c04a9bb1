// matrix-bot-sdk's Appservice as a bot: it joins when invited, echoes a user's message through a
// puppet it registers, records typing from its ephemeral events, creates a ghost when asked about
// an unknown user and a room when asked about an unknown alias.
import { Appservice, LogLevel, LogService } from "matrix-bot-sdk";

import { api, finish, input, room, txn, waitFor } from "./common.mjs";

LogService.setLevel(LogLevel.WARN);
const { registration, port, user, room_id: roomId } = input;
const prefix = registration.id;
const appservice = new Appservice({
  port,
  bindAddress: "127.0.0.1",
  homeserverName: "localhost",
  homeserverUrl: input.base_url,
  registration,
});
const events = [];
const ephemeral = [];
appservice.on("room.event", (rid, e) => events.push({ room_id: rid, type: e.type, sender: e.sender,
  state_key: e.state_key, event_id: e.event_id, body: e.content?.body }));
appservice.on("ephemeral.event", (e) => ephemeral.push({ type: e.type, room_id: e.room_id, content: e.content }));
appservice.on("room.invite", async (rid, e) => {
  if (e.state_key === appservice.botUserId) await appservice.botIntent.joinRoom(rid);
});
appservice.on("room.message", async (rid, e) => {
  if (e.sender !== user.user_id || !e.content?.body?.startsWith("echo ")) return;
  const puppet = appservice.getIntentForSuffix("puppet");
  await puppet.ensureRegisteredAndJoined(rid);
  await puppet.sendText(rid, `echoed ${e.content.body.slice(5)}`);
});
appservice.on("query.user", (userId, createUser) =>
  createUser(userId.includes("-ghost") ? { display_name: "A ghost" } : false));
appservice.on("query.room", (alias, createRoom) =>
  createRoom(alias.includes("-lobby") ? { preset: "public_chat", name: "The lobby" } : false));
await appservice.begin();

// The user invites the bot: it joins, and its join comes back to it in a transaction.
await api("POST", room(roomId, "invite"), { user_id: appservice.botUserId });
await waitFor(() => events.some((e) => e.type === "m.room.member" && e.state_key === appservice.botUserId
  && e.sender === appservice.botUserId), "the bot's join");
const sent = await api("PUT", room(roomId, "send", "m.room.message", txn()), { msgtype: "m.text", body: "echo hello" });
await api("PUT", room(roomId, "typing", user.user_id), { typing: true, timeout: 10000 });
await waitFor(() => events.some((e) => e.body === "echoed hello"), "the puppet's echo");
await waitFor(() => ephemeral.some((e) => e.type === "m.typing" && e.room_id === roomId
  && e.content.user_ids.includes(user.user_id)), "typing");

// Queries: an unknown ghost's profile, and a join by an unknown alias.
const ghost = `@${prefix}-ghost1:localhost`;
const profile = await api("GET", `/_matrix/client/v3/profile/${encodeURIComponent(ghost)}`);
const lobby = await api("POST", `/_matrix/client/v3/join/${encodeURIComponent(`#${prefix}-lobby:localhost`)}`, {});
appservice.stop();
finish({ bot: appservice.botUserId, puppet: appservice.getUserIdForSuffix("puppet"), sent: sent.event_id, events,
  ephemeral, ghost, profile, lobby: lobby.room_id });
