// What matrix-js-sdk's sliding sync (MSC4186, `SlidingSync` and `SlidingSyncSdk`) shows against
// Stratus: `node sliding.mjs <name>`. "alice" is observed; "bob" acts through the SDK.
// Params: server (where sliding sync goes), room_ids (rooms alice is in), live_room_id.
import { ClientEvent, NotificationCountType, RoomEvent, SyncState } from "matrix-js-sdk";
import { SlidingSync } from "matrix-js-sdk/lib/sliding-sync.js";

import { client, run, waitFor } from "./harness.mjs";

// The room list as Element's sliding sync asks for it: the newest rooms, their latest event.
const LIST = {
  ranges: [[0, 19]],
  timeline_limit: 1,
  required_state: [
    ["m.room.name", ""], ["m.room.avatar", ""], ["m.room.create", ""], ["m.room.encryption", ""],
    ["m.room.member", "$ME"], ["m.room.member", "$LAZY"],
  ],
};

function view(room) {
  const events = room.getLiveTimeline().getEvents();
  const latest = events[events.length - 1];
  return {
    name: room.name,
    membership: room.getMyMembership(),
    notification_count: room.getUnreadNotificationCount(NotificationCountType.Total),
    highlight_count: room.getUnreadNotificationCount(NotificationCountType.Highlight),
    latest_event_id: latest?.getId() ?? null,
  };
}

const scenarios = {
  // The room list after the first response, then a live message from bob.
  async room_list({ server, room_ids, live_room_id }) {
    const alice = client("alice");
    const slidingSync = new SlidingSync(server, new Map([["all", LIST]]), { timeline_limit: 10 }, alice, 5000);
    const prepared = waitFor(alice, ClientEvent.Sync, (state) => state === SyncState.Prepared || state === SyncState.Error,
      "alice's PREPARED");
    await alice.startClient({ slidingSync });
    const [state] = await prepared;
    if (state === SyncState.Error) throw new Error("the first sliding sync failed");
    const rooms = {};
    for (const id of room_ids) {
      const room = alice.getRoom(id);
      rooms[id] = room ? view(room) : null;
    }
    const live = waitFor(alice, RoomEvent.Timeline, (ev, room, toStart) =>
      room?.roomId === live_room_id && !toStart && ev.getContent().body === "live from bob", "bob's live message");
    const { event_id: liveId } = await client("bob").sendTextMessage(live_room_id, "live from bob");
    const [ev] = await live;
    return { rooms, count: slidingSync.getListData("all")?.joinedCount ?? null, live_event_id: ev.getId(),
             sent_live_event_id: liveId };
  },
};

const name = process.argv[2];
if (!(name in scenarios)) throw new Error(`unknown scenario "${name}"; known: ${Object.keys(scenarios).join(", ")}`);
run(scenarios[name]);
