//! Shell completions and the man pages: generated from the same definitions as `--help`, for
//! every shell, loadable by bash, and naming every command.

use std::process::{Command, Output};

fn cbr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cbr"))
        .args(args)
        .env_clear()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run cbr")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const COMMANDS: [&str; 5] = ["list", "backup", "restore", "verify", "completions"];

#[test]
fn each_shell_gets_a_script_with_the_commands_and_flags() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef cbr"),
        ("fish", "complete -c cbr"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = cbr(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        for word in COMMANDS.iter().chain(&["sse-kms-key-id", "pool-id"]) {
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
    let out = cbr(&["completions", "tcsh"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn bash_loads_the_completion_script() {
    let exe = env!("CARGO_BIN_EXE_cbr");
    let script = text(&cbr(&["completions", "bash"]).stdout);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cbr.bash");
    std::fs::write(&file, &script).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(syntax.status.success(), "{}", text(&syntax.stderr));
    let out = Command::new("bash")
        .args([
            "-c",
            &format!("source <('{exe}' completions bash) && complete -p cbr"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("cbr"), "{}", text(&out.stdout));
    // Completing `cbr re` offers `restore`.
    let out = Command::new("bash")
        .args([
            "-c",
            &format!(
                "source <('{exe}' completions bash); COMP_WORDS=(cbr re); COMP_CWORD=1; \
                 COMP_LINE='cbr re'; COMP_POINT=6; _cbr cbr re cbr; printf '%s\\n' \"${{COMPREPLY[@]}}\""
            ),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "restore");
}

#[test]
fn the_man_pages_name_every_command_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    cbr::cli::man_pages(dir.path()).unwrap();
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    assert_eq!(
        pages,
        [
            "cbr-backup.1",
            "cbr-completions.1",
            "cbr-diff.1",
            "cbr-list.1",
            "cbr-restore.1",
            "cbr-verify.1",
            "cbr.1"
        ]
    );
    let main = std::fs::read_to_string(dir.path().join("cbr.1")).unwrap();
    assert!(main.contains(".TH cbr 1"), "{main}");
    for command in COMMANDS {
        assert!(
            main.contains(&format!("cbr\\-{command}(1)")),
            "{command} in {main}"
        );
    }
    let backup = std::fs::read_to_string(dir.path().join("cbr-backup.1")).unwrap();
    for flag in [
        "sse\\-kms\\-key\\-id",
        "shard",
        "recipient",
        "s3\\-path\\-style",
    ] {
        assert!(backup.contains(flag), "{flag} in {backup}");
    }
}
