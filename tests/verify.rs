//! `cbr verify` end to end against moto: what counts as a difference (group settings, empty
//! group lists), what it says it could not compare, encrypted files without their key,
//! `cognito-backup`'s groups file, and round trips of the other tools' files (restore, then
//! verify the file against the restored pool).

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

fn verify_json(dir: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let mut full = vec!["verify", "--output", "json"];
    full.extend_from_slice(args);
    let out = cbr(moto(), dir, &full);
    let report = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&out), stderr(&out)));
    (out.status.code(), report)
}

/// Rewrites a backup's records and drops its manifest, as another tool's file would be.
fn rewrite(path: &Path, edit: impl Fn(&mut serde_json::Map<String, Value>)) {
    let mut records = read_backup(path);
    for r in &mut records {
        edit(r.as_object_mut().unwrap());
    }
    std::fs::write(path, serde_json::to_vec(&records).unwrap()).unwrap();
    let _ = std::fs::remove_file(path.with_file_name(format!(
        "{}.meta.json",
        path.file_stem().unwrap().to_string_lossy()
    )));
}

#[tokio::test]
async fn empty_group_lists_match_a_pool_without_groups() {
    let c = client(moto()).await;
    let pool = create_pool(&c, &unique("no-groups"), tenant_pool()).await;
    let seeds: Vec<Seed> = varied_users(12)
        .into_iter()
        .map(|mut s| {
            s.groups.clear();
            s
        })
        .collect();
    seed(&c, &pool, &seeds).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool]));
    // cognito-backup writes `"Groups": []` for every user of a pool without groups.
    rewrite(&env.path().join("backup.json"), |r| {
        r.insert("Groups".into(), Value::Array(vec![]));
    });
    let (code, report) = verify_json(env.path(), &["-p", &pool]);
    let p = &report["pool"];
    assert_eq!(p["different"], 0, "{report:#}");
    assert_eq!(p["matching"], 12, "{report:#}");
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["not_compared"], serde_json::json!([]), "{report:#}");
}

#[tokio::test]
async fn changed_group_settings_are_differences() {
    let (c, pool) = seeded_pool("group-settings", 10).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool]));
    let (code, report) = verify_json(env.path(), &["-p", &pool]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["pool"]["groups_different"], 0);

    c.update_group()
        .user_pool_id(&pool)
        .group_name("admins")
        .description("Former administrators")
        .precedence(7)
        .role_arn("arn:aws:iam::123456789012:role/admins")
        .send()
        .await
        .unwrap();
    c.update_group()
        .user_pool_id(&pool)
        .group_name("editors")
        .role_arn("arn:aws:iam::123456789012:role/editors")
        .send()
        .await
        .unwrap();
    let (code, report) = verify_json(env.path(), &["-p", &pool]);
    assert_eq!(code, Some(3), "{report:#}");
    let p = &report["pool"];
    assert_eq!(p["groups_different"], 2, "{report:#}");
    assert_eq!(p["different"], 0, "{report:#}");
    assert_eq!(
        p["examples_groups_different"],
        serde_json::json!([
            {"group": "admins", "fields": ["description", "precedence"]},
            {"group": "editors", "fields": ["role"]},
        ])
    );
    let out = env.cbr(&["verify", "-p", &pool]);
    assert!(
        stdout(&out).contains("  group different: admins (description, precedence)\n"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("verify: DIFFERENCES FOUND"));
}

#[tokio::test]
async fn what_the_file_cannot_tell_is_reported_as_not_compared() {
    let (_c, pool) = seeded_pool("not-compared", 15).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool]));
    // A file in the Go original's shape: no Groups lists and no manifest.
    rewrite(&env.path().join("backup.json"), |r| {
        r.remove("Groups");
    });
    let (code, report) = verify_json(env.path(), &["-p", &pool]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["pool"]["matching"], 15);
    let what: Vec<&str> = report["not_compared"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["what"].as_str().unwrap())
        .collect();
    assert_eq!(what, ["group memberships", "group settings"], "{report:#}");
    assert!(
        report["not_compared"][0]["why"]
            .as_str()
            .unwrap()
            .starts_with("not in the file"),
        "{report:#}"
    );
    let out = env.cbr(&["verify", "-p", &pool]);
    let text = stdout(&out);
    assert!(
        text.contains("not compared: group memberships: not in the file"),
        "{text}"
    );
    assert!(
        text.ends_with("verify: OK, except what was not compared (above)\n"),
        "{text}"
    );
}

