"""Relations and threads: `GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]`,
`GET /rooms/{roomId}/threads`, and the aggregations bundled with events: `m.thread` on thread
roots, `m.replace` on edited events, `m.reference` on referenced events."""

import json
import secrets

from conftest import assert_error, assert_ok, path_quote
from rooms import V1, create_room, join, room_path, send_message, send_state


def relations_path(room_id, event_id, *rest):
    return "/".join([f"{V1}/rooms/{path_quote(room_id)}/relations/{path_quote(event_id)}", *map(path_quote, rest)])


def relations(user, room_id, event_id, *rest, **params) -> dict:
    body = assert_ok(user.get(relations_path(room_id, event_id, *rest), params=params))
    assert isinstance(body["chunk"], list)
    return body


def threads(user, room_id, **params) -> dict:
    body = assert_ok(user.get(f"{V1}/rooms/{path_quote(room_id)}/threads", params=params))
    assert isinstance(body["chunk"], list)
    return body


def relate(user, room_id, parent, rel_type, event_type="m.room.message", body="child", **relates_to) -> str:
    content = {"m.relates_to": {"rel_type": rel_type, "event_id": parent, **relates_to}}
    if event_type == "m.room.message":
        content.update(msgtype="m.text", body=body)
    resp = user.put(room_path(room_id, "send", event_type, secrets.token_hex(8)), json=content)
    return assert_ok(resp)["event_id"]


def react(user, room_id, parent, key="👍") -> str:
    return relate(user, room_id, parent, "m.annotation", "m.reaction", key=key)


def reply_in_thread(user, room_id, root, body="in thread") -> str:
    return relate(user, room_id, root, "m.thread", body=body, is_falling_back=True)


def ids(events) -> list[str]:
    return [e["event_id"] for e in events]


def summary(event) -> dict:
    return event["unsigned"]["m.relations"]["m.thread"]


# ---------------------------------------------------------------------------------------------
# /relations


def test_children_of_an_event_by_rel_type_and_event_type(user):
    room_id = create_room(user)
    root = send_message(user, room_id, "root")
    like = react(user, room_id, root)
    reply = reply_in_thread(user, room_id, root)
    send_message(user, room_id, "unrelated")
    heart = react(user, room_id, root, "❤️")
    edit = relate(user, room_id, root, "m.replace", body="* root")
    body = relations(user, room_id, root)
    assert ids(body["chunk"]) == [edit, heart, reply, like], "most recent first"
    assert "next_batch" not in body and "prev_batch" not in body and "recursion_depth" not in body
    assert body["chunk"][0]["content"]["m.relates_to"] == {"rel_type": "m.replace", "event_id": root}
    assert ids(relations(user, room_id, root, "m.annotation")["chunk"]) == [heart, like]
    assert ids(relations(user, room_id, root, "m.annotation", "m.reaction")["chunk"]) == [heart, like]
    assert relations(user, room_id, root, "m.annotation", "m.room.message")["chunk"] == []
    assert ids(relations(user, room_id, root, "m.thread")["chunk"]) == [reply]
    assert relations(user, room_id, root, "m.reference")["chunk"] == []
    assert relations(user, room_id, like)["chunk"] == [], "nothing relates to the reaction"


def test_relations_paginate_both_ways(user):
    room_id = create_room(user)
    root = send_message(user, room_id, "root")
    likes = [react(user, room_id, root, f"k{i}") for i in range(7)]
    seen, token, pages = [], None, 0
    while True:
        params = {"limit": 3} if token is None else {"limit": 3, "from": token}
        body = relations(user, room_id, root, **params)
        assert len(body["chunk"]) <= 3
        if token is not None:
            assert body["prev_batch"] == token
        seen += ids(body["chunk"])
        pages += 1
        if "next_batch" not in body:
            break
        token = body["next_batch"]
    assert seen == list(reversed(likes)) and pages == 3
    forward = relations(user, room_id, root, dir="f", limit=10)
    assert ids(forward["chunk"]) == likes and "next_batch" not in forward
    # `to` stops a page: from the newest back to (not including) likes[2], taken from page tokens.
    first = relations(user, room_id, root, limit=4)
    assert ids(first["chunk"]) == list(reversed(likes[3:]))
    bounded = relations(user, room_id, root, dir="f", limit=10, to=first["next_batch"])
    assert ids(bounded["chunk"]) == likes[:3]
    # The default limit is small but present.
    assert 0 < len(relations(user, room_id, root)["chunk"]) <= 7


