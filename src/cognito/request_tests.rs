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

#[tokio::test(start_paused = true)]
async fn find_users_follows_the_pagination_tokens_to_the_last_page() {
    let (cognito, replay) = replay(vec![
        ok(
            "ListUsers",
            json!({"Users": [user("alice", "s1")], "PaginationToken": "t1"}),
        ),
        ok(
            "ListUsers",
            json!({"Users": [user("Alice", "s2")], "PaginationToken": "t2"}),
        ),
        ok("ListUsers", json!({"Users": []})),
    ]);
    let filter = r#"username = "alice""#;

    let found = cognito.find_users(POOL, filter.into()).await.unwrap();

    assert_eq!(usernames(&found), ["alice", "Alice"]);
    assert_eq!(found[1].attribute("sub"), Some("s2"));
    assert_eq!(
        replay.bodies("ListUsers"),
        [
            json!({"UserPoolId": POOL, "Limit": 60, "Filter": filter}),
            json!({"UserPoolId": POOL, "Limit": 60, "Filter": filter, "PaginationToken": "t1"}),
            json!({"UserPoolId": POOL, "Limit": 60, "Filter": filter, "PaginationToken": "t2"}),
        ]
    );
    replay.assert_all_used();
}

#[tokio::test(start_paused = true)]
async fn list_users_page_filters_by_sub_prefix_and_returns_the_next_token() {
    let (cognito, replay) = replay(vec![
        ok(
            "ListUsers",
            json!({"Users": [user("a", "ab1")], "PaginationToken": "t1"}),
        ),
        ok("ListUsers", json!({"Users": []})),
    ]);

    let page = cognito.list_users_page(POOL, "ab", None).await.unwrap();
    let Page::Users { users, next } = page else {
        panic!("a first page has no token to expire")
    };
    assert_eq!(usernames(&users), ["a"]);
    assert_eq!(next.as_deref(), Some("t1"));
    // The empty prefix is the whole pool: no filter at all.
    cognito.list_users_page(POOL, "", None).await.unwrap();

    assert_eq!(
        replay.bodies("ListUsers"),
        [
            json!({"UserPoolId": POOL, "Limit": 60, "Filter": "sub ^= \"ab\""}),
            json!({"UserPoolId": POOL, "Limit": 60}),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn list_groups_follows_the_next_tokens_to_the_last_page() {
    let (cognito, replay) = replay(vec![
        ok(
            "ListGroups",
            json!({
                "Groups": [{
                    "GroupName": "admins",
                    "Description": "the admins",
                    "Precedence": 1,
                    "RoleArn": "arn:aws:iam::123456789012:role/admins",
                }],
                "NextToken": "g1",
            }),
        ),
        ok("ListGroups", json!({"Groups": [{"GroupName": "readers"}]})),
    ]);

    let groups = cognito.list_groups(POOL).await.unwrap();

    let names: Vec<_> = groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["admins", "readers"]);
    assert_eq!(groups[0].description.as_deref(), Some("the admins"));
    assert_eq!(groups[0].precedence, Some(1));
    assert_eq!(
        groups[0].role_arn.as_deref(),
        Some("arn:aws:iam::123456789012:role/admins")
    );
    assert_eq!(groups[1].description, None);
    assert_eq!(groups[1].precedence, None);
    assert_eq!(
        replay.bodies("ListGroups"),
        [
            json!({"UserPoolId": POOL, "Limit": 60}),
            json!({"UserPoolId": POOL, "Limit": 60, "NextToken": "g1"}),
        ]
    );
    replay.assert_all_used();
}

#[tokio::test(start_paused = true)]
async fn for_each_member_follows_the_next_tokens_to_the_last_page() {
    let (cognito, replay) = replay(vec![
        ok(
            "ListUsersInGroup",
            json!({"Users": [user("a", "s1"), user("b", "s2")], "NextToken": "m1"}),
        ),
        ok("ListUsersInGroup", json!({"Users": [{"Username": "c"}]})),
    ]);

    let mut members = Vec::new();
    cognito
        .for_each_member(POOL, "admins", |m| {
            members.push((m.username, m.sub));
            Ok(())
        })
        .await
        .unwrap();

    let sub = |s: &str| Some(s.to_string());
    assert_eq!(
        members,
        [
            ("a".to_string(), sub("s1")),
            ("b".to_string(), sub("s2")),
            ("c".to_string(), None),
        ]
    );
    assert_eq!(
        replay.bodies("ListUsersInGroup"),
        [
            json!({"UserPoolId": POOL, "GroupName": "admins", "Limit": 60}),
            json!({"UserPoolId": POOL, "GroupName": "admins", "Limit": 60, "NextToken": "m1"}),
        ]
    );
    replay.assert_all_used();
}

#[tokio::test(start_paused = true)]
async fn for_each_member_stops_at_the_callers_error_without_another_request() {
    let (cognito, replay) = replay(vec![ok(
        "ListUsersInGroup",
        json!({"Users": [user("a", "s1"), user("b", "s2")], "NextToken": "m1"}),
    )]);

    let mut seen = 0;
    let err = cognito
        .for_each_member(POOL, "admins", |_| {
            seen += 1;
            anyhow::bail!("the index is full")
        })
        .await
        .unwrap_err();

    // The caller's error as it was, not dressed as a listing failure.
    assert_eq!(format!("{err:#}"), "the index is full");
    assert_eq!(seen, 1);
    assert_eq!(replay.sent().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn groups_of_user_reads_every_page_and_sorts_the_names() {
    let (cognito, replay) = replay(vec![
        ok(
            "AdminListGroupsForUser",
            json!({"Groups": [{"GroupName": "writers"}, {"GroupName": "admins"}], "NextToken": "n1"}),
        ),
        ok(
            "AdminListGroupsForUser",
            json!({"Groups": [{"GroupName": "readers"}]}),
        ),
    ]);

    let groups = cognito.groups_of_user(POOL, "alice").await.unwrap();

    assert_eq!(groups, ["admins", "readers", "writers"]);
    assert_eq!(
        replay.bodies("AdminListGroupsForUser"),
        [
            json!({"UserPoolId": POOL, "Username": "alice", "Limit": 60}),
            json!({"UserPoolId": POOL, "Username": "alice", "Limit": 60, "NextToken": "n1"}),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn list_pools_follows_the_next_tokens_with_max_results_60() {
    let (cognito, replay) = replay(vec![
        ok(
            "ListUserPools",
            json!({"UserPools": [{"Id": "us-east-1_a", "Name": "a"}], "NextToken": "p1"}),
        ),
        ok(
            "ListUserPools",
            json!({"UserPools": [{"Id": "us-east-1_b", "Name": "b"}]}),
        ),
    ]);

    let pools = cognito.list_pools().await.unwrap();

    let pools: Vec<_> = pools
        .iter()
        .map(|p| (p.id.as_str(), p.name.as_str()))
        .collect();
    assert_eq!(pools, [("us-east-1_a", "a"), ("us-east-1_b", "b")]);
    assert_eq!(
        replay.bodies("ListUserPools"),
        [
            json!({"MaxResults": 60}),
            json!({"MaxResults": 60, "NextToken": "p1"}),
        ]
    );
}

/// The JSON listings page the same way, each with its own page size, and keep the answers as
/// Cognito sent them (fields this SDK does not know included).
#[tokio::test(start_paused = true)]
async fn json_listings_follow_the_next_tokens_with_their_page_sizes() {
    let server = |id: &str| json!({"UserPoolId": POOL, "Identifier": id, "Name": id, "Scopes": []});
    let client = |id: &str| json!({"ClientId": id, "ClientName": id, "FutureField": 1});
    let (cognito, replay) = replay(vec![
        ok(
            "ListResourceServers",
            json!({"ResourceServers": [server("api")], "NextToken": "r1"}),
        ),
        ok(
            "ListResourceServers",
            json!({"ResourceServers": [server("billing")]}),
        ),
        ok(
            "ListUserPoolClients",
            json!({"UserPoolClients": [{"ClientId": "c1", "UserPoolId": POOL}], "NextToken": "k1"}),
        ),
        ok(
            "ListUserPoolClients",
            json!({"UserPoolClients": [{"ClientId": "c2", "UserPoolId": POOL}]}),
        ),
        ok(
            "DescribeUserPoolClient",
            json!({"UserPoolClient": client("c1")}),
        ),
        ok(
            "DescribeUserPoolClient",
            json!({"UserPoolClient": client("c2")}),
        ),
    ]);

    let servers = cognito.resource_servers_json(POOL).await.unwrap();
    let clients = cognito.clients_json(POOL).await.unwrap();

    assert_eq!(servers, [server("api"), server("billing")]);
    assert_eq!(clients, [client("c1"), client("c2")]);
    let expected = [
        (
            "ListResourceServers",
            json!({"UserPoolId": POOL, "MaxResults": 50}),
        ),
        (
            "ListResourceServers",
            json!({"UserPoolId": POOL, "MaxResults": 50, "NextToken": "r1"}),
        ),
        (
            "ListUserPoolClients",
            json!({"UserPoolId": POOL, "MaxResults": 60}),
        ),
        (
            "ListUserPoolClients",
            json!({"UserPoolId": POOL, "MaxResults": 60, "NextToken": "k1"}),
        ),
        (
            "DescribeUserPoolClient",
            json!({"UserPoolId": POOL, "ClientId": "c1"}),
        ),
        (
            "DescribeUserPoolClient",
            json!({"UserPoolId": POOL, "ClientId": "c2"}),
        ),
    ]
    .map(|(op, body)| (op.to_string(), body));
    assert_eq!(replay.sent(), expected);
}

#[tokio::test(start_paused = true)]
async fn a_throttled_call_is_retried_and_slows_its_category_down() {
    let (cognito, replay) = replay(vec![
        error(
            "ListUsers",
            400,
            "TooManyRequestsException",
            "Too many requests",
        ),
        ok("ListUsers", json!({"Users": [user("a", "s1")]})),
    ]);
    assert_eq!(cognito.limiter(Category::UserList).rate(), 30.0);

    let page = cognito.list_users_page(POOL, "", None).await.unwrap();

    assert!(matches!(page, Page::Users { users, next: None } if users.len() == 1));
    assert_eq!(count(&cognito.stats.throttled), 1);
    assert_eq!(count(&cognito.stats.retried), 1);
    // Cut by 30% on the throttle, then one additive step back up for the success.
    let rate = cognito.limiter(Category::UserList).rate();
    assert!((rate - (21.0 + 1.0 / 21.0)).abs() < 1e-9, "{rate}");
    assert_eq!(cognito.ceiling(Category::UserList), 30.0);
    // Other categories keep their pace.
    assert_eq!(cognito.limiter(Category::UserRead).rate(), 120.0);
    // The retry is the same request.
    assert_eq!(
        replay.bodies("ListUsers"),
        vec![json!({"UserPoolId": POOL, "Limit": 60}); 2]
    );
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_up_to_max_attempts_then_surface_with_context() {
    let failure = || error("ListUserPools", 500, "InternalErrorException", "try again");
    let (cognito, replay) = replay_with(vec![failure(), failure(), failure()], 3, |_| None);

    let err = cognito.list_pools().await.unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        "listing user pools: InternalErrorException: try again (gave up after retrying)"
    );
    assert_eq!(replay.bodies("ListUserPools").len(), 3);
    assert_eq!(count(&cognito.stats.retried), 2);
    assert_eq!(count(&cognito.stats.throttled), 0);
    // Server errors are not throttling: the pace stays.
    assert_eq!(cognito.limiter(Category::UserPoolRead).rate(), 15.0);
}

/// A 5xx whose body names no error (a load balancer's answer) is transient too.
#[tokio::test(start_paused = true)]
async fn a_5xx_without_an_error_code_is_retried() {
    let failure = || answer("ListGroups", 503, String::new());
    let (cognito, replay) = replay_with(vec![failure(), failure()], 2, |_| None);

    let err = format!("{:#}", cognito.list_groups(POOL).await.unwrap_err());

    // The SDK reports such an answer as a response error without its status, so the message
    // does not say "HTTP 503" (today: "response error: unhandled error: Error").
    assert!(
        err.starts_with(&format!("listing the groups of {POOL}: ")),
        "{err}"
    );
    assert!(err.ends_with(" (gave up after retrying)"), "{err}");
    assert_eq!(replay.sent().len(), 2);
    assert_eq!(count(&cognito.stats.retried), 1);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_is_not_retried() {
    let (cognito, replay) = replay(vec![error(
        "ListGroups",
        400,
        "ResourceNotFoundException",
        "User pool does not exist.",
    )]);

    let err = cognito.list_groups(POOL).await.unwrap_err();

    assert_eq!(
        format!("{err:#}"),
        format!(
            "listing the groups of {POOL}: ResourceNotFoundException: User pool does not exist."
        )
    );
    assert_eq!(replay.sent().len(), 1);
    assert_eq!(count(&cognito.stats.retried), 0);
}

/// Page tokens last about an hour: a later page whose token has expired is `TokenExpired`
/// (backup lists that prefix again), not an error, and not retried.
#[tokio::test(start_paused = true)]
async fn an_expired_page_token_is_reported_as_such() {
    let (cognito, replay) = replay(vec![error(
        "ListUsers",
        400,
        "InvalidParameterException",
        "Pagination token expired.",
    )]);

    let page = cognito.list_users_page(POOL, "ab", Some("t1")).await;

    assert!(matches!(page, Ok(Page::TokenExpired)));
    assert_eq!(
        replay.bodies("ListUsers"),
        [
            json!({"UserPoolId": POOL, "Limit": 60, "Filter": "sub ^= \"ab\"", "PaginationToken": "t1"})
        ]
    );
}

/// Without a token, the same answer is about something else (the filter): an error.
#[tokio::test(start_paused = true)]
async fn an_invalid_parameter_on_a_first_page_is_an_error() {
    let (cognito, _) = replay(vec![error(
        "ListUsers",
        400,
        "InvalidParameterException",
        "Invalid token in filter.",
    )]);

    let err = cognito.list_users_page(POOL, "ab", None).await.err();

    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("InvalidParameterException: Invalid token in filter.")
    );
}

#[tokio::test(start_paused = true)]
async fn find_users_starts_over_when_its_page_token_expires() {
    let (cognito, replay) = replay(vec![
        ok(
            "ListUsers",
            json!({"Users": [user("alice", "s1")], "PaginationToken": "t1"}),
        ),
        error(
            "ListUsers",
            400,
            "InvalidParameterException",
            "Pagination token expired.",
        ),
        ok(
            "ListUsers",
            json!({"Users": [user("alice", "s1")], "PaginationToken": "t2"}),
        ),
        ok("ListUsers", json!({"Users": [user("Alice", "s2")]})),
    ]);

    let found = cognito
        .find_users(POOL, r#"username = "alice""#.into())
        .await
        .unwrap();

    // alice once: what the abandoned pass found is dropped.
    assert_eq!(usernames(&found), ["alice", "Alice"]);
    let tokens: Vec<_> = replay
        .bodies("ListUsers")
        .iter()
        .map(|b| b["PaginationToken"].as_str().map(str::to_string))
        .collect();
    assert_eq!(tokens, [None, Some("t1".into()), None, Some("t2".into())]);
    replay.assert_all_used();
}

/// GetProvisionedLimit's answer for a category.
fn limit(category: &'static str, status: u16, provisioned: i32) -> Answer {
    let body = json!({"Limit": {
        "LimitDefinition": {"LimitClass": "API_CATEGORY", "Attributes": {"Category": category}},
        "ProvisionedLimitValue": provisioned,
        "FreeLimitValue": 1,
    }});
    answer("GetProvisionedLimit", status, body.to_string())
        .when("/LimitDefinition/Attributes/Category", category)
}

#[tokio::test(start_paused = true)]
async fn provisioned_limits_raise_the_ceilings_up_to_the_operators_cap() {
    let denied = error(
        "GetProvisionedLimit",
        400,
        "NotAuthorizedException",
        "not allowed",
    )
    .when("/LimitDefinition/Attributes/Category", "UserUpdate");
    let answers = vec![
        limit("UserList", 200, 100),
        limit("UserCreation", 200, 200),
        error("GetProvisionedLimit", 500, "InternalErrorException", "no")
            .when("/LimitDefinition/Attributes/Category", "UserRead"),
        denied,
    ];
    let cap = |c| (c == Category::UserList).then_some(80.0);
    let (cognito, replay) = replay_with(answers, 4, cap);
    assert_eq!(cognito.ceiling(Category::UserList), 30.0);

    let categories = [
        Category::UserList,
        Category::UserCreation,
        Category::UserRead,
        Category::UserUpdate,
    ];
    cognito.use_provisioned_limits(&categories).await;

    // Provisioned 100, capped by the operator at 80; the rate starts at the new ceiling.
    assert_eq!(cognito.ceiling(Category::UserList), 80.0);
    assert_eq!(cognito.limiter(Category::UserList).rate(), 80.0);
    // Provisioned 200, no cap.
    assert_eq!(cognito.ceiling(Category::UserCreation), 200.0);
    // A failure keeps the default quota.
    assert_eq!(cognito.ceiling(Category::UserRead), 120.0);
    assert_eq!(cognito.ceiling(Category::UserUpdate), 25.0);
    // A category not asked about is left alone.
    assert_eq!(cognito.ceiling(Category::UserPoolRead), 15.0);
    // One request each, the 500 not retried.
    let mut sent: Vec<_> = replay.bodies("GetProvisionedLimit");
    sent.sort_by_key(|b| b.to_string());
    let mut expected = categories.map(|c| {
        json!({"LimitDefinition": {"LimitClass": "API_CATEGORY", "Attributes": {"Category": c.name()}}})
    });
    expected.sort_by_key(|b| b.to_string());
    assert_eq!(sent, expected);
    assert_eq!(count(&cognito.stats.retried), 0);
}

/// The attributes restore passes: a record's writable ones, never `sub` or `identities`.
fn restored_attributes() -> Vec<(String, String)> {
    [
        ("sub", "old-sub"),
        ("email", "alice@example.com"),
        ("email_verified", "true"),
        ("identities", "[]"),
        ("custom:plan", "pro"),
    ]
    .into_iter()
    .filter(|(name, _)| crate::compare::is_writable(name))
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect()
}

#[tokio::test(start_paused = true)]
async fn create_user_sends_exactly_the_fields_asked_for() {
    let (cognito, replay) = replay(vec![
        ok("AdminCreateUser", json!({"User": user("alice", "new-1")})),
        ok("AdminCreateUser", json!({"User": user("bob", "new-2")})),
    ]);
    let attributes = restored_attributes();

    let quiet = cognito
        .create_user(POOL, "alice", &attributes, Invitation::NONE)
        .await
        .unwrap();
    let by_email = Invitation {
        email: true,
        sms: false,
    };
    cognito
        .create_user(POOL, "bob", &attributes, by_email)
        .await
        .unwrap();

    let CreateOutcome::Created { username, sub } = quiet else {
        panic!("created, not {quiet:?}")
    };
    assert_eq!(username.as_deref(), Some("alice"));
    assert_eq!(sub.as_deref(), Some("new-1"));
    let attrs = json!([
        {"Name": "email", "Value": "alice@example.com"},
        {"Name": "email_verified", "Value": "true"},
        {"Name": "custom:plan", "Value": "pro"},
    ]);
    assert_eq!(
        replay.bodies("AdminCreateUser"),
        [
            json!({
                "UserPoolId": POOL,
                "Username": "alice",
                "UserAttributes": attrs,
                "MessageAction": "SUPPRESS",
            }),
            json!({
                "UserPoolId": POOL,
                "Username": "bob",
                "UserAttributes": attrs,
                "DesiredDeliveryMediums": ["EMAIL"],
            }),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn create_user_reports_an_existing_user_as_an_outcome() {
    let (cognito, replay) = replay(vec![
        error(
            "AdminCreateUser",
            400,
            "UsernameExistsException",
            "User account already exists",
        ),
        error(
            "AdminCreateUser",
            400,
            "AliasExistsException",
            "An account with the given email already exists.",
        ),
    ]);

    for _ in 0..2 {
        let outcome = cognito
            .create_user(POOL, "alice", &[], Invitation::NONE)
            .await
            .unwrap();
        assert!(matches!(outcome, CreateOutcome::Exists), "{outcome:?}");
    }
    assert_eq!(replay.sent().len(), 2, "not retried");
}
