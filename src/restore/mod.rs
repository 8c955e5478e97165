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

pub use report::Report;

use crate::backup_file::{
    GroupRecord, Identities, UserRecord, read_groups_files, writer::AtomicFile,
};
use crate::cli::{InvitationMedium, OutputFormat, PasswordMode, RestoreArgs};
use crate::cognito::{Cognito, PoolInfo};
use crate::location::Location;
use crate::progress::Progress;
use crate::selection::Selection;
use crate::shard;
use anyhow::{Context, Result, anyhow, bail};
use plan::{Action, Rules, Step};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

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
                .unwrap_or_else(|| default_sub_map(&args.inputs[0])),
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

/// The key that identifies a user in `pool`: its username (case-folded where the pool does
/// not tell `Alice` from `alice`), or in a pool where people sign in with email or phone, the
/// first of those the user has.
pub fn key(user: &UserRecord, pool: &PoolInfo) -> Option<String> {
    let raw = if pool.username_attributes.is_empty() {
        Some(user.username.as_str())
    } else {
        pool.username_attributes
            .iter()
            .find_map(|a| user.attribute(a))
    }?;
    Some(if pool.case_sensitive {
        raw.to_string()
    } else {
        raw.to_lowercase()
    })
}

/// What is known before the first write: the plan, and what the report starts from.
enum Prepared {
    /// A dry run, finished.
    Done(Box<Report>),
    Ready(Box<Ready>),
}

struct Ready {
    pool: PoolInfo,
    plan_file: std::fs::File,
    report: Report,
    missing_groups: Vec<GroupRecord>,
    native_users: u64,
    /// Holds the plan's files until the restore ends.
    _dir: tempfile::TempDir,
}

