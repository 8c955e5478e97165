//! `cbr list` and `cbr backup` end to end against moto, directly and through the AWS-like layer
//! (strict parameters, recorded requests, injected faults).

mod common;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

fn usernames(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["Username"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn list_prints_pools_as_text_and_json() {
    let c = client(moto()).await;
    let name = unique("listed");
    let id = create_pool(&c, &name, PoolSpec::default()).await;
    let env = TestEnv::new();

    let out = env.cbr(&["list"]);
    assert_ok(&out);
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l == format!("id: {id} name: {name}")),
        "{}",
        stdout(&out)
    );

    let out = env.cbr(&["list", "--output", "json"]);
    assert_ok(&out);
    let pools: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(pools.iter().any(|p| p["id"] == id && p["name"] == name));
}

#[tokio::test]
async fn list_pages_through_many_pools_with_max_results_60() {
    let layer_log = tempfile::NamedTempFile::new().unwrap();
    let layer = layer(&["--record", layer_log.path().to_str().unwrap()]);
    let c = client(moto()).await;
    for i in 0..65 {
        create_pool(&c, &unique(&format!("many{i}")), PoolSpec::default()).await;
    }
    let env = TestEnv::new();
    let out = cbr(&layer.url, env.path(), &["list"]);
    assert_ok(&out);
    assert!(stdout(&out).lines().count() >= 65);
    let records = recorded(layer_log.path());
    let calls = recorded_ops(&records, "ListUserPools");
    assert!(calls.len() >= 2, "more than one page: {calls:?}");
    assert!(calls.iter().all(|b| b["MaxResults"] == 60), "{calls:?}");
    assert!(
        calls[1]["NextToken"].is_string(),
        "second page uses the token"
    );
}

#[tokio::test]
async fn backup_writes_every_user_with_manifest_and_mode_0600() {
    let c = client(moto()).await;
    let pool = create_pool(
        &c,
        &unique("backup"),
        PoolSpec {
            custom_attributes: vec!["tenant"],
            ..Default::default()
        },
    )
    .await;
    create_groups(&c, &pool).await;
    let seeds = varied_users(150);
    seed(&c, &pool, &seeds).await;
    let env = TestEnv::new();

    let out = env.cbr(&["backup", "-p", &pool]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "", "stdout carries no logs or progress");
    assert_eq!(
        files_in(env.path()),
        ["backup.config.json", "backup.json", "backup.meta.json"]
    );

    let data = env.path().join("backup.json");
    let records = read_backup(&data);
    assert_eq!(records.len(), 150);
    let names: BTreeSet<String> = usernames(&records).into_iter().collect();
    assert_eq!(names.len(), 150, "no duplicates");
    assert_eq!(
        names,
        seeds
            .iter()
            .map(|s| s.username.clone())
            .collect::<BTreeSet<_>>()
    );
    for mode in [
        std::fs::metadata(&data).unwrap().permissions().mode(),
        std::fs::metadata(env.path().join("backup.meta.json"))
            .unwrap()
            .permissions()
            .mode(),
    ] {
        assert_eq!(mode & 0o777, 0o600);
    }

    // Each record matches its seed: attributes, state, groups, date format.
    for s in &seeds {
        let r = records
            .iter()
            .find(|r| r["Username"] == s.username)
            .unwrap();
        let attrs = r["Attributes"].as_array().unwrap();
        for (n, v) in &s.attributes {
            assert!(
                attrs.iter().any(|a| a["Name"] == *n && a["Value"] == *v),
                "{} lacks {n}",
                s.username
            );
        }
        assert!(attrs.iter().any(|a| a["Name"] == "sub"));
        assert_eq!(r["Enabled"], !s.disabled);
        let status = if s.confirmed {
            "CONFIRMED"
        } else {
            "FORCE_CHANGE_PASSWORD"
        };
        assert_eq!(r["UserStatus"], status);
        let mut groups: Vec<String> = r["Groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap().to_string())
            .collect();
        groups.sort();
        assert_eq!(groups, s.groups, "{}", s.username);
        let date = r["UserCreateDate"].as_str().unwrap();
        assert_eq!(date.len(), 24, "{date}");
        assert!(date.ends_with('Z') && date.as_bytes()[19] == b'.', "{date}");
        assert!(r.get("MFAOptions").is_some());
    }

    let manifest: Value = read_json(&env.path().join("backup.meta.json"));
    assert_eq!(manifest["format_version"], 1);
    assert_eq!(manifest["pool_id"], pool.as_str());
    assert_eq!(manifest["region"], REGION);
    assert_eq!(manifest["user_count"], 150);
    assert_eq!(manifest["shard"], Value::Null);
    assert_eq!(manifest["data_file"], "backup.json");
    let digest = format!("{:x}", Sha256::digest(std::fs::read(&data).unwrap()));
    assert_eq!(manifest["sha256"], digest);
    let groups = manifest["groups"].as_array().unwrap();
    let admins = groups.iter().find(|g| g["name"] == "admins").unwrap();
    assert_eq!(admins["description"], "Administrators");
    assert_eq!(admins["precedence"], 1);
    assert_eq!(admins["role_arn"], "arn:aws:iam::123456789012:role/admins");
    for key in ["started_at", "finished_at", "cbr_version", "pool_name"] {
        assert!(manifest[key].is_string(), "{key}");
    }
    // The manifest holds no personal data.
    let text = std::fs::read_to_string(env.path().join("backup.meta.json")).unwrap();
    assert!(!text.contains("@example.org") && !text.contains("user0"));
}

#[tokio::test]
async fn shards_together_equal_the_full_backup_and_are_disjoint() {
    let (_, pool) = seeded_pool("shards", 200).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool, "-o", "full.json"]));
    let full = read_backup(&env.path().join("full.json"));

    let mut union: Vec<Value> = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let out = env.cbr(&[
            "backup",
            "-p",
            &pool,
            "--out",
            "full.json",
            "--shard",
            &shard,
        ]);
        assert_ok(&out);
        let part = read_backup(&env.path().join(format!("full-{k}.json")));
        assert!(!part.is_empty(), "shard {k} of 200 users is not empty");
        let manifest: Value = read_json(&env.path().join(format!("full-{k}.meta.json")));
        assert_eq!(manifest["shard"], shard);
        assert_eq!(manifest["user_count"], part.len());
        union.extend(part);
    }
    // Disjoint, and together exactly the full backup, records identical with the memberships
    // of the set's members files (each group's members are listed by one shard).
    let names = usernames(&union);
    assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), names.len());
    let set = records_of_set(env.path(), &["full-1.json", "full-2.json", "full-3.json"]);
    assert_eq!(normalized(full), set);
}

