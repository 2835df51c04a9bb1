//! Rate limiting of login attempts (and password stages of user-interactive auth), per client
//! address and per account; of registrations, per address; of to-device messages, per sender.
//!
//! Each limited key is a leaky bucket in D1 (see `storage::rate_limits`): it holds at most
//! `burst` attempts and drains `per_second` of them each second, as Synapse's limiters do.

use crate::error::{ErrorKind, MatrixError, Result};
use crate::storage::{rate_limits, Db};
use crate::tokens::random_below;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub per_second: f64,
    pub burst: f64,
}

impl Rule {
    /// How long until a bucket at `level` has room for one more attempt.
    pub fn retry_after_ms(&self, level: f64) -> u64 {
        let excess = (level + 1.0 - self.burst).max(0.0);
        (excess / self.per_second * 1000.0).ceil() as u64
    }

    /// How long an untouched bucket takes to drain from full to empty.
    fn drain_ms(&self) -> u64 {
        (self.burst / self.per_second * 1000.0).ceil() as u64
    }
}

/// Counts one attempt by `subject` (an address, a user) in `scope` (what is limited), or refuses
/// it with `M_LIMIT_EXCEEDED`.
pub async fn check(db: &Db, rule: Rule, scope: &str, subject: &str, now_ms: u64) -> Result<()> {
    let key = format!("{scope}:{subject}");
    let bucket = rate_limits::attempt(db, &key, now_ms, rule.per_second / 1000.0, rule.burst).await?;
    // Now and then, forget buckets that have drained; keys of passing addresses pile up otherwise.
    if random_below(100) == 0 {
        db.run(rate_limits::delete_idle(db, scope, now_ms.saturating_sub(rule.drain_ms()))?).await?;
    }
    match bucket {
        Some(b) if !b.allowed() => {
            let retry_after_ms = rule.retry_after_ms(b.level);
            Err(MatrixError::new(ErrorKind::LimitExceeded { retry_after_ms }, "Too many requests; try again later")
                .into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_the_time_to_drain_one_place() {
        let rule = Rule { per_second: 0.5, burst: 3.0 };
        assert_eq!(rule.retry_after_ms(3.0), 2000);
        assert_eq!(rule.retry_after_ms(2.5), 1000);
        assert_eq!(rule.retry_after_ms(1.0), 0);
        assert_eq!(rule.drain_ms(), 6000);
    }
}
