//! `cbr restore` end to end against moto: a round trip that brings the pool back as it was,
//! reruns, other tools' files, bad input refused before any write, the requests on the wire,
//! sign-in with email, several files at once, and faults.

mod common;

use common::*;
use serde_json::Value;
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// old sub → new sub, from a sub map file.
fn sub_map(path: &Path) -> BTreeMap<String, (String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["username"].as_str().unwrap().to_string(),
                (
                    v["old_sub"].as_str().unwrap().to_string(),
                    v["new_sub"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

/// username → sub, from the pool.
async fn subs(c: &aws_sdk_cognitoidentityprovider::Client, pool: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for u in all_users(c, pool).await {
        let sub = u.attributes().iter().find(|a| a.name() == "sub").unwrap();
        out.insert(
            u.username().unwrap().to_string(),
            sub.value().unwrap().to_string(),
        );
    }
    out
}

async fn user_count(c: &aws_sdk_cognitoidentityprovider::Client, pool: &str) -> usize {
    subs(c, pool).await.len()
}

async fn group_names(c: &aws_sdk_cognitoidentityprovider::Client, pool: &str) -> Vec<String> {
    let out = c.list_groups().user_pool_id(pool).send().await.unwrap();
    out.groups()
        .iter()
        .map(|g| g.group_name().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn round_trip_brings_the_pool_back_and_a_rerun_is_harmless() {
    let (c, source) = seeded_pool("source", 80).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &source]));

    let target = create_pool(&c, &unique("target"), tenant_pool()).await;
    let out = env.cbr(&["restore", "-p", &target, "--report", "report.json"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
    let summary = stderr(&out);
    assert!(
        summary
            .lines()
            .any(|l| l.trim_start().starts_with("created ") && l.ends_with(" 80")),
        "{summary}"
    );

    // Users, attributes, enabled state, status and memberships are as they were.
    assert_eq!(snapshot(&c, &target).await, snapshot(&c, &source).await);
    // Groups keep their description, precedence and role.
    let g = c
        .get_group()
        .user_pool_id(&target)
        .group_name("admins")
        .send()
        .await
        .unwrap();
    let g = g.group().unwrap();
    assert_eq!(g.description(), Some("Administrators"));
    assert_eq!(g.precedence(), Some(1));
    assert_eq!(g.role_arn(), Some("arn:aws:iam::123456789012:role/admins"));

    // The sub map pairs each user's old and new sub.
    let map = sub_map(&env.path().join(format!("backup.sub-map.{target}.jsonl")));
    let (old, new) = (subs(&c, &source).await, subs(&c, &target).await);
    assert_eq!(map.len(), 80);
    for (username, (old_sub, new_sub)) in &map {
        assert_eq!(&old[username], old_sub);
        assert_eq!(&new[username], new_sub);
        assert_ne!(old_sub, new_sub);
    }

    let report: Value = read_json(&env.path().join("report.json"));
    assert_eq!(report["created"], 80);
    let disabled = varied_users(80).iter().filter(|s| s.disabled).count();
    assert_eq!(report["disabled"], disabled);
    assert_eq!(report["confirmed_with_random_password"], 40);
    assert_eq!(report["groups_created"], 2);
    assert_eq!(report["failed"].as_array().unwrap().len(), 0);

    // Again: nothing new, exit 0, the same pool, a complete sub map.
    let out = env.cbr(&["restore", "-p", &target, "--report", "again.json"]);
    assert_ok(&out);
    let again: Value = read_json(&env.path().join("again.json"));
    assert_eq!(again["created"], 0);
    assert_eq!(again["unchanged"], 80);
    assert_eq!(again["users_updated"], 0);
    assert_eq!(again["groups_already_present"], 2);
    assert_eq!(again["confirmed_with_random_password"], 0);
    assert_eq!(snapshot(&c, &target).await, snapshot(&c, &source).await);
    assert_eq!(
        sub_map(&env.path().join(format!("backup.sub-map.{target}.jsonl"))),
        map
    );
}

/// What moto accepts but Cognito rejects, checked on the wire: no `sub` or `identities`, and
/// `MessageAction=SUPPRESS` on every AdminCreateUser. The layer refuses `sub` as Cognito does.
#[tokio::test]
async fn create_requests_never_carry_sub_or_identities_and_suppress_messages() {
    let c = client(moto()).await;
    let target = create_pool(&c, &unique("wire"), tenant_pool()).await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let layer = layer(&["--record", log.path().to_str().unwrap()]);
    let env = TestEnv::new();
    let file = fixture("go-original/backup.json", env.path());
    // A native user that once had a Google identity linked.
    let linked = r#"[{"Username":"linked","UserStatus":"CONFIRMED","Attributes":[
        {"Name":"sub","Value":"0b0c2f36-3a1f-4cde-9c52-0d3c50f5e9aa"},
        {"Name":"email","Value":"linked@example.org"},
        {"Name":"identities","Value":"[{\"providerName\":\"Google\"}]"}]}]"#;
    std::fs::write(env.path().join("linked.json"), linked).unwrap();
    let out = cbr(
        &layer.url,
        env.path(),
        &[
            "restore",
            "-p",
            &target,
            "-i",
            file.to_str().unwrap(),
            "linked.json",
            "--report",
            "r.json",
            "-vv",
        ],
    );
    assert_ok(&out);
    let report: Value = read_json(&env.path().join("r.json"));
    assert_eq!(report["lost_federated_link"], 1);
    let records = recorded(log.path());
    let creates = recorded_ops(&records, "AdminCreateUser");
    assert_eq!(creates.len(), 13, "13 + 1 users, one federated");
    for body in creates {
        assert_eq!(body["MessageAction"], "SUPPRESS");
        assert!(body.get("TemporaryPassword").is_none());
        for a in body["UserAttributes"].as_array().unwrap() {
            assert_ne!(a["Name"], "sub");
            assert_ne!(a["Name"], "identities");
        }
    }
    for body in recorded_ops(&records, "AdminSetUserPassword") {
        assert_eq!(body["Permanent"], true);
        assert!(body["Password"].as_str().unwrap().len() >= 32);
    }
    // The password never reaches the logs or the summary.
    let passwords: Vec<String> = recorded_ops(&records, "AdminSetUserPassword")
        .iter()
        .map(|b| b["Password"].as_str().unwrap().to_string())
        .collect();
    assert!(!passwords.is_empty());
    let log = stderr(&out);
    for p in &passwords {
        assert!(!log.contains(p.as_str()));
    }
    // Nor do attribute values, even at -vv.
    assert!(log.contains("TRACE"), "{log}");
    assert!(!log.contains("@example.org"), "{log}");
}

#[tokio::test]
async fn reads_the_go_original_and_npm_files() {
    let c = client(moto()).await;
    let env = TestEnv::new();

    // The Go original's file: 13 users, one federated, one with a federated link.
    let target = create_pool(&c, &unique("go"), tenant_pool()).await;
    let file = fixture("go-original/backup.json", env.path());
    let out = env.cbr(&[
        "restore",
        "-p",
        &target,
        "-i",
        file.to_str().unwrap(),
        "--report",
        "go.json",
    ]);
    assert_ok(&out);
    let report: Value = read_json(&env.path().join("go.json"));
    assert_eq!(report["created"], 12);
    assert_eq!(report["skipped"]["federated (EXTERNAL_PROVIDER)"], 1);
    assert_eq!(
        report["lost_federated_link"], 0,
        "the linked user is the federated one"
    );
    let restored = snapshot(&c, &target).await;
    assert_eq!(restored.len(), 12);
    let original = read_backup(&file);
    for r in original
        .iter()
        .filter(|r| r["UserStatus"] != "EXTERNAL_PROVIDER")
    {
        let name = r["Username"].as_str().unwrap();
        let s = restored.iter().find(|s| s.username == name).unwrap();
        assert_eq!(s.enabled, r["Enabled"].as_bool().unwrap(), "{name}");
        let expected = if r["UserStatus"] == "CONFIRMED" {
            "CONFIRMED"
        } else {
            "FORCE_CHANGE_PASSWORD"
        };
        assert_eq!(s.status, expected, "{name}");
    }

    // `null` for an empty pool; npm, plain and with inline groups (which are created).
    let restore_fixture = |name: &'static str| {
        let (c, dir) = (c.clone(), env.path().to_path_buf());
        async move {
            let pool =
                create_pool(&c, &unique(&name.replace(['/', '.'], "-")), tenant_pool()).await;
            let file = fixture(name, &dir);
            assert_ok(&cbr(
                moto(),
                &dir,
                &["restore", "-p", &pool, "-i", file.to_str().unwrap()],
            ));
            (pool, file)
        }
    };
    let (empty, _) = restore_fixture("go-original/backup-empty.json").await;
    assert_eq!(user_count(&c, &empty).await, 0);
    let (npm, _) = restore_fixture("npm/backup.json").await;
    assert_eq!(user_count(&c, &npm).await, 6);
    let (npm_groups, file) = restore_fixture("npm/backup-with-groups.json").await;
    let restored = snapshot(&c, &npm_groups).await;
    assert_eq!(restored.len(), 8);
    for r in read_backup(&file) {
        let s = restored
            .iter()
            .find(|s| s.username == r["Username"].as_str().unwrap())
            .unwrap();
        let mut groups: Vec<String> = r["Groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap().to_string())
            .collect();
        groups.sort();
        assert_eq!(s.groups, groups);
    }
}

#[tokio::test]
async fn bad_files_are_refused_before_anything_is_written() {
    let c = client(moto()).await;
    let target = create_pool(&c, &unique("bad-input"), tenant_pool()).await;
    let env = TestEnv::new();
    let good = r#"[{"Username":"ok","Attributes":[{"Name":"email","Value":"ok@example.org"}],"Groups":["g"]}"#;
    let cases: Vec<(&str, String, &str)> = vec![
        ("empty.json", String::new(), "is empty"),
        ("not-json.json", "hello".into(), "line 1 column"),
        ("truncated.json", good.to_string(), "truncated"),
        (
            "object.json",
            "{\"Users\": []}".into(),
            "expected a JSON array",
        ),
        (
            "no-username.json",
            format!("{good},\n{{\"Attributes\": []}}]"),
            "record 2 has no Username",
        ),
        (
            "wrong-type.json",
            format!("{good},\n{{\"Username\":\"bob\",\"Enabled\":\"yes\"}}]"),
            "record 2 (username \"bob\"): field Enabled",
        ),
        (
            "duplicate.json",
            format!("{good},\n{{\"Username\":\"ok\"}}]"),
            "appears more than once",
        ),
    ];
    for (name, text, expected) in &cases {
        std::fs::write(env.path().join(name), text).unwrap();
        let out = env.cbr(&["restore", "-p", &target, "-i", name]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = stderr(&out);
        assert!(err.contains(name), "{name}: {err}");
        assert!(err.contains(expected), "{name}: {err}");
    }
    let out = env.cbr(&["restore", "-p", &target, "-i", "missing.json"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("missing.json"));
    // A good file before a bad one: still nothing written.
    std::fs::write(env.path().join("good.json"), format!("{good}]")).unwrap();
    let out = env.cbr(&[
        "restore",
        "-p",
        &target,
        "-i",
        "good.json",
        "truncated.json",
    ]);
    assert!(!out.status.success());
    assert_eq!(user_count(&c, &target).await, 0);
    assert!(group_names(&c, &target).await.is_empty());
}

#[tokio::test]
async fn a_changed_file_is_refused_unless_overridden() {
    let c = client(moto()).await;
    let source = create_pool(&c, &unique("sum-src"), tenant_pool()).await;
    seed(&c, &source, &varied_users(5)).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &source]));
    let path = env.path().join("backup.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("user00001", "user00009x")).unwrap();

    let target = create_pool(&c, &unique("sum-dst"), tenant_pool()).await;
    let out = env.cbr(&["restore", "-p", &target]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("does not match its manifest"),
        "{}",
        stderr(&out)
    );
    assert_eq!(user_count(&c, &target).await, 0);
    let out = env.cbr(&["restore", "-p", &target, "--ignore-checksum"]);
    assert_ok(&out);
    assert_eq!(user_count(&c, &target).await, 5);
}

#[tokio::test]
async fn preflight_reports_missing_custom_attributes_and_creates_nothing() {
    let c = client(moto()).await;
    let target = create_pool(&c, &unique("no-tenant"), PoolSpec::default()).await;
    let env = TestEnv::new();
    let file = fixture("npm/backup-with-groups.json", env.path());
    let out = env.cbr(&["restore", "-p", &target, "-i", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("custom:tenant"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(user_count(&c, &target).await, 0);
    assert!(group_names(&c, &target).await.is_empty());
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let c = client(moto()).await;
    let target = create_pool(&c, &unique("dry"), tenant_pool()).await;
    let env = TestEnv::new();
    let file = fixture("npm/backup-with-groups.json", env.path());
    let out = env.cbr(&[
        "restore",
        "-p",
        &target,
        "-i",
        file.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_ok(&out);
    let plan = stdout(&out);
    assert_eq!(
        plan.lines()
            .filter(|l| l.starts_with("  create npm"))
            .count(),
        8,
        "{plan}"
    );
    assert!(plan.contains("  create group admins"), "{plan}");
    assert_eq!(user_count(&c, &target).await, 0);
    assert!(group_names(&c, &target).await.is_empty());
    assert_eq!(files_in(env.path()), ["backup-with-groups.json"]);
}

#[tokio::test]
async fn sharded_backup_restores_in_one_run_and_duplicates_are_refused() {
    let (c, source) = seeded_pool("shard-src", 60).await;
    let env = TestEnv::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        assert_ok(&env.cbr(&["backup", "-p", &source, "--shard", &shard]));
    }
    let target = create_pool(&c, &unique("shard-dst"), tenant_pool()).await;
    let out = env.cbr(&[
        "restore",
        "-p",
        &target,
        "-i",
        "backup-1.json",
        "backup-2.json",
        "backup-3.json",
    ]);
    assert_ok(&out);
    assert_eq!(snapshot(&c, &target).await, snapshot(&c, &source).await);
    assert_eq!(
        sub_map(&env.path().join(format!("backup-1.sub-map.{target}.jsonl"))).len(),
        60
    );

    let other = create_pool(&c, &unique("dup-dst"), tenant_pool()).await;
    let out = env.cbr(&[
        "restore",
        "-p",
        &other,
        "-i",
        "backup-1.json",
        "backup-1.json",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("more than once"), "{}", stderr(&out));
    assert_eq!(user_count(&c, &other).await, 0);
}

/// A source pool whose users are in many groups (`users_in_many_groups`), and a shard set of
/// it in 3 files (`s-1.json` … `s-3.json`) beside a whole backup (`whole.json`), taken through
/// a layer: returns the UserList calls (ListUsers, ListUsersInGroup) of the whole backup and of
/// the three shards together.
async fn split_set(
    env: &TestEnv,
    layer: &Server,
    name: &str,
    n: usize,
) -> (String, [(u64, u64); 2]) {
    let c = client(moto()).await;
    let source = create_pool(&c, &unique(name), tenant_pool()).await;
    create_groups(&c, &source).await;
    seed(&c, &source, &users_in_many_groups(n)).await;
    let before = user_list_calls(layer);
    assert_ok(&env.cbr(&["backup", "-p", &source, "-o", "whole.json"]));
    let whole = user_list_calls(layer);
    for k in 1..=3 {
        let shard = format!("{k}/3");
        assert_ok(&env.cbr(&["backup", "-p", &source, "-o", "s.json", "--shard", &shard]));
    }
    let after = user_list_calls(layer);
    let calls = [
        (whole.0 - before.0, whole.1 - before.1),
        (after.0 - whole.0, after.1 - whole.1),
    ];
    (source, calls)
}

/// Shards split the memberships: each group's members are listed by one shard, the others'
/// users' memberships go into its members file, and a restore of the whole set brings every
/// membership back; the restored pool looks restored to verify, diff and a rerun.
#[tokio::test]
async fn a_split_shard_set_lists_each_group_once_and_restores_every_membership() {
    let layer = layer(&[]);
    let env = TestEnv::through(&layer.url);
    let (source, [whole, shards]) = split_set(&env, &layer, "split-src", 60).await;
    eprintln!(
        "UserList calls: whole backup {} (ListUsers {}, ListUsersInGroup {}); 3 shards {} \
         (ListUsers {}, ListUsersInGroup {})",
        whole.0 + whole.1,
        whole.0,
        whole.1,
        shards.0 + shards.1,
        shards.0,
        shards.1
    );
    // Each group's members are listed once by the set, as often as by the whole backup.
    assert_eq!(shards.1, whole.1, "ListUsersInGroup calls of the set");
    let mut listed: Vec<String> = Vec::new();
    for k in 1..=3 {
        let manifest = read_json(&env.path().join(format!("s-{k}.meta.json")));
        let split = &manifest["memberships"];
        assert_eq!(split["file"], format!("s-{k}.members.json"), "{manifest}");
        let file = env.path().join(format!("s-{k}.members.json"));
        assert_eq!(
            read_backup(&file).len() as u64,
            split["count"].as_u64().unwrap()
        );
        let mode = std::fs::metadata(&file).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        listed.extend(
            split["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g.as_str().unwrap().to_string()),
        );
    }
    listed.sort();
    assert_eq!(
        listed,
        [
            "admins",
            "editors",
            "everyone",
            "solo",
            "管理者",
            "🚀-launch-team"
        ]
    );
    // Together, the set holds exactly the whole backup's records and memberships.
    assert_eq!(
        records_of_set(env.path(), &["s-1.json", "s-2.json", "s-3.json"]),
        normalized(read_backup(&env.path().join("whole.json")))
    );

    // The whole set, as the shell expands `s-*.json` (manifests and members files too).
    let c = client(moto()).await;
    let target = create_pool(&c, &unique("split-dst"), tenant_pool()).await;
    let mut inputs: Vec<String> = files_in(env.path())
        .into_iter()
        .filter(|f| f.starts_with("s-") && f.ends_with(".json") && !f.contains(".config."))
        .collect();
    inputs.sort();
    assert_eq!(inputs.len(), 9, "{inputs:?}");
    let mut args = vec!["restore", "-p", &target, "--in"];
    args.extend(inputs.iter().map(String::as_str));
    assert_ok(&env.cbr(&args));
    let restored = snapshot(&c, &target).await;
    assert_eq!(restored, snapshot(&c, &source).await);
    assert_eq!(
        restored
            .iter()
            .filter(|u| u.groups.contains(&"everyone".to_string()))
            .count(),
        60
    );

    // Verify and diff: the restored pool and the source match the set.
    let set = ["s-1.json", "s-2.json", "s-3.json"];
    for pool in [&target, &source] {
        let mut verify = vec!["verify", "-p", pool, "-i"];
        verify.extend(set);
        let out = env.cbr(&verify);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        let out = env.cbr(&["diff", "whole.json", "-p", pool]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        let mut diff = vec!["diff", "-p", pool, "--in"];
        diff.extend(set);
        let out = env.cbr(&diff);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stdout(&out).contains("(60 users)"), "{}", stdout(&out));
    }
    // A rerun sends no write.
    let before = layer_writes(&layer);
    let mut rerun = vec!["restore", "-p", &target, "--update-existing", "-i"];
    rerun.extend(set);
    assert_ok(&env.cbr(&rerun));
    assert_eq!(layer_writes(&layer), before, "{}", layer_stats(&layer));

    // A changed members file is found by verify, and refused by restore before any write.
    let members = env.path().join("s-3.members.json");
    let mut entries = read_backup(&members);
    entries.pop();
    std::fs::write(&members, serde_json::to_vec_pretty(&entries).unwrap()).unwrap();
    let out = env.cbr(&["verify", "-i", "s-3.json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("changed or damaged"),
        "{}",
        stdout(&out)
    );
    let other = create_pool(&c, &unique("split-damaged"), tenant_pool()).await;
    let out = env.cbr(&[
        "restore", "-p", &other, "-i", "s-1.json", "s-2.json", "s-3.json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("changed or damaged"),
        "{}",
        stderr(&out)
    );
    assert_eq!(user_count(&c, &other).await, 0);
}

/// A shard set written before memberships were split (every record with all its groups, no
/// members file, a manifest without `memberships`) still restores every membership.
#[tokio::test]
async fn a_shard_set_of_an_older_version_still_restores_every_membership() {
    let layer = layer(&[]);
    let env = TestEnv::through(&layer.url);
    let (source, _) = split_set(&env, &layer, "old-set-src", 30).await;
    // Rewrite the set as older versions wrote it: the whole backup's records (all groups) of
    // each shard's users, each manifest without `memberships`, with the new file's SHA-256.
    let whole = read_backup(&env.path().join("whole.json"));
    for k in 1..=3 {
        let data = env.path().join(format!("s-{k}.json"));
        let names: BTreeSet<String> = read_backup(&data)
            .iter()
            .map(|r| r["Username"].as_str().unwrap().to_string())
            .collect();
        let records: Vec<&Value> = whole
            .iter()
            .filter(|r| names.contains(r["Username"].as_str().unwrap()))
            .collect();
        let bytes = serde_json::to_vec_pretty(&records).unwrap();
        std::fs::write(&data, &bytes).unwrap();
        std::fs::remove_file(env.path().join(format!("s-{k}.members.json"))).unwrap();
        let meta = env.path().join(format!("s-{k}.meta.json"));
        let mut manifest = read_json(&meta);
        manifest.as_object_mut().unwrap().remove("memberships");
        manifest["sha256"] = Value::String(format!("{:x}", sha2::Sha256::digest(&bytes)));
        std::fs::write(&meta, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    }
    let c = client(moto()).await;
    let target = create_pool(&c, &unique("old-set-dst"), tenant_pool()).await;
    let set = ["s-1.json", "s-2.json", "s-3.json"];
    let mut args = vec!["restore", "-p", &target, "-i"];
    args.extend(set);
    assert_ok(&env.cbr(&args));
    assert_eq!(snapshot(&c, &target).await, snapshot(&c, &source).await);
    let mut verify = vec!["verify", "-p", &target, "-i"];
    verify.extend(set);
    let out = env.cbr(&verify);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

/// `--partial` with one file of a split set: its users, with their memberships in the groups
/// that shard listed and no other; a warning names the groups left out. Into a pool that has
/// the users with all their groups, `--update-existing` removes none of the others.
#[tokio::test]
async fn part_of_a_split_set_restores_the_memberships_its_shards_listed() {
    let layer = layer(&[]);
    let env = TestEnv::through(&layer.url);
    let (source, _) = split_set(&env, &layer, "split-part-src", 40).await;
    let c = client(moto()).await;
    let target = create_pool(&c, &unique("split-part-dst"), tenant_pool()).await;
    let out = env.cbr(&["restore", "-p", &target, "-i", "s-2.json", "--partial"]);
    assert_ok(&out);
    assert!(
        stderr(&out)
            .contains("memberships in the groups the missing shards listed are not restored")
            && stderr(&out).contains("admins, editors, 管理者, 🚀-launch-team"),
        "{}",
        stderr(&out)
    );
    // Shard 2 listed `everyone` and `solo`.
    let listed = ["everyone", "solo"];
    let mine: BTreeSet<String> = read_backup(&env.path().join("s-2.json"))
        .iter()
        .map(|r| r["Username"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<Snapshot> = snapshot(&c, &source)
        .await
        .into_iter()
        .filter(|u| mine.contains(&u.username))
        .map(|mut u| {
            u.groups.retain(|g| listed.contains(&g.as_str()));
            u
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(snapshot(&c, &target).await, expected);
    let solo = expected
        .iter()
        .any(|u| u.groups.contains(&"solo".to_string()));
    assert_eq!(solo, mine.contains("user00007"));

    // The whole set first, then shard 2 again with --update-existing: nothing removed.
    let full = create_pool(&c, &unique("split-part-full"), tenant_pool()).await;
    assert_ok(&env.cbr(&[
        "restore", "-p", &full, "-i", "s-1.json", "s-2.json", "s-3.json",
    ]));
    let before = layer_writes(&layer);
    assert_ok(&env.cbr(&[
        "restore",
        "-p",
        &full,
        "-i",
        "s-2.json",
        "--partial",
        "--update-existing",
    ]));
    assert_eq!(layer_writes(&layer), before, "{}", layer_stats(&layer));
    assert_eq!(snapshot(&c, &full).await, snapshot(&c, &source).await);
    // Verify of the one file compares the memberships it covers and says what it did not.
    let out = env.cbr(&["verify", "-p", &full, "-i", "s-2.json"]);
    assert!(
        stdout(&out).contains("in groups the shards not given listed"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

#[tokio::test]
async fn email_sign_in_pools_restore_by_email() {
    let c = client(moto()).await;
    let spec = PoolSpec {
        sign_in_with_email: true,
        ..Default::default()
    };
    let source = create_pool(&c, &unique("email-src"), spec.clone()).await;
    let emails: Vec<String> = (0..10).map(|i| format!("person{i}@example.org")).collect();
    let seeds: Vec<Seed> = emails
        .iter()
        .map(|e| {
            let mut s = Seed::new("x");
            s.username = e.clone();
            s.attributes = vec![("email".into(), e.clone())];
            s
        })
        .collect();
    seed(&c, &source, &seeds).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &source]));
    let backup = read_backup(&env.path().join("backup.json"));
    assert!(
        backup
            .iter()
            .all(|r| !r["Username"].as_str().unwrap().contains('@'))
    );

    // Into a pool that signs in with usernames: refused before any write.
    let wrong = create_pool(&c, &unique("email-wrong"), PoolSpec::default()).await;
    let out = env.cbr(&["restore", "-p", &wrong]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("sign in with email"),
        "{}",
        stderr(&out)
    );
    assert_eq!(user_count(&c, &wrong).await, 0);

    let target = create_pool(&c, &unique("email-dst"), spec).await;
    assert_ok(&env.cbr(&["restore", "-p", &target]));
    let restored = snapshot(&c, &target).await;
    let mut got: Vec<String> = restored
        .iter()
        .map(|s| {
            s.attributes
                .iter()
                .find(|a| a.0 == "email")
                .unwrap()
                .1
                .clone()
        })
        .collect();
    got.sort();
    assert_eq!(got, emails);
    let map = sub_map(&env.path().join(format!("backup.sub-map.{target}.jsonl")));
    assert_eq!(map.len(), 10);
    let new: BTreeSet<String> = subs(&c, &target).await.into_values().collect();
    assert!(map.values().all(|(_, n)| new.contains(n)));
    // A rerun finds every user by email.
    let out = env.cbr(&["restore", "-p", &target, "--report", "r.json"]);
    assert_ok(&out);
    let r: Value = read_json(&env.path().join("r.json"));
    assert_eq!(r["unchanged"], 10);
}

/// A restore cut short, then run again: every user exactly once, a complete sub map.
#[tokio::test]
async fn rerun_after_a_partial_restore_completes_the_sub_map() {
    let (c, source) = seeded_pool("partial-src", 30).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &source, "-o", "all.json"]));
    // The first half of the file, as a run that stopped halfway would have seen it.
    let all = read_backup(&env.path().join("all.json"));
    let half: Vec<&Value> = all.iter().take(15).collect();
    std::fs::write(
        env.path().join("half.json"),
        serde_json::to_string(&half).unwrap(),
    )
    .unwrap();

    let target = create_pool(&c, &unique("partial-dst"), tenant_pool()).await;
    assert_ok(&env.cbr(&["restore", "-p", &target, "-i", "half.json"]));
    assert_eq!(user_count(&c, &target).await, 15);
    let out = env.cbr(&[
        "restore",
        "-p",
        &target,
        "-i",
        "all.json",
        "--sub-map",
        "map.jsonl",
    ]);
    assert_ok(&out);
    assert_eq!(snapshot(&c, &target).await, snapshot(&c, &source).await);
    let map = sub_map(&env.path().join("map.jsonl"));
    assert_eq!(map.len(), 30);
    let new = subs(&c, &target).await;
    for (username, (_, new_sub)) in &map {
        assert_eq!(&new[username], new_sub);
    }
}

/// Throttling, 500s, resets before and after the request reached the pool: every user,
/// membership and state exactly once.
#[tokio::test]
async fn restore_through_faults_completes_exactly_once() {
    let (c, source) = seeded_pool("rfault-src", 60).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &source]));

    let target = create_pool(&c, &unique("rfault-dst"), tenant_pool()).await;
    let layer = layer(&[
        "--faults",
        "throttle:0.1,500:0.05,reset:0.05,reset_after:0.05",
        "--seed",
        "11",
    ]);
    let out = cbr(
        &layer.url,
        env.path(),
        &["restore", "-p", &target, "--max-attempts", "20"],
    );
    assert_ok(&out);
    let stats = layer_stats(&layer);
    assert!(
        stats["ops"]["AdminCreateUser"]["faults"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert_eq!(snapshot(&c, &target).await, snapshot(&c, &source).await);
    let map = sub_map(&env.path().join(format!("backup.sub-map.{target}.jsonl")));
    assert_eq!(map.len(), 60);
}

/// Quotas five times smaller than Cognito's: the limiters adapt to the throttling and the
/// restore completes; with `--max-rps` under the quota nothing is throttled at all.
#[tokio::test]
async fn restore_adapts_to_throttling_and_max_rps_avoids_it() {
    let (c, source) = seeded_pool("quota-src", 25).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &source]));
    // UserCreation 10/s, UserUpdate 5/s, UserAccountRecovery 6/s, UserPoolRead and
    // UserPoolResourceUpdate 3/s; buckets of half a second. The layer does not answer
    // GetProvisionedLimit (an endpoint without it), so cbr starts at Cognito's defaults.
    let layer = layer(&[
        "--quotas",
        "--quota-scale",
        "0.2",
        "--burst-seconds",
        "0.5",
        "--no-provisioned-limits",
    ]);

    let target = create_pool(&c, &unique("quota-dst"), tenant_pool()).await;
    let out = cbr(
        &layer.url,
        env.path(),
        &[
            "restore",
            "-p",
            &target,
            "--report",
            "adaptive.json",
            "--max-attempts",
            "20",
        ],
    );
    assert_ok(&out);
    assert_eq!(snapshot(&c, &target).await, snapshot(&c, &source).await);
    let report: Value = read_json(&env.path().join("adaptive.json"));
    let throttled = report["throttled_calls"].as_u64().unwrap();
    assert!(
        throttled > 0,
        "starting at Cognito's real quotas, some calls are throttled"
    );
    let stats = layer_stats(&layer);
    let total = stats["total_calls"].as_u64().unwrap();
    assert!(
        throttled * 2 < total,
        "{throttled} of {total} throttled: the limiters adapt"
    );

    let target = create_pool(&c, &unique("quota-capped"), tenant_pool()).await;
    let out = cbr(
        &layer.url,
        env.path(),
        &[
            "restore",
            "-p",
            &target,
            "--report",
            "capped.json",
            "--max-rps",
            "2",
        ],
    );
    assert_ok(&out);
    let report: Value = read_json(&env.path().join("capped.json"));
    assert_eq!(report["throttled_calls"], 0);
    assert_eq!(snapshot(&c, &target).await, snapshot(&c, &source).await);
}
