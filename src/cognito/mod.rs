//! The only code that calls the Cognito SDK. Every call goes through [`Cognito::call`]: it
//! waits for a send slot from its quota category's rate limiter, classifies failures
//! (throttled, transient, permanent), and retries the first two with jittered exponential
//! backoff, telling the limiter about throttling so the whole process slows down together.
//! Callers get cbr's own types (`UserRecord`, `GroupRecord`, `PoolInfo`), never SDK types.

mod config_calls;
mod read;
#[cfg(test)]
mod request_tests;
mod write;

pub use read::{Page, PoolInfo, SchemaAttribute};
pub use write::{CreateOutcome, Invitation};

use crate::ratelimit::RateLimiter;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
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
    UserResourceRead,
    UserPoolRead,
    UserPoolResourceRead,
    UserPoolResourceUpdate,
}

impl Category {
    const ALL: [Category; 9] = [
        Category::UserList,
        Category::UserCreation,
        Category::UserUpdate,
        Category::UserAccountRecovery,
        Category::UserRead,
        Category::UserResourceRead,
        Category::UserPoolRead,
        Category::UserPoolResourceRead,
        Category::UserPoolResourceUpdate,
    ];

    /// Cognito's name for the category, as GetProvisionedLimit takes it.
    pub fn name(self) -> &'static str {
        match self {
            Category::UserList => "UserList",
            Category::UserCreation => "UserCreation",
            Category::UserUpdate => "UserUpdate",
            Category::UserAccountRecovery => "UserAccountRecovery",
            Category::UserRead => "UserRead",
            Category::UserResourceRead => "UserResourceRead",
            Category::UserPoolRead => "UserPoolRead",
            Category::UserPoolResourceRead => "UserPoolResourceRead",
            Category::UserPoolResourceUpdate => "UserPoolResourceUpdate",
        }
    }

    /// The documented default quota, requests per second per account and Region.
    pub fn quota(self) -> f64 {
        match self {
            Category::UserList => 30.0,
            Category::UserCreation => 50.0,
            Category::UserUpdate => 25.0,
            Category::UserAccountRecovery => 30.0,
            Category::UserRead => 120.0,
            Category::UserResourceRead => 50.0,
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

/// Operations on a pool's groups (CreateGroup, ListGroups, ...) have a per-pool limit on top
/// of their category's account-wide quota; cbr stays under it.
pub const GROUP_OPS_PER_POOL: f64 = 5.0;

/// A Cognito client with per-category rate limits and retries.
#[derive(Clone)]
pub struct Cognito {
    client: Client,
    limiters: Arc<[RateLimiter; 9]>,
    /// The operator's `--max-rps` per category, if any.
    caps: [Option<f64>; 9],
    /// The per-pool limit of group operations.
    group_ops: Arc<RateLimiter>,
    /// GetProvisionedLimit's own pace: a few calls at start, which must not wait behind
    /// DescribeUserPool in its category.
    limit_reads: Arc<RateLimiter>,
    max_attempts: u32,
    pub stats: Arc<CallStats>,
    /// Where requests go, to name it when it cannot be reached.
    endpoint: Arc<str>,
}

/// Attempts at most for a refused connection: nothing listens there, so waiting rarely helps.
const REFUSED_ATTEMPTS: u32 = 3;

impl Cognito {
    /// Each category starts at its documented default quota, or `cap` where that is lower;
    /// [`Cognito::use_provisioned_limits`] raises the ceilings to what the account has bought.
    pub fn new(client: Client, max_attempts: u32, cap: impl Fn(Category) -> Option<f64>) -> Self {
        let caps = Category::ALL.map(&cap);
        let limiters = Category::ALL.map(|c| {
            let rate = cap(c).map_or(c.quota(), |cap| cap.min(c.quota()));
            RateLimiter::new(rate)
        });
        Cognito {
            client,
            limiters: Arc::new(limiters),
            caps,
            group_ops: Arc::new(RateLimiter::new(GROUP_OPS_PER_POOL)),
            limit_reads: Arc::new(RateLimiter::new(Category::UserPoolRead.quota())),
            max_attempts,
            stats: Arc::default(),
            endpoint: Arc::from("the Cognito endpoint"),
        }
    }

    /// Reads the rate Cognito enforces for each category (GetProvisionedLimit: the default
    /// quota, or more where the account has bought capacity) and lets each limiter go up to
    /// it, or to the operator's cap where that is lower. Where the limit cannot be read (no
    /// permission, an endpoint without the operation), the default quota stays, with one line
    /// at `-v`.
    pub async fn use_provisioned_limits(&self, categories: &[Category]) {
        let limits =
            futures::future::join_all(categories.iter().map(|&c| self.provisioned_limit(c))).await;
        for (&category, limit) in categories.iter().zip(limits) {
            let rate = match limit {
                Ok(Some(rate)) => rate,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(
                        category = %category.name(),
                        "cannot read the provisioned limit ({e}); using the default quota of {} requests/s",
                        category.quota()
                    );
                    continue;
                }
            };
            let i = Category::ALL
                .iter()
                .position(|&c| c == category)
                .expect("category");
            let ceiling = self.caps[i].map_or(rate, |cap| cap.min(rate));
            tracing::debug!(
                category = %category.name(),
                provisioned = %rate,
                ceiling = %ceiling,
                "request rate"
            );
            self.limiter(category).set_ceiling(ceiling);
        }
    }

    /// Paces a category as one of `n` processes that may share its quota at the same time
    /// (one of `n` shards): see [`RateLimiter::share`].
    pub fn share_quota(&self, category: Category, n: u32) {
        self.limiter(category).share(n);
    }

    /// The current ceiling of a category's limiter, requests per second.
    pub fn ceiling(&self, category: Category) -> f64 {
        self.limiter(category).ceiling()
    }

    /// Names the endpoint in connection errors (`cannot connect to <endpoint>: …`).
    pub fn with_endpoint(mut self, endpoint: &str) -> Self {
        self.endpoint = Arc::from(endpoint);
        self
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
    async fn call<T, E, F, Fut>(&self, category: Category, send: F) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.call_with(category, self.limiter(category), self.max_attempts, send)
            .await
    }

    /// [`Cognito::call`] with its own limiter and number of attempts.
    async fn call_with<T, E, F, Fut>(
        &self,
        category: Category,
        limiter: &RateLimiter,
        max_attempts: u32,
        mut send: F,
    ) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let slot = limiter.acquire().await;
            tracing::trace!(?category, attempt, "sending");
            let err = match send().await {
                Ok(out) => return Ok(out),
                Err(err) => err,
            };
            let kind = classify(&err);
            if kind == Failure::Throttled {
                limiter.on_throttle(slot);
                tracing::debug!(?category, rate = limiter.rate(), "throttled; slowing down");
                self.stats.throttled.fetch_add(1, Ordering::Relaxed);
            }
            let limit = if is_connection_refused(&err) {
                max_attempts.min(REFUSED_ATTEMPTS)
            } else {
                max_attempts
            };
            if kind == Failure::Permanent || attempt >= limit {
                return Err(CallError::from_sdk(err, kind, &self.endpoint));
            }
            self.stats.retried.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                ?kind,
                attempt,
                "retrying: {}",
                describe(&err, &self.endpoint)
            );
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
}

