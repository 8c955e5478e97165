//! Client-side request pacing: one adaptive rate limiter per Cognito quota category.
//!
//! Cognito's quotas are requests per second per account and Region, shared by every client of
//! the account, and over quota it answers `TooManyRequestsException`. Retrying alone bounces
//! off the quota; pacing stays under it. The limiter hands out evenly spaced send slots at its
//! current rate (no burst after idle time, no slot reserved ahead, so a new rate applies to the
//! next request) and adapts the rate as TCP's CUBIC adapts its window (RFC 9438):
//!
//! - a throttle cuts the rate by 30%, once per overshoot: a throttle answering a request sent
//!   before the last cut is the same overshoot and cuts nothing more;
//! - between throttles the rate grows back along a cubic curve in time: quickly at first,
//!   flattening out at the rate where the last throttle came (3 seconds after the cut, times
//!   the share below), then probing beyond it ever faster, up to the ceiling (the category's
//!   quota, or `--max-rps`).
//!
//! So processes that share one quota settle just under it together with few throttled calls,
//! and one left alone regains the whole quota. A shard of `n` assumes the other shards run at
//! the same time ([`RateLimiter::share`]): it starts at `1/n` of the ceiling, so `n` shards
//! started together begin at the quota rather than `n` times it, and it climbs back from a
//! cut `n^0.75` times more slowly, so that `n` processes overshoot together about as rarely
//! as one. A shard running
//! alone still reaches the ceiling: after 18 seconds for 2 shards, 23 for 3, 34 for 8.
//! `governor` and similar crates pace at a fixed rate; the adaptive part is why this is our own.

use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The slowest the limiter ever goes after throttling.
const MIN_RPS: f64 = 0.5;
/// The factor applied to the rate on a throttle.
const DECREASE: f64 = 0.7;
/// Seconds from a cut back to the rate where it came, for one process alone. For `n` processes
/// assumed to share the quota it is `n^0.75` times longer: the more share it, the slower each
/// climbs back, so that together they overshoot about as rarely as one does.
const SPAN: f64 = 3.0;
const SHARE_EXPONENT: f64 = 0.75;
/// Past the plateau the rate probes on this time scale whatever the share: 130% of the
/// plateau 12 s after it, 340% after 24 s. A shard whose siblings have finished takes their
/// part of the quota back within about half a minute.
const PROBE_SPAN: f64 = 12.0;
/// The longest a waiter sleeps before it looks at the (growing) rate again.
const RECHECK: Duration = Duration::from_millis(100);

/// How late a waiter may wake and still take its slot's ideal time (so timer lateness does not
/// slow the pace), at most a quarter of the interval.
const WAKE_TOLERANCE: Duration = Duration::from_millis(2);

#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<State>,
    /// Waiters take their turn in the order they came (tokio's mutex is fair): one at a time
    /// waits for the next slot.
    turn: tokio::sync::Mutex<()>,
    /// Wakes the waiter when the rate changes, so a new rate applies at once.
    changed: Notify,
}

/// When a request was given its send slot; a throttle of it is reported with it.
pub type Slot = Instant;

#[derive(Debug)]
struct State {
    max_rps: f64,
    /// The number of processes assumed to share the quota at the start (1, or a shard's `n`).
    share: f64,
    /// The plateau of the current growth curve: the rate at the last throttle, or the
    /// starting rate.
    plateau: f64,
    /// When the current growth curve began: the last cut, or the start.
    epoch: Instant,
    /// Seconds from `epoch` until the curve reaches `plateau`.
    k: f64,
    /// When the rate was last cut: throttles of requests sent before it are the same overshoot.
    last_cut: Option<Instant>,
    /// When the last slot was given out: the next one is one interval (at the current rate)
    /// later. Slots are not reserved ahead, so a new rate applies to the very next one.
    last_slot: Option<Instant>,
}

