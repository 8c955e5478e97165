//! Every listing follows its tokens to the last page, with the page size and filter asked for.

use super::*;

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
