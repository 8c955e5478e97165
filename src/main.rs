//! `cbr`: back up and restore AWS Cognito user pools.
//!
//! `main` parses the command line, sets up logging on stderr, runs one function per command
//! (options from the arguments first, then the work) and turns the outcome into an exit code
//! (`exit_codes`). Everything else lives in the library (`src/lib.rs`).

use anyhow::{Result, bail};
use cbr::aws::{self, AwsArgs};
use cbr::backup_file::{load_identities, missing_from_inputs, names, repeated_input};
use cbr::cli::{
    BackupArgs, Cli, Command, CompletionsArgs, DiffArgs, ListArgs, OutputFormat, RestoreArgs,
    VerifyArgs,
};
use cbr::cognito::{Category, Cognito};
use cbr::exit_codes::ExitCode as Exit;
use cbr::location::Location;
use cbr::location::s3;
use cbr::{backup, create_pool, diff, restore, verify};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::from_args();
    init_logging(cli.verbose, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return Exit::Error.into();
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code.into(),
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            tracing::error!("{e:#}");
            Exit::Error.into()
        }
    }
}

/// One function per command.
async fn run(cli: Cli) -> Result<Exit> {
    let (aws, quiet) = (&cli.aws, cli.quiet);
    match cli.command {
        Command::Completions(args) => completions(&args),
        Command::List(args) => list(aws, &args).await,
        Command::Backup(args) => backup(aws, &args, quiet).await,
        Command::Restore(args) => restore(aws, &args, quiet).await,
        Command::Verify(args) => verify(aws, &args).await,
        Command::Diff(args) => diff(aws, &args).await,
    }
}

fn completions(args: &CompletionsArgs) -> Result<Exit> {
    let mut out = std::io::stdout().lock();
    args.write(&mut out);
    out.flush()?;
    Ok(Exit::Success)
}

/// A Cognito client whose limiters are capped by `cap` per category, and its region.
async fn connect(
    aws: &AwsArgs,
    cap: &dyn Fn(Category) -> Option<f64>,
) -> Result<(Cognito, String)> {
    let aws::Connection {
        client,
        region,
        endpoint,
    } = aws::connect(aws).await?;
    let cognito = Cognito::new(client, aws.max_attempts, cap).with_endpoint(&endpoint);
    Ok((cognito, region))
}

/// A cap on ListUsers alone (backup, verify, diff).
fn user_list_cap(cap: Option<f64>) -> impl Fn(Category) -> Option<f64> {
    move |c| if c == Category::UserList { cap } else { None }
}

async fn list(aws: &AwsArgs, args: &ListArgs) -> Result<Exit> {
    let (cognito, _) = connect(aws, &|_| None).await?;
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
    Ok(Exit::Success)
}

async fn backup(aws: &AwsArgs, args: &BackupArgs, quiet: bool) -> Result<Exit> {
    let opts = args.options(quiet);
    connect_s3(aws, &[&opts.out], args.sse_kms_key_id.clone()).await?;
    let (cognito, region) = connect(aws, &user_list_cap(args.max_rps)).await?;
    if let Some(shard) = opts.shard {
        cognito.share_quota(Category::UserList, shard.total);
    }
    raise_to_provisioned_limits(&cognito, &[Category::UserList]);
    // Dropping the backup future removes its temporary files.
    tokio::select! {
        result = backup::run(&cognito, &region, &opts) => {
            let summary = result?;
            tracing::info!(
                "wrote {} users to {} (manifest {}); {} calls throttled",
                summary.users,
                summary.data.display(),
                summary.manifest.display(),
                cognito.stats.throttled.load(std::sync::atomic::Ordering::Relaxed)
            );
            Ok(Exit::Success)
        }
        _ = interrupted() => {
            tracing::error!(
                "interrupted: no backup was written; what was listed is kept in {}: run the \
                 same command with --resume to continue",
                opts.state_dir()
            );
            Ok(Exit::Interrupted)
        }
    }
}