impl State {
    /// Seconds from a cut back to its plateau.
    fn span(&self) -> f64 {
        SPAN * self.share.powf(SHARE_EXPONENT)
    }

    /// The rate at `now`, on the cubic curve through the plateau, within [MIN, ceiling]: from
    /// a cut at 70% of the plateau it climbs steeply, flattens out at the plateau one span
    /// later, and then probes beyond it ever faster.
    fn rate(&self, now: Instant) -> f64 {
        let t = now.saturating_duration_since(self.epoch).as_secs_f64();
        let span = if t < self.k { self.span() } else { PROBE_SPAN };
        let x = (t - self.k) / span;
        let grown = self.plateau * (1.0 + (1.0 - DECREASE) * x.powi(3));
        grown.clamp(MIN_RPS.min(self.max_rps), self.max_rps)
    }

    /// Starts a new curve at `rate` that only grows from there.
    fn start_at(&mut self, now: Instant, rate: f64) {
        self.plateau = rate.clamp(MIN_RPS.min(self.max_rps), self.max_rps);
        self.k = 0.0;
        self.epoch = now;
    }
}

impl RateLimiter {
    pub fn new(max_rps: f64) -> Self {
        let max_rps = max_rps.max(MIN_RPS);
        RateLimiter {
            state: Mutex::new(State {
                max_rps,
                share: 1.0,
                plateau: max_rps,
                epoch: Instant::now(),
                k: 0.0,
                last_cut: None,
                last_slot: None,
            }),
            turn: tokio::sync::Mutex::new(()),
            changed: Notify::new(),
        }
    }

    /// Starts at `1/n` of the ceiling and grows from there: for one of `n` shards, which may
    /// run at the same time as the others.
    pub fn share(&self, n: u32) {
        {
            let mut s = self.state.lock().expect("rate limiter lock");
            s.share = f64::from(n.max(1));
            let start = s.max_rps / s.share;
            s.start_at(Instant::now(), start);
        }
        self.changed.notify_waiters();
    }

