//! The restore pipeline, by stage: `checks` (every input file and the target pool's settings,
//! all problems at once, before any write), `plan` (the target read once by listing, each user
//! of the backup matched with the pool's and a decision taken: create, unchanged, update,
//! differs, conflict), `apply` (only the calls that change something, concurrently under each
//! quota category's limit) and `report` (what was and was not done).
//!
//! Safe to run twice: a rerun of a finished restore finds every user as in the backup and sends
//! no write. No message reaches any user unless the operator asks for invitations, and a user
//! that is not the backup's (another person with the same name) is never touched.

mod apply;
mod checks;
pub mod plan;
pub mod report;
pub mod sub_map;

pub use report::Report;

use crate::backup_file::names;
use crate::backup_file::{GroupRecord, Identities, read_groups_files};
use crate::cli::{InvitationMedium, OutputFormat, PasswordMode, RestoreArgs};
use crate::cognito::{Cognito, PoolInfo};
use crate::location::Location;
use crate::progress::Progress;
use crate::selection::Selection;
use anyhow::{Context, Result, anyhow, bail};
use plan::{Action, PlanFile, Rules, Step, Steps};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::sync::oneshot;

/// Lambda triggers that run when a user is created with AdminCreateUser, or when Cognito
/// sends an invitation.
const CREATION_TRIGGERS: [&str; 1] = ["PreSignUp"];
const MESSAGE_TRIGGERS: [&str; 3] = ["CustomMessage", "CustomEmailSender", "CustomSMSSender"];

/// A restore's settings, checked and complete before any work starts.
#[derive(Debug, Clone)]
pub struct Options {
    pub pool_id: String,
    pub region: String,
    pub inputs: Vec<Location>,
    pub dry_run: bool,
    /// The dry run's plan on stdout: text, or JSON for review in CI.
    pub output: OutputFormat,
    pub password_mode: PasswordMode,
    /// How Cognito may invite created users; `None`: nothing is sent.
    pub invitations: Option<InvitationMedium>,
    pub ignore_checksum: bool,
    pub sub_map: PathBuf,
    pub report: Option<PathBuf>,
    pub concurrency: usize,
    pub progress: bool,
    pub update_existing: bool,
    pub allow_triggers: bool,
    pub selection: Selection,
    /// Group definitions from beside the inputs (another tool's groups file).
    pub extra_groups: Vec<GroupRecord>,
}

impl Options {
    pub fn new(args: &RestoreArgs, region: &str, progress: bool) -> Result<Options> {
        if args.send_invitations && args.password_mode == PasswordMode::Permanent {
            bail!("--send-invitations needs --password-mode temporary");
        }
        let selection = Selection::new(&args.user, &args.users_from, args.filter.clone())?;
        let extra_groups = read_groups_files(&args.inputs, args.groups_file.as_deref())?
            .into_iter()
            .flat_map(|f| f.groups)
            .collect();
        Ok(Options {
            pool_id: args.pool_id.clone(),
            region: region.to_string(),
            inputs: args.inputs.clone(),
            dry_run: args.dry_run,
            output: args.output,
            password_mode: args.password_mode,
            invitations: args.send_invitations.then_some(args.invitation_medium),
            ignore_checksum: args.ignore_checksum,
            sub_map: args
                .sub_map
                .clone()
                .unwrap_or_else(|| names::sub_map_path(&args.inputs[0], &args.pool_id)),
            report: args.report.clone(),
            concurrency: args.concurrency as usize,
            progress: progress && !args.no_progress,
            update_existing: args.update_existing,
            allow_triggers: args.allow_triggers,
            selection,
            extra_groups,
        })
    }
}

