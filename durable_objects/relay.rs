//! Fan-out through a tree of the objects being called, so that no invocation makes more than a
//! fixed number of calls, whatever the number of recipients.
//!
//! A caller with more recipients than [`width`] splits them into `width` groups and calls only
//! the first recipient's object of each group, handing it the rest of its group to relay. That
//! object serves its own recipient, answers, and then relays in the same way. A room of n
//! members is reached in about log_width(n) hops, each invocation making at most `width` calls.
//! A call that fails loses its group's relays, which (like any lost wake-up) delays syncs until
//! their timeout and never loses an event; a lost push is logged.

use worker::Env;

use crate::config::Config;

/// How many calls one invocation makes at most when it fans out: the `FANOUT_WIDTH` setting.
pub fn width(env: &Env) -> usize {
    Config::get(env).map_or(crate::config::DEFAULT_FANOUT_WIDTH, |c| c.fanout_width)
}

/// Splits `items` into at most `width` groups, each to be handed to its first item's object
/// with the rest to relay: one group per item when they are few enough to call directly.
pub fn groups<T>(items: Vec<T>, width: usize) -> Vec<Vec<T>> {
    let width = width.max(2);
    if items.len() <= width {
        return items.into_iter().map(|item| vec![item]).collect();
    }
    let size = items.len().div_ceil(width);
    let mut groups = Vec::with_capacity(width);
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        groups.push(items.by_ref().take(size).collect());
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the whole tree from one caller: every item is served once, and no invocation (the
    /// caller's, or any object's relaying) makes more than `width` calls.
    fn walk(items: Vec<u32>, width: usize) -> (Vec<u32>, usize, usize) {
        let (mut served, mut most_calls, mut depth) = (Vec::new(), 0, 0);
        let mut level = vec![items];
        while !level.is_empty() {
            depth += 1;
            let mut next = Vec::new();
            for relay in level {
                let groups = groups(relay, width);
                most_calls = most_calls.max(groups.len());
                for mut group in groups {
                    served.push(group.remove(0));
                    if !group.is_empty() {
                        next.push(group);
                    }
                }
            }
            level = next;
        }
        served.sort();
        (served, most_calls, depth)
    }

    #[test]
    fn every_recipient_once_and_no_invocation_over_the_width() {
        for (n, width, max_depth) in [(0, 32, 1), (1, 32, 1), (32, 32, 1), (33, 32, 2), (1_000, 32, 2), (10_000, 32, 3)]
        {
            let (served, most_calls, depth) = walk((0..n).collect(), width);
            assert_eq!(served, (0..n).collect::<Vec<_>>(), "n={n}");
            assert!(most_calls <= width, "n={n}: {most_calls} calls");
            assert!(depth <= max_depth, "n={n}: depth {depth}");
        }
        let (served, most_calls, _) = walk((0..40).collect(), 4);
        assert_eq!((served.len(), most_calls), (40, 4));
    }
}