    /// Waits for the next send slot, and returns when it was given.
    pub async fn acquire(&self) -> Slot {
        let _turn = self.turn.lock().await;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wake = {
                let mut s = self.state.lock().expect("rate limiter lock");
                let now = Instant::now();
                let interval = Duration::from_secs_f64(1.0 / s.rate(now));
                match s.last_slot.map(|last| last + interval) {
                    Some(next) if next > now => next.min(now + RECHECK),
                    next => {
                        // Woken a little late: the slot keeps its ideal time. After idle
                        // time: now (no burst).
                        let tolerance = WAKE_TOLERANCE.min(interval / 4);
                        s.last_slot = Some(next.map_or(now, |n| n.max(now - tolerance)));
                        return now;
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = changed => {}
            }
        }
    }

    /// The request given `sent` was throttled: slow down, unless the rate was already cut
    /// since it was sent.
    pub fn on_throttle(&self, sent: Slot) {
        {
            let mut s = self.state.lock().expect("rate limiter lock");
            if s.last_cut.is_some_and(|cut| sent < cut) {
                return;
            }
            let now = Instant::now();
            let rate = s.rate(now);
            s.plateau = rate;
            s.k = s.span();
            s.epoch = now;
            s.last_cut = Some(now);
        }
        self.changed.notify_waiters();
    }

    /// Moves the ceiling (for instance to the rate the account has bought); the rate starts
    /// again at the ceiling's share.
    pub fn set_ceiling(&self, max_rps: f64) {
        {
            let mut s = self.state.lock().expect("rate limiter lock");
            s.max_rps = max_rps.max(MIN_RPS);
            let start = s.max_rps / s.share;
            s.start_at(Instant::now(), start);
        }
        self.changed.notify_waiters();
    }

    /// The highest rate the limiter goes to.
    pub fn ceiling(&self) -> f64 {
        self.state.lock().expect("rate limiter lock").max_rps
    }

    /// The current rate, in requests per second.
    pub fn rate(&self) -> f64 {
        self.state
            .lock()
            .expect("rate limiter lock")
            .rate(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
        let limiter = Arc::new(RateLimiter::new(10.0));
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

    #[tokio::test(start_paused = true)]
    async fn a_throttle_cuts_once_per_overshoot_and_the_rate_grows_back() {
        let limiter = RateLimiter::new(30.0);
        let before = limiter.acquire().await;
        tokio::time::advance(Duration::from_millis(10)).await;
        limiter.on_throttle(before);
        assert!((limiter.rate() - 21.0).abs() < 0.01, "{}", limiter.rate());
        // Answers to requests sent before the cut are the same overshoot.
        limiter.on_throttle(before);
        assert!((limiter.rate() - 21.0).abs() < 0.01, "{}", limiter.rate());
        // Steep at first, flat near the plateau one span (3 s) after the cut.
        tokio::time::advance(Duration::from_secs(1)).await;
        let early = limiter.rate();
        assert!(early > 26.0 && early < 30.0, "{early}");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!((limiter.rate() - 30.0).abs() < 0.01, "{}", limiter.rate());
        // Requests sent after each cut, throttled: cut again each time, never below the floor.
        for _ in 0..40 {
            let sent = Instant::now();
            tokio::time::advance(Duration::from_millis(1)).await;
            limiter.on_throttle(sent);
        }
        assert_eq!(limiter.rate(), MIN_RPS);
        // Even from the floor, back at the ceiling within 80 s.
        tokio::time::advance(Duration::from_secs(80)).await;
        assert_eq!(limiter.rate(), 30.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_share_starts_low_and_reaches_the_ceiling_alone() {
        let limiter = RateLimiter::new(30.0);
        limiter.share(8);
        assert!((limiter.rate() - 3.75).abs() < 0.01, "{}", limiter.rate());
        tokio::time::advance(Duration::from_secs(20)).await;
        let mid = limiter.rate();
        assert!(mid > 5.0 && mid < 12.0, "{mid}");
        tokio::time::advance(Duration::from_secs(15)).await;
        assert_eq!(limiter.rate(), 30.0);
        // A new ceiling starts again at its share.
        limiter.set_ceiling(80.0);
        assert!((limiter.rate() - 10.0).abs() < 0.01, "{}", limiter.rate());
    }

    /// One account's quota as Cognito keeps it (and the test layer): a token bucket of `rate`
    /// a second that holds one second's worth.
    struct Bucket {
        rate: f64,
        state: Mutex<(f64, Instant)>,
    }

    impl Bucket {
        fn take(&self) -> bool {
            let mut s = self.state.lock().unwrap();
            let now = Instant::now();
            s.0 = (s.0 + (now - s.1).as_secs_f64() * self.rate).min(self.rate);
            s.1 = now;
            if s.0 >= 1.0 {
                s.0 -= 1.0;
                true
            } else {
                false
            }
        }
    }

    /// `work.len()` processes started together against one quota of 30 requests a second,
    /// process `i` needing `work[i]` successful requests, each with 8 in flight, 60 ms a
    /// round trip, and backing off 0.1–0.2 s after a throttle, as cbr does. Each starts at
    /// its share when `shared`. Returns the time until the last finished, against the
    /// quota's ceiling for all their requests, and the fraction of requests throttled.
    async fn share_one_quota(work: &[usize], shared: bool) -> (f64, f64) {
        const QUOTA: f64 = 30.0;
        let bucket = Arc::new(Bucket {
            rate: QUOTA,
            state: Mutex::new((QUOTA, Instant::now())),
        });
        let sent = Arc::new(AtomicUsize::new(0));
        let throttled = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (i, &calls) in work.iter().enumerate() {
            let limiter = Arc::new(RateLimiter::new(QUOTA));
            if shared {
                limiter.share(work.len() as u32);
            }
            let left = Arc::new(AtomicUsize::new(calls));
            for j in 0..8u64 {
                let (limiter, left, bucket) = (limiter.clone(), left.clone(), bucket.clone());
                let (sent, throttled) = (sent.clone(), throttled.clone());
                tasks.push(tokio::spawn(async move {
                    // Spread so that no two requests are answered in the same instant.
                    let jitter = (i as u64 * 8 + j) % 7;
                    while left.load(Ordering::SeqCst) > 0 {
                        let slot = limiter.acquire().await;
                        sent.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        let ok = bucket.take();
                        tokio::time::sleep(Duration::from_millis(30 + jitter)).await;
                        if ok {
                            let _ = left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                n.checked_sub(1)
                            });
                        } else {
                            throttled.fetch_add(1, Ordering::SeqCst);
                            limiter.on_throttle(slot);
                            tokio::time::sleep(Duration::from_millis(100 + 15 * jitter)).await;
                        }
                    }
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        let ceiling = work.iter().sum::<usize>() as f64 / QUOTA;
        let took = start.elapsed().as_secs_f64();
        let throttled =
            throttled.load(Ordering::SeqCst) as f64 / sent.load(Ordering::SeqCst) as f64;
        (took / ceiling, throttled)
    }

    /// Runs `work` as shards started together and holds them to the bar: within 1.11× of the
    /// shared ceiling, at most `max_throttled` of their calls throttled.
    async fn assert_shared(what: &str, work: &[usize], max_throttled: f64) {
        let (slowdown, throttled) = share_one_quota(work, true).await;
        eprintln!(
            "{what}: {slowdown:.3}× the ceiling, {:.2}% throttled",
            throttled * 100.0
        );
        assert!(slowdown <= 1.11, "{what}: {slowdown:.3}× the ceiling");
        assert!(
            throttled <= max_throttled,
            "{what}: {:.2}% throttled",
            throttled * 100.0
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shards_with_equal_work_share_the_quota() {
        assert_shared("2 equal shards", &[3_000; 2], 0.02).await;
        assert_shared("3 equal shards", &[3_000; 3], 0.02).await;
        // Eight processes probing one quota overshoot it more often: 2.2% of the calls here.
        assert_shared("8 equal shards", &[3_000; 8], 0.025).await;
    }

    #[tokio::test(start_paused = true)]
    async fn shards_with_uneven_work_share_the_quota_and_the_last_takes_it_all() {
        // Memberships split by group owner make shards uneven: these are the UserList calls of
        // the shards of the benchmark's 60,000-user pool in 20 groups.
        assert_shared("3 shards", &[906, 717, 656], 0.02).await;
        let eight = [316, 316, 125, 512, 189, 191, 251, 380];
        assert_shared("8 shards", &eight, 0.02).await;
        assert_shared(
            "3 shards, one with 4× the work",
            &[1_000, 1_000, 4_000],
            0.02,
        )
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn one_run_alone_keeps_to_the_quota() {
        let (slowdown, throttled) = share_one_quota(&[6_000], false).await;
        eprintln!(
            "alone: {slowdown:.3}× the ceiling, {:.2}% throttled",
            throttled * 100.0
        );
        assert!(slowdown <= 1.0 / 0.9, "{slowdown:.3}× the ceiling");
        assert!(throttled <= 0.02, "{:.2}% throttled", throttled * 100.0);
    }

    #[tokio::test(start_paused = true)]
    async fn processes_that_do_not_know_of_each_other_still_settle() {
        // Started at the full ceiling each (builds without shares, or unrelated clients).
        let (slowdown, throttled) = share_one_quota(&[3_000; 3], false).await;
        eprintln!(
            "unshared: {slowdown:.3}× the ceiling, {:.2}% throttled",
            throttled * 100.0
        );
        assert!(slowdown <= 1.11, "{slowdown:.3}× the ceiling");
        assert!(throttled <= 0.05, "{:.2}% throttled", throttled * 100.0);
    }
}
