//! The whole life of a backup on pools as they are in production, one test per pool shape
//! (username, case-insensitive, email sign-in, phone sign-in, email alias, preferred_username
//! alias): every user status at once, federated and linked users, disabled users, users in no
//! group and in every group, non-Latin scripts and emoji, values at the schema's limits.
//!
//! backup → restore into an empty pool → rerun (no write) → verify and diff (the restored pool
//! and the source) → a restore into a second pool killed at a random point, then run again →
//! damage in both pools, `--update-existing`, verify → rerun (no write). Every step must exit 0.
//! Everything goes through the AWS-like layer, which refuses what Cognito refuses.

mod common;

use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::types::AttributeType;
use common::production::production_pool;
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Writes the layer saw: every call that changes a pool.
fn writes(layer: &Server) -> u64 {
    let stats = layer_stats(layer);
    stats["ops"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(op, _)| {
            !(op.starts_with("List")
                || op.starts_with("Describe")
                || op.starts_with("Get")
                || op.starts_with("AdminGet")
                || op.starts_with("AdminList"))
        })
        .map(|(_, v)| v["calls"].as_u64().unwrap())
        .sum()
}

fn layer_post(layer: &Server, path: &str) {
    let addr = layer.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"));
}

/// Runs `cbr` through the layer and insists on exit 0, naming the step.
fn step(layer: &Server, dir: &Path, what: &str, args: &[&str]) -> String {
    let out = cbr(&layer.url, dir, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {args:?}\nstdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    format!("{}{}", stdout(&out), stderr(&out))
}

/// A rerun of the restore: exit 0, nothing written, every native user already restored.
fn rerun_writes_nothing(layer: &Server, dir: &Path, pool: &str, natives: u64, what: &str) {
    layer_post(layer, "/_layer/reset-stats");
    step(
        layer,
        dir,
        what,
        &[
            "restore",
            "-p",
            pool,
            "--update-existing",
            "--report",
            "rerun.json",
        ],
    );
    assert_eq!(writes(layer), 0, "{what}: {}", layer_stats(layer));
    let report = read_json(&dir.join("rerun.json"));
    assert_eq!(report["unchanged"], natives, "{what}: {report}");
    assert_eq!(report["created"], 0, "{what}: {report}");
}

/// Damage as a bad script would do it, to native users of `pool`: an attribute changed, one
/// added, one removed, enabled flags flipped, memberships removed and added, users deleted.
/// Returns how many users were touched.
async fn damage(c: &Client, pool: &str, seed: usize) -> usize {
    let mut users = all_users(c, pool).await;
    users.sort_by(|a, b| a.username().cmp(&b.username()));
    let natives: Vec<_> = users
        .iter()
        .filter(|u| u.user_status().map(|s| s.as_str()) != Some("EXTERNAL_PROVIDER"))
        .collect();
    let groups = c
        .list_groups()
        .user_pool_id(pool)
        .send()
        .await
        .unwrap()
        .groups()
        .iter()
        .map(|g| g.group_name().unwrap().to_string())
        .collect::<Vec<_>>();
    let has = |u: &aws_sdk_cognitoidentityprovider::types::UserType, name: &str| {
        u.attributes().iter().any(|a| a.name() == name)
    };
    let mut touched = 0;
    for (i, u) in natives
        .iter()
        .enumerate()
        .skip(seed % 3)
        .step_by(5)
        .take(12)
    {
        let name = u.username().unwrap();
        match i % 6 {
            0 => {
                let attr = AttributeType::builder()
                    .name("name")
                    .value("changed by a script")
                    .build()
                    .unwrap();
                c.admin_update_user_attributes()
                    .user_pool_id(pool)
                    .username(name)
                    .user_attributes(attr)
                    .send()
                    .await
                    .unwrap();
            }
            1 if !has(u, "given_name") => {
                let attr = AttributeType::builder()
                    .name("given_name")
                    .value("added by a script")
                    .build()
                    .unwrap();
                c.admin_update_user_attributes()
                    .user_pool_id(pool)
                    .username(name)
                    .user_attributes(attr)
                    .send()
                    .await
                    .unwrap();
            }
            2 if has(u, "family_name") => {
                c.admin_delete_user_attributes()
                    .user_pool_id(pool)
                    .username(name)
                    .user_attribute_names("family_name")
                    .send()
                    .await
                    .unwrap();
            }
            3 if u.enabled() => {
                c.admin_disable_user()
                    .user_pool_id(pool)
                    .username(name)
                    .send()
                    .await
                    .unwrap();
            }
            3 => {
                c.admin_enable_user()
                    .user_pool_id(pool)
                    .username(name)
                    .send()
                    .await
                    .unwrap();
            }
            4 if !groups.is_empty() => {
                let group = &groups[i % groups.len()];
                let member = c
                    .admin_list_groups_for_user()
                    .user_pool_id(pool)
                    .username(name)
                    .send()
                    .await
                    .unwrap()
                    .groups()
                    .iter()
                    .any(|g| g.group_name() == Some(group.as_str()));
                if member {
                    c.admin_remove_user_from_group()
                        .user_pool_id(pool)
                        .username(name)
                        .group_name(group)
                        .send()
                        .await
                        .unwrap();
                } else {
                    c.admin_add_user_to_group()
                        .user_pool_id(pool)
                        .username(name)
                        .group_name(group)
                        .send()
                        .await
                        .unwrap();
                }
            }
            5 => {
                c.admin_delete_user()
                    .user_pool_id(pool)
                    .username(name)
                    .send()
                    .await
                    .unwrap();
            }
            _ => continue,
        }
        touched += 1;
    }
    touched
}

/// Users the layer has seen created.
fn created(layer: &Server) -> u64 {
    layer_stats(layer)["ops"]["AdminCreateUser"]["calls"]
        .as_u64()
        .unwrap_or(0)
}

/// A restore into `pool` killed (SIGKILL) at a random point while it creates users (after its
/// groups, which come first at a few a second).
fn killed_restore(layer: &Server, dir: &Path, pool: &str, seed: u64) {
    let args = ["restore", "-p", pool, "--concurrency", "4"];
    let mut child = cbr_command(&layer.url, dir, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while created(layer) == 0 {
        assert!(
            Instant::now() < deadline,
            "the restore never created a user"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // A point somewhere in the first 1.5 s of creating users (of about 3 s), different for each
    // shape.
    std::thread::sleep(Duration::from_millis(seed * 277 % 1500));
    let _ = child.kill();
    let _ = child.wait();
}

async fn life(shape: &str, seed: u64) {
    // Slow creations, so a killed restore stops part way.
    let layer = layer(&["--op-latency", "AdminCreateUser=150"]);
    let c = client(&layer.url).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (source, users) = production_pool(moto(), shape, 80, seed);
    let (first, _) = production_pool(moto(), shape, 0, seed);
    let (second, _) = production_pool(moto(), shape, 0, seed);
    // The pools were made behind the layer's back.
    layer_post(&layer, "/_layer/forget");
    let federated = users
        .iter()
        .filter(|u| u["UserStatus"] == "EXTERNAL_PROVIDER")
        .count() as u64;
    let natives = users.len() as u64 - federated;
    assert!(federated > 0 && natives > 0);

    step(&layer, d, "backup", &["backup", "-p", &source]);
    assert_eq!(read_backup(&d.join("backup.json")).len(), users.len());

    // Into an empty pool.
    step(
        &layer,
        d,
        "restore",
        &["restore", "-p", &first, "--report", "first.json"],
    );
    let report = read_json(&d.join("first.json"));
    assert_eq!(report["created"], natives, "{report}");
    assert_eq!(report["failed"], Value::Array(vec![]), "{report}");
    rerun_writes_nothing(&layer, d, &first, natives, "rerun after a complete restore");

    // verify and diff: the restored pool as restored, the source literally.
    let out = step(&layer, d, "verify restored", &["verify", "-p", &first]);
    assert!(out.contains("compared as restored"), "{out}");
    assert!(
        out.contains(&format!("{federated} federated users")),
        "{out}"
    );
    let out = step(
        &layer,
        d,
        "diff restored",
        &["diff", "backup.json", "-p", &first],
    );
    assert!(out.contains("compared as restored"), "{out}");
    let out = step(&layer, d, "verify source", &["verify", "-p", &source]);
    assert!(out.contains("compared literally"), "{out}");
    step(
        &layer,
        d,
        "diff source",
        &["diff", "backup.json", "-p", &source],
    );

    // A second pool: a restore killed part way, then run again.
    layer_post(&layer, "/_layer/reset-stats");
    killed_restore(&layer, d, &second, seed);
    let created = created(&layer);
    assert!(created > 0, "killed after the first creation");
    assert!(
        created < natives,
        "killed part way: {created} of {natives} created"
    );
    step(
        &layer,
        d,
        "restore after a kill",
        &["restore", "-p", &second],
    );
    rerun_writes_nothing(&layer, d, &second, natives, "rerun after a killed restore");
    step(&layer, d, "verify after a kill", &["verify", "-p", &second]);
    let first_map = std::fs::read_to_string(d.join(format!("backup.sub-map.{first}.jsonl")))
        .expect("the first pool's sub map");
    assert_eq!(first_map.lines().count() as u64, natives);

    // Damage in both pools, repaired by --update-existing, each through its own sub map.
    for (pool, n) in [(&first, 1), (&second, 2)] {
        let touched = damage(&c, pool, n).await;
        assert!(touched >= 8, "{touched} users damaged");
        layer_post(&layer, "/_layer/forget");
        let out = cbr(&layer.url, d, &["verify", "-p", pool]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "the damage is seen: {}",
            stderr(&out)
        );
        step(
            &layer,
            d,
            "repair",
            &[
                "restore",
                "-p",
                pool,
                "--update-existing",
                "--report",
                "repair.json",
            ],
        );
        let report = read_json(&d.join("repair.json"));
        assert_eq!(report["conflicts"], Value::Array(vec![]), "{report}");
        assert_eq!(report["withheld"], Value::Array(vec![]), "{report}");
        step(&layer, d, "verify after repair", &["verify", "-p", pool]);
        step(
            &layer,
            d,
            "diff after repair",
            &["diff", "backup.json", "-p", pool],
        );
        rerun_writes_nothing(&layer, d, pool, natives, "rerun after repair");
    }
    // Each pool has its own map; the second pool's restores did not touch the first's.
    let first_after =
        std::fs::read_to_string(d.join(format!("backup.sub-map.{first}.jsonl"))).unwrap();
    assert!(first_after.starts_with(&first_map), "lines are only added");
    assert!(d.join(format!("backup.sub-map.{second}.jsonl")).exists());
}

#[tokio::test]
async fn the_life_of_a_backup_of_a_username_pool() {
    life("username", 1).await;
}

#[tokio::test]
async fn the_life_of_a_backup_of_a_case_insensitive_pool() {
    life("case_insensitive", 2).await;
}

#[tokio::test]
async fn the_life_of_a_backup_of_an_email_sign_in_pool() {
    life("email_sign_in", 3).await;
}

#[tokio::test]
async fn the_life_of_a_backup_of_a_phone_sign_in_pool() {
    life("phone_sign_in", 4).await;
}

#[tokio::test]
async fn the_life_of_a_backup_of_an_email_alias_pool() {
    life("email_alias", 5).await;
}

#[tokio::test]
async fn the_life_of_a_backup_of_a_preferred_username_alias_pool() {
    life("preferred_username_alias", 6).await;
}
