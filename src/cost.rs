//! What one invocation costs against the platform's per-invocation limits: D1 queries, Durable
//! Object calls and outbound fetches. They are counted where they are made (the `Db` wrapper,
//! the Durable Object stubs, the outbound fetches) and shown in a `Server-Timing` header when
//! the `COST_HEADERS` setting is on.
//!
//! An isolate interleaves the requests it serves at their await points, so a count goes to the
//! request whose future is being polled: [`Measured`] makes its request's counter the current one
//! for the length of each poll. Work handed to `wait_until` runs after the answer and is not in
//! its header.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// One invocation's counts.
#[derive(Debug, Default)]
pub struct Counts {
    /// D1 statements, a batch's each counted (the conservative reading of the query limit).
    statements: Cell<u32>,
    /// D1 round trips: a lone statement or a whole batch.
    calls: Cell<u32>,
    durable_objects: Cell<u32>,
    fetches: Cell<u32>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Counts>>> = const { RefCell::new(None) };
}

fn count(add: impl FnOnce(&Counts)) {
    CURRENT.with(|current| {
        if let Some(counts) = current.borrow().as_ref() {
            add(counts);
        }
    });
}

/// A D1 call of `statements` statements (1 for a lone query).
pub fn d1(statements: usize) {
    count(|c| {
        c.statements.set(c.statements.get() + statements as u32);
        c.calls.set(c.calls.get() + 1);
    });
}

/// A call to a Durable Object.
pub fn durable_object() {
    count(|c| c.durable_objects.set(c.durable_objects.get() + 1));
}

/// An outbound HTTP request.
pub fn fetch() {
    count(|c| c.fetches.set(c.fetches.get() + 1));
}

impl Counts {
    /// The `Server-Timing` header's value.
    pub fn server_timing(&self) -> String {
        format!(
            "d1;desc=\"{} queries, {} calls\", do;desc=\"{} calls\", fetch;desc=\"{}\"",
            self.statements.get(),
            self.calls.get(),
            self.durable_objects.get(),
            self.fetches.get()
        )
    }
}

/// A future whose D1, Durable Object and fetch calls are counted in `counts`.
pub struct Measured<F> {
    inner: Pin<Box<F>>,
    counts: Rc<Counts>,
}

/// Counts what `future` does while it runs.
pub fn measure<F: Future>(future: F) -> (Measured<F>, Rc<Counts>) {
    let counts = Rc::new(Counts::default());
    (Measured { inner: Box::pin(future), counts: counts.clone() }, counts)
}