/// Together, the shards of a set make at most 10% more UserList calls (ListUsers and
/// ListUsersInGroup) than one whole backup: each group's members are listed by one shard. On
/// a synthetic pool of 30,000 users in 21 groups (one holding everyone, names in CJK and with
/// an emoji), large enough that the shards' extra ListUsers prefixes (one partial page each)
/// weigh little.
#[tokio::test]
async fn shards_together_make_at_most_ten_percent_more_user_list_calls() {
    let pool = "us-east-1_SplitCount";
    let spec = format!("{pool}=30000:5");
    let layer = layer(&[
        "--quota-scale",
        "100",
        "--synthetic-pool",
        &spec,
        "--synthetic-everyone",
        pool,
    ]);
    let env = TestEnv::through(&layer.url);
    assert_ok(&env.cbr(&["backup", "-p", pool, "-o", "whole.json", "--no-progress"]));
    let whole = user_list_calls(&layer);
    let whole_total = whole.0 + whole.1;
    for n in [3u32, 2, 8] {
        let start = user_list_calls(&layer);
        for k in 1..=n {
            let shard = format!("{k}/{n}");
            let out = format!("s{n}.json");
            let args = [
                "backup",
                "-p",
                pool,
                "-o",
                &out,
                "--shard",
                &shard,
                "--no-progress",
            ];
            assert_ok(&env.cbr(&args));
        }
        let end = user_list_calls(&layer);
        let (users, members) = (end.0 - start.0, end.1 - start.1);
        eprintln!(
            "UserList calls: whole backup {whole_total} (ListUsers {}, ListUsersInGroup {}); \
             {n} shards {} (ListUsers {users}, ListUsersInGroup {members})",
            whole.0,
            whole.1,
            users + members
        );
        assert_eq!(members, whole.1, "{n} shards list each group once");
        assert!(
            (users + members) as f64 <= 1.10 * whole_total as f64,
            "{n} shards: {} UserList calls, the whole backup {whole_total}",
            users + members
        );
    }
    // The set of 3 holds the whole backup's records and memberships, and matches the pool.
    let set = ["s3-1.json", "s3-2.json", "s3-3.json"];
    assert_eq!(
        records_of_set(env.path(), &set),
        normalized(read_backup(&env.path().join("whole.json")))
    );
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
}

