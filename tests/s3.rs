//! Backups in S3 (moto's S3, on the same moto server as Cognito): a round trip, a shard set,
//! SSE-S3 and SSE-KMS, an interrupted backup, a missing bucket, and a changed object. (A
//! backup to S3 that stops and resumes: tests/resume.rs.)
//!
//! Cognito requests go to `--endpoint-url` (moto, or the AWS-like layer in front of it); S3
//! requests follow `AWS_ENDPOINT_URL_S3`, as in the AWS CLI, straight to moto.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::s3::*;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn backup_to_s3_then_restore_and_verify_from_s3() {
    let (c, pool) = seeded_pool("s3-src", 40).await;
    let bkt = bucket("cbr-round").await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("s3://{bkt}/nightly/backup.json");
    let out = cbr_s3(moto(), dir.path(), &["backup", "-p", &pool, "--out", &url]);
    assert_ok(&out);
    assert_eq!(
        keys(&bkt).await,
        [
            "nightly/backup.config.json",
            "nightly/backup.json",
            "nightly/backup.meta.json"
        ]
    );
    // Nothing of the backup is left on local disk.
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );

    // The manifest in S3 describes the object beside it; both are encrypted with SSE-S3.
    let data = get(&bkt, "nightly/backup.json").await;
    let manifest: serde_json::Value =
        serde_json::from_slice(&get(&bkt, "nightly/backup.meta.json").await).unwrap();
    assert_eq!(manifest["sha256"], sha256_hex(&data));
    assert_eq!(manifest["user_count"], 40);
    assert_eq!(manifest["data_file"], "backup.json");
    let users: Vec<serde_json::Value> = serde_json::from_slice(&data).unwrap();
    assert_eq!(users.len(), 40);
    for key in [
        "nightly/backup.config.json",
        "nightly/backup.json",
        "nightly/backup.meta.json",
    ] {
        let head = s3()
            .head_object()
            .bucket(&bkt)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.server_side_encryption().map(|s| s.as_str()),
            Some("AES256"),
            "{key}"
        );
    }

    let out = cbr_s3(moto(), dir.path(), &["verify", "--in", &url]);
    assert_ok(&out);
    assert!(stdout(&out).contains("verify: OK"), "{}", stdout(&out));

    let target = create_pool(&c, &unique("s3-dst"), tenant_pool()).await;
    let out = cbr_s3(
        moto(),
        dir.path(),
        &["restore", "-p", &target, "--in", &url],
    );
    assert_ok(&out);
    assert_eq!(snapshot(&c, &target).await, snapshot(&c, &pool).await);
    // The sub map is a local file, named after the object, in the current directory.
    assert_eq!(
        files_in(dir.path()),
        [format!("backup.sub-map.{target}.jsonl")]
    );

    let out = cbr_s3(moto(), dir.path(), &["verify", "--in", &url, "-p", &target]);
    assert_ok(&out);
}

