//! The only code that calls the Cognito SDK. Every call goes through [`Cognito::call`]: it
//! waits for a send slot from its quota category's rate limiter, classifies failures
//! (throttled, transient, permanent), and retries the first two with jittered exponential
//! backoff, telling the limiter about throttling so the whole process slows down together.
//! Callers get cbr's own types (`UserRecord`, `GroupRecord`, `PoolInfo`), never SDK types.

mod config;
mod read;
mod write;

pub use read::{Page, PoolInfo};
pub use write::CreateOutcome;

use crate::ratelimit::RateLimiter;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;
use rand::Rng;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Cognito's request-rate quota categories (Cognito's own names), with their default
/// per-second quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub enum Category {
    UserList,
    UserCreation,
    UserUpdate,
    UserAccountRecovery,
    UserRead,
    UserPoolRead,
    UserPoolResourceRead,
    UserPoolResourceUpdate,
}

impl Category {
    const ALL: [Category; 8] = [
        Category::UserList,
        Category::UserCreation,
        Category::UserUpdate,
        Category::UserAccountRecovery,
        Category::UserRead,
        Category::UserPoolRead,
        Category::UserPoolResourceRead,
        Category::UserPoolResourceUpdate,
    ];

    /// The documented default quota, requests per second per account and Region.
    pub fn quota(self) -> f64 {
        match self {
            Category::UserList => 30.0,
            Category::UserCreation => 50.0,
            Category::UserUpdate => 25.0,
            Category::UserAccountRecovery => 30.0,
            Category::UserRead => 120.0,
            Category::UserPoolRead => 15.0,
            Category::UserPoolResourceRead => 20.0,
            Category::UserPoolResourceUpdate => 15.0,
        }
    }
}

/// How many calls were throttled or retried, for the end-of-run summary.
#[derive(Debug, Default)]
pub struct CallStats {
    pub throttled: AtomicU64,
    pub retried: AtomicU64,
}

/// A Cognito client with per-category rate limits and retries.
#[derive(Clone)]
pub struct Cognito {
    client: Client,
    limiters: Arc<[RateLimiter; 8]>,
    max_attempts: u32,
    pub stats: Arc<CallStats>,
}

impl Cognito {
    /// `cap` may lower a category's rate below its quota (never raise it).
    pub fn new(client: Client, max_attempts: u32, cap: impl Fn(Category) -> Option<f64>) -> Self {
        let limiters = Category::ALL.map(|c| {
            let rate = cap(c).map_or(c.quota(), |cap| cap.min(c.quota()));
            RateLimiter::new(rate)
        });
        Cognito {
            client,
            limiters: Arc::new(limiters),
            max_attempts,
            stats: Arc::default(),
        }
    }

    fn limiter(&self, category: Category) -> &RateLimiter {
        let i = Category::ALL
            .iter()
            .position(|&c| c == category)
            .expect("every category has a limiter");
        &self.limiters[i]
    }

    /// Sends a request under its category's rate limit, retrying throttling and transient
    /// failures up to `max_attempts` times in all.
    async fn call<T, E, F, Fut>(&self, category: Category, mut send: F) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let limiter = self.limiter(category);
        let mut attempt = 0;
        loop {
            attempt += 1;
            limiter.acquire().await;
            tracing::trace!(?category, attempt, "sending");
            let err = match send().await {
                Ok(out) => {
                    limiter.on_success();
                    return Ok(out);
                }
                Err(err) => err,
            };
            let kind = classify(&err);
            if kind == Failure::Throttled {
                limiter.on_throttle();
                tracing::debug!(?category, rate = limiter.rate(), "throttled; slowing down");
                self.stats.throttled.fetch_add(1, Ordering::Relaxed);
            }
            if kind == Failure::Permanent || attempt >= self.max_attempts {
                return Err(CallError::from_sdk(err, kind));
            }
            self.stats.retried.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(?kind, attempt, "retrying: {}", describe(&err));
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
}

type HttpResponse = aws_sdk_cognitoidentityprovider::config::http::HttpResponse;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Throttled,
    Transient,
    Permanent,
}

fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Failure {
    match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => Failure::Transient,
        SdkError::DispatchFailure(d) if d.is_user() => Failure::Permanent,
        SdkError::DispatchFailure(_) => Failure::Transient,
        SdkError::ServiceError(ctx) => match err.code() {
            Some("TooManyRequestsException" | "ThrottlingException" | "Throttling") => {
                Failure::Throttled
            }
            Some("InternalErrorException" | "ServiceUnavailable") => Failure::Transient,
            _ if ctx.raw().status().is_server_error() => Failure::Transient,
            _ => Failure::Permanent,
        },
        _ => Failure::Permanent,
    }
}

/// Full-jitter exponential backoff: up to 0.2 s, 0.4 s, 0.8 s, … capped at 10 s.
fn backoff(attempt: u32) -> Duration {
    let ceiling = (0.2 * 2f64.powi(attempt.saturating_sub(1).min(16) as i32)).min(10.0);
    Duration::from_secs_f64(rand::rng().random_range(ceiling / 2.0..=ceiling))
}

/// A failed call: the service's error code (if any) and a readable description.
#[derive(Debug, Clone)]
pub struct CallError {
    pub code: Option<String>,
    pub message: String,
    retryable: bool,
}

impl CallError {
    fn from_sdk<E>(err: SdkError<E, HttpResponse>, kind: Failure) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        CallError {
            code: err.code().map(str::to_string),
            message: describe(&err),
            retryable: kind != Failure::Permanent,
        }
    }

    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if self.retryable {
            f.write_str(" (gave up after retrying)")?;
        }
        Ok(())
    }
}

impl std::error::Error for CallError {}

/// `Code: message` for a service error, the whole error chain for anything else.
fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match (err, err.code()) {
        (SdkError::ServiceError(_), Some(code)) => match err.message() {
            Some(msg) => format!("{code}: {msg}"),
            None => code.to_string(),
        },
        (SdkError::ServiceError(ctx), None) => {
            format!("HTTP {} from the service", ctx.raw().status().as_u16())
        }
        _ => DisplayErrorContext(err).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..30 {
            let d = backoff(attempt).as_secs_f64();
            assert!(d <= 10.0, "{attempt}: {d}");
        }
        assert!(backoff(1).as_secs_f64() <= 0.2);
        assert!(backoff(5).as_secs_f64() >= 1.6);
    }
}