/// Shards started together with default flags share one account's quota without being told
/// of each other: each starts at its share and they keep to the quota together, so few of
/// their UserList calls are throttled (the quota's own throttling, which the layer enforces).
#[tokio::test]
async fn shards_started_together_share_the_quota() {
    let pool = "us-east-1_Together";
    let spec = format!("{pool}=18000:7");
    let layer = layer(&["--quotas", "--latency-ms", "30", "--synthetic-pool", &spec]);
    let env = TestEnv::through(&layer.url);
    let n = 3;
    let children: Vec<_> = (1..=n)
        .map(|k| {
            let shard = format!("{k}/{n}");
            let args = ["backup", "-p", pool, "-o", "set.json", "--shard", &shard];
            env.command(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start a shard")
        })
        .collect();
    for child in children {
        assert_ok(&child.wait_with_output().expect("a shard"));
    }
    let stats = layer_stats(&layer);
    let count = |op: &str, what: &str| stats["ops"][op][what].as_u64().unwrap_or(0);
    let sent = count("ListUsers", "calls") + count("ListUsersInGroup", "calls");
    let throttled = count("ListUsers", "throttled") + count("ListUsersInGroup", "throttled");
    eprintln!("{n} shards together: {sent} UserList calls sent, {throttled} throttled");
    assert!(sent > 600, "{sent}");
    assert!(
        throttled as f64 <= 0.02 * sent as f64,
        "{throttled} of {sent} UserList calls throttled"
    );
    let out = env.cbr(&[
        "verify",
        "-p",
        pool,
        "-i",
        "set-1.json",
        "set-2.json",
        "set-3.json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test]
async fn output_is_the_same_whatever_the_concurrency() {
    let c = client(moto()).await;
    let pool = create_pool(&c, &unique("determinism"), PoolSpec::default()).await;
    seed(&c, &pool, &varied_users(120)).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool, "-o", "a.json"]));
    assert_ok(&env.cbr(&["backup", "-p", &pool, "-o", "b.json", "--concurrency", "1"]));
    assert_ok(&env.cbr(&["backup", "-p", &pool, "-o", "c.json", "--concurrency", "16"]));
    let a = std::fs::read(env.path().join("a.json")).unwrap();
    assert_eq!(a, std::fs::read(env.path().join("b.json")).unwrap());
    assert_eq!(a, std::fs::read(env.path().join("c.json")).unwrap());
}

#[tokio::test]
async fn missing_pool_fails_clearly_and_writes_nothing() {
    let env = TestEnv::new();
    let out = env.cbr(&["backup", "-p", "us-east-1_doesnotexist", "-o", "b.json"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("us-east-1_doesnotexist"), "{err}");
    assert!(err.contains("describing user pool"), "{err}");
    assert!(err.contains("ResourceNotFoundException"), "{err}");
    assert!(
        files_in(env.path()).is_empty(),
        "{:?}",
        files_in(env.path())
    );
}

#[tokio::test]
async fn empty_pool_gives_an_empty_array() {
    let c = client(moto()).await;
    let pool = create_pool(&c, &unique("empty"), PoolSpec::default()).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool]));
    assert!(read_backup(&env.path().join("backup.json")).is_empty());
}

/// The requests on the wire: page sizes, filters, no per-user calls. The layer also refuses
/// what real Cognito refuses (Limit above 60).
#[tokio::test]
async fn backup_requests_use_pages_of_60_and_sub_prefix_filters() {
    let (_, pool) = seeded_pool("requests", 90).await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let layer = layer(&["--record", log.path().to_str().unwrap()]);
    let env = TestEnv::new();
    assert_ok(&cbr(
        &layer.url,
        env.path(),
        &["backup", "-p", &pool, "--shard", "2/3"],
    ));

    let records = recorded(log.path());
    let lists = recorded_ops(&records, "ListUsers");
    assert!(lists.iter().all(|b| b["Limit"] == 60), "{lists:?}");
    let filters: BTreeSet<String> = lists
        .iter()
        .map(|b| b["Filter"].as_str().unwrap().to_string())
        .collect();
    // Shard 2/3 is 55-5f, 6-9, a0-a9: 25 prefixes, each queried.
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for p in (0x55..=0x5f).chain(0xa0..=0xa9) {
        expected.insert(format!("sub ^= \"{p:02x}\""));
    }
    for p in 6..=9 {
        expected.insert(format!("sub ^= \"{p:x}\""));
    }
    assert_eq!(filters, expected);
    for b in recorded_ops(&records, "ListUsersInGroup") {
        assert_eq!(b["Limit"], 60);
    }
    assert!(recorded_ops(&records, "AdminListGroupsForUser").is_empty());
    assert!(recorded_ops(&records, "AdminGetUser").is_empty());
}

