//! Progress on stderr: a bar on a terminal; off a terminal (CI logs), a plain line every few
//! seconds at info level. stdout is never touched.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the plain progress line is logged.
const LOG_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    done: Arc<AtomicU64>,
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// `verb` completes "N users …" (e.g. "backed up"); `total` is an estimate, if known.
    pub fn start(verb: &'static str, total: Option<u64>, enabled: bool) -> Progress {
        Progress::start_at(verb, total, 0, enabled)
    }

    /// Progress that starts with `already` users done by an earlier run (a resumed backup): the
    /// rate and the time left count only this run's.
    pub fn start_at(
        verb: &'static str,
        total: Option<u64>,
        already: u64,
        enabled: bool,
    ) -> Progress {
        let done = Arc::new(AtomicU64::new(already));
        if !enabled {
            return Progress {
                done,
                bar: None,
                ticker: None,
            };
        }
        if std::io::stderr().is_terminal() {
            // The bar counts this run's users, so its rate and ETA are this run's.
            let left = total.map(|t| t.saturating_sub(already));
            let bar = ProgressBar::with_draw_target(left, ProgressDrawTarget::stderr());
            let template = if total.is_some() {
                "{spinner} {human_pos}/~{human_len} users {msg} [{elapsed_precise}] {per_sec:0} ETA {eta}"
            } else {
                "{spinner} {human_pos} users {msg} [{elapsed_precise}] {per_sec:0}"
            };
            bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
            if already > 0 {
                bar.set_message(format!("{verb} (and {already} kept from the stopped run)"));
            } else {
                bar.set_message(verb);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            return Progress {
                done,
                bar: Some(bar),
                ticker: None,
            };
        }
        let counter = done.clone();
        let ticker = tokio::spawn(async move {
            let start = Instant::now();
            let mut interval = tokio::time::interval(LOG_EVERY);
            interval.tick().await;
            loop {
                interval.tick().await;
                let n = counter.load(Ordering::Relaxed);
                let rate = n.saturating_sub(already) as f64 / start.elapsed().as_secs_f64();
                match total {
                    Some(t) => tracing::info!(
                        "{n} of about {t} users {verb} ({rate:.0} users/s{})",
                        time_left(t.saturating_sub(n), rate)
                    ),
                    None => tracing::info!("{n} users {verb} ({rate:.0} users/s)"),
                }
            }
        });
        Progress {
            done,
            bar: None,
            ticker: Some(ticker),
        }
    }

    /// Users done so far (with those of an earlier run).
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Takes back users counted for a listing that had to start over.
    pub fn sub(&self, n: u64) {
        self.done.fetch_sub(n, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_position(bar.position().saturating_sub(n));
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
    }
}

/// `, about 1h 02m left` for `left` users at `rate` users per second; nothing while there is
/// no rate yet or the estimate is passed.
fn time_left(left: u64, rate: f64) -> String {
    if left == 0 || rate < 0.5 {
        return String::new();
    }
    format!(", about {} left", duration_text(left as f64 / rate))
}

/// A duration as people plan with it: `45s`, `12m 05s`, `6h 10m`, `2d 3h`.
pub fn duration_text(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_plan() {
        assert_eq!(duration_text(0.4), "0s");
        assert_eq!(duration_text(44.6), "45s");
        assert_eq!(duration_text(725.0), "12m 05s");
        // 40,000,000 users at 1,800 a second.
        assert_eq!(duration_text(40e6 / 1800.0), "6h 10m");
        assert_eq!(duration_text(3.0 * 86400.0 + 7200.0), "3d 2h");
    }

    #[test]
    fn the_time_left_needs_a_rate_and_users_left() {
        assert_eq!(time_left(3600, 1.0), ", about 1h 00m left");
        assert_eq!(time_left(0, 100.0), "");
        assert_eq!(time_left(100, 0.0), "");
    }

    #[tokio::test]
    async fn a_resumed_count_starts_with_the_kept_users() {
        let p = Progress::start_at("backed up", Some(100), 40, false);
        p.add(5);
        assert_eq!(p.done(), 45);
    }
}
