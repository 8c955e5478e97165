//! `cbr`: back up and restore AWS Cognito user pools.
//!
//! `main` parses the command line, sets up logging on stderr, runs the command and turns the
//! outcome into an exit code. Everything else lives in the library (`src/lib.rs`).

use anyhow::{Result, bail};
use cbr::backup_file::{load_identities, missing_from_inputs, repeated_input};
use cbr::cli::{Cli, Command, DiffArgs, OutputFormat, VerifyArgs};
use cbr::cognito::{Category, Cognito};
use cbr::location::Location;
use cbr::{aws, backup, create_pool, diff, restore, s3, verify};
use clap::{CommandFactory, Parser};
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
    if let Command::Completions(args) = &cli.command {
        let mut out = std::io::stdout().lock();
        clap_complete::generate(args.shell, &mut Cli::command(), "cbr", &mut out);
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    connect_s3(&cli).await?;
    // `verify` without a pool works offline: no region or credentials needed (but S3
    // inputs need both).
    if let Command::Verify(args) = &cli.command
        && args.pool_id.is_none()
    {
        let mut args = args.clone();
        args.inputs = data_files(args.inputs)?;
        let ids = load_identities(&args.identity)?;
        let report = verify::run(None, &args, ids).await?;
        return print_verify(&args, &report);
    }
    if let Command::Diff(args) = &cli.command
        && args.pool_id.is_none()
    {
        let ids = load_identities(&args.identity)?;
        let b = diff::Other::Backup(args.b.clone().expect("clap requires B without --pool-id"));
        let report = diff::run(&args.a, b, &ids).await?;
        return print_diff(args, &report);
    }
    // Before anything is read from the pool or written to it: the same file given twice, or
    // part of a shard set (unless --partial), is refused, naming the files.
    if let Command::Restore(args) = &cli.command {
        let inputs = data_files(args.inputs.clone())?;
        if let Some(twice) = repeated_input(&inputs) {
            bail!(
                "{} is given more than once among the inputs; nothing was written",
                twice.display()
            );
        }
        let missing = if args.partial {
            vec![]
        } else {
            missing_from_inputs(&inputs)?
        };
        if !missing.is_empty() {
            let names: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
            bail!(
                "the inputs are part of a shard set whose other files are not given: {}; \
                 nothing was written (add them to --in, or pass --partial to restore only these \
                 shards)",
                names.join(", ")
            );
        }
    }
    let aws::Connection {
        client,
        region,
        endpoint,
    } = aws::connect(&cli.aws).await?;
    let max_attempts = cli.aws.max_attempts;
    let cognito = |cap: &dyn Fn(Category) -> Option<f64>| {
        Cognito::new(client.clone(), max_attempts, cap).with_endpoint(&endpoint)
    };
    match cli.command {
        Command::List(args) => {
            let cognito = cognito(&|_| None);
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
            let cognito = cognito(&|c| if c == Category::UserList { cap } else { None });
            raise_to_provisioned_limits(&cognito, &[Category::UserList]);
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
        Command::Completions(_) => Ok(ExitCode::SUCCESS),
        Command::Restore(mut args) => {
            args.inputs = data_files(args.inputs)?;
            let mut opts = restore::Options::new(&args, &region, !cli.quiet)?;
            let ids = load_identities(&args.identity)?;
            let create = create_pool::Options::from_args(&args)?;
            let cap = args.max_rps;
            let cognito = cognito(&|_| cap);
            // The new pool is made (and bad input refused) before the user restore's limits
            // are looked up: a handful of calls under the default quotas.
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
                    Some(pool_id) => opts.pool_id = pool_id,
                    // A dry run before the pool exists: the plan is all there is to show.
                    None => return Ok(ExitCode::SUCCESS),
                }
            }
            // The categories restore uses, those it needs first first.
            raise_to_provisioned_limits(
                &cognito,
                &[
                    Category::UserList,
                    Category::UserUpdate,
                    Category::UserCreation,
                    Category::UserPoolRead,
                    Category::UserAccountRecovery,
                    Category::UserResourceRead,
                    Category::UserPoolResourceRead,
                    Category::UserPoolResourceUpdate,
                ],
            );
            let report = restore::run(&cognito, &opts, ids, interrupted()).await?;
            report.print();
            Ok(if report.interrupted {
                ExitCode::from(exit::INTERRUPTED)
            } else if report.dry_run || report.succeeded() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(exit::INCOMPLETE)
            })
        }
        Command::Verify(mut args) => {
            args.inputs = data_files(args.inputs)?;
            let ids = load_identities(&args.identity)?;
            let cap = args.max_rps;
            let cognito = cognito(&|c| if c == Category::UserList { cap } else { None });
            raise_to_provisioned_limits(&cognito, &[Category::UserList]);
            let report = tokio::select! {
                report = verify::run(Some((&cognito, &region)), &args, ids) => report?,
                _ = interrupted() => return Ok(ExitCode::from(exit::INTERRUPTED)),
            };
            print_verify(&args, &report)
        }
        Command::Diff(args) => {
            let ids = load_identities(&args.identity)?;
            let cap = args.max_rps;
            let cognito = cognito(&|c| if c == Category::UserList { cap } else { None });
            raise_to_provisioned_limits(&cognito, &[Category::UserList]);
            let other = diff::Other::Pool {
                cognito: &cognito,
                region: &region,
                pool_id: args.pool_id.clone().expect("checked above"),
            };
            let report = tokio::select! {
                report = diff::run(&args.a, other, &ids) => report?,
                _ = interrupted() => return Ok(ExitCode::from(exit::INTERRUPTED)),
            };
            print_diff(&args, &report)
        }
    }
}