def test_recurse_is_accepted(user):
    room_id = create_room(user)
    root = send_message(user, room_id, "root")
    reply = reply_in_thread(user, room_id, root)
    react(user, room_id, reply)
    for value in ["true", "false"]:
        body = relations(user, room_id, root, recurse=value)
        assert ids(body["chunk"]) == [reply]
        assert body["recursion_depth"] == 1
    assert_error(user.get(relations_path(room_id, root), params={"recurse": "maybe"}), 400, "M_INVALID_PARAM")


def test_relations_errors(user):
    room_id = create_room(user)
    other = create_room(user)
    root = send_message(user, room_id, "root")
    elsewhere = send_message(user, other, "elsewhere")
    assert_error(user.get(relations_path(room_id, "$unknown")), 404, "M_NOT_FOUND")
    assert_error(user.get(relations_path(room_id, elsewhere)), 404, "M_NOT_FOUND")
    assert_error(user.get(relations_path(room_id, "not-an-event")), 400, "M_INVALID_PARAM")
    assert_error(user.get(relations_path("!nowhere:localhost", root)), 404, "M_NOT_FOUND")
    for params in [{"dir": "sideways"}, {"from": "bogus"}, {"to": "s"}, {"limit": "many"}]:
        assert_error(user.get(relations_path(room_id, root), params=params), 400, "M_INVALID_PARAM")


def test_relations_respect_history_visibility(user, new_user):
    room_id = create_room(user, preset="public_chat")
    root = send_message(user, room_id, "root, shared era")
    early = react(user, room_id, root, "early")
    send_state(user, room_id, "m.room.history_visibility", {"history_visibility": "joined"})
    hidden = react(user, room_id, root, "hidden")
    hidden_root = send_message(user, room_id, "root, joined era")
    bob = new_user()
    join(bob, room_id)
    late = react(user, room_id, root, "late")
    assert ids(relations(user, room_id, root)["chunk"]) == [late, hidden, early]
    assert ids(relations(bob, room_id, root)["chunk"]) == [late, early]
    assert_error(bob.get(relations_path(room_id, hidden_root)), 404, "M_NOT_FOUND")
    stranger = new_user()
    assert_error(stranger.get(relations_path(room_id, root)), 403, "M_FORBIDDEN")


def test_redacted_relations_no_longer_relate(user):
    room_id = create_room(user)
    root = send_message(user, room_id, "root")
    keep = react(user, room_id, root, "keep")
    gone = react(user, room_id, root, "gone")
    assert_ok(user.put(room_path(room_id, "redact", gone, "r1"), json={}))
    assert ids(relations(user, room_id, root)["chunk"]) == [keep]
    # A redacted parent is still found, and its children still listed.
    assert_ok(user.put(room_path(room_id, "redact", root, "r2"), json={}))
    assert ids(relations(user, room_id, root)["chunk"]) == [keep]


# ---------------------------------------------------------------------------------------------
# /threads and the m.thread aggregation


def test_threads_are_listed_by_their_latest_reply(user, new_user):
    room_id = create_room(user, preset="public_chat")
    bob = new_user()
    join(bob, room_id)
    # Alice takes part in the first (root and replies) and the third (root); bob in the second
    # (root and reply) and the third (reply).
    first = send_message(user, room_id, "first root")
    second = send_message(bob, room_id, "bob's root")
    third = send_message(user, room_id, "third root")
    reply_in_thread(user, room_id, first, "1a")
    bob_reply = reply_in_thread(bob, room_id, second, "2a")
    reply_in_thread(bob, room_id, third, "3a")
    latest_first = reply_in_thread(user, room_id, first, "1b")
    send_message(user, room_id, "not a thread")
    body = threads(user, room_id)
    assert ids(body["chunk"]) == [first, third, second]
    assert "next_batch" not in body
    by_id = {e["event_id"]: e for e in body["chunk"]}
    assert summary(by_id[first])["count"] == 2
    assert summary(by_id[first])["latest_event"]["event_id"] == latest_first
    assert summary(by_id[first])["latest_event"]["content"]["body"] == "1b"
    assert summary(by_id[first])["current_user_participated"] is True
    assert summary(by_id[second])["latest_event"]["event_id"] == bob_reply
    assert summary(by_id[second])["current_user_participated"] is False, "alice sent neither root nor reply"
    assert summary(by_id[third])["current_user_participated"] is True, "alice sent the root"
    assert by_id[second]["content"]["body"] == "bob's root"
    # Bob took part in the threads he replied in or started.
    participated = threads(bob, room_id, include="participated")
    assert ids(participated["chunk"]) == [third, second]
    assert all(summary(e)["current_user_participated"] for e in participated["chunk"])
    assert ids(threads(bob, room_id, include="all")["chunk"]) == [first, third, second]


