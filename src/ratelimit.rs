//! Client-side request pacing: one adaptive rate limiter per Cognito quota category.
//!
//! Cognito's quotas are requests per second per account and Region, and over quota it answers
//! `TooManyRequestsException`. Retrying alone bounces off the quota; pacing stays under it. The
//! limiter hands out evenly spaced send slots at its current rate (no burst after idle time,
//! no slot reserved ahead, so a new rate applies to the next request), starts at the configured
//! ceiling, cuts the rate by 30% on each throttle and raises it again
//! additively (about one request per second, per second) while calls succeed: the classic AIMD
//! scheme that settles just below whatever share of the quota other clients leave free.
//! `governor` and similar crates pace at a fixed rate; the adaptive part is why this is our own.

use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The slowest the limiter ever goes after throttling.
const MIN_RPS: f64 = 0.5;
/// The factor applied to the rate on each throttle.
const DECREASE: f64 = 0.7;

/// How late a waiter may wake and still take its slot's ideal time (so timer lateness does not
/// slow the pace), at most a quarter of the interval.
const WAKE_TOLERANCE: Duration = Duration::from_millis(2);

#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<State>,
    /// Waiters take their turn in the order they came (tokio's mutex is fair): one at a time
    /// waits for the next slot.
    turn: tokio::sync::Mutex<()>,
    /// Wakes the waiter when the rate changes, so a raised rate applies at once.
    changed: Notify,
}

#[derive(Debug)]
struct State {
    max_rps: f64,
    rps: f64,
    /// When the last slot was given out: the next one is one interval (at the current rate)
    /// later. Slots are not reserved ahead, so a new rate applies to the very next one.
    last_slot: Option<Instant>,
}

impl RateLimiter {
    pub fn new(max_rps: f64) -> Self {
        let max_rps = max_rps.max(MIN_RPS);
        RateLimiter {
            state: Mutex::new(State {
                max_rps,
                rps: max_rps,
                last_slot: None,
            }),
            turn: tokio::sync::Mutex::new(()),
            changed: Notify::new(),
        }
    }

    /// Waits for the next send slot.
    pub async fn acquire(&self) {
        let _turn = self.turn.lock().await;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wake = {
                let mut s = self.state.lock().expect("rate limiter lock");
                let now = Instant::now();
                let interval = Duration::from_secs_f64(1.0 / s.rps);
                match s.last_slot.map(|last| last + interval) {
                    Some(next) if next > now => next,
                    next => {
                        // Woken a little late: the slot keeps its ideal time. After idle
                        // time: now (no burst).
                        let tolerance = WAKE_TOLERANCE.min(interval / 4);
                        s.last_slot = Some(next.map_or(now, |n| n.max(now - tolerance)));
                        return;
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = changed => {}
            }
        }
    }

    /// A call was throttled: slow down.
    pub fn on_throttle(&self) {
        {
            let mut s = self.state.lock().expect("rate limiter lock");
            s.rps = (s.rps * DECREASE).max(MIN_RPS);
        }
        self.changed.notify_waiters();
    }

    /// A call went through: creep back up towards the ceiling.
    pub fn on_success(&self) {
        let mut s = self.state.lock().expect("rate limiter lock");
        if s.rps < s.max_rps {
            s.rps = (s.rps + 1.0 / s.rps).min(s.max_rps);
        }
    }

    /// Moves the ceiling (for instance to the rate the account has bought); the current rate
    /// starts there.
    pub fn set_ceiling(&self, max_rps: f64) {
        {
            let mut s = self.state.lock().expect("rate limiter lock");
            s.max_rps = max_rps.max(MIN_RPS);
            s.rps = s.max_rps;
        }
        self.changed.notify_waiters();
    }

    /// The highest rate the limiter goes to.
    pub fn ceiling(&self) -> f64 {
        self.state.lock().expect("rate limiter lock").max_rps
    }

    /// The current rate, in requests per second.
    pub fn rate(&self) -> f64 {
        self.state.lock().expect("rate limiter lock").rps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_evenly_at_the_ceiling() {
        let limiter = RateLimiter::new(30.0);
        let start = Instant::now();
        for _ in 0..61 {
            limiter.acquire().await;
        }
        // 61 slots at 30/s: the first at once, the last two seconds later.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((elapsed - 2.0).abs() < 0.01, "{elapsed}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_burst_after_idle() {
        let limiter = RateLimiter::new(10.0);
        limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire().await;
        }
        let elapsed = start.elapsed().as_secs_f64();
        assert!((elapsed - 0.2).abs() < 0.01, "{elapsed}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_raised_ceiling_applies_to_those_already_waiting() {
        let limiter = std::sync::Arc::new(RateLimiter::new(10.0));
        let start = Instant::now();
        let waiting: Vec<_> = (0..5)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move { limiter.acquire().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(1)).await;
        limiter.set_ceiling(100.0);
        for w in waiting {
            w.await.unwrap();
        }
        // At 10/s the fifth slot would come 0.4 s in; at 100/s, 0.04 s.
        let elapsed = start.elapsed().as_secs_f64();
        assert!(elapsed < 0.05, "{elapsed}");
    }

    #[test]
    fn throttle_cuts_and_success_recovers() {
        let limiter = RateLimiter::new(30.0);
        limiter.on_throttle();
        assert!((limiter.rate() - 21.0).abs() < 1e-9);
        for _ in 0..10 {
            limiter.on_throttle();
        }
        assert!(limiter.rate() >= MIN_RPS);
        assert!(limiter.rate() < 1.0);
        for _ in 0..2000 {
            limiter.on_success();
        }
        assert_eq!(limiter.rate(), 30.0);
        limiter.set_ceiling(60.0);
        assert_eq!((limiter.rate(), limiter.ceiling()), (60.0, 60.0));
    }
}