/// Walks a listing from its first page (no token) to its last (no next token): `fetch` sends
/// the request for one page, `each` takes the answer and returns the next page's token. Every
/// listing here goes through it, its `fetch` sending with [`Cognito::call`] (or
/// [`Cognito::json`], which uses it), so each page, and each retry of it, waits for its
/// category's limiter and tells it about throttling. Stops at the first error of either.
/// (Backup's ListUsers walk is its own: it asks [`Cognito::list_users_page`] page by page.)
async fn for_each_page<P, E, F, Fut>(
    mut fetch: F,
    mut each: impl FnMut(P) -> Result<Option<String>, E>,
) -> Result<(), E>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<P, E>>,
{
    let mut token: Option<String> = None;
    loop {
        let page = fetch(token.take()).await?;
        token = each(page)?;
        if token.is_none() {
            return Ok(());
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
    fn from_sdk<E>(err: SdkError<E, HttpResponse>, kind: Failure, endpoint: &str) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        CallError {
            code: err.code().map(str::to_string),
            message: describe(&err, endpoint),
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

/// Whether nothing accepted the connection (`--endpoint-url` pointing at a closed port).
fn is_connection_refused<E>(err: &SdkError<E, HttpResponse>) -> bool {
    let SdkError::DispatchFailure(d) = err else {
        return false;
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> =
        d.as_connector_error().map(|c| c as _);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// `Code: message` for a service error, `cannot connect to <endpoint>: connection refused`, or
/// the messages of the error chain (without the SDK's debug structures) for anything else.
fn describe<E>(err: &SdkError<E, HttpResponse>, endpoint: &str) -> String
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
        _ if is_connection_refused(err) => {
            format!("cannot connect to {endpoint}: connection refused")
        }
        _ => crate::errors::error_chain(err),
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
