//! Restore into pools whose settings moto ignores but Cognito enforces: case-insensitive
//! usernames, email or phone sign-in, aliases, Lambda triggers, schema constraints. Each
//! problem is found before the first write, every offending user named at once; a user of the
//! same name who is not the backup's user is never touched; invitations go by the medium asked
//! for; the account's provisioned request rates are used.

mod common;

use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::types::{
    AliasAttributeType, AttributeDataType, LambdaConfigType, NumberAttributeConstraintsType,
    SchemaAttributeType, StringAttributeConstraintsType, UsernameConfigurationType,
};
use common::*;
use serde_json::{Value, json};
use std::path::Path;

/// Writes a backup file of the given records.
fn backup_file(dir: &Path, name: &str, records: Value) -> String {
    std::fs::write(dir.join(name), serde_json::to_vec_pretty(&records).unwrap()).unwrap();
    name.to_string()
}

fn user(name: &str, sub: &str, attrs: &[(&str, &str)]) -> Value {
    let mut attributes = vec![json!({"Name": "sub", "Value": sub})];
    attributes.extend(attrs.iter().map(|(n, v)| json!({"Name": n, "Value": v})));
    json!({"Username": name, "Attributes": attributes, "Enabled": true, "UserStatus": "CONFIRMED"})
}

async fn users_in(c: &Client, pool: &str) -> Vec<String> {
    snapshot(c, pool)
        .await
        .into_iter()
        .map(|s| s.username)
        .collect()
}

/// A case-insensitive pool (the console's default) holds `Alice` and `alice` as one user: a
/// backup of a case-sensitive pool with both must be refused, not merged.
#[tokio::test]
async fn case_insensitive_target_refuses_names_that_differ_only_in_case() {
    let c = client(moto()).await;
    let target = c
        .create_user_pool()
        .pool_name(unique("ci"))
        .username_configuration(
            UsernameConfigurationType::builder()
                .case_sensitive(false)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let target = target.user_pool().unwrap().id().unwrap().to_string();
    let env = TestEnv::new();
    let file = backup_file(
        env.path(),
        "b.json",
        json!([
            user(
                "Alice",
                "00000000-0000-4000-8000-000000000001",
                &[("email", "a1@x.org")]
            ),
            user(
                "alice",
                "00000000-0000-4000-8000-000000000002",
                &[("email", "a2@x.org")]
            ),
            user(
                "BOB",
                "00000000-0000-4000-8000-000000000003",
                &[("email", "b1@x.org")]
            ),
            user(
                "bob",
                "00000000-0000-4000-8000-000000000004",
                &[("email", "b2@x.org")]
            ),
            user("carol", "00000000-0000-4000-8000-000000000005", &[]),
        ]),
    );
    let log = tempfile::NamedTempFile::new().unwrap();
    let layer = layer(&["--record", log.path().to_str().unwrap()]);
    let out = cbr(
        &layer.url,
        env.path(),
        &["restore", "-p", &target, "-i", &file],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("nothing was written"), "{err}");
    assert!(err.contains("Alice, alice"), "{err}");
    assert!(err.contains("BOB, bob"), "{err}");
    assert!(!err.contains("carol"), "{err}");
    assert!(users_in(&c, &target).await.is_empty());
    let records = recorded(log.path());
    assert!(recorded_ops(&records, "AdminCreateUser").is_empty());
}

/// A user that exists under the backup's username but is someone else (another sub, other
/// attributes) is left exactly as it is and reported as a conflict, even with
/// `--update-existing`; the sub map does not pair the two.
#[tokio::test]
async fn another_person_with_the_same_username_is_never_touched() {
    let c = client(moto()).await;
    let target = create_pool(&c, &unique("conflict"), tenant_pool()).await;
    let mut other = Seed::new("dana");
    other.attributes = vec![("email".into(), "someone.else@example.org".into())];
    seed(&c, &target, &[other]).await;
    let before = snapshot(&c, &target).await;
    let env = TestEnv::new();
    let mut dana = user(
        "dana",
        "00000000-0000-4000-8000-0000000000d1",
        &[("email", "dana@example.org")],
    );
    dana["Enabled"] = json!(false);
    dana["Groups"] = json!(["admins"]);
    let file = backup_file(
        env.path(),
        "b.json",
        json!([
            dana,
            user("erin", "00000000-0000-4000-8000-0000000000e1", &[])
        ]),
    );
    for extra in [None, Some("--update-existing")] {
        let mut args = vec!["restore", "-p", &target, "-i", &file, "--report", "r.json"];
        args.extend(extra);
        let out = env.cbr(&args);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        let report = read_json(&env.path().join("r.json"));
        assert_eq!(report["conflicts"][0]["username"], "dana");
        assert_eq!(report["conflicts"][0]["fields"][0], "attribute:email");
        assert!(stderr(&out).contains("conflict: dana"), "{}", stderr(&out));
    }
    let after = snapshot(&c, &target).await;
    let dana_after = after.iter().find(|s| s.username == "dana").unwrap();
    assert_eq!(dana_after, &before[0], "the other dana is unchanged");
    let map =
        std::fs::read_to_string(env.path().join(format!("b.sub-map.{target}.jsonl"))).unwrap();
    assert!(!map.contains("\"dana\""), "{map}");
    assert!(map.contains("\"erin\""), "{map}");
}

/// A username pool's backup into a pool that signs in with email: refused before any write
/// (users would lose their usernames; two sharing an email would become one).
#[tokio::test]
async fn a_username_backup_into_an_email_sign_in_pool_is_refused() {
    let (c, source) = seeded_pool("usernames", 6).await;
    let target = create_pool(
        &c,
        &unique("email-target"),
        PoolSpec {
            custom_attributes: vec!["tenant"],
            sign_in_with_email: true,
        },
    )
    .await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &source]));
    let out = env.cbr(&["restore", "-p", &target]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("sign in with a username, but the target pool signs in with email"),
        "{}",
        stderr(&out)
    );
    assert!(users_in(&c, &target).await.is_empty());
}