#[tokio::test]
async fn a_shard_set_on_s3_is_found_by_its_pattern() {
    let (c, pool) = seeded_pool("s3-shards", 30).await;
    let bkt = bucket("cbr-shards").await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("s3://{bkt}/set/b.json.gz");
    for shard in ["1/2", "2/2"] {
        let out = cbr_s3(
            moto(),
            dir.path(),
            &["backup", "-p", &pool, "--out", &url, "--shard", shard],
        );
        assert_ok(&out);
    }
    assert_eq!(
        keys(&bkt).await,
        [
            "set/b-1.config.json",
            "set/b-1.json.gz",
            "set/b-1.members.json.gz",
            "set/b-1.meta.json",
            "set/b-2.config.json",
            "set/b-2.json.gz",
            "set/b-2.members.json.gz",
            "set/b-2.meta.json"
        ]
    );
    // An object that merely shares the prefix is not part of the set.
    s3().put_object()
        .bucket(&bkt)
        .key("set/b-1.json.gz.bak/x")
        .body(ByteStream::from_static(b"not a backup"))
        .send()
        .await
        .unwrap();
    let pattern = format!("s3://{bkt}/set/b-*.json.gz");
    let out = cbr_s3(
        moto(),
        dir.path(),
        &["verify", "--in", &pattern, "--output", "json"],
    );
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let files: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            format!("s3://{bkt}/set/b-1.json.gz"),
            format!("s3://{bkt}/set/b-2.json.gz")
        ]
    );
    let users: u64 = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["users"].as_u64().unwrap())
        .sum();
    assert_eq!(users, 30);

    let target = create_pool(&c, &unique("s3-shards-dst"), tenant_pool()).await;
    let out = cbr_s3(
        moto(),
        dir.path(),
        &["restore", "-p", &target, "--in", &pattern],
    );
    assert_ok(&out);
    assert_eq!(snapshot(&c, &target).await, snapshot(&c, &pool).await);

    // With one shard gone, verify names the missing object.
    s3().delete_object()
        .bucket(&bkt)
        .key("set/b-2.json.gz")
        .send()
        .await
        .unwrap();
    let out = cbr_s3(moto(), dir.path(), &["verify", "--in", &pattern]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("s3://{bkt}/set/b-2.json.gz")),
        "{}",
        stdout(&out)
    );
    let none = format!("s3://{bkt}/other/b-*.json");
    let out = cbr_s3(moto(), dir.path(), &["verify", "--in", &none]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no S3 object matches"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_kms_key_encrypts_the_objects() {
    let (_c, pool) = seeded_pool("s3-kms", 5).await;
    let bkt = bucket("cbr-kms").await;
    let dir = tempfile::tempdir().unwrap();
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let url = format!("s3://{bkt}/k/backup.json");
    let out = cbr_s3(
        moto(),
        dir.path(),
        &[
            "backup",
            "-p",
            &pool,
            "--out",
            &url,
            "--sse-kms-key-id",
            key,
        ],
    );
    assert_ok(&out);
    for k in [
        "k/backup.config.json",
        "k/backup.json",
        "k/backup.meta.json",
    ] {
        let head = s3().head_object().bucket(&bkt).key(k).send().await.unwrap();
        assert_eq!(
            head.server_side_encryption().map(|s| s.as_str()),
            Some("aws:kms"),
            "{k}"
        );
        assert_eq!(head.ssekms_key_id(), Some(key), "{k}");
    }
}

