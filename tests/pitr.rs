//! Point-in-time recovery of a live pool: restore reads the target once by listing, sends only
//! the calls that change something (`--update-existing` puts damaged users back), touches no
//! one else, never messages anyone, and its dry run shows exactly what it then does. Selective
//! restore and `cbr diff`.

mod common;

use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::types::AttributeType;
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const WRITES: [&str; 10] = [
    "AdminCreateUser",
    "AdminUpdateUserAttributes",
    "AdminDeleteUserAttributes",
    "AdminEnableUser",
    "AdminDisableUser",
    "AdminAddUserToGroup",
    "AdminRemoveUserFromGroup",
    "AdminSetUserPassword",
    "AdminDeleteUser",
    "CreateGroup",
];

fn attr(name: &str, value: &str) -> AttributeType {
    AttributeType::builder()
        .name(name)
        .value(value)
        .build()
        .unwrap()
}

/// Calls per operation, of the write operations.
fn writes(records: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in records {
        let op = r["op"].as_str().unwrap();
        if WRITES.contains(&op) {
            *out.entry(op.to_string()).or_default() += 1;
        }
    }
    out
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Damage done to a live pool, directly in moto: the kinds of harm a bad script does.
async fn damage(c: &Client, pool: &str) {
    let update = |user: &'static str, attrs: Vec<AttributeType>| async move {
        c.admin_update_user_attributes()
            .user_pool_id(pool)
            .username(user)
            .set_user_attributes(Some(attrs))
            .send()
            .await
            .unwrap();
    };
    update("user00001", vec![attr("name", "Overwritten")]).await;
    update("user00002", vec![attr("custom:tenant", "added")]).await;
    // A verified email changed: restore sets it back with its verified flag, no message.
    update("user00006", vec![attr("email", "attacker@example.org")]).await;
    // An unverified phone number changed: setting it back would send a code; withheld.
    update("user00009", vec![attr("phone_number", "+15559999999")]).await;
    update("user00008", vec![attr("given_name", "Added")]).await;
    c.admin_delete_user_attributes()
        .user_pool_id(pool)
        .username("user00007")
        .user_attribute_names("name")
        .send()
        .await
        .unwrap();
    // user00003 was disabled, user00004 enabled.
    c.admin_enable_user()
        .user_pool_id(pool)
        .username("user00003")
        .send()
        .await
        .unwrap();
    c.admin_disable_user()
        .user_pool_id(pool)
        .username("user00004")
        .send()
        .await
        .unwrap();
    c.admin_remove_user_from_group()
        .user_pool_id(pool)
        .username("user00000")
        .group_name("admins")
        .send()
        .await
        .unwrap();
    c.admin_add_user_to_group()
        .user_pool_id(pool)
        .username("user00001")
        .group_name("admins")
        .send()
        .await
        .unwrap();
    c.admin_delete_user()
        .user_pool_id(pool)
        .username("user00005")
        .send()
        .await
        .unwrap();
}

const DAMAGED: [&str; 10] = [
    "user00000",
    "user00001",
    "user00002",
    "user00003",
    "user00004",
    "user00005",
    "user00006",
    "user00007",
    "user00008",
    "user00009",
];