pub async fn run(
    cognito: &Cognito,
    opts: &Options,
    ids: Identities,
    interrupted: impl std::future::Future<Output = ()>,
) -> Result<Report> {
    tokio::pin!(interrupted);
    let prepared = tokio::select! {
        prepared = prepare(cognito, opts, ids) => prepared?,
        _ = &mut interrupted => {
            tracing::warn!("interrupted before the first write: nothing was written");
            let report = Report {
                pool_id: opts.pool_id.clone(),
                dry_run: opts.dry_run,
                interrupted: true,
                ..Report::default()
            };
            write_report(opts, &report)?;
            return Ok(report);
        }
    };
    let (pool, plan_file, mut report, missing_groups, native_users, _dir) = match prepared {
        Prepared::Done(report) => return Ok(*report),
        Prepared::Ready(ready) => {
            let Ready {
                pool,
                plan_file,
                report,
                missing_groups,
                native_users,
                _dir,
            } = *ready;
            (pool, plan_file, report, missing_groups, native_users, _dir)
        }
    };
    let rules = Rules {
        update_existing: opts.update_existing,
        password_mode: opts.password_mode,
    };
    for group in &missing_groups {
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

    let sub_map_file = AtomicFile::create(&opts.sub_map)?;
    report.sub_map = Some(opts.sub_map.clone());
    let ctx = Arc::new(apply::Worker {
        cognito: cognito.clone(),
        pool,
        rules,
        invitations: opts.invitations,
        report: Mutex::new(report),
        sub_map: Mutex::new(std::io::BufWriter::new(sub_map_file.reopen()?)),
        progress: Progress::start("restored", Some(native_users), opts.progress),
    });

    // A reader thread streams the plan's steps; workers take them one at a time.
    let (tx, rx) = mpsc::channel::<Step>(opts.concurrency * 2);
    let reader = tokio::task::spawn_blocking(move || -> Result<()> {
        plan::for_each_step(plan_file, |step| {
            tx.blocking_send(step)
                .map_err(|_| anyhow!("restore stopped"))
        })
    });
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = tokio::task::JoinSet::new();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for _ in 0..opts.concurrency {
        let (ctx, rx, mut stopped) = (ctx.clone(), rx.clone(), stopped.clone());
        workers.spawn(async move {
            loop {
                let next = tokio::select! {
                    biased;
                    _ = stopped.changed() => None,
                    step = async { rx.lock().await.recv().await } => step,
                };
                let Some(step) = next else { return };
                ctx.run(step).await;
            }
        });
    }
    let was_interrupted = tokio::select! {
        _ = async { while workers.join_next().await.is_some() {} } => false,
        _ = &mut interrupted => {
            tracing::warn!("interrupted: finishing the calls in flight, taking no new users");
            let _ = stop.send(true);
            while workers.join_next().await.is_some() {}
            true
        }
    };
    drop(rx);
    let read_result = reader.await.context("reading the plan")?;
    ctx.progress.finish();

    let ctx = Arc::try_unwrap(ctx).map_err(|_| anyhow!("restore workers still running"))?;
    ctx.sub_map
        .into_inner()
        .expect("sub map lock")
        .flush()
        .context("writing the sub map")?;
    sub_map_file.commit()?;
    let mut report = ctx.report.into_inner().expect("report lock");
    report.interrupted = was_interrupted;
    report.throttled_calls = cognito.stats.throttled.load(Ordering::Relaxed);
    report.retried_calls = cognito.stats.retried.load(Ordering::Relaxed);
    if !was_interrupted && let Err(e) = read_result {
        report.input_error = Some(format!("{e:#}"));
    }
    write_report(opts, &report)?;
    Ok(report)
}

/// Everything before the first write: the checks, the reading of the pool, the plan, and the
/// decision on triggers. A dry run ends here.
async fn prepare(cognito: &Cognito, opts: &Options, ids: Identities) -> Result<Prepared> {
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

    // Read the target once and decide every user's step.
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let target = plan::read_target(cognito, opts, &pool, &ids, inv.users, dir.path()).await?;
    tracing::debug!(users = target.users, "target pool read");
    let groups_present = target.groups.clone();
    let rules = Rules {
        update_existing: opts.update_existing,
        password_mode: opts.password_mode,
    };
    let mut creates = 0u64;
    let plan_file = {
        let pool = pool.clone();
        let dir = dir.path().to_path_buf();
        let counted = tokio::task::spawn_blocking(move || {
            let mut creates = 0u64;
            let file = plan::plan(target, &pool, rules, &dir, |step| {
                creates += u64::from(step.action == Action::Create);
            })?;
            anyhow::Ok((file, creates))
        })
        .await
        .context("planning the restore")??;
        creates += counted.1;
        counted.0
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
    let missing_groups: Vec<&GroupRecord> = inv
        .groups
        .values()
        .filter(|g| !groups_present.contains(&g.name))
        .collect();
    report.groups_already_present = (inv.groups.len() - missing_groups.len()) as u64;

    // Triggers run by the plan's writes: a decision for the operator, before any write.
    let triggers = triggers_run(&pool, creates, opts.invitations.is_some());
    if opts.dry_run {
        report.groups_created = missing_groups.len() as u64;
        let names: Vec<&str> = missing_groups.iter().map(|g| g.name.as_str()).collect();
        dry_run(opts, plan_file, &mut report, &names, &triggers)?;
        write_report(opts, &report)?;
        return Ok(Prepared::Done(Box::new(report)));
    }
    if !triggers.is_empty() && !opts.allow_triggers {
        bail!(
            "pool {} has Lambda triggers that {creates} user creations would run: {}; they may \
             send messages, write elsewhere or reject users. Nothing was written. Pass \
             --allow-triggers to restore anyway",
            opts.pool_id,
            triggers.join(", ")
        );
    }

    Ok(Prepared::Ready(Box::new(Ready {
        pool,
        plan_file,
        report,
        missing_groups: missing_groups.into_iter().cloned().collect(),
        native_users: inv.users - inv.federated,
        _dir: dir,
    })))
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
        crate::backup_file::write_atomic(path, &json)?;
    }
    Ok(())
}

/// `backup.json` → `backup.sub-map.jsonl`, beside the (first) input.
/// An S3 input's map goes to the current directory.
fn default_sub_map(input: &Location) -> PathBuf {
    shard::companion_path(input, ".sub-map.jsonl").local_path()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_map_sits_beside_the_input() {
        assert_eq!(
            default_sub_map(&"dir/backup.json".parse().unwrap()),
            PathBuf::from("dir/backup.sub-map.jsonl")
        );
        assert_eq!(
            default_sub_map(&"backup-2.json.gz".parse().unwrap()),
            PathBuf::from("backup-2.sub-map.jsonl")
        );
    }

    #[test]
    fn keys_follow_the_pools_notion_of_identity() {
        let mut pool = PoolInfo {
            case_sensitive: true,
            ..PoolInfo::default()
        };
        let user: UserRecord = serde_json::from_str(
            r#"{"Username":"Alice","Attributes":[{"Name":"email","Value":"Alice@X.org"}]}"#,
        )
        .unwrap();
        assert_eq!(key(&user, &pool).unwrap(), "Alice");
        pool.case_sensitive = false;
        assert_eq!(key(&user, &pool).unwrap(), "alice");
        pool.username_attributes = vec!["phone_number".into(), "email".into()];
        assert_eq!(key(&user, &pool).unwrap(), "alice@x.org");
    }
}
