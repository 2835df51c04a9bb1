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
}
