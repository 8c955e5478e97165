//! The command line itself, no pool needed: help, version, usage errors and their exit codes.

use std::process::{Command, Output};

fn cbr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cbr"))
        .args(args)
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run cbr")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_the_commands_and_the_original_flags() {
    let out = cbr(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for command in ["list", "backup", "restore", "verify"] {
        assert!(help.contains(command), "{help}");
    }
    let backup = text(&cbr(&["backup", "--help"]).stdout);
    for flag in [
        "-p, --pool-id",
        "-o, --out",
        "[default: backup.json]",
        "--shard <k/n>",
    ] {
        assert!(backup.contains(flag), "{flag} in {backup}");
    }
    let restore = text(&cbr(&["restore", "--help"]).stdout);
    for flag in ["-i, --in", "--dry-run", "--sub-map", "--identity"] {
        assert!(restore.contains(flag), "{flag} in {restore}");
    }
}

#[test]
fn version_is_the_crate_version() {
    let out = cbr(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("cbr {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2_and_say_why() {
    for (args, why) in [
        (
            vec!["backup", "-p", "x", "--shard", "0/3"],
            "between 1 and 3",
        ),
        (
            vec!["backup", "-p", "x", "--shard", "4/3"],
            "between 1 and 3",
        ),
        (
            vec!["backup", "-p", "x", "--shard", "a/b"],
            "not a whole number",
        ),
        (vec!["backup", "-p", "x", "--shard", "3"], "expected k/n"),
        (vec!["backup"], "--pool-id"),
        (vec!["backup", "-p", "x", "--max-rps", "0"], "at least 0.5"),
        (vec!["nope"], "unrecognized subcommand"),
    ] {
        let out = cbr(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(why),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn invitations_need_temporary_passwords() {
    let out = cbr(&[
        "restore",
        "-p",
        "x",
        "--send-invitations",
        "--region",
        "us-east-1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--password-mode temporary"));
}

#[test]
fn no_region_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cbr"))
        .args(["list"])
        .env_clear()
        .env("HOME", dir.path())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no AWS region"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn verify_without_a_pool_works_offline() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("go.json");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/go-original/backup.json"
    );
    std::fs::copy(fixture, &file).unwrap();
    // No region, no endpoint: nothing is sent anywhere.
    let out = Command::new(env!("CARGO_BIN_EXE_cbr"))
        .args(["verify", "-i", file.to_str().unwrap()])
        .env_clear()
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        report.contains("13 users, no manifest: parsed only"),
        "{report}"
    );
    assert!(report.contains("verify: OK"), "{report}");
}