pub async fn run(
    cognito: &Cognito,
    opts: &Options,
    ids: Identities,
    interrupted: impl std::future::Future<Output = ()>,
) -> Result<Report> {
    tokio::pin!(interrupted);
    let (pool, inv, known) = tokio::select! {
        checked = check(cognito, opts, &ids) => checked?,
        _ = &mut interrupted => return interrupted_before_writing(opts),
    };
    let mut report = Report {
        pool_id: opts.pool_id.clone(),
        dry_run: opts.dry_run,
        users_in_backup: inv.users,
        ..Report::default()
    };
    if inv.federated > 0 {
        report
            .skipped
            .insert("federated (EXTERNAL_PROVIDER)".into(), inv.federated);
    }
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let rules = Rules {
        update_existing: opts.update_existing,
        password_mode: opts.password_mode,
        sub_map: Arc::new(known),
    };
    // The whole plan comes before any write when it is to be shown, or when the pool has
    // triggers that only the plan's creations (if any) would run.
    let plan_first = opts.dry_run
        || (!opts.allow_triggers && !triggers_run(&pool, 1, opts.invitations.is_some()).is_empty());
    let reading = plan::Reading {
        opts,
        pool: &pool,
        ids: &ids,
        selected: inv.users,
        dir: dir.path(),
        rules: rules.clone(),
        whole_steps: plan_first,
    };
    let (steps_tx, steps_rx) = mpsc::channel::<Step>(opts.concurrency * 2);
    let producer: std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + '_>>;
    let groups_rx = if plan_first {
        let planned = tokio::select! {
            planned = whole_plan(cognito, opts, reading, &pool, &inv, &mut report) => planned?,
            _ = &mut interrupted => return interrupted_before_writing(opts),
        };
        let Some((file, live_groups)) = planned else {
            return Ok(report); // a dry run, printed
        };
        producer = Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut steps = steps_tx;
                plan::for_each_step(file, |step| steps.push(step))
            })
            .await
            .context("reading the plan")?
        });
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(live_groups);
        rx
    } else {
        let (groups_tx, groups_rx) = oneshot::channel();
        producer = Box::pin(async move {
            let (_, live_users) = plan::decide(cognito, reading, groups_tx, steps_tx).await?;
            tracing::debug!(users = live_users, "target pool read");
            Ok(())
        });
        groups_rx
    };

    // Steps are carried out as they come; the reading (or the plan file) goes on meanwhile.
    let consumer = write(
        cognito,
        opts,
        &pool,
        rules,
        report,
        &inv,
        groups_rx,
        steps_rx,
        &mut interrupted,
    );
    tokio::pin!(producer, consumer);
    let mut produced = None;
    let written = loop {
        tokio::select! {
            done = &mut producer, if produced.is_none() => produced = Some(done),
            written = &mut consumer => break written?,
        }
    };
    // The steps ended, so the reading has ended too (or failed): its outcome is wanted. An
    // interrupted run does not wait for it.
    if produced.is_none() && !written.report().interrupted {
        produced = Some(producer.await);
    }
    let read_error = match produced {
        Some(Err(e)) => Some(e),
        _ => None,
    };
    let mut report = match (written, read_error) {
        (Written::Nothing(report), None) => report,
        (Written::Nothing(_), Some(e)) => return Err(e),
        // The reading failed before any write: a plain error, and the sub map of an earlier
        // run stays as it was.
        (Written::Some { report, .. }, Some(e))
            if !report.interrupted && wrote_nothing(&report) =>
        {
            return Err(e);
        }
        (
            Written::Some {
                mut report,
                sub_map,
            },
            read_error,
        ) => {
            if let Some(e) = read_error
                && !report.interrupted
            {
                report.input_error = Some(format!("{e:#}"));
            }
            sub_map.commit()?;
            report
        }
    };
    report.throttled_calls = cognito.stats.throttled.load(Ordering::Relaxed);
    report.retried_calls = cognito.stats.retried.load(Ordering::Relaxed);
    write_report(opts, &report)?;
    Ok(report)
}