def test_threads_paginate(user):
    room_id = create_room(user)
    roots = [send_message(user, room_id, f"root {i}") for i in range(5)]
    for root in roots:
        reply_in_thread(user, room_id, root)
    seen, token = [], None
    for _ in range(10):
        body = threads(user, room_id, limit=2, **({"from": token} if token else {}))
        assert len(body["chunk"]) <= 2
        seen += ids(body["chunk"])
        token = body.get("next_batch")
        if token is None:
            break
    assert seen == list(reversed(roots))
    assert len(threads(user, room_id)["chunk"]) == 5, "the default limit fits five"
    path = f"{V1}/rooms/{path_quote(room_id)}/threads"
    assert_error(user.get(path, params={"include": "mine"}), 400, "M_INVALID_PARAM")
    assert_error(user.get(path, params={"from": "later"}), 400, "M_INVALID_PARAM")
    assert_error(user.get(path, params={"limit": "-2"}), 400, "M_INVALID_PARAM")
    assert_error(user.get(f"{V1}/rooms/{path_quote('!nowhere:localhost')}/threads"), 404, "M_NOT_FOUND")


def test_thread_roots_carry_the_aggregation_everywhere(user):
    room_id = create_room(user)
    root = send_message(user, room_id, "root")
    reply = reply_in_thread(user, room_id, root, "reply")
    plain = send_message(user, room_id, "plain")
    event = assert_ok(user.get(room_path(room_id, "event", root)))
    assert set(summary(event)) == {"latest_event", "count", "current_user_participated"}
    assert summary(event)["count"] == 1 and summary(event)["current_user_participated"] is True
    assert summary(event)["latest_event"]["event_id"] == reply
    assert summary(event)["latest_event"]["content"]["body"] == "reply"
    chunk = assert_ok(user.get(room_path(room_id, "messages"), params={"dir": "b", "limit": 5}))["chunk"]
    served = {e["event_id"]: e for e in chunk}
    assert summary(served[root])["latest_event"]["event_id"] == reply
    assert "m.relations" not in served[plain]["unsigned"]
    assert "m.relations" not in served[reply]["unsigned"]
    ctx = assert_ok(user.get(room_path(room_id, "context", plain)))
    before = {e["event_id"]: e for e in ctx["events_before"]}
    assert summary(before[root])["count"] == 1


