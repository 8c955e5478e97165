//! `cbr`: back up and restore AWS Cognito user pools.
//!
//! `main` parses the command line, sets up logging on stderr, runs the command and turns the
//! outcome into an exit code. Everything else lives in the library (`src/lib.rs`).

use anyhow::{Result, bail};
use cbr::backup_file::load_identities;
use cbr::cli::{Cli, Command, OutputFormat, PasswordMode, VerifyArgs};
use cbr::cognito::{Category, Cognito};
use cbr::{aws, backup, create_pool, restore, verify};
use clap::Parser;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Exit codes: 0 success; 1 error; 2 usage error (clap); 3 finished, but not everything is
/// right (restore: some users failed; verify: differences found); 130 interrupted (Ctrl-C or
/// SIGTERM).
mod exit {
    pub const ERROR: u8 = 1;
    pub const INCOMPLETE: u8 = 3;
    pub const INTERRUPTED: u8 = 130;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            tracing::error!("{e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    // `verify` without a pool works offline: no region or credentials needed.
    if let Command::Verify(args) = &cli.command
        && args.pool_id.is_none()
    {
        let mut args = args.clone();
        args.inputs = data_files(args.inputs)?;
        let ids = load_identities(&args.identity)?;
        let report = verify::run(None, &args, ids).await?;
        return print_verify(&args, &report);
    }
    let (client, region) = aws::client(&cli.aws).await?;
    match cli.command {
        Command::List(args) => {
            let cognito = Cognito::new(client, cli.aws.max_attempts, |_| None);
            let pools = cognito.list_pools().await?;
            let mut out = std::io::stdout().lock();
            match args.output {
                OutputFormat::Text => {
                    for p in &pools {
                        writeln!(out, "id: {} name: {}", p.id, p.name)?;
                    }
                }
                OutputFormat::Json => {
                    serde_json::to_writer_pretty(&mut out, &pools)?;
                    writeln!(out)?;
                }
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup(mut args) => {
            args.no_progress |= cli.quiet;
            let cap = args.max_rps;
            let cognito = Cognito::new(client, cli.aws.max_attempts, |c| {
                (c == Category::UserList).then_some(cap)
            });
            // Dropping the backup future removes its temporary files.
            tokio::select! {
                result = backup::run(&cognito, &region, &args) => {
                    let summary = result?;
                    tracing::info!(
                        "wrote {} users to {} (manifest {}); {} calls throttled",
                        summary.users,
                        summary.data.display(),
                        summary.manifest.display(),
                        cognito.stats.throttled.load(std::sync::atomic::Ordering::Relaxed)
                    );
                    Ok(ExitCode::SUCCESS)
                }
                _ = interrupted() => {
                    tracing::error!("interrupted: no backup was written");
                    Ok(ExitCode::from(exit::INTERRUPTED))
                }
            }
        }
        Command::Restore(mut args) => {
            args.no_progress |= cli.quiet;
            args.inputs = data_files(args.inputs)?;
            if args.send_invitations && args.password_mode == PasswordMode::Permanent {
                bail!("--send-invitations needs --password-mode temporary");
            }
            let ids = load_identities(&args.identity)?;
            let create = create_pool::Options::from_args(&args)?;
            let cap = args.max_rps;
            let cognito = Cognito::new(client, cli.aws.max_attempts, |_| cap);
            if let Some(create) = create {
                // Interrupted, the next run continues in the pool created so far.
                let created = tokio::select! {
                    created = create_pool::run(&cognito, &create, &ids) => created?,
                    _ = interrupted() => {
                        tracing::error!("interrupted: run the same command again to continue");
                        return Ok(ExitCode::from(exit::INTERRUPTED));
                    }
                };
                match created {
                    Some(pool_id) => args.pool_id = pool_id,
                    // A dry run before the pool exists: the plan is all there is to show.
                    None => return Ok(ExitCode::SUCCESS),
                }
            }
            let report = restore::run(&cognito, &args, ids, interrupted()).await?;
            report.print();
            Ok(if report.interrupted {
                ExitCode::from(exit::INTERRUPTED)
            } else if report.succeeded() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(exit::INCOMPLETE)
            })
        }
        Command::Verify(mut args) => {
            args.inputs = data_files(args.inputs)?;
            let ids = load_identities(&args.identity)?;
            let cap = args.max_rps;
            let cognito = Cognito::new(client, cli.aws.max_attempts, |c| {
                (c == Category::UserList).then_some(cap)
            });
            let report = tokio::select! {
                report = verify::run(Some((&cognito, &region)), &args, ids) => report?,
                _ = interrupted() => return Ok(ExitCode::from(exit::INTERRUPTED)),
            };
            print_verify(&args, &report)
        }
    }
}

/// Prints a verify result on stdout; exit 3 on any difference.
fn print_verify(args: &VerifyArgs, report: &verify::VerifyReport) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match args.output {
        OutputFormat::Text => write!(out, "{}", report.text())?,
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::INCOMPLETE)
    })
}

/// Drops manifests from a list of inputs, so `--in backup-*.json` works as the shell expands
/// it (the glob also matches `backup-1.meta.json`).
fn data_files(inputs: Vec<std::path::PathBuf>) -> Result<Vec<std::path::PathBuf>> {
    let data: Vec<_> = inputs
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with(".meta.json"))
        .collect();
    if data.is_empty() {
        bail!("no backup data files among the inputs, only manifests (*.meta.json)");
    }
    Ok(data)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Logs go to stderr. cbr's own events follow -v/-q; the AWS SDK and HTTP crates are held at
/// warn (info with -vv) whatever the verbosity, because at debug and trace they print request
/// and response bodies, which hold attribute values.
fn init_logging(verbose: u8, quiet: bool) {
    let own = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let others = if quiet {
        "error"
    } else if verbose >= 2 {
        "info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::new(format!("{others},cbr={own}"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(verbose >= 2)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .init();
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
