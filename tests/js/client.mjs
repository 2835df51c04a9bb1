// What a matrix-js-sdk client observes of one Matrix feature at a time: `node client.mjs <name>`.
// Users: "alice" is the client under observation (started with thread support and lazy-loaded
// members, as Element starts it); "bob" acts, through the SDK's own calls, started only where he must see something.
// Params: room_id (a room both have joined), and what a scenario names below.
import {
  ClientEvent, KnownMembership, MatrixEventEvent, MsgType, PushRuleKind, ReceiptType, RoomEvent, RoomMemberEvent,
  ThreadEvent, UserEvent,
} from "matrix-js-sdk";

import { client, run, start, waitFor, within } from "./harness.mjs";

const START = { threadSupport: true, lazyLoadMembers: true };

const text = (body) => ({ msgtype: MsgType.Text, body });
const isMessage = (body) => (ev) => ev.getType() === "m.room.message" && ev.getContent().body === body;

/** Alice's view of the next live timeline event of `roomId` that `test` accepts. */
function liveEvent(alice, roomId, test, what) {
  return waitFor(alice, RoomEvent.Timeline, (ev, room, toStart, _removed, data) =>
    room?.roomId === roomId && !toStart && data?.liveEvent && test(ev), what);
}

function describe(ev) {
  return { event_id: ev.getId(), type: ev.getType(), sender: ev.getSender(), content: ev.getContent() };
}