/// Throttling, 500s and reset connections: the backup completes with exactly the users of a
/// fault-free one, sharded or not.
#[tokio::test]
async fn faults_lose_nothing() {
    let (_, pool) = seeded_pool("faults", 150).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool, "-o", "clean.json"]));
    let clean = std::fs::read(env.path().join("clean.json")).unwrap();

    let layer = layer(&["--faults", "throttle:0.15,500:0.1,reset:0.1", "--seed", "7"]);
    let out = cbr(
        &layer.url,
        env.path(),
        &[
            "backup",
            "-p",
            &pool,
            "-o",
            "faulty.json",
            "--max-attempts",
            "20",
        ],
    );
    assert_ok(&out);
    let stats = layer_stats(&layer);
    let faults: u64 = stats["ops"]
        .as_object()
        .unwrap()
        .values()
        .map(|o| o["faults"].as_u64().unwrap_or(0))
        .sum();
    assert!(faults >= 5, "faults were injected: {stats}");
    assert_eq!(
        clean,
        std::fs::read(env.path().join("faulty.json")).unwrap()
    );

    for k in 1..=2 {
        let shard = format!("{k}/2");
        let args = [
            "backup",
            "-p",
            &pool,
            "-o",
            "s.json",
            "--shard",
            &shard,
            "--max-attempts",
            "20",
        ];
        assert_ok(&cbr(&layer.url, env.path(), &args));
    }
    let a = read_backup(&env.path().join("clean.json"));
    let union = records_of_set(env.path(), &["s-1.json", "s-2.json"]);
    assert_eq!(normalized(a), union);
}

/// An expired page token restarts its prefix from the start: nothing lost, nothing twice.
#[tokio::test]
async fn expired_page_tokens_restart_the_prefix_without_duplicates() {
    let c = client(moto()).await;
    let pool = create_pool(&c, &unique("expiry"), PoolSpec::default()).await;
    // Enough users for prefixes of more than one page (16 prefixes of about 75).
    let seeds: Vec<Seed> = (0..1200).map(|i| Seed::new(&format!("u{i:05}"))).collect();
    seed(&c, &pool, &seeds).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool, "-o", "clean.json"]));
    let log = tempfile::NamedTempFile::new().unwrap();
    let layer = layer(&[
        "--expire-tokens",
        "3",
        "--record",
        log.path().to_str().unwrap(),
    ]);
    let out = cbr(
        &layer.url,
        env.path(),
        &["backup", "-p", &pool, "-o", "expired.json"],
    );
    assert_ok(&out);
    assert!(
        stderr(&out).contains("page token expired"),
        "{}",
        stderr(&out)
    );
    let records = recorded(log.path());
    let with_token = recorded_ops(&records, "ListUsers")
        .iter()
        .filter(|b| b.get("PaginationToken").is_some())
        .count();
    assert!(with_token > 3, "pages beyond the first were listed");
    assert_eq!(
        std::fs::read(env.path().join("clean.json")).unwrap(),
        std::fs::read(env.path().join("expired.json")).unwrap()
    );
}

#[tokio::test]
async fn pages_that_keep_failing_fail_the_backup_and_leave_no_file() {
    let c = client(moto()).await;
    let pool = create_pool(&c, &unique("failing"), PoolSpec::default()).await;
    seed(&c, &pool, &varied_users(10)).await;
    let layer = layer(&["--fail-always", "ListUsers"]);
    let env = TestEnv::new();
    let out = cbr(
        &layer.url,
        env.path(),
        &["backup", "-p", &pool, "--max-attempts", "3"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&pool), "{err}");
    assert!(err.contains("sub prefix"), "{err}");
    assert!(
        files_in(env.path()).is_empty(),
        "{:?}",
        files_in(env.path())
    );
}