def test_threads_respect_history_visibility_and_redactions(user, new_user):
    room_id = create_room(user, preset="public_chat")
    visible_root = send_message(user, room_id, "shared era root")
    early = reply_in_thread(user, room_id, visible_root, "early")
    send_state(user, room_id, "m.room.history_visibility", {"history_visibility": "joined"})
    hidden_reply = reply_in_thread(user, room_id, visible_root, "hidden reply")
    hidden_root = send_message(user, room_id, "joined era root")
    reply_in_thread(user, room_id, hidden_root, "hidden thread")
    bob = new_user()
    join(bob, room_id)
    # Alice sees both threads; the newest reply of the first is hidden from bob.
    assert ids(threads(user, room_id)["chunk"]) == [hidden_root, visible_root]
    assert summary(threads(user, room_id)["chunk"][1])["count"] == 2
    listed = threads(bob, room_id)["chunk"]
    assert ids(listed) == [visible_root]
    assert summary(listed[0])["count"] == 1
    assert summary(listed[0])["latest_event"]["event_id"] == early
    assert "hidden" not in json.dumps(listed)
    assert hidden_reply not in ids(relations(bob, room_id, visible_root, "m.thread")["chunk"])
    # A redacted reply no longer counts; a redacted root is served redacted, with its thread.
    assert_ok(user.put(room_path(room_id, "redact", hidden_reply, "r1"), json={}))
    assert summary(threads(user, room_id)["chunk"][1])["count"] == 1
    redaction = assert_ok(user.put(room_path(room_id, "redact", visible_root, "r2"), json={}))["event_id"]
    root = next(e for e in threads(user, room_id)["chunk"] if e["event_id"] == visible_root)
    assert root["content"] == {} and root["unsigned"]["redacted_because"]["event_id"] == redaction
    assert summary(root)["latest_event"]["event_id"] == early
    # Non-members of a room that is not world readable see no threads at all.
    assert_error(new_user().get(f"{V1}/rooms/{path_quote(room_id)}/threads"), 403, "M_FORBIDDEN")


def test_thread_counts_are_exact_however_many_visibility_ranges(user, new_user):
    """A reader who sees the room in more than 64 separate ranges (its history visibility went
    back and forth) counts only the replies it may see."""
    room_id = create_room(user, preset="public_chat")
    send_state(user, room_id, "m.room.history_visibility", {"history_visibility": "world_readable"})
    root = send_message(user, room_id, "root")
    reply_in_thread(user, room_id, root, "seen first")
    for i in range(65):
        send_state(user, room_id, "m.room.history_visibility", {"history_visibility": "joined"})
        reply_in_thread(user, room_id, root, f"hidden {i}")
        send_state(user, room_id, "m.room.history_visibility", {"history_visibility": "world_readable"})
    last = reply_in_thread(user, room_id, root, "seen last")
    peeker = new_user()  # no member: it reads the world readable stretches only
    for served in [threads(peeker, room_id)["chunk"], [assert_ok(peeker.get(room_path(room_id, "event", root)))]]:
        assert ids(served) == [root]
        assert summary(served[0])["count"] == 2
        assert summary(served[0])["latest_event"]["event_id"] == last
    assert summary(threads(user, room_id)["chunk"][0])["count"] == 67


# ---------------------------------------------------------------------------------------------
# Edits: the m.replace aggregation


def edit(user, room_id, original, body, event_type="m.room.message", new_content=True) -> str:
    content = {"msgtype": "m.text", "body": f"* {body}", "m.relates_to": {"rel_type": "m.replace", "event_id": original}}
    if new_content:
        content["m.new_content"] = {"msgtype": "m.text", "body": body}
    return assert_ok(user.put(room_path(room_id, "send", event_type, secrets.token_hex(8)), json=content))["event_id"]


def replacement(event) -> dict | None:
    return event["unsigned"].get("m.relations", {}).get("m.replace")


def test_an_edited_event_carries_its_latest_edit_everywhere(user):
    room_id = create_room(user)
    original = send_message(user, room_id, "I like cake")
    edit(user, room_id, original, "I like chocolate cake")
    latest = edit(user, room_id, original, "I like chocolate cake a lot")
    plain = send_message(user, room_id, "plain")
    event = assert_ok(user.get(room_path(room_id, "event", original)))
    bundled = replacement(event)
    assert bundled["event_id"] == latest and bundled["sender"] == user.user_id
    assert bundled["content"]["m.new_content"]["body"] == "I like chocolate cake a lot"
    assert event["content"]["body"] == "I like cake", "the original's content is left intact"
    chunk = assert_ok(user.get(room_path(room_id, "messages"), params={"dir": "b", "limit": 10}))["chunk"]
    served = {e["event_id"]: e for e in chunk}
    assert replacement(served[original])["event_id"] == latest
    assert replacement(served[latest]) is None and replacement(served[plain]) is None
    ctx = assert_ok(user.get(room_path(room_id, "context", plain)))
    assert replacement({e["event_id"]: e for e in ctx["events_before"]}[original])["event_id"] == latest
    # /sync bundles only in a limited timeline; an unlimited one holds the edits themselves.
    filter_ = json.dumps({"room": {"timeline": {"limit": 4}}})
    timeline = assert_ok(user.get("/_matrix/client/v3/sync", params={"filter": filter_}))["rooms"]["join"][room_id]["timeline"]
    assert timeline["limited"] is True
    assert replacement({e["event_id"]: e for e in timeline["events"]}[original])["event_id"] == latest