const scenarios = {
  // The initial sync (`start` returns at PREPARED): the room, its members and history, and the push
  // rules the SDK fetched first.
  async prepared({ room_id }) {
    const alice = await start("alice", START);
    const room = alice.getRoom(room_id);
    const summaryCount = room?.getJoinedMemberCount();
    await room?.loadMembersIfNeeded();
    return {
      push_rule_kinds: Object.keys(alice.pushRules?.global ?? {}).sort(),
      override_rule_ids: (alice.pushRules?.global?.override ?? []).map((r) => r.rule_id),
      room: room && {
        name: room.name,
        my_membership: room.getMyMembership(),
        joined_member_count: summaryCount,
        joined: room.getJoinedMembers().map((m) => m.userId).sort(),
        timeline: room.getLiveTimeline().getEvents().map(describe),
      },
    };
  },

  // Scrolling back from a short initial timeline to the room's creation, as a timeline view does.
  async history({ room_id, initial_sync_limit }) {
    const alice = await start("alice", { ...START, initialSyncLimit: initial_sync_limit });
    const timeline = alice.getRoom(room_id).getLiveTimeline();
    const initial = timeline.getEvents().length;
    let pages = 0;
    while (pages < 20 && (await alice.paginateEventTimeline(timeline, { backwards: true, limit: 10 }))) pages += 1;
    return {
      initial,
      pages,
      events: timeline.getEvents().map((ev) => ({ type: ev.getType(), body: ev.getContent().body ?? null })),
    };
  },

  async room_name({ room_id, room_name }) {
    const alice = await start("alice", START);
    const renamed = waitFor(alice, RoomEvent.Name, (room) => room.roomId === room_id && room.name === room_name,
      "the room's new name");
    await client("bob").setRoomName(room_id, room_name);
    await renamed;
    return { room_name: alice.getRoom(room_id).name };
  },

  // Bob changes his display name; the server should carry it to his rooms as a member event.
  async display_name({ room_id, display_name }) {
    const alice = await start("alice", START);
    const bob = client("bob");
    const renamed = waitFor(alice, RoomMemberEvent.Name, (_ev, member) =>
      member.roomId === room_id && member.userId === bob.getUserId() && member.rawDisplayName === display_name,
    "bob's new display name in the room");
    await bob.setDisplayName(display_name);
    const [ev, member] = await renamed;
    return { member_name: member.name, member_event: describe(ev) };
  },

  async live_message({ room_id, body }) {
    const alice = await start("alice", START);
    const seen = liveEvent(alice, room_id, isMessage(body), "bob's message");
    const { event_id } = await client("bob").sendMessage(room_id, text(body));
    const [ev] = await seen;
    const room = alice.getRoom(room_id);
    return {
      sent_event_id: event_id,
      seen: describe(ev),
      last_in_live_timeline: room.getLiveTimeline().getEvents().at(-1).getId(),
    };
  },

  // How alice's client would notify for bob's messages, by the push rules it fetched.
  async notifications({ room_id }) {
    const alice = await start("alice", START);
    const bob = client("bob");
    const messages = {
      plain: text("nothing special"),
      mention: { ...text(`hey ${alice.getUserId()}`), "m.mentions": { user_ids: [alice.getUserId()] } },
    };
    const actions = {};
    for (const [kind, content] of Object.entries(messages)) {
      const seen = liveEvent(alice, room_id, isMessage(content.body), `bob's ${kind} message`);
      await bob.sendMessage(room_id, content);
      const [ev] = await seen;
      actions[kind] = alice.getPushActionsForEvent(ev);
    }
    return actions;
  },

  // Alice mutes the room with a room rule, as Element does; her client learns it from sync and stops
  // notifying for bob's messages there.
  async mute_room({ room_id }) {
    const alice = await start("alice", START);
    const bob = client("bob");
    const ruleSynced = waitFor(alice, ClientEvent.AccountData, (ev) => ev.getType() === "m.push_rules" &&
      ev.getContent().global?.room?.some((r) => r.rule_id === room_id), "the room rule in m.push_rules");
    await alice.addPushRule("global", PushRuleKind.RoomSpecific, room_id, { actions: [] });
    await ruleSynced;
    const seen = liveEvent(alice, room_id, isMessage("after the mute"), "bob's message");
    await bob.sendMessage(room_id, text("after the mute"));
    const [ev] = await seen;
    return {
      room_rules: alice.pushRules.global.room.map((r) => ({ rule_id: r.rule_id, actions: r.actions })),
      actions: alice.getPushActionsForEvent(ev),
    };
  },

  async typing({ room_id }) {
    const alice = await start("alice", START);
    const bob = client("bob");
    const typingIs = (on) => (_ev, member) => member.roomId === room_id && member.userId === bob.getUserId() &&
      member.typing === on;
    const started = waitFor(alice, RoomMemberEvent.Typing, typingIs(true), "bob typing");
    await bob.sendTyping(room_id, true, 30_000);
    const [startEvent] = await started;
    const stopped = waitFor(alice, RoomMemberEvent.Typing, typingIs(false), "bob no longer typing");
    await bob.sendTyping(room_id, false, 0);
    const [stopEvent] = await stopped;
    return { started: startEvent.getContent().user_ids, stopped: stopEvent.getContent().user_ids };
  },

  // Bob reads alice's message; alice sees his receipt. Bob's read marker reaches his own client.
  async receipts({ room_id, body }) {
    const [alice, bob] = await Promise.all([start("alice", START), start("bob", START)]);
    const bobSees = liveEvent(bob, room_id, isMessage(body), "alice's message at bob");
    const { event_id } = await alice.sendMessage(room_id, text(body));
    const [ev] = await bobSees;
    const receipt = waitFor(alice, RoomEvent.Receipt, (receiptEvent, room) =>
      room.roomId === room_id && receiptEvent.getContent()[event_id]?.[ReceiptType.Read]?.[bob.getUserId()],
    "bob's read receipt");
    await bob.sendReadReceipt(ev);
    const [receiptEvent] = await receipt;
    const marker = waitFor(bob, RoomEvent.AccountData, (ad, room) =>
      room.roomId === room_id && ad.getType() === "m.fully_read" && ad.getContent().event_id === event_id,
    "bob's fully-read marker");
    await bob.setRoomReadMarkers(room_id, event_id);
    await marker;
    const room = alice.getRoom(room_id);
    return {
      event_id,
      receipt_content: receiptEvent.getContent(),
      read_up_to: room.getEventReadUpTo(bob.getUserId()),
      fully_read: bob.getRoom(room_id).getAccountData("m.fully_read")?.getContent(),
    };
  },

  async redaction({ room_id, body, reason }) {
    const alice = await start("alice", START);
    const bob = client("bob");
    const seen = liveEvent(alice, room_id, isMessage(body), "bob's message");
    const { event_id } = await bob.sendMessage(room_id, text(body));
    await seen;
    const redacted = waitFor(alice, RoomEvent.Redaction, (ev, room) =>
      room.roomId === room_id && ev.getAssociatedId() === event_id, "bob's redaction");
    const { event_id: redactionId } = await bob.redactEvent(room_id, event_id, undefined, { reason });
    const [redaction] = await redacted;
    const original = alice.getRoom(room_id).findEventById(event_id);
    return {
      redaction_id: redactionId,
      redaction: describe(redaction),
      redaction_redacts: redaction.event.redacts ?? redaction.getContent().redacts,
      original_is_redacted: original.isRedacted(),
      original_content: original.getContent(),
      redacted_because: original.getUnsigned().redacted_because?.event_id ?? null,
    };
  },

  async edit({ room_id, body, new_body }) {
    const alice = await start("alice", START);
    const bob = client("bob");
    const seen = liveEvent(alice, room_id, isMessage(body), "bob's message");
    const { event_id } = await bob.sendMessage(room_id, text(body));
    await seen;
    const replaced = waitFor(alice, MatrixEventEvent.Replaced, (ev) => ev.getId() === event_id, "bob's edit");
    const { event_id: editId } = await bob.sendMessage(room_id, {
      ...text(`* ${new_body}`),
      "m.new_content": text(new_body),
      "m.relates_to": { rel_type: "m.replace", event_id },
    });
    const [original] = await replaced;
    return { edit_id: editId, replacing_event_id: original.replacingEventId(), shown_body: original.getContent().body };
  },

  async thread({ room_id, body, reply_body }) {
    const alice = await start("alice", START);
    const bob = client("bob");
    const seen = liveEvent(alice, room_id, isMessage(body), "bob's thread root");
    const { event_id: rootId } = await bob.sendMessage(room_id, text(body));
    await seen;
    const room = alice.getRoom(room_id);
    const reply = waitFor(room, ThreadEvent.NewReply, (thread, ev) =>
      thread.id === rootId && isMessage(reply_body)(ev), "bob's thread reply");
    const { event_id: replyId } = await bob.sendMessage(room_id, rootId, text(reply_body));
    const [thread, ev] = await reply;
    return {
      root_id: rootId,
      reply_id: replyId,
      thread_id: thread.id,
      reply: { ...describe(ev), thread_root_id: ev.threadRootId },
      thread_reply_ids: thread.liveTimeline.getEvents().map((e) => e.getId()),
      root_is_thread_root: room.findEventById(rootId)?.isThreadRoot ?? null,
      main_timeline_ids: room.getLiveTimeline().getEvents().map((e) => e.getId()),
    };
  },

  async account_data({ room_id }) {
    const alice = await start("alice", START);
    const global = { theme: "dark", n: 1 };
    await within(alice.setAccountData("org.stratus.test", global), "the global account data echo");
    const roomData = waitFor(alice, RoomEvent.AccountData, (ev, room) =>
      room.roomId === room_id && ev.getType() === "org.stratus.room", "the room account data");
    await alice.setRoomAccountData(room_id, "org.stratus.room", { pinned: true });
    await roomData;
    const tags = waitFor(alice, RoomEvent.Tags, (ev, room) =>
      room.roomId === room_id && "m.favourite" in ev.getContent().tags, "the favourite tag");
    await alice.setRoomTag(room_id, "m.favourite", { order: 0.25 });
    await tags;
    const room = alice.getRoom(room_id);
    return {
      global: alice.getAccountData("org.stratus.test")?.getContent(),
      room: room.getAccountData("org.stratus.room")?.getContent(),
      tags: room.tags,
    };
  },

  // Bob sends to alice's device by its ID, then to all her devices ("*").
  async to_device() {
    const alice = await start("alice", START);
    const bob = client("bob");
    const observed = [];
    for (const device of [alice.getDeviceId(), "*"]) {
      const seen = waitFor(alice, ClientEvent.ToDeviceEvent, (ev) =>
        ev.getType() === "org.stratus.ping" && ev.getContent().device === device, `the message to ${device}`);
      await bob.sendToDevice("org.stratus.ping", new Map([[alice.getUserId(), new Map([[device, { device }]])]]));
      const [ev] = await seen;
      observed.push({ type: ev.getType(), sender: ev.getSender(), content: ev.getContent() });
    }
    return observed;
  },

  async presence({ status_msg }) {
    const alice = await start("alice", START);
    const bob = client("bob");
    const seen = waitFor(alice, UserEvent.Presence, (_ev, user) =>
      user.userId === bob.getUserId() && user.presence === "unavailable", "bob's presence");
    await bob.setPresence({ presence: "unavailable", status_msg });
    const [ev, user] = await seen;
    return { content: ev.getContent(), presence: user.presence, status_msg: user.presenceStatusMsg };
  },

  // Bob invites alice live; her client shows the invite from its stripped state, and she joins.
  async invite({ room_id }) {
    const alice = await start("alice", START);
    const bob = client("bob");
    const invited = waitFor(alice, RoomEvent.MyMembership, (room, membership) =>
      room.roomId === room_id && membership === KnownMembership.Invite, "alice's invite");
    await bob.invite(room_id, alice.getUserId());
    const [invitedRoom] = await invited;
    const invite = {
      name: invitedRoom.name,
      inviter: invitedRoom.getMember(alice.getUserId())?.events.member?.getSender() ?? null,
    };
    const joined = waitFor(alice, RoomEvent.MyMembership, (room, membership) =>
      room.roomId === room_id && membership === KnownMembership.Join, "alice's join");
    await alice.joinRoom(room_id);
    const [room] = await joined;
    const joinedIds = room.getJoinedMembers().map((m) => m.userId).sort();
    return { invite, my_membership: room.getMyMembership(), joined: joinedIds };
  },

  // Bob leaves, alice sees it; then alice leaves and her client moves the room to "leave".
  async leave({ room_id }) {
    const alice = await start("alice", START);
    const bob = client("bob");
    const bobLeft = waitFor(alice, RoomMemberEvent.Membership, (_ev, member) =>
      member.roomId === room_id && member.userId === bob.getUserId() && member.membership === KnownMembership.Leave,
    "bob's leave");
    await bob.leave(room_id);
    await bobLeft;
    const joinedAfterBob = alice.getRoom(room_id).getJoinedMembers().map((m) => m.userId);
    const aliceLeft = waitFor(alice, RoomEvent.MyMembership, (room, membership) =>
      room.roomId === room_id && membership === KnownMembership.Leave, "alice's own leave");
    await alice.leave(room_id);
    await aliceLeft;
    return {
      joined_after_bob_left: joinedAfterBob,
      my_membership: alice.getRoom(room_id)?.getMyMembership(),
      joined_rooms: alice.getRooms().filter((r) => r.getMyMembership() === KnownMembership.Join).map((r) => r.roomId),
    };
  },

  // Alice finds bob's public room in the directory and joins it by its alias.
  async directory({ search, alias }) {
    const alice = await start("alice", START);
    const found = await alice.publicRooms({ limit: 10, filter: { generic_search_term: search } });
    const joined = waitFor(alice, RoomEvent.MyMembership, (_room, membership) => membership === KnownMembership.Join,
      "alice's join");
    const { roomId } = await alice.joinRoom(alias);
    // The room that joinRoom returns is a placeholder; the synced one is the client's.
    const [room] = await joined;
    return {
      chunk: found.chunk,
      join_room_id: roomId,
      synced_room_id: room.roomId,
      name: room.name,
      my_membership: room.getMyMembership(),
      joined: room.getJoinedMembers().map((m) => m.userId).sort(),
    };
  },

  // Media as Element handles it: bob uploads with uploadContent, alice turns the mxc URI into
  // authenticated download and thumbnail URLs and fetches them with her token. No client starts.
  async media({ data_base64, content_type, file_name }) {
    const alice = client("alice");
    const bob = client("bob");
    const { content_uri } = await bob.uploadContent(Buffer.from(data_base64, "base64"),
      { name: file_name, type: content_type });
    const fetchWithToken = async (url) => {
      const resp = await fetch(url, { headers: { Authorization: `Bearer ${alice.getAccessToken()}` } });
      return { url, status: resp.status, headers: Object.fromEntries(resp.headers),
        body_base64: Buffer.from(await resp.arrayBuffer()).toString("base64") };
    };
    const download = alice.mxcUrlToHttp(content_uri, undefined, undefined, undefined, false, true, true);
    const thumbnail = alice.mxcUrlToHttp(content_uri, 96, 96, "crop", false, true, true);
    return { content_uri, download: await fetchWithToken(download), thumbnail: await fetchWithToken(thumbnail) };
  },
};

const name = process.argv[2];
if (!(name in scenarios)) throw new Error(`unknown scenario "${name}"; known: ${Object.keys(scenarios).join(", ")}`);
run(scenarios[name]);
