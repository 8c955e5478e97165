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
        let done = Arc::new(AtomicU64::new(0));
        if !enabled {
            return Progress {
                done,
                bar: None,
                ticker: None,
            };
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let template = if total.is_some() {
                "{spinner} {human_pos}/~{human_len} users {msg} [{elapsed_precise}] {per_sec:0} ETA {eta}"
            } else {
                "{spinner} {human_pos} users {msg} [{elapsed_precise}] {per_sec:0}"
            };
            bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
            bar.set_message(verb);
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
                let rate = n as f64 / start.elapsed().as_secs_f64();
                match total {
                    Some(t) => tracing::info!("{n} of about {t} users {verb} ({rate:.0} users/s)"),
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

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