/// The whole plan, decided before the first write: printed for a dry run (`None`), refused if
/// its creations would run Lambda triggers the operator has not allowed, or returned with the
/// pool's group names to be carried out.
async fn whole_plan(
    cognito: &Cognito,
    opts: &Options,
    reading: plan::Reading<'_>,
    pool: &PoolInfo,
    inv: &checks::Inventory,
    report: &mut Report,
) -> Result<Option<(std::fs::File, BTreeSet<String>)>> {
    let (groups_tx, groups_rx) = oneshot::channel();
    let dir = reading.dir;
    let (plan, live_users) = plan::decide(cognito, reading, groups_tx, PlanFile::new(dir)?).await?;
    tracing::debug!(users = live_users, "target pool read");
    let live_groups = groups_rx.await.context("reading the pool's groups")?;
    let creates = plan.creates;
    let triggers = triggers_run(pool, creates, opts.invitations.is_some());
    let file = plan.into_file()?;
    if opts.dry_run {
        let new_groups = missing_groups(inv, &live_groups);
        report.groups_created = new_groups.len() as u64;
        report.groups_already_present = (inv.groups.len() - new_groups.len()) as u64;
        let names: Vec<&str> = new_groups.iter().map(|g| g.name.as_str()).collect();
        dry_run(opts, file, report, &names, &triggers)?;
        write_report(opts, report)?;
        return Ok(None);
    }
    if !triggers.is_empty() {
        bail!(
            "pool {} has Lambda triggers that {creates} user creations would run: {}; they may \
             send messages, write elsewhere or reject users. Nothing was written. Pass \
             --allow-triggers to restore anyway",
            opts.pool_id,
            triggers.join(", ")
        );
    }
    Ok(Some((file, live_groups)))
}

/// What the writing stage did: nothing (the reading failed, or an interruption came, before
/// the first write), or some of the plan, with the sub map written so far (not yet under its
/// name).
enum Written {
    Nothing(Report),
    Some {
        report: Report,
        sub_map: sub_map::Writer,
    },
}

impl Written {
    fn report(&self) -> &Report {
        match self {
            Written::Nothing(report) | Written::Some { report, .. } => report,
        }
    }
}

/// Whether a run sent no write at all (a failed user may have been half written).
fn wrote_nothing(report: &Report) -> bool {
    report.groups_created == 0
        && report.created == 0
        && report.users_updated == 0
        && report.failed.is_empty()
}

/// The report of a restore interrupted before its first write.
fn interrupted_before_writing(opts: &Options) -> Result<Report> {
    tracing::warn!("interrupted before the first write: nothing was written");
    let report = Report {
        pool_id: opts.pool_id.clone(),
        dry_run: opts.dry_run,
        interrupted: true,
        ..Report::default()
    };
    write_report(opts, &report)?;
    Ok(report)
}

/// The groups of the backup the pool lacks.
fn missing_groups<'a>(inv: &'a checks::Inventory, live: &BTreeSet<String>) -> Vec<&'a GroupRecord> {
    inv.groups
        .values()
        .filter(|g| !live.contains(&g.name))
        .collect()
}