def test_invalid_and_redacted_edits_are_not_bundled(user, new_user):
    other = new_user()
    room_id = create_room(user, preset="public_chat")
    join(other, room_id)
    original = send_message(user, room_id, "mine")
    edit(other, room_id, original, "not yours to edit")
    edit(user, room_id, original, "no new content", new_content=False)
    edit(user, room_id, original, "another type", event_type="org.example.note")
    assert replacement(assert_ok(user.get(room_path(room_id, "event", original)))) is None
    # A redacted edit no longer counts: the one before it is the latest again.
    first = edit(user, room_id, original, "first")
    second = edit(user, room_id, original, "second")
    assert replacement(assert_ok(user.get(room_path(room_id, "event", original))))["event_id"] == second
    assert_ok(user.put(room_path(room_id, "redact", second, secrets.token_hex(8)), json={}))
    assert replacement(assert_ok(user.get(room_path(room_id, "event", original))))["event_id"] == first
    # An edit of an edit is no valid edit; a redacted original carries none.
    edit(user, room_id, first, "edit of an edit")
    assert replacement(assert_ok(user.get(room_path(room_id, "event", first)))) is None
    assert_ok(user.put(room_path(room_id, "redact", original, secrets.token_hex(8)), json={}))
    assert replacement(assert_ok(user.get(room_path(room_id, "event", original)))) is None


def test_an_edit_the_reader_may_not_see_is_not_bundled(user, new_user):
    departed = new_user()
    room_id = create_room(user, preset="public_chat")
    send_state(user, room_id, "m.room.history_visibility", {"history_visibility": "joined"})
    join(departed, room_id)
    original = send_message(user, room_id, "hello")
    seen = edit(user, room_id, original, "seen")
    assert_ok(departed.post(room_path(room_id, "leave"), json={}))
    unseen = edit(user, room_id, original, "after the leave")
    assert replacement(assert_ok(departed.get(room_path(room_id, "event", original))))["event_id"] == seen
    assert replacement(assert_ok(user.get(room_path(room_id, "event", original))))["event_id"] == unseen


# ---------------------------------------------------------------------------------------------
# References: the m.reference aggregation


def test_a_referenced_event_carries_its_references(user, new_user):
    room_id = create_room(user, preset="public_chat")
    parent = send_message(user, room_id, "parent")
    first = relate(user, room_id, parent, "m.reference")
    second = relate(user, room_id, parent, "m.reference", event_type="m.key.verification.done")
    redacted = relate(user, room_id, parent, "m.reference")
    assert_ok(user.put(room_path(room_id, "redact", redacted, secrets.token_hex(8)), json={}))
    # A reference from another room is not one of this room's event.
    elsewhere = create_room(user)
    relate(user, elsewhere, parent, "m.reference")
    expected = {"chunk": [{"event_id": first}, {"event_id": second}]}
    event = assert_ok(user.get(room_path(room_id, "event", parent)))
    assert event["unsigned"]["m.relations"] == {"m.reference": expected}, "oldest first, the redacted one left out"
    chunk = assert_ok(user.get(room_path(room_id, "messages"), params={"dir": "b", "limit": 20}))["chunk"]
    assert {e["event_id"]: e for e in chunk}[parent]["unsigned"]["m.relations"]["m.reference"] == expected
    assert "m.relations" not in {e["event_id"]: e for e in chunk}[first]["unsigned"]
    # A member who left before the second reference sees only the first.
    reader = new_user()
    join(reader, room_id)
    after_join = relate(user, room_id, parent, "m.reference")
    assert_ok(reader.post(room_path(room_id, "leave"), json={}))
    relate(user, room_id, parent, "m.reference")
    seen = assert_ok(reader.get(room_path(room_id, "event", parent)))["unsigned"]["m.relations"]["m.reference"]
    assert seen == {"chunk": [*expected["chunk"], {"event_id": after_join}]}
