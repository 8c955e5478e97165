//! Throttling, transient and permanent errors, expired page tokens, provisioned limits, and the
//! fields of a write.

use super::*;

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
    // Cut by 30% on the throttle, growing back during the backoff (at most 0.2 s)...
    let rate = cognito.limiter(Category::UserList).rate();
    assert!((21.0..23.0).contains(&rate), "{rate}");
    // ...and at the old rate again 3 s after the cut.
    tokio::time::advance(std::time::Duration::from_secs(3)).await;
    let rate = cognito.limiter(Category::UserList).rate();
    assert!((29.5..=30.0).contains(&rate), "{rate}");
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
    .filter(|(name, _)| !matches!(*name, "sub" | "identities"))
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