impl<F: Future> Future for Measured<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let outer = CURRENT.with(|current| current.replace(Some(self.counts.clone())));
        let poll = self.inner.as_mut().poll(cx);
        CURRENT.with(|current| *current.borrow_mut() = outer);
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::{join, poll_fn};

    /// Yields once, as an await on I/O would.
    async fn yield_now() {
        let mut yielded = false;
        poll_fn(|cx| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await
    }

    #[test]
    fn interleaved_requests_count_their_own_calls() {
        let (a, a_counts) = measure(async {
            d1(3);
            yield_now().await;
            durable_object();
            fetch();
        });
        let (b, b_counts) = measure(async {
            d1(1);
            yield_now().await;
            d1(1);
        });
        futures::executor::block_on(join(a, b));
        d1(5); // outside any request: counted nowhere
        assert_eq!(a_counts.server_timing(), r#"d1;desc="3 queries, 1 calls", do;desc="1 calls", fetch;desc="1""#);
        assert_eq!(b_counts.server_timing(), r#"d1;desc="2 queries, 2 calls", do;desc="0 calls", fetch;desc="0""#);
    }

    /// CPU time of this thread so far, in ms: immune to other load on the machine.
    fn cpu_ms() -> f64 {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
        stat.split_whitespace().next().and_then(|ns| ns.parse::<f64>().ok()).unwrap_or(0.0) / 1e6
    }

    /// The mean CPU time of `f` over `runs` runs, in ms.
    fn per_run(runs: u32, mut f: impl FnMut()) -> f64 {
        let start = cpu_ms();
        for _ in 0..runs {
            f();
        }
        (cpu_ms() - start) / f64::from(runs)
    }

    /// The native CPU cost of the pure work in the heaviest requests, against the free plan's
    /// 10 ms: the writer's build, sign and authorize of an event in a room of 1,000 members,
    /// push rules for those members, and the client format of the 1,000 events of a
    /// `/messages?limit=1000`. Run by `npm run bench` (release build); workerd reports no CPU
    /// time locally, and Wasm in V8 takes about 1.5 to 2 times as long (README).
    #[test]
    #[ignore]
    fn request_cpu_cost() {
        use crate::push::evaluate::{evaluate, PushEvent, RoomSnapshot};
        use crate::push::rules::Recipients;
        use crate::room::client_format::{client_event, Reader};
        use crate::room::pdu::EventTemplate;
        use crate::room::signing::{new_seed, ServerKey};
        use crate::room::state::{create_event, RoomState};
        use crate::room::versions::RoomVersion;
        use crate::storage::events::StoredEvent;
        use ruma_common::{CanonicalJsonObject, OwnedUserId, UserId};
        use serde_json::json;

        let template = |kind: &str, state_key: Option<&str>, sender: &str, content: serde_json::Value| EventTemplate {
            kind: kind.into(),
            state_key: state_key.map(Into::into),
            sender: OwnedUserId::try_from(sender).unwrap(),
            content: serde_json::from_value::<CanonicalJsonObject>(content).unwrap(),
            redacts: None,
        };
        let key = ServerKey::from_seed("ed25519:bench", &new_seed().unwrap()).unwrap();
        let version = RoomVersion::parse("12").unwrap();
        let owner = "@owner:hs";
        let create = template("m.room.create", Some(""), owner, json!({"room_version": "12"}));
        let (room_id, create) = create_event(&version, &create, || unreachable!(), 1, &key, "hs").unwrap();
        let mut room = RoomState::new(version.clone(), room_id.clone());
        room.apply(create);
        let mut events = Vec::new();
        for step in [
            template("m.room.member", Some(owner), owner, json!({"membership": "join"})),
            template("m.room.join_rules", Some(""), owner, json!({"join_rule": "public"})),
        ] {
            let pdu = room.prepare(&step, 2, &key, "hs").unwrap();
            room.apply(pdu);
        }
        let join_cpu = per_run(1, || {
            for i in 0..999 {
                let user = format!("@member{i}:hs");
                let join = template("m.room.member", Some(&user), &user, json!({"membership": "join"}));
                let pdu = room.prepare(&join, 3, &key, "hs").unwrap();
                events.push(pdu.clone());
                room.apply(pdu);
            }
        }) / 999.0;
        let message = template("m.room.message", None, owner, json!({"msgtype": "m.text", "body": "to 1,000"}));
        let mut sent = None;
        let send_cpu = per_run(100, || sent = Some(room.prepare(&message, 4, &key, "hs").unwrap()));
        let sent = sent.unwrap();
        println!("cpu: build, sign and authorize a message in a room of 1,000 members: {send_cpu:.2} ms");
        println!("cpu: the same for a join into that room (mean over the 999 joins): {join_cpu:.2} ms");

        let owner_id = UserId::parse(owner).unwrap();
        let push_cpu = per_run(20, || {
            let snapshot = RoomSnapshot::of(&room, &[&owner_id]);
            let event = PushEvent::of(&sent, 5);
            let recipients = Recipients { rules: Default::default(), ignored: Default::default() };
            let decisions = futures::executor::block_on(evaluate(&snapshot, &event, &recipients));
            assert_eq!(decisions.len(), 999);
        });
        println!("cpu: push rules of a message for 999 members on the default rules: {push_cpu:.2} ms");

        let stored: Vec<StoredEvent> = events
            .iter()
            .enumerate()
            .map(|(i, pdu)| StoredEvent {
                stream_ordering: i as f64,
                event_id: pdu.event_id.to_string(),
                room_id: room_id.to_string(),
                kind: pdu.kind.to_string(),
                state_key: pdu.state_key.clone(),
                sender: pdu.sender.to_string(),
                origin_server_ts: 3.0,
                membership: Some("join".into()),
                txn_device_id: None,
                txn_id: None,
                prev_state: None,
                json: pdu.json.clone(),
                redaction_json: None,
                redaction_id: None,
                sender_erased: 0.0,
            })
            .collect();
        let reader = Reader { user_id: owner, device_id: None, joined: None };
        let format_cpu = per_run(5, || {
            let chunk: Vec<_> = stored.iter().map(|e| client_event(e, &version, reader, 10)).collect();
            assert!(!serde_json::to_string(&chunk).unwrap().is_empty());
        });
        println!("cpu: client format and JSON of 999 events (a /messages?limit=1000 page): {format_cpu:.2} ms");
    }
}