/// Raises the limiters to the rates the account has (GetProvisionedLimit) while the command
/// starts its work: until the answer comes, the default quotas apply.
fn raise_to_provisioned_limits(cognito: &Cognito, categories: &'static [Category]) {
    let cognito = cognito.clone();
    tokio::spawn(async move { cognito.use_provisioned_limits(categories).await });
}

/// Prints a comparison's result on stdout (text, or JSON); exit 0 when everything matched, 3
/// on any difference. (A file that cannot be read is an error, exit 1, returned before this.)
fn print_result(
    output: OutputFormat,
    text: &str,
    report: &impl serde::Serialize,
    matched: bool,
) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match output {
        OutputFormat::Text => write!(out, "{text}")?,
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(if matched {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::INCOMPLETE)
    })
}

fn print_diff(args: &DiffArgs, report: &diff::DiffReport) -> Result<ExitCode> {
    print_result(args.output, &report.text(), report, report.is_same())
}

fn print_verify(args: &VerifyArgs, report: &verify::VerifyReport) -> Result<ExitCode> {
    print_result(args.output, &report.text(), report, report.ok())
}

/// Sets up S3 when the command reads or writes an `s3://` location, with the same AWS
/// settings as Cognito's.
async fn connect_s3(cli: &Cli) -> Result<()> {
    let (locations, kms_key_id): (Vec<&Location>, _) = match &cli.command {
        Command::Backup(a) => (vec![&a.out], a.sse_kms_key_id.clone()),
        Command::Restore(a) => (a.inputs.iter().collect(), None),
        Command::Verify(a) => (a.inputs.iter().collect(), None),
        _ => (vec![], None),
    };
    if locations.iter().any(|l| l.is_s3()) {
        let client = aws::s3_client(&cli.aws).await?;
        s3::connect(s3::Store { client, kms_key_id });
    }
    Ok(())
}

/// Expands S3 patterns (`s3://bucket/dir/backup-*.json`) and drops manifests from a list of
/// inputs, so `--in backup-*.json` works as the shell expands it (the glob also matches
/// `backup-1.meta.json`).
fn data_files(inputs: Vec<Location>) -> Result<Vec<Location>> {
    let data: Vec<_> = Location::expand(inputs)?
        .into_iter()
        .filter(|p| !p.file_name().ends_with(".meta.json"))
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

/// Logs go to stderr. cbr's own events follow -v/-q. The AWS SDK and HTTP crates are held at
/// error by default (their warnings, such as the instance metadata lookups of a machine
/// without a region, are noise beside cbr's own error), warn with -v and info with -vv, never
/// lower: at debug and trace they print request and response bodies, which hold attribute
/// values.
fn init_logging(verbose: u8, quiet: bool) {
    let own = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let others = match (quiet, verbose) {
        (true, _) | (false, 0) => "error",
        (false, 1) => "warn",
        (false, _) => "info",
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
