//! Backups that stop and go on: a backup killed part way, then run again with `--resume`,
//! writes the file an uninterrupted backup writes, listing only what it had not finished, on
//! disk and in S3; a state that is not the backup's is refused before anything is listed; a
//! leftover state is named and replaced by a backup without `--resume`.

mod common;

use common::s3::*;
use common::*;
use serde_json::Value;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// ListUsers calls a layer has answered.
fn list_users_calls(layer: &Server) -> u64 {
    layer_stats(layer)["ops"]["ListUsers"]["calls"]
        .as_u64()
        .unwrap_or(0)
}

/// The prefixes a state keeps: with a spool each, or in the partial data file it holds.
fn finished(state: &Value) -> usize {
    state["finished"].as_array().map_or(0, Vec::len) + appended(state).len()
}

/// The prefixes in the partial data file a state holds, in order.
fn appended(state: &Value) -> Vec<String> {
    state["data"]["appended"].as_array().map_or(vec![], |a| {
        a.iter()
            .map(|p| p["prefix"].as_str().unwrap().to_string())
            .collect()
    })
}

fn prefixes(state: &Value) -> usize {
    state["prefixes"].as_array().unwrap().len()
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until `state()` names at least `n` finished prefixes, then sends `sig`; returns the
/// state as the stopped process left it.
async fn stop_after<F, Fut>(mut child: Child, n: usize, sig: &str, state: F) -> Value
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = state().await
            && finished(&s) >= n
        {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the backup ended before it was stopped ({status}):\n{err}");
        }
        assert!(Instant::now() < deadline, "no prefix finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&child, sig);
    let out = child.wait_with_output().unwrap();
    if sig == "-TERM" {
        assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    }
    state().await.expect("the state is kept")
}

fn local_state(dir: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join("state.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// A slow backup: one prefix at a time, each page 300 ms late.
const SLOW: [&str; 4] = ["--concurrency", "1", "--max-rps", "5"];

#[tokio::test]
async fn a_killed_backup_resumes_to_the_file_an_uninterrupted_one_writes() {
    let (_c, pool) = seeded_pool("resume-local", 200).await;
    let fresh = tempfile::tempdir().unwrap();
    let full_layer = layer(&[]);
    assert_ok(&cbr(
        &full_layer.url,
        fresh.path(),
        &["backup", "-p", &pool],
    ));
    let full_calls = list_users_calls(&full_layer);
    let member_calls =
        |layer: &Server| layer_stats(layer)["ops"]["ListUsersInGroup"]["calls"].clone();
    let full_member_calls = member_calls(&full_layer);
    let expected = std::fs::read(fresh.path().join("backup.json")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join(".backup.json.resume");
    let slow = layer(&["--op-latency", "ListUsers=300"]);
    let mut args = vec!["backup", "-p", &pool];
    args.extend(SLOW);
    let child = cbr_command(&slow.url, dir.path(), &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let state = stop_after(child, 5, "-KILL", || async { local_state(&state_dir) }).await;
    let kept = finished(&state);
    assert!(kept >= 5 && kept < prefixes(&state), "{state}");
    assert_eq!(prefixes(&state) as u64, full_calls, "one page a prefix");
    assert!(!dir.path().join("backup.json").exists());
    // The state is private: a directory of mode 0700, files of mode 0600, no personal data in
    // state.json.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state_dir), 0o700);
    for f in files_in(&state_dir) {
        assert_eq!(mode(&state_dir.join(&f)), 0o600, "{f}");
    }
    let text = std::fs::read_to_string(state_dir.join("state.json")).unwrap();
    assert!(
        !text.contains("@example.org") && !text.contains("user0"),
        "{text}"
    );
    assert_eq!(state["pool_id"], pool.as_str());

    let again = layer(&[]);
    let out = cbr(&again.url, dir.path(), &["backup", "-p", &pool, "--resume"]);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(err.contains("resuming the backup started at"), "{err}");
    // Only the prefixes that had not finished were listed, a page each.
    let calls = list_users_calls(&again);
    eprintln!(
        "local: killed with {kept} of {full_calls} prefixes kept; resumed: {calls} ListUsers calls, a full backup {full_calls}"
    );
    assert_eq!(
        calls,
        full_calls - kept as u64,
        "kept {kept} of {full_calls}"
    );
    // The groups' members are listed again, all of them.
    assert_eq!(member_calls(&again), full_member_calls);
    let data = std::fs::read(dir.path().join("backup.json")).unwrap();
    assert!(
        data == expected,
        "the same bytes as an uninterrupted backup"
    );
    let manifest = read_json(&dir.path().join("backup.meta.json"));
    assert_eq!(manifest["sha256"], sha256_hex(&data));
    assert_eq!(manifest["user_count"], 200);
    assert_eq!(manifest["started_at"], state["started_at"]);
    assert_eq!(
        files_in(dir.path()),
        ["backup.config.json", "backup.json", "backup.meta.json"],
        "the state is gone"
    );
}

/// A `.json.gz` backup killed after some prefixes were appended keeps its data file in its
/// state, with no second copy of those prefixes, and goes on with it: the same bytes as an
/// uninterrupted backup.
#[tokio::test]
async fn a_killed_gzip_backup_goes_on_with_its_partial_file_and_keeps_no_copies() {
    let (_c, pool) = seeded_pool("resume-gzip", 200).await;
    let out = ["-o", "backup.json.gz"];
    let fresh = tempfile::tempdir().unwrap();
    let mut args = vec!["backup", "-p", &pool];
    args.extend(out);
    assert_ok(&cbr(moto(), fresh.path(), &args));
    let expected = std::fs::read(fresh.path().join("backup.json.gz")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join(".backup.json.gz.resume");
    let partial = state_dir.join("backup.json.gz.partial");
    let slow = layer(&["--op-latency", "ListUsers=300"]);
    let mut slow_args = args.clone();
    slow_args.extend(SLOW);
    let child = cbr_command(&slow.url, dir.path(), &slow_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let state = stop_after(child, 6, "-KILL", || async { local_state(&state_dir) }).await;
    let in_file = appended(&state);
    assert!(in_file.len() >= 4, "{state}");
    assert!(finished(&state) < prefixes(&state), "{state}");
    // The data file is in the state, at least as long as the state says; the prefixes in it
    // have no other copy, and at most the prefix being appended has one.
    let data_bytes = std::fs::metadata(&partial).unwrap().len();
    assert!(data_bytes >= state["data"]["bytes"].as_u64().unwrap());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&partial), 0o600);
    let mut copies = vec![];
    let mut state_bytes = 0;
    for f in files_in(&state_dir) {
        let size = std::fs::metadata(state_dir.join(&f)).unwrap().len();
        if let Some(p) = f
            .strip_prefix("prefix-")
            .and_then(|p| p.strip_suffix(".json.gz"))
        {
            assert!(!in_file.iter().any(|a| a == p), "a copy of prefix {p}");
            copies.push((p.to_string(), size));
        }
        if !f.ends_with(".partial") {
            state_bytes += size;
        }
    }
    let copied: u64 = copies.iter().map(|(_, size)| size).sum();
    eprintln!(
        "json.gz killed with {} of {} prefixes in the data file ({data_bytes} bytes): the \
         state besides it holds {state_bytes} bytes, {copied} of them in {} prefix copies",
        in_file.len(),
        prefixes(&state),
        copies.len()
    );
    assert!(copies.len() <= 2, "{copies:?}");
    // What is left besides the data file is state.json and the prefix finished but not yet
    // appended: no share of the users already in the file.
    assert!(
        state_bytes - copied < 4096,
        "state.json: {}",
        state_bytes - copied
    );
    assert!(!dir.path().join("backup.json.gz").exists());

    let again = layer(&[]);
    args.push("--resume");
    let run = cbr(&again.url, dir.path(), &args);
    assert_ok(&run);
    assert!(stderr(&run).contains("resuming the backup started at"));
    assert_eq!(
        list_users_calls(&again),
        (prefixes(&state) - finished(&state)) as u64,
        "only the prefixes not kept are listed"
    );
    let data = std::fs::read(dir.path().join("backup.json.gz")).unwrap();
    assert!(
        data == expected,
        "the same bytes as an uninterrupted backup"
    );
    let manifest = read_json(&dir.path().join("backup.meta.json"));
    assert_eq!(manifest["sha256"], sha256_hex(&data));
    assert_eq!(manifest["user_count"], 200);
    let users: Vec<Value> = serde_json::from_slice(&gunzip(&data)).unwrap();
    assert_eq!(users.len(), 200);
    assert_eq!(
        files_in(dir.path()),
        ["backup.config.json", "backup.json.gz", "backup.meta.json"],
        "the state is gone"
    );
}

/// A shard's backup killed part way and resumed writes the data file and the members file an
/// uninterrupted backup of the shard writes (the groups' members are listed again).
#[tokio::test]
async fn a_killed_shard_resumes_to_the_files_an_uninterrupted_one_writes() {
    let c = client(moto()).await;
    let pool = create_pool(&c, &unique("resume-shard"), tenant_pool()).await;
    create_groups(&c, &pool).await;
    seed(&c, &pool, &users_in_many_groups(90)).await;
    let shard = ["--shard", "2/3"];
    let fresh = tempfile::tempdir().unwrap();
    let mut args = vec!["backup", "-p", &pool];
    args.extend(shard);
    assert_ok(&cbr(moto(), fresh.path(), &args));
    let read = |dir: &Path, name: &str| std::fs::read(dir.join(name)).unwrap();
    let members = read(fresh.path(), "backup-2.members.json");
    assert!(!read_backup(&fresh.path().join("backup-2.members.json")).is_empty());

    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join(".backup-2.json.resume");
    let slow = layer(&["--op-latency", "ListUsers=300"]);
    let mut slow_args = args.clone();
    slow_args.extend(SLOW);
    let child = cbr_command(&slow.url, dir.path(), &slow_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let state = stop_after(child, 3, "-KILL", || async { local_state(&state_dir) }).await;
    assert!(finished(&state) < prefixes(&state), "{state}");
    assert!(!dir.path().join("backup-2.members.json").exists());
    args.push("--resume");
    let out = cbr(moto(), dir.path(), &args);
    assert_ok(&out);
    assert!(stderr(&out).contains("resuming the backup started at"));
    assert!(read(dir.path(), "backup-2.json") == read(fresh.path(), "backup-2.json"));
    assert!(read(dir.path(), "backup-2.members.json") == members);
    let manifest = read_json(&dir.path().join("backup-2.meta.json"));
    assert_eq!(manifest["memberships"]["sha256"], sha256_hex(&members));
    assert_eq!(
        files_in(dir.path()),
        [
            "backup-2.config.json",
            "backup-2.json",
            "backup-2.members.json",
            "backup-2.meta.json"
        ]
    );
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn a_killed_backup_to_s3_keeps_its_state_in_s3_and_resumes() {
    let (_c, pool) = seeded_pool("resume-s3", 150).await;
    let bkt = bucket("cbr-resume").await;
    let work = tempfile::tempdir().unwrap();
    let full_layer = layer(&[]);
    let fresh_url = format!("s3://{bkt}/fresh/backup.json.gz");
    assert_ok(&cbr_s3(
        &full_layer.url,
        work.path(),
        &["backup", "-p", &pool, "-o", &fresh_url],
    ));
    let full_calls = list_users_calls(&full_layer);

    let url = format!("s3://{bkt}/r/backup.json.gz");
    let slow = layer(&["--op-latency", "ListUsers=300"]);
    let mut args = vec!["backup", "-p", &pool, "-o", &url];
    args.extend(SLOW);
    let child = cbr_s3_command(&slow.url, work.path(), &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let state_key = "r/.backup.json.gz.resume/state.json";
    let bkt2 = bkt.clone();
    let state = stop_after(child, 4, "-KILL", move || {
        let bkt = bkt2.clone();
        async move {
            let out = s3()
                .get_object()
                .bucket(&bkt)
                .key(state_key)
                .send()
                .await
                .ok()?;
            let bytes = out.body.collect().await.ok()?.into_bytes();
            serde_json::from_slice(&bytes).ok()
        }
    })
    .await;
    let kept = finished(&state);
    let spools: Vec<String> = keys(&bkt)
        .await
        .into_iter()
        .filter(|k| k.starts_with("r/.backup.json.gz.resume/prefix-"))
        .collect();
    assert!(spools.len() >= kept, "{spools:?}");
    assert!(files_in(work.path()).is_empty(), "nothing local");

    // Another machine: a new working directory, the state found in S3.
    let elsewhere = tempfile::tempdir().unwrap();
    let again = layer(&[]);
    let out = cbr_s3(
        &again.url,
        elsewhere.path(),
        &["backup", "-p", &pool, "-o", &url, "--resume"],
    );
    assert_ok(&out);
    let calls = list_users_calls(&again);
    eprintln!(
        "S3: killed with {kept} of {full_calls} prefixes kept; resumed: {calls} ListUsers calls, a full backup {full_calls}"
    );
    assert_eq!(calls, full_calls - kept as u64);
    let data = get(&bkt, "r/backup.json.gz").await;
    assert_eq!(
        gunzip(&data),
        gunzip(&get(&bkt, "fresh/backup.json.gz").await),
        "the same records, in the same order"
    );
    let manifest: Value = serde_json::from_slice(&get(&bkt, "r/backup.meta.json").await).unwrap();
    assert_eq!(manifest["sha256"], sha256_hex(&data));
    assert_eq!(manifest["user_count"], 150);
    let left: Vec<String> = keys(&bkt)
        .await
        .into_iter()
        .filter(|k| k.starts_with("r/"))
        .collect();
    assert_eq!(
        left,
        [
            "r/backup.config.json",
            "r/backup.json.gz",
            "r/backup.meta.json"
        ],
        "the state is gone"
    );
    assert!(files_in(elsewhere.path()).is_empty());
}

#[tokio::test]
async fn a_state_of_another_pool_shard_or_version_is_refused_and_nothing_is_listed() {
    let (_c, pool) = seeded_pool("resume-refused", 120).await;
    let (_c, other) = seeded_pool("resume-other", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join(".s-1.json.resume");
    let slow = layer(&["--op-latency", "ListUsers=300"]);
    let mut args = vec!["backup", "-p", &pool, "-o", "s.json", "--shard", "1/2"];
    args.extend(SLOW);
    let child = cbr_command(&slow.url, dir.path(), &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted (SIGTERM): the state is kept, as when killed.
    let state = stop_after(child, 2, "-TERM", || async { local_state(&state_dir) }).await;
    let before = std::fs::read(state_dir.join("state.json")).unwrap();

    let log = tempfile::NamedTempFile::new().unwrap();
    let recording = layer(&["--record", log.path().to_str().unwrap()]);
    let refused = |args: &[&str], reason: &str| {
        let out = cbr(&recording.url, dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("cannot resume the backup kept in"), "{err}");
        assert!(err.contains(reason), "{reason} in {err}");
        assert!(err.contains("nothing was listed"), "{err}");
    };
    refused(
        &[
            "backup", "-p", &other, "-o", "s.json", "--shard", "1/2", "--resume",
        ],
        &format!("it is a backup of pool {pool}, not {other}"),
    );
    refused(
        &[
            "backup", "-p", &pool, "-o", "s.json", "--shard", "1/3", "--resume",
        ],
        "it is a backup of shard 1/2, not shard 1/3",
    );
    let mut edited = state.clone();
    edited["cbr_version"] = "0.0.1".into();
    std::fs::write(state_dir.join("state.json"), edited.to_string()).unwrap();
    refused(
        &[
            "backup", "-p", &pool, "-o", "s.json", "--shard", "1/2", "--resume",
        ],
        "it was made by cbr 0.0.1",
    );
    let requests = recorded(log.path());
    for op in [
        "ListUsers",
        "ListUsersInGroup",
        "ListGroups",
        "DescribeUserPool",
    ] {
        assert!(recorded_ops(&requests, op).is_empty(), "{op} was called");
    }
    assert!(!dir.path().join("s-1.json").exists());

    // The state is still there for the right command.
    std::fs::write(state_dir.join("state.json"), &before).unwrap();
    let out = cbr(
        &recording.url,
        dir.path(),
        &[
            "backup", "-p", &pool, "-o", "s.json", "--shard", "1/2", "--resume",
        ],
    );
    assert_ok(&out);
    let fresh = tempfile::tempdir().unwrap();
    assert_ok(&cbr(
        moto(),
        fresh.path(),
        &["backup", "-p", &pool, "-o", "s.json", "--shard", "1/2"],
    ));
    assert!(
        std::fs::read(dir.path().join("s-1.json")).unwrap()
            == std::fs::read(fresh.path().join("s-1.json")).unwrap()
    );
    assert!(!state_dir.exists());
}

#[tokio::test]
async fn without_resume_a_leftover_state_is_named_and_replaced() {
    let (_c, pool) = seeded_pool("resume-leftover", 100).await;
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join(".backup.json.resume");
    let slow = layer(&["--op-latency", "ListUsers=300"]);
    let mut args = vec!["backup", "-p", &pool];
    args.extend(SLOW);
    let child = cbr_command(&slow.url, dir.path(), &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let state = stop_after(child, 2, "-TERM", || async { local_state(&state_dir) }).await;
    let kept = finished(&state);

    let again = layer(&[]);
    let out = cbr(&again.url, dir.path(), &["backup", "-p", &pool]);
    assert_ok(&out);
    let err = stderr(&out);
    let hint = err
        .lines()
        .find(|l| l.contains("stopped part way"))
        .unwrap_or_else(|| panic!("no hint in {err}"));
    assert!(hint.contains("WARN"), "{hint}");
    assert!(hint.contains("add --resume to continue it"), "{hint}");
    assert!(hint.contains(".backup.json.resume"), "{hint}");
    assert!(
        hint.contains(&format!("({kept} of {} prefixes listed", prefixes(&state))),
        "{hint}"
    );
    // Started over: every prefix listed, the state gone, the backup whole.
    assert_eq!(list_users_calls(&again), prefixes(&state) as u64);
    assert!(!state_dir.exists());
    assert_eq!(read_backup(&dir.path().join("backup.json")).len(), 100);
}

/// What a spool takes per user, on pools as they are in production: the records of a backup
/// of each pool shape pushed into a spool (the bytes a backup's temporary spools and its resume
/// state hold), against the plain data file. (Measured: 121–141 bytes a user by shape, 128 on
/// average, against 1,072–1,190 in the data file; 182–206 at the fast level.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spools_of_production_pools_take_under_150_bytes_a_user() {
    use cbr::backup_file::{Identities, Spool, for_each_record};
    let users = 1500;
    let dir = tempfile::tempdir().unwrap();
    let (mut plain_total, mut spool_total) = (0u64, 0u64);
    for (i, shape) in production::SHAPES.iter().enumerate() {
        let (pool, _) = production::production_pool(moto(), shape, users, 40 + i as u64);
        let name = format!("{shape}.json");
        assert_ok(&cbr(
            moto(),
            dir.path(),
            &["backup", "-p", &pool, "-o", &name],
        ));
        let data = dir.path().join(&name);
        let mut spool = Spool::new(dir.path()).unwrap();
        let ids: Identities = Default::default();
        let n = for_each_record(&data.clone().into(), &ids, |_, user| spool.push(&user)).unwrap();
        assert_eq!(n, users as u64);
        let spooled = spool.finish().unwrap();
        let plain = std::fs::metadata(&data).unwrap().len();
        let stored = spooled.stored_bytes().unwrap();
        eprintln!(
            "{shape}: {:.0} bytes a user in the data file, {:.1} in a spool",
            plain as f64 / n as f64,
            stored as f64 / n as f64
        );
        assert!(stored * 7 < plain, "{shape}: {stored} of {plain} bytes");
        assert!(stored < 150 * n, "{shape}: {stored} bytes for {n} users");
        plain_total += plain;
        spool_total += stored;
    }
    let n = (users * production::SHAPES.len()) as f64;
    eprintln!(
        "all shapes: {:.0} bytes a user in the data file, {:.1} in a spool",
        plain_total as f64 / n,
        spool_total as f64 / n
    );
    assert!(spool_total as f64 / n < 150.0);
}
