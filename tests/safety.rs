//! The worst days: encrypted and compressed backups (interoperable with the `age` CLI),
//! `cbr verify`, and interruption (SIGTERM during a backup or a restore, SIGKILL then rerun).

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An age key pair made with `age-keygen`: (identity file, public key).
fn keygen(dir: &Path) -> (std::path::PathBuf, String) {
    let path = dir.join("key.txt");
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&path)
        .output()
        .expect("age-keygen is installed (bash .ci/test installs it)");
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    let public = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    (path, public)
}

fn age_cli(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("age")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the age CLI is installed (bash .ci/test installs it)")
}

#[tokio::test]
async fn encrypted_and_compressed_backups_work_with_the_age_cli() {
    let (c, pool) = seeded_pool("age", 25).await;
    let env = TestEnv::new();
    let (identity, public) = keygen(env.path());
    let id = identity.to_str().unwrap();
    assert_ok(&env.cbr(&["backup", "-p", &pool, "-o", "plain.json"]));
    let plain = std::fs::read(env.path().join("plain.json")).unwrap();

    // age: the CLI decrypts what cbr writes, to the same bytes as a plain backup.
    assert_ok(&env.cbr(&[
        "backup",
        "-p",
        &pool,
        "-o",
        "b.json.age",
        "--recipient",
        &public,
    ]));
    let raw = std::fs::read(env.path().join("b.json.age")).unwrap();
    assert!(raw.starts_with(b"age-encryption.org/v1"));
    assert!(!String::from_utf8_lossy(&raw).contains("@example.org"));
    let manifest: Value = read_json(&env.path().join("b.meta.json"));
    assert_eq!(manifest["encryption"], "age");
    let out = age_cli(&["-d", "-i", id, "b.json.age"], env.path());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, plain);

    // gzip + age, with a recipients file; the CLI decrypts, gunzip gives the plain bytes.
    std::fs::write(
        env.path().join("recipients.txt"),
        format!("# ops\n{public}\n"),
    )
    .unwrap();
    assert_ok(&env.cbr(&[
        "backup",
        "-p",
        &pool,
        "-o",
        "c.json.gz.age",
        "--recipients-file",
        "recipients.txt",
    ]));
    let out = age_cli(
        &["-d", "-i", id, "-o", "c.json.gz", "c.json.gz.age"],
        env.path(),
    );
    assert!(out.status.success(), "{out:?}");
    let gz = std::fs::read(env.path().join("c.json.gz")).unwrap();
    let mut text = Vec::new();
    use std::io::Read;
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut text)
        .unwrap();
    assert_eq!(text, plain);

    // gzip alone.
    assert_ok(&env.cbr(&["backup", "-p", &pool, "-o", "d.json.gz"]));
    assert!(
        std::fs::read(env.path().join("d.json.gz"))
            .unwrap()
            .starts_with(&[0x1f, 0x8b])
    );

    // cbr reads what the CLI writes (armored, too).
    let out = age_cli(
        &["-r", &public, "-a", "-o", "cli.json.age", "plain.json"],
        env.path(),
    );
    assert!(out.status.success(), "{out:?}");

    // Restore: refused without the key, before anything is written; works with it.
    let target = create_pool(&c, &unique("age-dst"), tenant_pool()).await;
    let out = env.cbr(&["restore", "-p", &target, "-i", "b.json.age"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--identity"), "{}", stderr(&out));
    assert!(snapshot(&c, &target).await.is_empty());
    for file in ["b.json.age", "c.json.gz.age", "d.json.gz", "cli.json.age"] {
        let out = env.cbr(&["restore", "-p", &target, "-i", file, "--identity", id]);
        assert_ok(&out);
    }
    assert_eq!(snapshot(&c, &target).await, snapshot(&c, &pool).await);

    // verify reads them too.
    for file in ["b.json.age", "c.json.gz.age", "d.json.gz"] {
        let out = env.cbr(&["verify", "-i", file, "--identity", id]);
        assert_ok(&out);
    }
}

#[tokio::test]
async fn verify_checks_files_shards_and_the_live_pool() {
    let (c, pool) = seeded_pool("verify", 40).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool]));

    // A good backup of an unchanged pool.
    let out = env.cbr(&["verify", "-p", &pool]);
    assert_ok(&out);
    assert!(stdout(&out).contains("verify: OK"), "{}", stdout(&out));
    assert!(stdout(&out).contains("40 match"), "{}", stdout(&out));

    // The pool changes: one user disabled, one deleted, one added, one leaves a group.
    c.admin_disable_user()
        .user_pool_id(&pool)
        .username("user00001")
        .send()
        .await
        .unwrap();
    c.admin_delete_user()
        .user_pool_id(&pool)
        .username("user00002")
        .send()
        .await
        .unwrap();
    c.admin_remove_user_from_group()
        .user_pool_id(&pool)
        .username("user00000")
        .group_name("admins")
        .send()
        .await
        .unwrap();
    seed(&c, &pool, &[Seed::new("newcomer")]).await;
    let out = env.cbr(&["verify", "-p", &pool, "--output", "json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let p = &report["pool"];
    assert_eq!(p["missing_from_pool"], 1);
    assert_eq!(p["extra_in_pool"], 1);
    assert_eq!(p["different"], 2);
    assert_eq!(p["examples_missing"][0], "user00002");
    assert_eq!(p["examples_extra"][0], "newcomer");
    let diffs = p["examples_different"].as_array().unwrap();
    assert!(
        diffs
            .iter()
            .any(|d| d["user"] == "user00001" && d["fields"][0] == "enabled")
    );
    assert!(
        diffs
            .iter()
            .any(|d| d["user"] == "user00000" && d["fields"][0] == "groups")
    );

    // A damaged file: checksum mismatch, no pool needed.
    let path = env.path().join("backup.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("Zoë", "Zoe", 1)).unwrap();
    let out = env.cbr(&["verify"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stdout(&out).contains("SHA-256"), "{}", stdout(&out));

    // Shards: all present is whole; one missing is reported.
    for k in 1..=3 {
        let shard = format!("{k}/3");
        assert_ok(&env.cbr(&["backup", "-p", &pool, "-o", "s.json", "--shard", &shard]));
    }
    let out = env.cbr(&[
        "verify", "-i", "s-1.json", "s-2.json", "s-3.json", "-p", &pool,
    ]);
    assert_ok(&out);
    std::fs::remove_file(env.path().join("s-2.json")).unwrap();
    let out = env.cbr(&["verify", "-i", "s-1.json"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout(&out).contains("missing shard file"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("s-2.json"), "{}", stdout(&out));
}

/// Starts `cbr` in the background against `endpoint`.
fn spawn_cbr(endpoint: &str, dir: &Path, args: &[&str]) -> std::process::Child {
    cbr_command(endpoint, dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &std::process::Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_or_ctrl_c_during_backup_stops_promptly_and_leaves_only_its_state() {
    let (_c, pool) = seeded_pool("term-backup", 120).await;
    // Slow pages: the backup takes many seconds.
    let layer = layer(&["--latency-ms", "300"]);
    for sig in ["-TERM", "-INT"] {
        let env = TestEnv::new();
        let args = [
            "backup",
            "-p",
            &pool,
            "--max-rps",
            "1",
            "--concurrency",
            "1",
        ];
        let mut child = spawn_cbr(&layer.url, env.path(), &args);
        std::thread::sleep(Duration::from_millis(2500));
        assert!(child.try_wait().unwrap().is_none(), "still running");
        let sent = Instant::now();
        signal(&child, sig);
        let out = child.wait_with_output().unwrap();
        assert!(
            sent.elapsed() < Duration::from_secs(3),
            "{sig}: stopped promptly"
        );
        assert_eq!(out.status.code(), Some(130), "{sig}: {}", stderr(&out));
        // No data file, no temporary one: only the state a run with --resume goes on from.
        let left = files_in(env.path());
        assert_eq!(left, [".backup.json.resume"], "{sig}");
        assert!(stderr(&out).contains("--resume"), "{sig}: {}", stderr(&out));
    }
}

#[tokio::test]
async fn sigterm_during_restore_finishes_in_flight_and_writes_map_and_report() {
    let (c, pool) = seeded_pool("term-src", 60).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool]));
    let target = create_pool(&c, &unique("term-dst"), tenant_pool()).await;
    let layer = layer(&["--latency-ms", "200"]);
    let child = spawn_cbr(
        &layer.url,
        env.path(),
        &[
            "restore",
            "-p",
            &target,
            "--max-rps",
            "2",
            "--report",
            "r.json",
        ],
    );
    // Interrupt once users are being written (the pool is read first).
    let deadline = Instant::now() + Duration::from_secs(60);
    while snapshot(&c, &target).await.is_empty() {
        assert!(Instant::now() < deadline, "no user was created");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let report: Value = read_json(&env.path().join("r.json"));
    assert_eq!(report["interrupted"], true);
    let created = report["created"].as_u64().unwrap();
    assert!(created > 0 && created < 60, "{report}");
    let restored = snapshot(&c, &target).await.len() as u64;
    assert_eq!(restored, created, "every user taken was finished");
    let map =
        std::fs::read_to_string(env.path().join(format!("backup.sub-map.{target}.jsonl"))).unwrap();
    assert_eq!(map.lines().count() as u64, created);
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));

    // Run again: the rest comes back, the sub map is complete.
    assert_ok(&env.cbr(&["restore", "-p", &target]));
    assert_eq!(snapshot(&c, &target).await, snapshot(&c, &pool).await);
    let map =
        std::fs::read_to_string(env.path().join(format!("backup.sub-map.{target}.jsonl"))).unwrap();
    assert_eq!(map.lines().count(), 60);
}

#[tokio::test]
async fn sigkill_during_restore_then_rerun_restores_everyone_once() {
    let (c, pool) = seeded_pool("kill-src", 50).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool]));
    let target = create_pool(&c, &unique("kill-dst"), tenant_pool()).await;
    let layer = layer(&["--latency-ms", "100"]);
    let mut child = spawn_cbr(
        &layer.url,
        env.path(),
        &["restore", "-p", &target, "--max-rps", "5"],
    );
    std::thread::sleep(Duration::from_millis(2500));
    signal(&child, "-KILL");
    let _ = child.wait();
    let partial = snapshot(&c, &target).await.len();
    assert!(partial < 50, "killed before the end ({partial})");

    assert_ok(&env.cbr(&["restore", "-p", &target]));
    assert_eq!(snapshot(&c, &target).await, snapshot(&c, &pool).await);
    let map =
        std::fs::read_to_string(env.path().join(format!("backup.sub-map.{target}.jsonl"))).unwrap();
    let users: std::collections::BTreeSet<String> = map
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["username"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(users.len(), 50);
    assert_eq!(map.lines().count(), 50);
}

#[tokio::test]
async fn restore_of_an_incomplete_shard_set_is_refused_unless_partial() {
    let (c, pool) = seeded_pool("partial-source", 30).await;
    let env = TestEnv::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        assert_ok(&env.cbr(&["backup", "-p", &pool, "-o", "s.json", "--shard", &shard]));
    }
    std::fs::remove_file(env.path().join("s-2.json")).unwrap();
    std::fs::remove_file(env.path().join("s-2.meta.json")).unwrap();
    let target = create_pool(&c, &unique("partial-target"), tenant_pool()).await;

    // `--in s-*.json` as the shell expands it, with shard 2 gone.
    let inputs = ["s-1.json", "s-1.meta.json", "s-3.json", "s-3.meta.json"];
    let mut args = vec!["restore", "-p", &target, "--in"];
    args.extend(inputs);
    let out = env.cbr(&args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("s-2.json"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was written"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--partial"), "{}", stderr(&out));
    assert!(snapshot(&c, &target).await.is_empty(), "no user written");
    let groups = c.list_groups().user_pool_id(&target).send().await.unwrap();
    assert!(groups.groups().is_empty(), "no group written");

    // Intended: only the shards given are restored.
    args.push("--partial");
    assert_ok(&env.cbr(&args));
    let expected = read_backup(&env.path().join("s-1.json")).len()
        + read_backup(&env.path().join("s-3.json")).len();
    assert!(expected > 0 && expected < 30);
    assert_eq!(snapshot(&c, &target).await.len(), expected);
}
