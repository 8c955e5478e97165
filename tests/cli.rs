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

#[test]
fn global_flags_have_their_own_heading_in_every_help() {
    for command in [
        vec!["--help"],
        vec!["list", "--help"],
        vec!["backup", "--help"],
        vec!["restore", "--help"],
        vec!["verify", "--help"],
    ] {
        let help = text(&cbr(&command).stdout);
        let (own, global) = help
            .split_once("Global options:")
            .unwrap_or_else(|| panic!("{command:?}: no Global options heading:\n{help}"));
        for flag in [
            "--region",
            "--profile",
            "--endpoint-url",
            "--max-attempts",
            "--verbose",
            "--quiet",
        ] {
            assert!(
                global.contains(flag),
                "{command:?}: {flag} under Global options"
            );
            assert!(
                !own.contains(flag),
                "{command:?}: {flag} among the command's own"
            );
        }
    }
    let backup = text(&cbr(&["backup", "--help"]).stdout);
    let (own, _) = backup.split_once("Global options:").unwrap();
    assert!(
        own.contains("--pool-id") && own.contains("--shard"),
        "{backup}"
    );
}

#[test]
fn verify_help_describes_its_own_output() {
    let help = text(&cbr(&["verify", "--help"]).stdout);
    assert!(help.contains("--output"), "{help}");
    assert!(
        !help.contains("list"),
        "verify's help mentions list:\n{help}"
    );
    assert!(!help.contains("id: <id>"), "{help}");
    let list = text(&cbr(&["list", "--help"]).stdout);
    assert!(list.contains("id: <id> name: <name>"), "{list}");
}

/// A loopback port where nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn no_credentials_fail_at_once_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_cbr"))
        .args(["list", "--region", "us-east-1", "--endpoint-url", &endpoint])
        .env_clear()
        .env("HOME", dir.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(elapsed.as_secs_f64() < 3.0, "took {elapsed:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no AWS credentials"), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    for debug in ["{", "Attempted", "DispatchFailure", "CredentialsNotLoaded"] {
        assert!(!err.contains(debug), "{debug} in {err}");
    }
}

#[test]
fn a_refused_connection_is_retried_briefly_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_cbr"))
        .args(["list", "--region", "us-east-1", "--endpoint-url", &endpoint])
        .env_clear()
        .env("HOME", dir.path())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(elapsed.as_secs_f64() < 4.0, "took {elapsed:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("cannot connect to {endpoint}: connection refused")),
        "{err}"
    );
    for debug in ["{", "DispatchFailure", "ConnectorError", "dispatch failure"] {
        assert!(!err.contains(debug), "{debug} in {err}");
    }
}

#[test]
fn the_sdks_warnings_show_only_with_v() {
    // A damaged shared config file makes the SDK warn while it looks for a region.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".aws")).unwrap();
    std::fs::write(
        dir.path().join(".aws/config"),
        "[profile broken\nregion = \n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cbr"))
            .arg("list")
            .args(extra)
            .env_clear()
            .env("HOME", dir.path())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no AWS region"), "{err}");
    let verbose = text(&run(&["-v"]).stderr);
    assert!(verbose.contains("WARN"), "{verbose}");
    assert!(verbose.contains("no AWS region"), "{verbose}");
}

#[test]
fn verify_of_a_missing_or_unreadable_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = |file: &str| {
        Command::new(env!("CARGO_BIN_EXE_cbr"))
            .args(["verify", "-i", file])
            .current_dir(dir.path())
            .env_clear()
            .env("HOME", dir.path())
            .output()
            .unwrap()
    };
    let out = run("nope.json");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("nope.json"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stdout).contains("DIFFERENCES"));
    std::fs::create_dir(dir.path().join("a-dir.json")).unwrap();
    let out = run("a-dir.json");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    // A file that is there but holds no backup is a finding, not an error.
    std::fs::write(dir.path().join("notes.json"), "id,email\n").unwrap();
    let out = run("notes.json");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stdout).contains("not JSON"),
        "{}",
        text(&out.stdout)
    );
}
