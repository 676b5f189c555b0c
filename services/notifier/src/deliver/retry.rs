//! Retries with exponential backoff and full jitter, a bounded number of
//! attempts, and a report of every attempt so the caller can publish a
//! delivery record for each.
//!
//! Generic over the attempt: it must not know channels, recipients or the
//! bus. A permanent error ends the tries at once.

use std::{future::Future, time::Duration};

use nisvakt_proto::v1::{Alert, DeliveryOutcome, DeliveryResult, Recipient};
use prost_types::Timestamp;

use super::{Channel, Error, Target};

/// How often and how patiently to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 counts as 1).
    pub max_attempts: u32,
    /// The ceiling of the first wait; it doubles after each failure.
    pub base_delay: Duration,
    /// The ceiling never grows past this.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Six attempts over about a minute at most: long enough to ride out a
    /// restarting relay, short enough that escalation is not held up.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the wait after failed attempt `attempt` (1-based):
    /// `base · 2^(attempt−1)`, capped at `max_delay`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.base_delay
            .checked_mul(1u32 << doublings)
            .map_or(self.max_delay, |d| d.min(self.max_delay))
    }

    /// Full jitter: a wait drawn uniformly from `[0, ceiling]`, so many
    /// failing deliveries do not retry in lock-step. `unit` is the draw in
    /// `[0, 1]` (clamped).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        self.ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Accepted by the receiver.
    Delivered,
    /// Failed; the next attempt follows after this wait.
    Retrying {
        /// The wait before the next attempt.
        after: Duration,
    },
    /// Failed for good: permanent, or the last attempt.
    Failed,
}

/// One attempt, as reported to the caller's record callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// What came of it.
    pub outcome: AttemptOutcome,
    /// The error, when it failed.
    pub error: Option<Error>,
}

impl Attempt {
    /// The wire outcome of this attempt.
    pub fn delivery_outcome(&self) -> DeliveryOutcome {
        match self.outcome {
            AttemptOutcome::Delivered => DeliveryOutcome::Delivered,
            AttemptOutcome::Retrying { .. } => DeliveryOutcome::Retrying,
            AttemptOutcome::Failed => DeliveryOutcome::Failed,
        }
    }

    /// The delivery record to publish on `nis.v1.delivery.<alert_id>.<channel>`.
    pub fn delivery_result(&self, alert: &Alert, target: &Target, at: Timestamp) -> DeliveryResult {
        DeliveryResult {
            alert_id: alert.id.clone(),
            channel: target.channel().to_owned(),
            target: target.address().to_owned(),
            attempt: self.number,
            outcome: self.delivery_outcome() as i32,
            error: self
                .error
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            at: Some(at),
            level: alert.level,
        }
    }
}

/// Runs `attempt` (given the attempt number) until it succeeds, fails
/// permanently, or `policy.max_attempts` are spent, waiting with backoff
/// and full jitter in between. `record` is awaited after every attempt,
/// before any wait. Returns the number of attempts on success, the last
/// error otherwise.
pub async fn with_retry<Op, OpFut, Rec, RecFut>(
    policy: &RetryPolicy,
    mut attempt: Op,
    mut record: Rec,
) -> Result<u32, Error>
where
    Op: FnMut(u32) -> OpFut,
    OpFut: Future<Output = Result<(), Error>>,
    Rec: FnMut(Attempt) -> RecFut,
    RecFut: Future<Output = ()>,
{
    let max = policy.max_attempts.max(1);
    let mut number = 1;
    loop {
        match attempt(number).await {
            Ok(()) => {
                record(Attempt {
                    number,
                    outcome: AttemptOutcome::Delivered,
                    error: None,
                })
                .await;
                return Ok(number);
            }
            Err(error) if error.is_permanent() || number >= max => {
                record(Attempt {
                    number,
                    outcome: AttemptOutcome::Failed,
                    error: Some(error.clone()),
                })
                .await;
                return Err(error);
            }
            Err(error) => {
                let after = policy.delay(number, rand::random::<f64>());
                record(Attempt {
                    number,
                    outcome: AttemptOutcome::Retrying { after },
                    error: Some(error),
                })
                .await;
                tokio::time::sleep(after).await;
                number += 1;
            }
        }
    }
}

