//! The restore pipeline, by stage, one file each:
//! 1. `checks`: every input file and the target pool's settings, all problems at once, before
//!    any write (and the pool's `sub_map` of earlier restores, the proof of who is who);
//! 2. `target`: the target read once by listing, each user of the backup matched with the
//!    pool's, and `decide` (pure) takes the decision: create, unchanged, update, differs,
//!    conflict, skip;
//! 3. the steps go to the workers at once, or first into a `plan_file` (a dry run, printed by
//!    `dry_run`, or a pool whose triggers must be seen before the first write);
//! 4. `apply`: the worker pool, sending only the calls that change something, concurrently
//!    under each quota category's limit;
//! 5. `report`: what was and was not done.
//!
//! Safe to run twice: a rerun of a finished restore finds every user as in the backup and sends
//! no write. No message reaches any user unless the operator asks for invitations, and a user
//! that is not the backup's (another person with the same name) is never touched.

mod apply;
mod checks;
pub mod decide;
mod dry_run;
pub mod plan_file;
pub mod report;
pub mod sub_map;
pub mod target;

pub use report::Report;

use crate::backup_file::{GroupRecord, Identities, SetMembers, names};
use crate::cognito::{Cognito, PoolInfo};
use crate::location::Location;
use crate::selection::Selection;
use anyhow::{Context, Result, bail};
use apply::Written;
use decide::{Rules, Step};
use plan_file::{PlanFile, Steps};
use report::write_report;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

/// A restore's settings, checked and complete before any work starts.
#[derive(Debug, Clone)]
pub struct Options {
    pub pool_id: String,
    pub region: String,
    pub inputs: Vec<Location>,
    pub dry_run: bool,
    /// The dry run's plan on stdout as JSON (for review in CI) rather than text.
    pub plan_json: bool,
    pub password_mode: PasswordMode,
    /// How Cognito may invite created users; `None`: nothing is sent.
    pub invitations: Option<InvitationMedium>,
    pub ignore_checksum: bool,
    /// The sub map's file, when not the default beside the first input.
    pub sub_map: Option<PathBuf>,
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
    /// The target pool's sub map: `--sub-map`, or named after the first input and the pool.
    pub fn sub_map_path(&self) -> PathBuf {
        self.sub_map
            .clone()
            .unwrap_or_else(|| names::sub_map_path(&self.inputs[0], &self.pool_id))
    }
}

/// How restored users get a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordMode {
    /// Users who could sign in come back CONFIRMED with a random password nobody knows.
    Permanent,
    /// Every user gets a temporary password Cognito generates (FORCE_CHANGE_PASSWORD).
    Temporary,
}

/// How Cognito may send its invitation to a created user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationMedium {
    Email,
    Sms,
    Both,
}

pub async fn run(
    cognito: &Cognito,
    opts: &Options,
    ids: Identities,
    interrupted: impl std::future::Future<Output = ()>,
) -> Result<Report> {
    tokio::pin!(interrupted);
    let (pool, inv, known) = tokio::select! {
        checked = checks::check(cognito, opts, &ids) => checked?,
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
    let members = SetMembers::load(&opts.inputs, &ids, dir.path(), !opts.ignore_checksum)?;
    if let Some(covered) = members.covered() {
        let lacking: Vec<&str> = inv
            .groups
            .keys()
            .filter(|g| !covered.contains(*g))
            .map(String::as_str)
            .collect();
        if !lacking.is_empty() {
            tracing::warn!(
                "these inputs are part of a shard set that splits the memberships: memberships \
                 in the groups the missing shards listed are not restored, and those the pool \
                 has are left alone: {}",
                lacking.join(", ")
            );
        }
    }
    let rules = Rules {
        update_existing: opts.update_existing,
        password_mode: opts.password_mode,
        sub_map: Arc::new(known),
        members: Arc::new(members),
    };
    // The whole plan comes before any write when it is to be shown, or when the pool has
    // triggers that only the plan's creations (if any) would run.
    let plan_first = opts.dry_run
        || (!opts.allow_triggers
            && !checks::triggers_run(&pool, 1, opts.invitations.is_some()).is_empty());
    let reading = target::Reading {
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
                plan_file::for_each_step(file, |step| steps.push(step))
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
            let (_, live_users) = target::decide(cognito, reading, groups_tx, steps_tx).await?;
            tracing::debug!(users = live_users, "target pool read");
            Ok(())
        });
        groups_rx
    };

    // Steps are carried out as they come; the reading (or the plan file) goes on meanwhile.
    let consumer = apply::write(
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
            if !report.interrupted && report.wrote_nothing() =>
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
    reading: target::Reading<'_>,
    pool: &PoolInfo,
    inv: &checks::Inventory,
    report: &mut Report,
) -> Result<Option<(plan_file::Plan, BTreeSet<String>)>> {
    let (groups_tx, groups_rx) = oneshot::channel();
    let dir = reading.dir;
    let (plan, live_users) =
        target::decide(cognito, reading, groups_tx, PlanFile::new(dir)?).await?;
    tracing::debug!(users = live_users, "target pool read");
    let live_groups = groups_rx.await.context("reading the pool's groups")?;
    let creates = plan.creates;
    let triggers = checks::triggers_run(pool, creates, opts.invitations.is_some());
    let file = plan.into_file()?;
    if opts.dry_run {
        let new_groups = missing_groups(inv, &live_groups);
        report.groups_created = new_groups.len() as u64;
        report.groups_already_present = (inv.groups.len() - new_groups.len()) as u64;
        let names: Vec<&str> = new_groups.iter().map(|g| g.name.as_str()).collect();
        dry_run::print(opts, file, report, &names, &triggers)?;
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

/// The report of a restore interrupted before its first write.
pub(crate) fn interrupted_before_writing(opts: &Options) -> Result<Report> {
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
pub(crate) fn missing_groups<'a>(
    inv: &'a checks::Inventory,
    live: &BTreeSet<String>,
) -> Vec<&'a GroupRecord> {
    inv.groups
        .values()
        .filter(|g| !live.contains(&g.name))
        .collect()
}