#[tokio::test]
async fn logs_never_show_attribute_values() {
    let c = client(moto()).await;
    let pool = create_pool(&c, &unique("privacy"), PoolSpec::default()).await;
    seed(&c, &pool, &varied_users(20)).await;
    let env = TestEnv::new();
    let out = env.cbr(&["backup", "-p", &pool, "-vv"]);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(!err.is_empty());
    assert!(!err.contains("@example.org"), "{err}");
    assert!(!err.contains("Ñandú"), "{err}");
    assert!(!err.contains("+1555"), "{err}");
}

/// ListUsers' raw answer from moto, as text: its dates are JSON numbers of epoch seconds with
/// milliseconds (`1796018778.395`), as Cognito's are.
fn raw_list_users(pool: &str) -> String {
    use std::io::{Read, Write};
    let addr = moto().trim_start_matches("http://");
    let body = format!(r#"{{"UserPoolId":"{pool}","Limit":60}}"#);
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to moto");
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: AWSCognitoIdentityProviderService.ListUsers\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/cognito-idp/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// `"Name": <number>` pairs of a JSON text, each number as written, in order.
fn number_texts<'a>(json: &'a str, name: &str) -> Vec<&'a str> {
    let key = format!("\"{name}\":");
    json.match_indices(&key)
        .map(|(at, _)| {
            let rest = json[at + key.len()..].trim_start();
            let end = rest.find([',', '}']).unwrap();
            rest[..end].trim()
        })
        .collect()
}

/// The RFC 3339 date, with milliseconds, of an epoch-seconds text such as `1796018778.395`,
/// computed from the digits (no floating point).
fn date_of(epoch: &str) -> String {
    let (secs, frac) = epoch.split_once('.').unwrap_or((epoch, "0"));
    let millis: u64 = format!("{frac:0<3}")[..3].parse().unwrap();
    let at = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(secs.parse::<u64>().unwrap() * 1000 + millis);
    humantime::format_rfc3339_millis(at).to_string()
}

#[tokio::test]
async fn backup_dates_are_the_milliseconds_cognito_sent() {
    let (_c, pool) = seeded_pool("dates", 40).await;
    let raw = raw_list_users(&pool);
    let usernames: Vec<String> = serde_json::from_str::<Value>(&raw).unwrap()["Users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["Username"].as_str().unwrap().to_string())
        .collect();
    let created = number_texts(&raw, "UserCreateDate");
    let modified = number_texts(&raw, "UserLastModifiedDate");
    assert_eq!((created.len(), modified.len()), (40, 40), "{raw}");
    // Some of these are not exact in binary: read as an f64 and truncated, as the SDK's
    // DateTime::from_secs_f64 does, they lose a millisecond.
    let inexact = created.iter().chain(&modified).filter(|t| {
        let v: f64 = t.parse().unwrap();
        let truncated = ((v - v.floor()) * 1e9) as u64 / 1_000_000;
        date_of(t) != date_of(&format!("{}.{truncated:03}", v.floor() as u64))
    });
    assert!(inexact.count() > 0, "no date to test: {created:?}");

    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool]));
    let records = read_backup(&env.path().join("backup.json"));
    for (i, name) in usernames.iter().enumerate() {
        let r = records.iter().find(|r| r["Username"] == *name).unwrap();
        assert_eq!(
            r["UserCreateDate"],
            date_of(created[i]),
            "{name}: {}",
            created[i]
        );
        assert_eq!(
            r["UserLastModifiedDate"],
            date_of(modified[i]),
            "{name}: {}",
            modified[i]
        );
    }
}

#[tokio::test]
async fn log_fields_are_plain_values() {
    let (_c, pool) = seeded_pool("log-fields", 6).await;
    let env = TestEnv::new();
    let out = env.cbr(&["backup", "-p", &pool, "--shard", "1/3"]);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(err.contains(" shard=1/3 "), "{err}");
    assert!(err.contains(&format!(" pool={pool} ")), "{err}");
    let out = env.cbr(&["backup", "-p", &pool]);
    assert_ok(&out);
    let err = stderr(&out);
    for debug in ["Some(", "None", "shard=", "\""] {
        assert!(!err.contains(debug), "{debug} in {err}");
    }
}