/// [`with_retry`] over a [`Channel`]: the usual call of the service loop.
pub async fn deliver_with_retry<Rec, RecFut>(
    channel: &dyn Channel,
    alert: &Alert,
    recipient: &Recipient,
    policy: &RetryPolicy,
    record: Rec,
) -> Result<u32, Error>
where
    Rec: FnMut(Attempt) -> RecFut,
    RecFut: Future<Output = ()>,
{
    with_retry(policy, |_| channel.deliver(alert, recipient), record).await
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        }
    }

    #[test]
    fn the_ceiling_doubles_up_to_the_cap_and_jitter_stays_under_it() {
        let p = policy(10);
        let ceilings: Vec<u128> = (1..=6).map(|a| p.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.ceiling(u32::MAX), Duration::from_millis(1000));
        assert_eq!(p.delay(3, 0.0), Duration::ZERO);
        assert_eq!(p.delay(3, 0.5), Duration::from_millis(200));
        assert_eq!(p.delay(3, 7.0), Duration::from_millis(400));
    }

    async fn run(outcomes: Vec<Result<(), Error>>, max: u32) -> (Result<u32, Error>, Vec<Attempt>) {
        let outcomes = Arc::new(Mutex::new(outcomes.into_iter()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let result = with_retry(
            &policy(max),
            |_| {
                let next = outcomes.lock().expect("lock").next();
                async move { next.unwrap_or(Ok(())) }
            },
            |a| {
                seen.lock().expect("lock").push(a);
                std::future::ready(())
            },
        )
        .await;
        let seen = seen.lock().expect("lock").clone();
        (result, seen)
    }

    fn transient() -> Result<(), Error> {
        Err(Error::Transient("503".into()))
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_and_each_attempt_is_reported() {
        let (result, seen) = run(vec![transient(), transient(), Ok(())], 5).await;
        assert_eq!(result, Ok(3));
        let outcomes: Vec<DeliveryOutcome> = seen.iter().map(Attempt::delivery_outcome).collect();
        assert_eq!(
            outcomes,
            [
                DeliveryOutcome::Retrying,
                DeliveryOutcome::Retrying,
                DeliveryOutcome::Delivered
            ]
        );
        assert_eq!(seen.iter().map(|a| a.number).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_is_not_retried() {
        let (result, seen) = run(vec![Err(Error::Permanent("400".into()))], 5).await;
        assert_eq!(result, Err(Error::Permanent("400".into())));
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].outcome, AttemptOutcome::Failed);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_bounded() {
        let (result, seen) = run(vec![transient(), transient(), transient(), Ok(())], 3).await;
        assert!(result.is_err_and(|e| !e.is_permanent()));
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[2].outcome, AttemptOutcome::Failed);
    }

    #[test]
    fn an_attempt_becomes_a_delivery_record() {
        let alert = Alert {
            id: "alt_1".into(),
            level: 2,
            ..Alert::default()
        };
        let attempt = Attempt {
            number: 2,
            outcome: AttemptOutcome::Retrying {
                after: Duration::from_secs(1),
            },
            error: Some(Error::Transient("HTTP 503".into())),
        };
        let record = attempt.delivery_result(
            &alert,
            &Target::Webhook("teams".into()),
            Timestamp {
                seconds: 1,
                nanos: 0,
            },
        );
        assert_eq!(record.channel, "webhook");
        assert_eq!(record.target, "teams");
        assert_eq!(record.attempt, 2);
        assert_eq!(record.level, 2);
        assert_eq!(record.outcome(), DeliveryOutcome::Retrying);
        assert_eq!(record.error, "transient failure: HTTP 503");
    }
}