#[tokio::test]
async fn a_damaged_live_pool_is_put_back_with_only_the_calls_needed() {
    let (c, pool) = seeded_pool("live", 40).await;
    let before = snapshot(&c, &pool).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool]));
    damage(&c, &pool).await;

    // Without --update-existing: the deleted user comes back, the rest is reported.
    let out = env.cbr(&["restore", "-p", &pool, "--dry-run", "--output", "json"]);
    assert_ok(&out);
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let actions: BTreeMap<String, String> = plan["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["username"].as_str().unwrap().to_string(),
                u["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(actions["user00005"], "create");
    // Finishing steps a restore always takes: the disabled user disabled again, the lost
    // membership added back. Everything else differs and waits for --update-existing.
    assert_eq!(actions["user00003"], "update");
    assert_eq!(actions["user00000"], "update");
    for u in [
        "user00001",
        "user00002",
        "user00004",
        "user00006",
        "user00007",
        "user00008",
    ] {
        assert_eq!(actions[u], "differs", "{u}: {plan}");
    }
    assert_eq!(actions.len(), 10, "no other user is in the plan: {plan}");
    assert_eq!(plan["summary"]["unchanged"], 30);

    // With --update-existing, through a layer that records every request. The groups'
    // members come slowly, so writes start before they are known: user00001's attributes are
    // set at once and its membership removed afterwards, counted as one updated user.
    let log = tempfile::NamedTempFile::new().unwrap();
    let layer = layer(&[
        "--record",
        log.path().to_str().unwrap(),
        "--op-latency",
        "ListUsersInGroup=1500",
    ]);
    let out = cbr(
        &layer.url,
        env.path(),
        &[
            "restore",
            "-p",
            &pool,
            "--update-existing",
            "--dry-run",
            "--output",
            "json",
        ],
    );
    assert_ok(&out);
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(plan["summary"]["created"], 1);
    assert_eq!(plan["summary"]["users_updated"], 8);
    assert!(
        writes(&recorded(log.path())).is_empty(),
        "a dry run writes nothing"
    );

    let out = cbr(
        &layer.url,
        env.path(),
        &[
            "restore",
            "-p",
            &pool,
            "--update-existing",
            "--report",
            "r.json",
        ],
    );
    // The withheld phone number makes it "finished, not all right".
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let report = read_json(&env.path().join("r.json"));
    assert_eq!(report["created"], plan["summary"]["created"]);
    assert_eq!(report["users_updated"], plan["summary"]["users_updated"]);
    assert_eq!(report["unchanged"], plan["summary"]["unchanged"]);
    assert_eq!(report["withheld"][0]["username"], "user00009");
    assert_eq!(report["withheld"][0]["field"], "attribute:phone_number");
    assert!(
        stderr(&out).contains("withheld: user00009 attribute:phone_number"),
        "{}",
        stderr(&out)
    );

    let records = recorded(log.path());
    assert!(recorded_ops(&records, "AdminGetUser").is_empty());
    let at = |r: &Value| r["at"].as_f64().unwrap();
    let members_known = records
        .iter()
        .filter(|r| r["op"] == "ListUsersInGroup")
        .map(|r| at(r) + 1.5)
        .fold(0.0, f64::max);
    let first_write = records
        .iter()
        .filter(|r| WRITES.contains(&r["op"].as_str().unwrap()) && r["op"] != "CreateGroup")
        .map(at)
        .fold(f64::INFINITY, f64::min);
    assert!(
        first_write < members_known,
        "writes start while the groups' members are still being listed"
    );
    let user1: Vec<&str> = records
        .iter()
        .filter(|r| r["body"]["Username"] == "user00001" && r["op"] != "ListUsers")
        .map(|r| r["op"].as_str().unwrap())
        .collect();
    assert_eq!(
        user1,
        ["AdminUpdateUserAttributes", "AdminRemoveUserFromGroup"]
    );
    assert_eq!(report["updated"]["groups"], 2, "{report}");
    // Cognito would have sent no message to anyone.
    assert_eq!(layer_stats(&layer)["messages"], serde_json::json!([]));
    // Exactly the calls the changes need: one per changed thing, none for unchanged users.
    let mut expected = counts(&[
        ("AdminCreateUser", 1),           // user00005
        ("AdminUpdateUserAttributes", 3), // 1, 6 (with email_verified), 7
        ("AdminDeleteUserAttributes", 2), // 2 (its tenant was added), 8
        ("AdminEnableUser", 1),           // 4
        ("AdminDisableUser", 1),          // 3
        ("AdminAddUserToGroup", 2),       // 0, and 5 recreated
        ("AdminRemoveUserFromGroup", 1),  // 1
    ]);
    expected.retain(|_, n| *n > 0);
    assert_eq!(writes(&records), expected);
    for r in &records {
        if WRITES.contains(&r["op"].as_str().unwrap()) && r["op"] != "CreateGroup" {
            let user = r["body"]["Username"].as_str().unwrap();
            assert!(DAMAGED.contains(&user), "{user} was not damaged: {r}");
        }
    }
    let email = recorded_ops(&records, "AdminUpdateUserAttributes")
        .into_iter()
        .find(|b| b["Username"] == "user00006")
        .unwrap()
        .clone();
    let names: BTreeSet<&str> = email["UserAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["email", "email_verified"]));

    // The pool is as it was, but for the withheld phone number.
    let after = snapshot(&c, &pool).await;
    for (was, now) in before.iter().zip(&after) {
        if was.username == "user00009" {
            assert_ne!(was, now);
        } else {
            assert_eq!(was, now);
        }
    }
    assert_eq!(before.len(), after.len());

    // verify agrees, naming only the withheld difference.
    let out = env.cbr(&["verify", "-p", &pool, "--output", "json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["pool"]["different"], 1, "{v}");
    assert_eq!(v["pool"]["missing_from_pool"], 0);

    // A rerun sends no write at all, and no per-user read.
    let log2 = tempfile::NamedTempFile::new().unwrap();
    let layer2 = common::layer(&["--record", log2.path().to_str().unwrap()]);
    let out = cbr(
        &layer2.url,
        env.path(),
        &[
            "restore",
            "-p",
            &pool,
            "--update-existing",
            "--report",
            "again.json",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let records = recorded(log2.path());
    assert!(writes(&records).is_empty(), "{:?}", writes(&records));
    assert!(recorded_ops(&records, "AdminGetUser").is_empty());
    let again = read_json(&env.path().join("again.json"));
    assert_eq!(again["unchanged"], 39);
    assert_eq!(again["users_updated"], 0);
}

#[tokio::test]
async fn one_deleted_user_comes_back_without_touching_anyone_else() {
    let c = client(moto()).await;
    let pool = create_pool(&c, &unique("big"), PoolSpec::default()).await;
    let users: Vec<Seed> = (0..5000)
        .map(|i| Seed::new(&format!("user{i:05}")))
        .collect();
    seed(&c, &pool, &users).await;
    let env = TestEnv::new();
    let fast = layer(&["--index-listings"]);
    assert_ok(&cbr(&fast.url, env.path(), &["backup", "-p", &pool]));
    c.admin_delete_user()
        .user_pool_id(&pool)
        .username("user02500")
        .send()
        .await
        .unwrap();

    // Bad selections are refused before anything is written.
    let out = env.cbr(&["restore", "-p", &pool, "--user", "ghost"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no user named ghost"),
        "{}",
        stderr(&out)
    );
    for (filter, why) in [
        ("custom:tenant = \"t1\"", "cannot filter on"),
        ("email ~ \"a\"", "invalid filter"),
    ] {
        let out = env.cbr(&["restore", "-p", &pool, "--filter", filter]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
    }
    assert_eq!(snapshot(&c, &pool).await.len(), 4999);

    let log = tempfile::NamedTempFile::new().unwrap();
    let layer = layer(&["--record", log.path().to_str().unwrap(), "--index-listings"]);
    let out = cbr(
        &layer.url,
        env.path(),
        &[
            "restore",
            "-p",
            &pool,
            "--user",
            "user02500",
            "--report",
            "r.json",
        ],
    );
    assert_ok(&out);
    let records = recorded(log.path());
    let lists = recorded_ops(&records, "ListUsers");
    assert_eq!(lists.len(), 1, "one lookup, no listing: {lists:?}");
    assert_eq!(lists[0]["Filter"], "username = \"user02500\"");
    assert!(recorded_ops(&records, "ListUsersInGroup").is_empty());
    assert!(recorded_ops(&records, "AdminGetUser").is_empty());
    assert_eq!(writes(&records), counts(&[("AdminCreateUser", 1)]));
    assert_eq!(
        recorded_ops(&records, "AdminCreateUser")[0]["Username"],
        "user02500"
    );
    let report = read_json(&env.path().join("r.json"));
    assert_eq!(report["users_in_backup"], 1);
    assert_eq!(report["created"], 1);

    // A filter selects by the backup's values: ten users, one lookup each, all present.
    let log = tempfile::NamedTempFile::new().unwrap();
    let layer = common::layer(&["--record", log.path().to_str().unwrap(), "--index-listings"]);
    let out = cbr(
        &layer.url,
        env.path(),
        &[
            "restore",
            "-p",
            &pool,
            "--filter",
            "username ^= \"user0250\"",
            "--report",
            "f.json",
        ],
    );
    assert_ok(&out);
    let records = recorded(log.path());
    assert_eq!(recorded_ops(&records, "ListUsers").len(), 10);
    assert!(writes(&records).is_empty());
    assert_eq!(read_json(&env.path().join("f.json"))["unchanged"], 10);
}

#[tokio::test]
async fn diff_names_what_changed_between_backups_and_against_the_pool() {
    let (c, pool) = seeded_pool("diff", 20).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool, "-o", "a.json"]));
    damage(&c, &pool).await;
    assert_ok(&env.cbr(&["backup", "-p", &pool, "-o", "b.json"]));

    let out = env.cbr(&["diff", "a.json", "a.json"]);
    assert_ok(&out);
    assert!(
        stdout(&out).ends_with("diff: the same\n"),
        "{}",
        stdout(&out)
    );

    let offline = env.cbr(&["diff", "a.json", "b.json", "--output", "json"]);
    let live = env.cbr(&["diff", "a.json", "-p", &pool, "--output", "json"]);
    for out in [&offline, &live] {
        assert_eq!(out.status.code(), Some(3), "{}", stderr(out));
        let d: Value = serde_json::from_str(&stdout(out)).unwrap();
        assert_eq!(d["only_in_a"], serde_json::json!(["user00005"]));
        assert_eq!(d["only_in_b"], serde_json::json!([]));
        let fields: BTreeMap<String, Vec<String>> = d["different"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["username"].as_str().unwrap().to_string(),
                    serde_json::from_value(x["fields"].clone()).unwrap(),
                )
            })
            .collect();
        assert_eq!(fields["user00001"], ["attribute:name", "groups"]);
        assert_eq!(fields["user00002"], ["attribute:custom:tenant"]);
        assert_eq!(fields["user00003"], ["enabled"]);
        assert_eq!(fields["user00008"], ["attribute:given_name"]);
        assert_eq!(fields.len(), 9, "{fields:?}");
        assert_eq!(d["same"], 10);
        assert!(!stdout(out).contains("attacker@example.org"), "no values");
    }
}

/// In a pool where people sign in with their email, a changed email does not make the user
/// someone else: restore finds the person by `sub` and sets the email back, creating nobody
/// (a match by email alone would create a second account for the same person). Both when it
/// lists the pool and when it looks one user up.
#[tokio::test]
async fn a_changed_sign_in_email_is_put_back_on_the_same_person() {
    let c = client(moto()).await;
    let spec = PoolSpec {
        sign_in_with_email: true,
        ..Default::default()
    };
    let pool = create_pool(&c, &unique("email-live"), spec).await;
    let seeds: Vec<Seed> = (0..100)
        .map(|i| {
            let email = format!("person{i:03}@example.org");
            let mut s = Seed::new("x");
            s.username = email.clone();
            s.attributes = vec![
                ("email".into(), email),
                ("email_verified".into(), "true".into()),
            ];
            s
        })
        .collect();
    seed(&c, &pool, &seeds).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool]));
    let username_of = |email: &str| {
        read_backup(&env.path().join("backup.json"))
            .into_iter()
            .find(|r| {
                r["Attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["Value"] == email)
            })
            .unwrap()["Username"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let victim = username_of("person007@example.org");
    let email_of = |snap: &[Snapshot]| {
        snap.iter()
            .find(|s| s.username == victim)
            .unwrap()
            .attributes
            .iter()
            .find(|a| a.0 == "email")
            .unwrap()
            .1
            .clone()
    };

    for selective in [false, true] {
        c.admin_update_user_attributes()
            .user_pool_id(&pool)
            .username(&victim)
            .user_attributes(attr("email", "changed@example.org"))
            .send()
            .await
            .unwrap();
        let log = tempfile::NamedTempFile::new().unwrap();
        let layer = layer(&["--record", log.path().to_str().unwrap()]);
        let mut args = vec!["restore", "-p", &pool, "--update-existing"];
        if selective {
            args.extend(["--user", &victim]);
        }
        assert_ok(&cbr(&layer.url, env.path(), &args));
        let records = recorded(log.path());
        assert_eq!(
            writes(&records),
            counts(&[("AdminUpdateUserAttributes", 1)]),
            "selective: {selective}"
        );
        let update = recorded_ops(&records, "AdminUpdateUserAttributes")[0];
        assert_eq!(update["Username"], victim.as_str());
        if selective {
            let lookups = recorded_ops(&records, "ListUsers");
            assert_eq!(lookups.len(), 1, "found by sub at once: {lookups:?}");
            assert!(
                lookups[0]["Filter"].as_str().unwrap().starts_with("sub = "),
                "{lookups:?}"
            );
        }
        let after = snapshot(&c, &pool).await;
        assert_eq!(after.len(), 100, "nobody was created");
        assert_eq!(email_of(&after), "person007@example.org");
        assert_eq!(layer_stats(&layer)["messages"], serde_json::json!([]));
    }
}

/// A listing that fails stops the restore with the listing's own error: nothing is written
/// when no prefix could be listed, and when the groups' members cannot be read, whatever was
/// already put back is reported with why the rest was not.
#[tokio::test]
async fn a_listing_that_fails_is_named_and_nothing_else_is_assumed() {
    let (c, pool) = seeded_pool("list-fails", 40).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool]));
    damage(&c, &pool).await;

    let log = tempfile::NamedTempFile::new().unwrap();
    let failing = layer(&[
        "--record",
        log.path().to_str().unwrap(),
        "--fail-always",
        "ListUsers",
    ]);
    let args = [
        "restore",
        "-p",
        &pool,
        "--update-existing",
        "--max-attempts",
        "2",
        "--report",
        "r.json",
    ];
    let out = cbr(&failing.url, env.path(), &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("sub prefix"), "{}", stderr(&out));
    assert!(writes(&recorded(log.path())).is_empty());

    let log = tempfile::NamedTempFile::new().unwrap();
    let failing = layer(&[
        "--record",
        log.path().to_str().unwrap(),
        "--fail-always",
        "ListUsersInGroup",
    ]);
    let out = cbr(&failing.url, env.path(), &args);
    let err = stderr(&out);
    assert!(err.contains("listing the members of group"), "{err}");
    let written = writes(&recorded(log.path()));
    match out.status.code() {
        // Nothing was written before the failure: a plain error.
        Some(1) => assert!(written.is_empty(), "{written:?}"),
        // Some users were put back first: the report says the reading stopped.
        Some(3) => {
            let report = read_json(&env.path().join("r.json"));
            assert!(report["input_error"].is_string(), "{report}");
            assert!(!written.contains_key("AdminCreateUser"));
        }
        code => panic!("exit {code:?}: {err}"),
    }
}