/// The writing stage: the groups the pool lacks, then every step as it arrives, carried out
/// by `concurrency` workers, until the steps end or an interruption comes.
#[allow(clippy::too_many_arguments)]
async fn write(
    cognito: &Cognito,
    opts: &Options,
    pool: &PoolInfo,
    rules: Rules,
    mut report: Report,
    inv: &checks::Inventory,
    live_groups: oneshot::Receiver<BTreeSet<String>>,
    steps: mpsc::Receiver<Step>,
    interrupted: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> Result<Written> {
    let live_groups = tokio::select! {
        groups = live_groups => match groups {
            Ok(groups) => groups,
            // The reading failed before the pool's groups were read.
            Err(_) => return Ok(Written::Nothing(report)),
        },
        _ = &mut *interrupted => {
            let report = interrupted_before_writing(opts)?;
            return Ok(Written::Nothing(report));
        }
    };
    let new_groups = missing_groups(inv, &live_groups);
    report.groups_already_present = (inv.groups.len() - new_groups.len()) as u64;
    for group in new_groups {
        if cognito
            .create_group(&opts.pool_id, group)
            .await
            .map_err(|e| anyhow!("creating group {:?} in {}: {e}", group.name, opts.pool_id))?
        {
            report.groups_created += 1;
        } else {
            report.groups_already_present += 1;
        }
    }

    let sub_map = sub_map::Writer::create(&opts.sub_map, &opts.pool_id)?;
    report.sub_map = Some(opts.sub_map.clone());
    let ctx = Arc::new(apply::Worker {
        cognito: cognito.clone(),
        pool: pool.clone(),
        rules,
        invitations: opts.invitations,
        report: Mutex::new(report),
        sub_map: Mutex::new(sub_map),
        progress: Progress::start("restored", Some(inv.users - inv.federated), opts.progress),
    });
    let steps = Arc::new(tokio::sync::Mutex::new(steps));
    let mut workers = tokio::task::JoinSet::new();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for _ in 0..opts.concurrency {
        let (ctx, steps, mut stopped) = (ctx.clone(), steps.clone(), stopped.clone());
        workers.spawn(async move {
            loop {
                let next = tokio::select! {
                    biased;
                    _ = stopped.changed() => None,
                    step = async { steps.lock().await.recv().await } => step,
                };
                let Some(step) = next else { return };
                ctx.run(step).await;
            }
        });
    }
    let was_interrupted = tokio::select! {
        _ = async { while workers.join_next().await.is_some() {} } => false,
        _ = &mut *interrupted => {
            tracing::warn!("interrupted: finishing the calls in flight, taking no new users");
            let _ = stop.send(true);
            while workers.join_next().await.is_some() {}
            true
        }
    };
    drop(steps);
    ctx.progress.finish();

    let ctx = Arc::try_unwrap(ctx).map_err(|_| anyhow!("restore workers still running"))?;
    let mut report = ctx.report.into_inner().expect("report lock");
    report.interrupted = was_interrupted;
    Ok(Written::Some {
        report,
        sub_map: ctx.sub_map.into_inner().expect("sub map lock"),
    })
}

/// The checks before anything is read from the pool's users: its settings, and every input
/// file against them, all problems at once; and the sub map of earlier restores into the pool.
async fn check(
    cognito: &Cognito,
    opts: &Options,
    ids: &Identities,
) -> Result<(PoolInfo, checks::Inventory, sub_map::SubMap)> {
    let pool = cognito.describe_pool(&opts.pool_id).await?;
    let inv = {
        let (opts, ids, pool) = (opts.clone(), ids.clone(), pool.clone());
        tokio::task::spawn_blocking(move || checks::inventory(&opts, &ids, &pool))
            .await
            .context("checking the input files")??
    };
    if !inv.unknown_users.is_empty() {
        bail!(
            "no user named {} in {}; nothing was written",
            inv.unknown_users.join(", "),
            checks::describe_inputs(&opts.inputs)
        );
    }
    checks::refuse(&opts.pool_id, &inv.problems)?;
    tracing::debug!(
        users = inv.users,
        groups = inv.groups.len(),
        "input files checked; the target pool fits"
    );
    let known = sub_map::SubMap::read(&opts.sub_map, &opts.pool_id)?;
    Ok((pool, inv, known))
}

/// The triggers a run would set off: creation triggers when users are created, message
/// triggers when invitations are sent.
fn triggers_run(pool: &PoolInfo, creates: u64, invitations: bool) -> Vec<String> {
    if creates == 0 {
        return vec![];
    }
    pool.triggers
        .iter()
        .filter(|t| {
            CREATION_TRIGGERS.contains(&t.as_str())
                || (invitations && MESSAGE_TRIGGERS.contains(&t.as_str()))
        })
        .cloned()
        .collect()
}

/// Prints the plan on stdout (one line per user that is not already as in the backup, or JSON)
/// and fills the report with what would be done.
fn dry_run(
    opts: &Options,
    plan_file: std::fs::File,
    report: &mut Report,
    new_groups: &[&str],
    triggers: &[String],
) -> Result<()> {
    #[derive(serde::Serialize)]
    struct PlannedUser<'a> {
        username: &'a str,
        action: Action,
        fields: Vec<String>,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        not_updated: &'a [String],
        #[serde(skip_serializing_if = "<[report::Withheld]>::is_empty")]
        withheld: &'a [report::Withheld],
    }
    let json = opts.output == OutputFormat::Json;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        write!(
            out,
            "{{\"pool_id\":{},\"new_groups\":{},\"users\":[",
            serde_json::to_string(&opts.pool_id)?,
            serde_json::to_string(new_groups)?
        )?;
    } else {
        writeln!(out, "would restore into {}:", opts.pool_id)?;
        for g in new_groups {
            writeln!(out, "  create group {g}")?;
        }
    }
    let mut first = true;
    plan::for_each_step(plan_file, |step| {
        let fields = match step.action {
            Action::Create | Action::Unchanged | Action::SkipFederated => vec![],
            _ => step.apply.fields(),
        };
        match step.action {
            Action::Create => {
                report.created += 1;
                let wants = plan::wants_permanent_password(&step.user, opts.password_mode);
                report.confirmed_with_random_password += u64::from(wants);
                report.disabled += u64::from(!step.user.enabled);
                report.memberships_added += step.user.groups().len() as u64;
            }
            Action::Unchanged => report.unchanged += 1,
            Action::Update => {
                report.users_updated += 1;
                for f in &fields {
                    *report.updated.entry(f.clone()).or_default() += 1;
                }
                let d = &step.apply;
                report.confirmed_with_random_password += u64::from(d.status.is_some());
                report.disabled += u64::from(d.enabled == Some(false));
                report.enabled += u64::from(d.enabled == Some(true));
                report.memberships_added += d.add_groups.len() as u64;
                report.memberships_removed += d.remove_groups.len() as u64;
            }
            Action::Conflict => report.conflicts.push(report::Difference {
                username: step.user.username.clone(),
                fields: fields.clone(),
            }),
            Action::Differs | Action::SkipFederated => {}
        }
        if !step.not_applied.is_empty() {
            report.note_not_updated(&step.user.username, step.not_applied.clone());
        }
        report.withheld.extend(step.withheld.iter().cloned());
        if step.action == Action::Unchanged {
            return Ok(());
        }
        if json {
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            serde_json::to_writer(
                &mut out,
                &PlannedUser {
                    username: &step.user.username,
                    action: step.action,
                    fields,
                    not_updated: &step.not_applied,
                    withheld: &step.withheld,
                },
            )?;
        } else {
            let what = match step.action {
                Action::Create => "create",
                Action::Update => "update",
                Action::Differs => "differs",
                Action::Conflict => "conflict",
                Action::SkipFederated => "skip (federated)",
                Action::Unchanged => "unchanged",
            };
            let mut detail: Vec<String> = fields;
            detail.extend(
                step.not_applied
                    .iter()
                    .map(|f| format!("{f} (not updated)")),
            );
            detail.extend(
                step.withheld
                    .iter()
                    .map(|w| format!("{} (withheld)", w.field)),
            );
            if detail.is_empty() {
                writeln!(out, "  {what} {}", step.user.username)?;
            } else {
                writeln!(
                    out,
                    "  {what} {}: {}",
                    step.user.username,
                    detail.join(", ")
                )?;
            }
        }
        Ok(())
    })?;
    if json {
        write!(
            out,
            "],\"triggers\":{},\"summary\":{}}}",
            serde_json::to_string(triggers)?,
            serde_json::to_string(&*report)?
        )?;
        writeln!(out)?;
    } else if !triggers.is_empty() {
        writeln!(
            out,
            "  Lambda triggers the creations would run: {} (needs --allow-triggers)",
            triggers.join(", ")
        )?;
    }
    out.flush()?;
    Ok(())
}

fn write_report(opts: &Options, report: &Report) -> Result<()> {
    if let Some(path) = &opts.report {
        let mut json = serde_json::to_vec_pretty(report)?;
        json.push(b'\n');
        crate::location::write_atomic(path, &json)?;
    }
    Ok(())
}
