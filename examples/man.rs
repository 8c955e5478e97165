//! Writes cbr's man pages (`cbr.1`, `cbr-<command>.1`) into a directory, from the same clap
//! definitions as `--help` and the completions: `cargo run --example man -- DIR`.
//! `build/build.sh` puts them into the release archives.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: cargo run --example man -- DIR");
        return ExitCode::from(2);
    };
    match cbr::cli::man_pages(std::path::Path::new(&dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "error: writing the man pages into {}: {e}",
                dir.to_string_lossy()
            );
            ExitCode::FAILURE
        }
    }
}