/// Email and phone aliases: usernames in email or phone format, and verified values shared by
/// several users, are all named in one refusal.
#[tokio::test]
async fn alias_pools_get_every_offending_user_named_before_any_write() {
    let c = client(moto()).await;
    let target = c
        .create_user_pool()
        .pool_name(unique("alias"))
        .alias_attributes(AliasAttributeType::Email)
        .alias_attributes(AliasAttributeType::PhoneNumber)
        .send()
        .await
        .unwrap();
    let target = target.user_pool().unwrap().id().unwrap().to_string();
    let env = TestEnv::new();
    let shared = [("email", "team@x.org"), ("email_verified", "true")];
    let file = backup_file(
        env.path(),
        "b.json",
        json!([
            user("ann@x.org", "00000000-0000-4000-8000-00000000000a", &[]),
            user("+15550100", "00000000-0000-4000-8000-00000000000b", &[]),
            user("gus", "00000000-0000-4000-8000-00000000000c", &shared),
            user("hal", "00000000-0000-4000-8000-00000000000d", &shared),
            user(
                "ivy",
                "00000000-0000-4000-8000-00000000000e",
                &[("email", "team@x.org")]
            ),
        ]),
    );
    let out = env.cbr(&["restore", "-p", &target, "-i", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("ann@x.org (email format"), "{err}");
    assert!(err.contains("+15550100 (phone number format"), "{err}");
    assert!(err.contains("gus, hal share a verified email"), "{err}");
    assert!(
        !err.contains("ivy"),
        "an unverified email is no alias: {err}"
    );
    assert!(users_in(&c, &target).await.is_empty());
}

/// A pre sign-up trigger runs for every AdminCreateUser: restore stops before any write and
/// names it, the dry run shows it, and --allow-triggers goes ahead.
#[tokio::test]
async fn lambda_triggers_stop_the_restore_unless_allowed() {
    let c = client(moto()).await;
    let target = c
        .create_user_pool()
        .pool_name(unique("triggers"))
        .lambda_config(
            LambdaConfigType::builder()
                .pre_sign_up("arn:aws:lambda:us-east-1:123456789012:function:welcome")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let target = target.user_pool().unwrap().id().unwrap().to_string();
    let env = TestEnv::new();
    let file = backup_file(
        env.path(),
        "b.json",
        json!([user("kim", "00000000-0000-4000-8000-0000000000f1", &[])]),
    );
    let out = env.cbr(&["restore", "-p", &target, "-i", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("PreSignUp"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--allow-triggers"),
        "{}",
        stderr(&out)
    );
    assert!(users_in(&c, &target).await.is_empty());

    let out = env.cbr(&[
        "restore",
        "-p",
        &target,
        "-i",
        &file,
        "--dry-run",
        "--output",
        "json",
    ]);
    assert_ok(&out);
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(plan["triggers"], json!(["PreSignUp"]));
    assert_eq!(plan["users"][0]["action"], "create");

    let out = env.cbr(&["restore", "-p", &target, "-i", &file, "--allow-triggers"]);
    assert_ok(&out);
    assert_eq!(users_in(&c, &target).await, ["kim"]);
}

/// Attributes the target's schema would reject: missing, developer-only, of another type,
/// too long, out of range: every problem in one refusal.
#[tokio::test]
async fn schema_problems_are_all_reported_at_once() {
    let c = client(moto()).await;
    let target = c
        .create_user_pool()
        .pool_name(unique("schema"))
        .schema(
            SchemaAttributeType::builder()
                .name("plan")
                .attribute_data_type(AttributeDataType::String)
                .string_attribute_constraints(
                    StringAttributeConstraintsType::builder()
                        .max_length("5")
                        .build(),
                )
                .build(),
        )
        .schema(
            SchemaAttributeType::builder()
                .name("score")
                .attribute_data_type(AttributeDataType::Number)
                .developer_only_attribute(true)
                .number_attribute_constraints(
                    NumberAttributeConstraintsType::builder()
                        .min_value("0")
                        .max_value("10")
                        .build(),
                )
                .build(),
        )
        .schema(
            SchemaAttributeType::builder()
                .name("level")
                .attribute_data_type(AttributeDataType::Number)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let target = target.user_pool().unwrap().id().unwrap().to_string();
    let env = TestEnv::new();
    let file = backup_file(
        env.path(),
        "b.json",
        json!([
            user(
                "u1",
                "00000000-0000-4000-8000-000000000101",
                &[("custom:plan", "platinum")]
            ),
            user(
                "u2",
                "00000000-0000-4000-8000-000000000102",
                &[("custom:score", "3")]
            ),
            user(
                "u3",
                "00000000-0000-4000-8000-000000000103",
                &[("dev:custom:score", "11")]
            ),
            user(
                "u4",
                "00000000-0000-4000-8000-000000000104",
                &[("custom:level", "high")]
            ),
            user(
                "u5",
                "00000000-0000-4000-8000-000000000105",
                &[("custom:tenant", "t1")]
            ),
            user(
                "u6",
                "00000000-0000-4000-8000-000000000106",
                &[("custom:plan", "gold")]
            ),
        ]),
    );
    let out = env.cbr(&["restore", "-p", &target, "-i", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    for expected in [
        "custom:plan: value longer than the target's 5 characters: u1",
        "custom:score: the target defines it as developer-only (dev:custom:score): u2",
        "dev:custom:score: outside the target's range 0..10: u3",
        "custom:level: not a whole number, as the target's schema requires: u4",
        "custom:tenant: missing from the target pool's schema",
    ] {
        assert!(err.contains(expected), "{expected:?} not in {err}");
    }
    assert!(!err.contains("u6"), "{err}");
    assert!(users_in(&c, &target).await.is_empty());
}

/// Invitations go by the medium asked for (email by default), never Cognito's SMS default.
#[tokio::test]
async fn invitations_go_by_the_chosen_medium() {
    let c = client(moto()).await;
    let env = TestEnv::new();
    let file = backup_file(
        env.path(),
        "b.json",
        json!([
            user(
                "mail",
                "00000000-0000-4000-8000-000000000201",
                &[("email", "m@x.org")]
            ),
            user(
                "both",
                "00000000-0000-4000-8000-000000000202",
                &[("email", "b@x.org"), ("phone_number", "+15550202")]
            ),
            user("none", "00000000-0000-4000-8000-000000000203", &[]),
        ]),
    );
    let expected = [
        (None, [Some(json!(["EMAIL"])), Some(json!(["EMAIL"])), None]),
        (Some("sms"), [None, Some(json!(["SMS"])), None]),
        (
            Some("both"),
            [Some(json!(["EMAIL"])), Some(json!(["EMAIL", "SMS"])), None],
        ),
    ];
    for (medium, wanted) in expected {
        let target = create_pool(&c, &unique("invite"), PoolSpec::default()).await;
        let log = tempfile::NamedTempFile::new().unwrap();
        let layer = layer(&["--record", log.path().to_str().unwrap()]);
        let mut args = vec![
            "restore",
            "-p",
            &target,
            "-i",
            &file,
            "--password-mode",
            "temporary",
            "--send-invitations",
        ];
        if let Some(m) = medium {
            args.extend(["--invitation-medium", m]);
        }
        assert_ok(&cbr(&layer.url, env.path(), &args));
        let records = recorded(log.path());
        for body in recorded_ops(&records, "AdminCreateUser") {
            let i = ["mail", "both", "none"]
                .iter()
                .position(|n| body["Username"] == *n)
                .unwrap();
            match &wanted[i] {
                Some(media) => {
                    assert_eq!(&body["DesiredDeliveryMediums"], media, "{medium:?} {body}");
                    assert!(body.get("MessageAction").is_none(), "{body}");
                }
                None => assert_eq!(body["MessageAction"], "SUPPRESS", "{medium:?} {body}"),
            }
        }
    }
}

/// In an email sign-in pool users get new usernames: the sub map carries them.
#[tokio::test]
async fn the_sub_map_carries_new_usernames_in_email_pools() {
    let c = client(moto()).await;
    let spec = PoolSpec {
        custom_attributes: vec![],
        sign_in_with_email: true,
    };
    let source = create_pool(&c, &unique("email-src"), spec.clone()).await;
    let target = create_pool(&c, &unique("email-dst"), spec).await;
    for i in 0..3 {
        c.admin_create_user()
            .user_pool_id(&source)
            .username(format!("p{i}@example.org"))
            .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
            .send()
            .await
            .unwrap();
    }
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &source]));
    assert_ok(&env.cbr(&["restore", "-p", &target]));
    let map =
        std::fs::read_to_string(env.path().join(format!("backup.sub-map.{target}.jsonl"))).unwrap();
    let target_names = users_in(&c, &target).await;
    let mut mapped: Vec<String> = map
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_ne!(v["new_username"], v["username"], "{l}");
            v["new_username"].as_str().unwrap().to_string()
        })
        .collect();
    mapped.sort();
    let mut target_names = target_names;
    target_names.sort();
    assert_eq!(mapped, target_names);
}

/// The rate the account bought is read once per category and used; `--max-rps` caps it.
/// Without the operation (or the permission) the default quotas stay, with one line at -v.
#[tokio::test]
async fn provisioned_limits_raise_the_rates_and_their_absence_is_harmless() {
    let (_, pool) = seeded_pool("limits", 3).await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let raised = layer(&[
        "--record",
        log.path().to_str().unwrap(),
        "--quotas",
        "--quota-scale",
        "2",
    ]);
    let env = TestEnv::new();
    let out = cbr(&raised.url, env.path(), &["backup", "-p", &pool, "-v"]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("request rate category=UserList provisioned=60 ceiling=60"),
        "{}",
        stderr(&out)
    );
    let records = recorded(log.path());
    let asked = recorded_ops(&records, "GetProvisionedLimit");
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0]["LimitDefinition"]["LimitClass"], "API_CATEGORY");
    assert_eq!(
        asked[0]["LimitDefinition"]["Attributes"]["Category"],
        "UserList"
    );

    let out = cbr(
        &raised.url,
        env.path(),
        &["backup", "-p", &pool, "-v", "--max-rps", "45"],
    );
    assert_ok(&out);
    assert!(
        stderr(&out).contains("provisioned=60 ceiling=45"),
        "{}",
        stderr(&out)
    );

    let old = layer(&["--no-provisioned-limits"]);
    let out = cbr(&old.url, env.path(), &["backup", "-p", &pool, "-v"]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("cannot read the provisioned limit"),
        "{}",
        stderr(&out)
    );
}