#[tokio::test]
async fn an_encrypted_backup_without_its_key_is_checked_by_its_checksum() {
    let (_c, pool) = seeded_pool("encrypted-nokey", 8).await;
    let env = TestEnv::new();
    let key = age::x25519::Identity::generate();
    let public = key.to_public().to_string();
    assert_ok(&env.cbr(&[
        "backup",
        "-p",
        &pool,
        "-o",
        "b.json.age",
        "--recipient",
        &public,
    ]));
    let out = env.cbr(&["verify", "-i", "b.json.age"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("ok  b.json.age: SHA-256 matches the manifest (8 users by the manifest); records not read"),
        "{text}"
    );
    assert!(text.contains("not compared: records: "), "{text}");
    let (code, report) = verify_json(env.path(), &["-i", "b.json.age", "-p", &pool]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["files"][0]["records_read"], false);
    assert!(report["pool"].is_null(), "{report:#}");
    assert_eq!(report["not_compared"][1]["what"], format!("pool {pool}"));

    // A damaged encrypted file is found without the key.
    let path = env.path().join("b.json.age");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let out = env.cbr(&["verify", "-i", "b.json.age"]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(stdout(&out).contains("SHA-256"), "{}", stdout(&out));

    // Without a manifest there is nothing to check: an error, not a pass.
    std::fs::remove_file(env.path().join("b.meta.json")).unwrap();
    let out = env.cbr(&["verify", "-i", "b.json.age"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("--identity"), "{}", stderr(&out));
}

/// `cognito-backup`'s users file restored with cbr, then verified with its groups file: the
/// users match (but for what restore cannot bring back), and the groups' settings, which this
/// restore did not carry over, are reported.
#[tokio::test]
async fn cognito_backup_files_round_trip_and_their_groups_file_is_compared() {
    let c = client(moto()).await;
    let pool = create_pool(&c, &unique("cognito-backup"), tenant_pool()).await;
    let env = TestEnv::new();
    let users = fixture("npm/eu-west-1_Np4Gr0ups.json", env.path());
    let groups = fixture("npm/eu-west-1_Np4Gr0ups_groups.json", env.path());
    let users_arg = users.to_str().unwrap();
    assert_ok(&env.cbr(&["restore", "-p", &pool, "-i", users_arg]));

    let (code, report) = verify_json(env.path(), &["-i", users_arg, "-p", &pool]);
    assert_eq!(code, Some(0), "a complete restore verifies: {report:#}");
    assert_eq!(
        report["groups_files"],
        serde_json::json!([groups.to_str().unwrap()]),
        "found beside the users file"
    );
    let p = &report["pool"];
    assert_eq!(p["users_in_backup"], 8);
    assert_eq!(p["missing_from_pool"], 0, "{report:#}");
    assert_eq!(p["extra_in_pool"], 0, "{report:#}");
    // UNCONFIRMED users come back FORCE_CHANGE_PASSWORD: as restored, not a difference.
    let unconfirmed = read_backup(&users)
        .iter()
        .filter(|r| r["UserStatus"] == "UNCONFIRMED")
        .count();
    assert!(unconfirmed > 0);
    assert_eq!(p["comparison"], "as_restored", "{report:#}");
    assert_eq!(p["different"], 0, "{report:#}");
    assert_eq!(p["status_as_restored"], unconfirmed, "{report:#}");
    assert_eq!(p["restored_with_new_sub"], 8, "{report:#}");
    // Restore read the groups file: every group has its settings, `auditors` included.
    assert_eq!(p["groups_different"], 0, "{report:#}");
    assert_eq!(
        p["groups_missing_from_pool"],
        serde_json::json!([]),
        "{report:#}"
    );

    // A group whose settings change afterwards is reported, field by field.
    c.update_group()
        .user_pool_id(&pool)
        .group_name("admins")
        .description("Changed")
        .precedence(9)
        .role_arn("arn:aws:iam::123456789012:role/cognito-admins")
        .send()
        .await
        .unwrap();
    let (code, report) = verify_json(env.path(), &["-i", users_arg, "-p", &pool]);
    assert_eq!(code, Some(3), "{report:#}");
    assert_eq!(
        report["pool"]["examples_groups_different"],
        serde_json::json!([{"group": "admins", "fields": ["description", "precedence"]}]),
        "{report:#}"
    );

    // Given the same settings, the groups match; `--groups-file` names a file anywhere.
    c.update_group()
        .user_pool_id(&pool)
        .group_name("admins")
        .description("Administrators")
        .precedence(1)
        .role_arn("arn:aws:iam::123456789012:role/cognito-admins")
        .send()
        .await
        .unwrap();
    let elsewhere = env.path().join("groups-elsewhere.json");
    std::fs::rename(&groups, &elsewhere).unwrap();
    let (_, report) = verify_json(
        env.path(),
        &[
            "-i",
            users_arg,
            "-p",
            &pool,
            "--groups-file",
            elsewhere.to_str().unwrap(),
        ],
    );
    assert_eq!(report["pool"]["groups_different"], 0, "{report:#}");
    assert_eq!(report["not_compared"], serde_json::json!([]), "{report:#}");
    // Without the groups file, the settings of the groups named in the users' lists cannot be
    // compared, and verify says so.
    let (code, report) = verify_json(env.path(), &["-i", users_arg, "-p", &pool]);
    assert_eq!(code, Some(0), "a complete restore verifies: {report:#}");
    assert_eq!(
        report["not_compared"][0]["what"], "group settings",
        "{report:#}"
    );
}

/// The Go original's and `cognito-backup-restore`'s files restored with cbr and verified
/// against the restored pool: every user is there with the same attributes and state, but for
/// what restore cannot bring back.
#[tokio::test]
async fn go_original_and_npm_files_round_trip() {
    let c = client(moto()).await;
    for name in ["go-original/backup.json", "npm/backup.json"] {
        let pool = create_pool(&c, &unique("round-trip"), tenant_pool()).await;
        let env = TestEnv::new();
        let file = fixture(name, env.path());
        let file_arg = file.to_str().unwrap();
        assert_ok(&env.cbr(&["restore", "-p", &pool, "-i", file_arg]));
        let (code, report) = verify_json(env.path(), &["-i", file_arg, "-p", &pool]);
        assert_eq!(
            code,
            Some(0),
            "{name}: a complete restore verifies: {report:#}"
        );
        let records = read_backup(&file);
        let federated = records
            .iter()
            .filter(|r| r["UserStatus"] == "EXTERNAL_PROVIDER")
            .count();
        let status_changes = records
            .iter()
            .filter(|r| r["UserStatus"] == "UNCONFIRMED")
            .count();
        // What restore cannot carry is reported on its own, not as differences.
        let p = &report["pool"];
        assert_eq!(p["comparison"], "as_restored", "{name}: {report:#}");
        assert_eq!(p["users_in_backup"], records.len(), "{name}: {report:#}");
        assert_eq!(p["missing_from_pool"], 0, "{name}: {report:#}");
        assert_eq!(p["federated_not_restored"], federated, "{name}: {report:#}");
        assert_eq!(p["extra_in_pool"], 0, "{name}: {report:#}");
        assert_eq!(p["different"], 0, "{name}: {report:#}");
        assert_eq!(
            p["status_as_restored"], status_changes,
            "{name}: {report:#}"
        );
        assert_eq!(
            p["matching"],
            records.len() - federated,
            "{name}: {report:#}"
        );
        assert_eq!(
            report["not_compared"],
            serde_json::json!([]),
            "{name}: {report:#}"
        );
    }
}

#[tokio::test]
async fn verify_logs_a_reading_of_the_pool_not_a_backup() {
    let (_c, pool) = seeded_pool("verify-log", 5).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool]));
    let out = env.cbr(&["verify", "-p", &pool]);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(err.contains("reading about 5 users of"), "{err}");
    assert!(err.contains("to compare"), "{err}");
    for wrong in ["backing up", "live.json", "/tmp", ".tmp"] {
        assert!(!err.contains(wrong), "{wrong} in {err}");
    }
}