async fn restore(aws: &AwsArgs, args: &RestoreArgs, quiet: bool) -> Result<Exit> {
    connect_s3(aws, &args.inputs.iter().collect::<Vec<_>>(), None).await?;
    let inputs = data_files(args.inputs.clone())?;
    refuse_bad_input_sets(&inputs, args.partial)?;
    let ids = load_identities(&args.identity)?;
    let create = args.create_pool_options(&inputs)?;
    let (cognito, region) = connect(aws, &|_| args.max_rps).await?;
    let mut opts = args.options(inputs, &region, quiet)?;
    // The new pool is made (and bad input refused) before the user restore's limits are looked
    // up: a handful of calls under the default quotas.
    if let Some(create) = create {
        // Interrupted, the next run continues in the pool created so far.
        let created = tokio::select! {
            created = create_pool::run(&cognito, &create, &ids) => created?,
            _ = interrupted() => {
                tracing::error!("interrupted: run the same command again to continue");
                return Ok(Exit::Interrupted);
            }
        };
        match created {
            Some(pool_id) => opts.pool_id = pool_id,
            // A dry run before the pool exists: the plan is all there is to show.
            None => return Ok(Exit::Success),
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
    Ok(report.exit_code())
}

/// Before anything is read from the pool or written to it: the same file given twice, or part
/// of a shard set (unless --partial), is refused, naming the files.
fn refuse_bad_input_sets(inputs: &[Location], partial: bool) -> Result<()> {
    if let Some(twice) = repeated_input(inputs) {
        bail!(
            "{} is given more than once among the inputs; nothing was written",
            twice.display()
        );
    }
    let missing = if partial {
        vec![]
    } else {
        missing_from_inputs(inputs)?
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
    Ok(())
}

async fn verify(aws: &AwsArgs, args: &VerifyArgs) -> Result<Exit> {
    connect_s3(aws, &args.inputs.iter().collect::<Vec<_>>(), None).await?;
    let opts = args.options(data_files(args.inputs.clone())?);
    let ids = load_identities(&args.identity)?;
    // Without a pool, verify works offline: no region or credentials needed (but S3 inputs
    // need both).
    let report = if opts.pool_id.is_none() {
        verify::run(None, &opts, ids).await?
    } else {
        let (cognito, region) = connect(aws, &user_list_cap(args.max_rps)).await?;
        raise_to_provisioned_limits(&cognito, &[Category::UserList]);
        tokio::select! {
            report = verify::run(Some((&cognito, &region)), &opts, ids) => report?,
            _ = interrupted() => return Ok(Exit::Interrupted),
        }
    };
    print_result(args.output, &report.text(), &report, report.ok())
}

async fn diff(aws: &AwsArgs, args: &DiffArgs) -> Result<Exit> {
    let ids = load_identities(&args.identity)?;
    // A, or the files given with --in (the shards of a set).
    let a = match &args.a {
        Some(a) => vec![a.clone()],
        None => {
            let inputs = data_files(args.inputs.clone())?;
            if let Some(location) = repeated_input(&inputs) {
                bail!("{} is given more than once", location.display());
            }
            inputs
        }
    };
    let Some(pool_id) = args.pool_id.clone() else {
        // Two files: no AWS access needed.
        let b = diff::Other::Backup(
            args.b
                .clone()
                .expect("the command line requires B without --pool-id"),
        );
        let report = diff::run(&a, b, &ids).await?;
        return print_result(args.output, &report.text(), &report, report.is_same());
    };
    let (cognito, _) = connect(aws, &user_list_cap(args.max_rps)).await?;
    raise_to_provisioned_limits(&cognito, &[Category::UserList]);
    let other = diff::Other::Pool {
        cognito: &cognito,
        pool_id,
    };
    let report = tokio::select! {
        report = diff::run(&a, other, &ids) => report?,
        _ = interrupted() => return Ok(Exit::Interrupted),
    };
    print_result(args.output, &report.text(), &report, report.is_same())
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
) -> Result<Exit> {
    let mut out = std::io::stdout().lock();
    match output {
        OutputFormat::Text => write!(out, "{text}")?,
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(Exit::of_comparison(matched))
}

/// Sets up S3 when the command reads or writes an `s3://` location, with the same AWS
/// settings as Cognito's.
async fn connect_s3(
    aws: &AwsArgs,
    locations: &[&Location],
    kms_key_id: Option<String>,
) -> Result<()> {
    if locations.iter().any(|l| l.is_s3()) {
        let client = aws::s3_client(aws).await?;
        s3::connect(s3::Store { client, kms_key_id });
    }
    Ok(())
}

/// Expands S3 patterns (`s3://bucket/dir/backup-*.json`) and drops manifests and members files
/// from a list of inputs, so `--in backup-*.json` works as the shell expands it (the glob also
/// matches `backup-1.meta.json` and `backup-1.members.json`).
fn data_files(inputs: Vec<Location>) -> Result<Vec<Location>> {
    let data: Vec<_> = Location::expand(inputs)?
        .into_iter()
        .filter(|p| !names::is_companion(&p.file_name()))
        .collect();
    if data.is_empty() {
        bail!(
            "no backup data files among the inputs, only manifests (*.meta.json) or members \
             files (*.members.json)"
        );
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
