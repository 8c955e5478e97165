//! The client tested at the request level: a [`Cognito`] over an SDK client whose HTTP client
//! is a [`Replay`] of canned answers (real status codes and JSON bodies, so the SDK serializes,
//! signs and parses as it does against Cognito), with the SDK's retries off as `aws.rs` has
//! them. Each test asserts the exact JSON bodies cbr sent, operation by operation, and what it
//! made of the answers: paging to the last token, throttling slowing the category's limiter,
//! transient failures retried up to `max_attempts`, an expired page token starting a listing
//! over, provisioned limits, and the fields of a write. Time is tokio's paused clock, so
//! backoff and pacing cost nothing.
//!
//! Not `aws-smithy-mocks`: it needs `aws-smithy-http-client/test-util`, which turns on
//! `serde_json/preserve_order` in every test build, and cbr's JSON would then keep keys in a
//! different order under test than in the binary it ships.

mod failures;
mod paging;

use super::{Category, Cognito, CreateOutcome, Invitation, Page};
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::retry::RetryConfig;
use aws_sdk_cognitoidentityprovider::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

const POOL: &str = "us-east-1_pool";

/// A canned answer for the next request to `operation` (whose body has `value` at `pointer`,
/// when `when` is set).
#[derive(Debug)]
struct Answer {
    operation: &'static str,
    when: Option<(&'static str, Value)>,
    status: u16,
    body: String,
}

impl Answer {
    /// Only for a request whose body has `value` at the JSON pointer.
    fn when(mut self, pointer: &'static str, value: &str) -> Answer {
        self.when = Some((pointer, json!(value)));
        self
    }

    fn accepts(&self, operation: &str, body: &Value) -> bool {
        self.operation == operation
            && self
                .when
                .as_ref()
                .is_none_or(|(pointer, value)| body.pointer(pointer) == Some(value))
    }
}

/// HTTP 200 with this JSON body.
fn ok(operation: &'static str, body: Value) -> Answer {
    answer(operation, 200, body.to_string())
}

/// Cognito's error answer: `{"__type": code, "message": message}`.
fn error(operation: &'static str, status: u16, code: &str, message: &str) -> Answer {
    let body = json!({"__type": code, "message": message});
    answer(operation, status, body.to_string())
}

fn answer(operation: &'static str, status: u16, body: String) -> Answer {
    Answer {
        operation,
        when: None,
        status,
        body,
    }
}

/// The HTTP client of the tests: answers each request with the first canned answer that fits
/// it (so answers to one operation come in the order given), and keeps every request sent.
#[derive(Debug, Clone, Default)]
struct Replay {
    answers: Arc<Mutex<Vec<Answer>>>,
    /// Each request's operation (from `X-Amz-Target`) and JSON body, in the order sent.
    sent: Arc<Mutex<Vec<(String, Value)>>>,
}

impl HttpConnector for Replay {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or_default().to_string();
        let body: Value = serde_json::from_slice(request.body().bytes().unwrap_or_default())
            .expect("a JSON request body");
        let mut answers = self.answers.lock().unwrap();
        let Some(i) = answers.iter().position(|a| a.accepts(&operation, &body)) else {
            panic!("no answer left for {operation} {body}");
        };
        let answer = answers.remove(i);
        self.sent.lock().unwrap().push((operation, body));
        let status = StatusCode::try_from(answer.status).expect("an HTTP status");
        HttpConnectorFuture::ready(Ok(HttpResponse::new(status, SdkBody::from(answer.body))))
    }
}

impl HttpClient for Replay {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl Replay {
    /// Every request sent: operation and body.
    fn sent(&self) -> Vec<(String, Value)> {
        self.sent.lock().unwrap().clone()
    }

    /// The bodies sent, when all went to `operation`.
    fn bodies(&self, operation: &str) -> Vec<Value> {
        self.sent()
            .into_iter()
            .map(|(op, body)| {
                assert_eq!(op, operation, "{body}");
                body
            })
            .collect()
    }

    fn assert_all_used(&self) {
        let left = self.answers.lock().unwrap();
        assert!(left.is_empty(), "answers never asked for: {left:?}");
    }
}

/// A [`Cognito`] whose requests get these answers, and the replay that keeps what it sent.
fn replay_with(
    answers: Vec<Answer>,
    max_attempts: u32,
    cap: impl Fn(Category) -> Option<f64>,
) -> (Cognito, Replay) {
    let replay = Replay {
        answers: Arc::new(Mutex::new(answers)),
        sent: Arc::default(),
    };
    // As aws.rs configures the real client: no SDK retries (cbr retries under its limiters).
    let config = aws_sdk_cognitoidentityprovider::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKID", "secret", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .http_client(replay.clone())
        .build();
    let cognito = Cognito::new(Client::from_conf(config), max_attempts, cap);
    (cognito, replay)
}

/// [`replay_with`] 4 attempts and no caps.
fn replay(answers: Vec<Answer>) -> (Cognito, Replay) {
    replay_with(answers, 4, |_| None)
}

fn user(name: &str, sub: &str) -> Value {
    json!({
        "Username": name,
        "Attributes": [{"Name": "sub", "Value": sub}],
        "Enabled": true,
        "UserStatus": "CONFIRMED",
    })
}

fn usernames(users: &[crate::backup_file::UserRecord]) -> Vec<&str> {
    users.iter().map(|u| u.username.as_str()).collect()
}

fn count(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