/// Users deleted from the pool a backup was taken from and restored into it (their map kept
/// elsewhere): the comparison stays literal, and the restored users, with new subs, are judged
/// by what a restore made of them, so the pool verifies and diffs clean.
#[tokio::test]
async fn users_restored_into_their_own_pool_verify_clean() {
    let (source, users) = common::production::production_pool(moto(), "username", 60, 11);
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &source]));
    let c = client(moto()).await;
    // One user of each status a restore maps, deleted by a bad script.
    let mut deleted = Vec::new();
    for status in ["UNCONFIRMED", "RESET_REQUIRED", "COMPROMISED", "CONFIRMED"] {
        let u = users
            .iter()
            .find(|u| u["UserStatus"] == status)
            .expect("every status");
        let name = u["Username"].as_str().unwrap();
        c.admin_delete_user()
            .user_pool_id(&source)
            .username(name)
            .send()
            .await
            .unwrap();
        deleted.push(name.to_string());
    }
    assert_ok(&env.cbr(&["restore", "-p", &source, "--sub-map", "elsewhere.jsonl"]));
    let (code, report) = verify_json(env.path(), &["-p", &source]);
    assert_eq!(code, Some(0), "{report:#}");
    let p = &report["pool"];
    assert_eq!(p["comparison"], "literal", "{report:#}");
    assert_eq!(p["restored_with_new_sub"], deleted.len(), "{report:#}");
    assert_eq!(p["status_as_restored"], 3, "{report:#}");
    let out = env.cbr(&["diff", "backup.json", "-p", &source]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("compared literally"),
        "{}",
        stdout(&out)
    );
    // A user who keeps the backup's sub is still compared literally.
    let confirmed = users
        .iter()
        .find(|u| {
            u["UserStatus"] == "CONFIRMED"
                && u["Enabled"] == true
                && !deleted.iter().any(|d| u["Username"] == *d)
        })
        .unwrap();
    c.admin_disable_user()
        .user_pool_id(&source)
        .username(confirmed["Username"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let (code, report) = verify_json(env.path(), &["-p", &source]);
    assert_eq!(code, Some(3), "{report:#}");
    assert_eq!(report["pool"]["different"], 1, "{report:#}");
}