#[tokio::test]
async fn an_interrupted_backup_leaves_no_object_and_no_upload_only_its_state() {
    let (_c, pool) = seeded_pool("s3-term", 80).await;
    let bkt = bucket("cbr-term").await;
    // Slow pages: the listing takes many seconds.
    let layer = layer(&["--latency-ms", "300"]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("s3://{bkt}/t/backup.json");
    let mut child = cbr_s3_command(
        &layer.url,
        dir.path(),
        &[
            "backup",
            "-p",
            &pool,
            "--out",
            &url,
            "--max-rps",
            "1",
            "--concurrency",
            "1",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // The upload starts before the listing: wait for it, then interrupt.
    let started = Instant::now();
    loop {
        let uploads = s3()
            .list_multipart_uploads()
            .bucket(&bkt)
            .send()
            .await
            .unwrap();
        if !uploads.uploads().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no upload started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    // No data object: only the resume state, in S3 beside where the object would be.
    let left = keys(&bkt).await;
    assert!(
        left.contains(&"t/.backup.json.resume/state.json".to_string()),
        "{left:?}"
    );
    assert!(
        left.iter().all(|k| k.starts_with("t/.backup.json.resume/")),
        "{left:?}"
    );
    let uploads = s3()
        .list_multipart_uploads()
        .bucket(&bkt)
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "{:?}", uploads.uploads());
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[tokio::test]
async fn a_missing_bucket_fails_before_any_user_is_listed() {
    let (_c, pool) = seeded_pool("s3-nobucket", 5).await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("requests.jsonl");
    let layer = layer(&["--record", record.to_str().unwrap()]);
    let missing = unique("cbr-no-such-bucket");
    let url = format!("s3://{missing}/backup.json");
    let out = cbr_s3(
        &layer.url,
        dir.path(),
        &["backup", "-p", &pool, "--out", &url],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("S3 bucket {missing} does not exist")),
        "{err}"
    );
    assert!(err.contains("s3:PutObject"), "{err}");
    let requests = recorded(&record);
    for op in ["ListUsers", "ListGroups", "ListUsersInGroup"] {
        assert!(recorded_ops(&requests, op).is_empty(), "{op} was called");
    }
    assert_eq!(files_in(dir.path()), ["requests.jsonl"]);

    // Reading from it names the bucket too.
    let out = cbr_s3(moto(), dir.path(), &["verify", "--in", &url]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stdout(&out).contains(&missing) || stderr(&out).contains(&missing));
}

#[tokio::test]
async fn an_object_changed_after_the_backup_is_refused() {
    let (c, pool) = seeded_pool("s3-changed", 6).await;
    let bkt = bucket("cbr-changed").await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("s3://{bkt}/backup.json");
    assert_ok(&cbr_s3(
        moto(),
        dir.path(),
        &["backup", "-p", &pool, "--out", &url],
    ));
    // Still a valid backup with the same number of users, but not the one the manifest
    // describes.
    let text = String::from_utf8(get(&bkt, "backup.json").await).unwrap();
    let changed = text.replacen("user00001", "intruder1", 1);
    assert_ne!(changed, text);
    s3().put_object()
        .bucket(&bkt)
        .key("backup.json")
        .body(ByteStream::from(changed.into_bytes()))
        .send()
        .await
        .unwrap();

    let target = create_pool(&c, &unique("s3-changed-dst"), tenant_pool()).await;
    let out = cbr_s3(
        moto(),
        dir.path(),
        &["restore", "-p", &target, "--in", &url],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not match its manifest"),
        "{}",
        stderr(&out)
    );
    assert!(snapshot(&c, &target).await.is_empty(), "nothing restored");

    let out = cbr_s3(moto(), dir.path(), &["verify", "--in", &url]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).contains("SHA-256"), "{}", stdout(&out));
}

/// Through the library: an object of several parts (8 MiB each) is uploaded, read back whole
/// as a stream, and its SHA-256 is the one computed while reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_object_is_uploaded_in_parts_and_streamed_back() {
    use cbr::location::Location;
    use std::io::{Read, Write};
    let bkt = bucket("cbr-parts").await;
    cbr::location::s3::connect(cbr::location::s3::Store {
        client: s3(),
        kms_key_id: None,
    });
    let location: Location = format!("s3://{bkt}/big/data.bin").parse().unwrap();
    let bytes: Vec<u8> = (0..20 * 1024 * 1024 + 123)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut out = location.create().unwrap();
    for chunk in bytes.chunks(1_000_003) {
        out.write_all(chunk).unwrap();
    }
    assert!(keys(&bkt).await.is_empty(), "nothing before the commit");
    out.commit().unwrap();
    let head = s3()
        .head_object()
        .bucket(&bkt)
        .key("big/data.bin")
        .send()
        .await
        .unwrap();
    assert!(
        head.e_tag().unwrap().ends_with("-3\""),
        "{:?}",
        head.e_tag()
    );
    let mut back = Vec::new();
    location.open().unwrap().read_to_end(&mut back).unwrap();
    assert!(back == bytes, "the object reads back as written");
    assert_eq!(location.sha256().unwrap(), sha256_hex(&bytes));
    let uploads = s3()
        .list_multipart_uploads()
        .bucket(&bkt)
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty());
}

/// The SDK's service-specific endpoint variables, as the AWS CLI reads them: each wins over
/// `AWS_ENDPOINT_URL` (here a closed port) for its own service.
#[tokio::test]
async fn service_specific_endpoint_variables_are_honoured() {
    let (_c, pool) = seeded_pool("s3-endpoints", 3).await;
    let bkt = bucket("cbr-endpoints").await;
    let dir = tempfile::tempdir().unwrap();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let url = format!("s3://{bkt}/e/backup.json");
    let out = Command::new(env!("CARGO_BIN_EXE_cbr"))
        .args(["backup", "-p", &pool, "--out", &url, "--region", REGION])
        .args(["--max-attempts", "1"])
        .current_dir(dir.path())
        .env_clear()
        .env("HOME", dir.path())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", &closed)
        .env("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", moto())
        .env("AWS_ENDPOINT_URL_S3", moto())
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(
        keys(&bkt).await,
        [
            "e/backup.config.json",
            "e/backup.json",
            "e/backup.meta.json"
        ]
    );
}