/// Group operations have a per-pool limit on top of the account's quota: a backup with many
/// groups is restored without a throttled call.
#[tokio::test]
async fn many_groups_are_paced_under_the_per_pool_limit() {
    let c = client(moto()).await;
    let target = create_pool(&c, &unique("groups"), PoolSpec::default()).await;
    let env = TestEnv::new();
    let users: Vec<Value> = (0..30)
        .map(|i| {
            let sub = format!("00000000-0000-4000-8000-0000000003{i:02}");
            let mut u = user(&format!("g{i:02}"), &sub, &[]);
            u["Groups"] = json!([format!("team-{i:02}")]);
            u
        })
        .collect();
    let file = backup_file(env.path(), "b.json", Value::Array(users));
    let layer = layer(&["--quotas"]);
    let out = cbr(
        &layer.url,
        env.path(),
        &["restore", "-p", &target, "-i", &file, "--report", "r.json"],
    );
    assert_ok(&out);
    let report = read_json(&env.path().join("r.json"));
    assert_eq!(report["groups_created"], 30);
    assert_eq!(report["memberships_added"], 30);
    assert_eq!(report["throttled_calls"], 0, "{report}");
    let stats = layer_stats(&layer);
    assert_eq!(stats["ops"]["CreateGroup"]["throttled"], 0, "{stats}");
}
