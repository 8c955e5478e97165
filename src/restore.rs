//! The restore pipeline: check every input file and the target pool before the first write,
//! create the groups, then restore users concurrently — each Cognito call under its own quota
//! category's rate limit, so creation, passwords and updates overlap — and end with a report
//! and the old → new `sub` map.
//!
//! Safe to run twice: a user or group that exists already is counted as present, and only what
//! is missing (disabled state, memberships, the password of a user left half-restored) is done.
//! No message reaches any user unless the operator asks for invitations.

use crate::backup_file::{
    EXTERNAL_PROVIDER, FORMAT_VERSION, GroupRecord, Identities, Manifest, UserRecord,
    for_each_record, sha256_file, writer::AtomicFile,
};
use crate::cli::{PasswordMode, RestoreArgs};
use crate::cognito::{Cognito, CreateOutcome, PoolInfo};
use crate::location::Location;
use crate::progress::Progress;
use crate::shard;
use anyhow::{Context, Result, anyhow, bail};
use rand::Rng;
use rand::seq::SliceRandom;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Attributes Cognito never accepts on AdminCreateUser: `sub` is assigned by Cognito, a
/// federated link (`identities`) only by AdminLinkProviderForUser, `cognito:*` are internal.
fn is_writable(name: &str) -> bool {
    name != "sub" && name != "identities" && !name.starts_with("cognito:")
}

/// What the input files hold, learned by reading them all before any write.
#[derive(Debug, Default)]
struct Inventory {
    users: u64,
    federated: u64,
    /// Every attribute name that would be sent.
    attributes: BTreeSet<String>,
    /// Groups named by the manifests (with their settings) or by inline `Groups` lists.
    groups: BTreeMap<String, GroupRecord>,
    /// `email`/`phone_number` when the source pool signed in with those (from a manifest).
    source_username_attributes: BTreeSet<String>,
    /// Users whose username is their `sub`: the mark of an email- or phone-sign-in pool.
    usernames_are_subs: u64,
    /// Users lacking each sign-in attribute, for a target that signs in with it.
    missing: BTreeMap<String, u64>,
    /// For the dry run: users who would get a random permanent password, be disabled, and
    /// memberships to add.
    confirmable: u64,
    disabled: u64,
    memberships: u64,
}

/// Reads every file once, checking each record, the manifests' checksums and duplicate
/// usernames across files. Memory grows only by 16 bytes a user (a hash of each username).
fn inventory(inputs: &[Location], ids: &Identities, ignore_checksum: bool) -> Result<Inventory> {
    let mut inv = Inventory::default();
    let mut seen: HashSet<u128> = HashSet::new();
    let keys = (std::hash::RandomState::new(), std::hash::RandomState::new());
    for path in inputs {
        let manifest_path = shard::manifest_path(path);
        let manifest = manifest_path
            .exists()
            .then(|| Manifest::read(&manifest_path))
            .transpose()?;
        let count = for_each_record(path, ids, |position, user| {
            let hash = {
                let (mut a, mut b) = (keys.0.build_hasher(), keys.1.build_hasher());
                a.write(user.username.as_bytes());
                b.write(user.username.as_bytes());
                (u128::from(a.finish()) << 64) | u128::from(b.finish())
            };
            if !seen.insert(hash) {
                bail!(
                    "record {position} (username {:?}): this username appears more than once \
                     in the input files",
                    user.username
                );
            }
            inv.users += 1;
            if user.status() == EXTERNAL_PROVIDER {
                inv.federated += 1;
                return Ok(());
            }
            for a in &user.attributes {
                if is_writable(&a.name) && !inv.attributes.contains(&a.name) {
                    inv.attributes.insert(a.name.clone());
                }
            }
            for key in ["email", "phone_number"] {
                if user.attribute(key).is_none() {
                    *inv.missing.entry(key.to_string()).or_default() += 1;
                }
            }
            if user.sub() == Some(user.username.as_str()) {
                inv.usernames_are_subs += 1;
            }
            inv.confirmable += u64::from(wants_permanent_password(&user));
            inv.disabled += u64::from(!user.enabled);
            inv.memberships += user.groups().len() as u64;
            for g in user.groups() {
                inv.groups.entry(g.clone()).or_insert_with(|| GroupRecord {
                    name: g.clone(),
                    description: None,
                    precedence: None,
                    role_arn: None,
                });
            }
            Ok(())
        })?;
        if let Some(m) = manifest {
            if m.format_version > FORMAT_VERSION {
                bail!(
                    "{} is backup format version {}; this cbr reads up to version \
                     {FORMAT_VERSION}: use a newer cbr",
                    path.display(),
                    m.format_version
                );
            }
            let sha256 = sha256_file(path)?;
            if m.sha256 != sha256 && !ignore_checksum {
                bail!(
                    "{} does not match its manifest {} (SHA-256 {} expected, {} found): the \
                     file was changed or damaged; pass --ignore-checksum to restore it anyway",
                    path.display(),
                    manifest_path.display(),
                    m.sha256,
                    sha256
                );
            }
            if m.user_count != count && !ignore_checksum {
                bail!(
                    "{} holds {} users but its manifest says {}",
                    path.display(),
                    count,
                    m.user_count
                );
            }
            for g in m.groups {
                inv.groups.insert(g.name.clone(), g);
            }
            inv.source_username_attributes
                .extend(m.username_attributes.iter().cloned());
        }
    }
    Ok(inv)
}

/// Checks that the files fit the target pool; every problem at once.
fn preflight(inv: &Inventory, pool: &PoolInfo) -> Result<()> {
    let mut problems = Vec::new();
    let schema: BTreeSet<&str> = pool.schema.iter().map(String::as_str).collect();
    let missing_custom: Vec<&str> = inv
        .attributes
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("custom:") && !schema.contains(a))
        .collect();
    if !missing_custom.is_empty() {
        problems.push(format!(
            "custom attributes used in the backup are missing from the pool's schema: {} \
             (add them to the pool first)",
            missing_custom.join(", ")
        ));
    }
    let native = inv.users - inv.federated;
    let source_by_alias = !inv.source_username_attributes.is_empty()
        || (native > 0 && inv.usernames_are_subs == native);
    if pool.username_attributes.is_empty() && source_by_alias {
        problems.push(
            "the backup comes from a pool where people sign in with email or phone (its \
             usernames are generated IDs), but the target pool signs in with usernames: \
             create the target with the same sign-in attributes"
                .to_string(),
        );
    }
    if !pool.username_attributes.is_empty() {
        // Each user needs at least one of the sign-in attributes to be its username.
        let lacking = pool
            .username_attributes
            .iter()
            .map(|a| inv.missing.get(a).copied().unwrap_or(0))
            .min()
            .unwrap_or(0);
        if lacking > 0 && pool.username_attributes.len() == 1 {
            problems.push(format!(
                "the target pool signs in with {}, but {lacking} users in the backup have no {}",
                pool.username_attributes[0], pool.username_attributes[0]
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "the backup does not fit pool {}; nothing was written:\n  - {}",
        pool.id,
        problems.join("\n  - ")
    )
}

/// Counts and failures, printed at the end and written with `--report`.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub pool_id: String,
    pub dry_run: bool,
    pub users_in_backup: u64,
    pub created: u64,
    pub already_present: u64,
    pub confirmed_with_random_password: u64,
    pub disabled: u64,
    /// Memberships restored (AdminAddUserToGroup is idempotent: a rerun counts them again).
    pub memberships: u64,
    pub groups_created: u64,
    pub groups_already_present: u64,
    pub skipped: BTreeMap<String, u64>,
    /// Native users that had a federated identity linked; the link is not restored.
    pub lost_federated_link: u64,
    pub failed: Vec<Failure>,
    pub interrupted: bool,
    /// Reading the input stopped part way (a file changed after it was checked).
    pub input_error: Option<String>,
    /// Calls Cognito throttled, and calls retried after throttling or a transient fault.
    pub throttled_calls: u64,
    pub retried_calls: u64,
    pub sub_map: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Failure {
    pub username: String,
    pub reason: String,
}

impl Report {
    pub fn print(&self) {
        let mut out = std::io::stderr().lock();
        let _ = writeln!(out, "{}", self.text());
    }

    fn text(&self) -> String {
        let mut s = format!(
            "restore into {}{}: {} users in the backup\n",
            self.pool_id,
            if self.dry_run { " (dry run)" } else { "" },
            self.users_in_backup
        );
        let verb = if self.dry_run { "would be " } else { "" };
        let mut line = |label: &str, n: u64| s.push_str(&format!("  {label:<34} {n}\n"));
        line(&format!("{verb}created"), self.created);
        line("already present", self.already_present);
        line(
            &format!("{verb}confirmed (random password)"),
            self.confirmed_with_random_password,
        );
        line(&format!("{verb}disabled"), self.disabled);
        line(&format!("memberships {verb}restored"), self.memberships);
        line(&format!("groups {verb}created"), self.groups_created);
        line("groups already present", self.groups_already_present);
        for (reason, n) in &self.skipped {
            line(&format!("skipped: {reason}"), *n);
        }
        line("federated link lost", self.lost_federated_link);
        line("failed", self.failed.len() as u64);
        line("throttled calls (retried)", self.throttled_calls);
        for f in &self.failed {
            s.push_str(&format!("    {}: {}\n", f.username, f.reason));
        }
        if let Some(e) = &self.input_error {
            s.push_str(&format!("  input stopped part way: {e}\n"));
        }
        if self.interrupted {
            s.push_str(
                "  interrupted: users not yet started were not restored; run again to finish\n",
            );
        }
        if let Some(path) = &self.sub_map {
            s.push_str(&format!("  sub map: {}\n", path.display()));
        }
        s
    }

    pub fn succeeded(&self) -> bool {
        self.failed.is_empty() && !self.interrupted && self.input_error.is_none()
    }
}

/// Everything the per-user workers share.
struct Worker {
    cognito: Cognito,
    pool: PoolInfo,
    mode: PasswordMode,
    invite: bool,
    report: Mutex<Report>,
    sub_map: Mutex<std::io::BufWriter<std::fs::File>>,
    progress: Progress,
}

/// One line of the sub map.
#[derive(Serialize)]
struct SubMapLine<'a> {
    username: &'a str,
    old_sub: Option<&'a str>,
    new_sub: Option<&'a str>,
}

pub async fn run(
    cognito: &Cognito,
    args: &RestoreArgs,
    ids: Identities,
    interrupted: impl std::future::Future<Output = ()>,
) -> Result<Report> {
    let inputs = args.inputs.clone();
    let ignore_checksum = args.ignore_checksum;
    let reader_ids = ids.clone();
    let inv = tokio::task::spawn_blocking(move || inventory(&inputs, &ids, ignore_checksum))
        .await
        .context("checking the input files")??;
    let pool = cognito.describe_pool(&args.pool_id).await?;
    preflight(&inv, &pool)?;
    tracing::debug!(
        users = inv.users,
        groups = inv.groups.len(),
        "input files checked; the target pool fits"
    );

    let mut report = Report {
        pool_id: args.pool_id.clone(),
        dry_run: args.dry_run,
        users_in_backup: inv.users,
        ..Report::default()
    };
    if inv.federated > 0 {
        report
            .skipped
            .insert("federated (EXTERNAL_PROVIDER)".into(), inv.federated);
    }
    if args.dry_run {
        return dry_run(args, &inv, report);
    }

    for group in inv.groups.values() {
        match cognito.create_group(&args.pool_id, group).await {
            Ok(true) => report.groups_created += 1,
            Ok(false) => report.groups_already_present += 1,
            Err(e) => bail!("creating group {:?} in {}: {e}", group.name, args.pool_id),
        }
    }

    let sub_map_path = args
        .sub_map
        .clone()
        .unwrap_or_else(|| default_sub_map(&args.inputs[0].local_path()));
    let sub_map_file = AtomicFile::create(&sub_map_path)?;
    report.sub_map = Some(sub_map_path.clone());
    let ctx = Arc::new(Worker {
        cognito: cognito.clone(),
        pool,
        mode: args.password_mode,
        invite: args.send_invitations,
        report: Mutex::new(report),
        sub_map: Mutex::new(std::io::BufWriter::new(sub_map_file.reopen()?)),
        progress: Progress::start(
            "restored",
            Some(inv.users - inv.federated),
            !args.no_progress,
        ),
    });

    // A reader thread streams the records; workers take them one at a time.
    let (tx, rx) = mpsc::channel::<UserRecord>(args.concurrency as usize * 2);
    let inputs = args.inputs.clone();
    let reader = tokio::task::spawn_blocking(move || -> Result<()> {
        for path in &inputs {
            for_each_record(path, &reader_ids, |_, user| {
                tx.blocking_send(user)
                    .map_err(|_| anyhow!("restore stopped"))
            })?;
        }
        Ok(())
    });
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = tokio::task::JoinSet::new();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for _ in 0..args.concurrency {
        let (ctx, rx, mut stopped) = (ctx.clone(), rx.clone(), stopped.clone());
        workers.spawn(async move {
            loop {
                let next = tokio::select! {
                    biased;
                    _ = stopped.changed() => None,
                    user = async { rx.lock().await.recv().await } => user,
                };
                let Some(user) = next else { return };
                restore_user(&ctx, user).await;
            }
        });
    }
    tokio::pin!(interrupted);
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
    let read_result = reader.await.context("reading the input files")?;
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
        // The files passed the checks, so this means one changed during the restore.
        report.input_error = Some(format!("{e:#}"));
    }
    write_report(args, &report)?;
    Ok(report)
}

fn dry_run(args: &RestoreArgs, inv: &Inventory, mut report: Report) -> Result<Report> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "would restore into {}:", args.pool_id)?;
    writeln!(out, "  users: {}", inv.users - inv.federated)?;
    for g in inv.groups.values() {
        writeln!(out, "  group: {}", g.name)?;
    }
    report.created = inv.users - inv.federated;
    report.groups_created = inv.groups.len() as u64;
    report.confirmed_with_random_password = if args.password_mode == PasswordMode::Permanent {
        inv.confirmable
    } else {
        0
    };
    report.disabled = inv.disabled;
    report.memberships = inv.memberships;
    write_report(args, &report)?;
    Ok(report)
}

fn write_report(args: &RestoreArgs, report: &Report) -> Result<()> {
    if let Some(path) = &args.report {
        let mut json = serde_json::to_vec_pretty(report)?;
        json.push(b'\n');
        crate::backup_file::write_atomic(path, &json)?;
    }
    Ok(())
}

/// `backup.json` → `backup.sub-map.jsonl`, beside the (first) input.
fn default_sub_map(input: &Path) -> PathBuf {
    let name = shard::manifest_path(&input.into()).file_name();
    let stem = name.strip_suffix(".meta.json").unwrap_or(&name);
    input.with_file_name(format!("{stem}.sub-map.jsonl"))
}

/// Restores one user; every outcome, failures included, ends in the report.
async fn restore_user(ctx: &Worker, user: UserRecord) {
    if user.status() == EXTERNAL_PROVIDER {
        return; // counted from the inventory
    }
    match restore_user_steps(ctx, &user).await {
        Ok(()) => {}
        Err(e) => ctx
            .report
            .lock()
            .expect("report lock")
            .failed
            .push(Failure {
                username: user.username.clone(),
                reason: format!("{e:#}"),
            }),
    }
    ctx.progress.add(1);
}

async fn restore_user_steps(ctx: &Worker, user: &UserRecord) -> Result<()> {
    let pool_id = ctx.pool.id.as_str();
    let username = sign_in_name(&ctx.pool, user)?;
    let attributes: Vec<(String, String)> = user
        .attributes
        .iter()
        .filter(|a| is_writable(&a.name))
        .filter_map(|a| Some((a.name.clone(), a.value.clone()?)))
        .collect();
    let created = ctx
        .cognito
        .create_user(pool_id, &username, &attributes, ctx.invite)
        .await
        .context("creating the user")?;
    // The user as it is now: just created, or found from an earlier run.
    let (pool_username, new_sub, status, enabled, was_created) = match created {
        CreateOutcome::Created { sub } => (username.clone(), sub, String::new(), true, true),
        CreateOutcome::Exists => {
            let state = ctx
                .cognito
                .get_user(pool_id, &username)
                .await
                .context("reading the existing user")?
                .ok_or_else(|| anyhow!("the user exists under another name (alias clash)"))?;
            (
                state.username,
                state.sub,
                state.status,
                state.enabled,
                false,
            )
        }
    };
    let mut confirmed = false;
    let wants_permanent = ctx.mode == PasswordMode::Permanent
        && matches!(
            user.status(),
            "CONFIRMED" | "RESET_REQUIRED" | "COMPROMISED"
        );
    if wants_permanent && (was_created || status == "FORCE_CHANGE_PASSWORD") {
        let password = random_password(ctx.pool.min_password_length);
        ctx.cognito
            .set_password(pool_id, &pool_username, &password, true)
            .await
            .context("setting a random permanent password")?;
        confirmed = true;
    }
    let mut disabled = false;
    if !user.enabled && enabled {
        ctx.cognito
            .disable_user(pool_id, &pool_username)
            .await
            .context("disabling the user")?;
        disabled = true;
    }
    let mut memberships = 0;
    for group in user.groups() {
        ctx.cognito
            .add_to_group(pool_id, &pool_username, group)
            .await
            .with_context(|| format!("adding the user to group {group:?}"))?;
        memberships += 1;
    }
    let line = serde_json::to_string(&SubMapLine {
        username: &user.username,
        old_sub: user.sub(),
        new_sub: new_sub.as_deref(),
    })?;
    writeln!(ctx.sub_map.lock().expect("sub map lock"), "{line}").context("writing the sub map")?;
    let mut r = ctx.report.lock().expect("report lock");
    if was_created {
        r.created += 1;
    } else {
        r.already_present += 1;
    }
    r.confirmed_with_random_password += u64::from(confirmed);
    r.disabled += u64::from(disabled);
    r.memberships += memberships;
    r.lost_federated_link += u64::from(user.attribute("identities").is_some());
    Ok(())
}

/// Users who could sign in before come back CONFIRMED with a random password (in the default
/// password mode): CONFIRMED ones, and RESET_REQUIRED or COMPROMISED ones, whose reset would
/// otherwise send them a message.
fn wants_permanent_password(user: &UserRecord) -> bool {
    matches!(
        user.status(),
        "CONFIRMED" | "RESET_REQUIRED" | "COMPROMISED"
    )
}

/// The username to create: the backup's, or in a pool where people sign in with email or phone,
/// that attribute's value (Cognito then generates the username).
fn sign_in_name(pool: &PoolInfo, user: &UserRecord) -> Result<String> {
    if pool.username_attributes.is_empty() {
        return Ok(user.username.clone());
    }
    pool.username_attributes
        .iter()
        .find_map(|a| user.attribute(a))
        .map(str::to_string)
        .ok_or_else(|| {
            anyhow!(
                "the pool signs in with {} and the user has none",
                pool.username_attributes.join(" or ")
            )
        })
}

/// A random password nobody ever sees: upper, lower, digits and symbols, at least 32
/// characters (more if the pool's policy asks for more).
fn random_password(min_length: usize) -> String {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
    const DIGITS: &[u8] = b"23456789";
    const SYMBOLS: &[u8] = b"!#$%&*+-=?@^_";
    let all: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS].concat();
    let mut rng = rand::rng();
    let len = min_length.clamp(32, 99);
    let mut chars: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS]
        .iter()
        .map(|set| set[rng.random_range(0..set.len())])
        .collect();
    while chars.len() < len {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    chars.shuffle(&mut rng);
    String::from_utf8(chars).expect("ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_passwords_meet_every_policy_class() {
        for _ in 0..100 {
            let p = random_password(8);
            assert_eq!(p.len(), 32);
            assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_lowercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
            assert!(p.chars().any(|c| !c.is_ascii_alphanumeric()));
        }
        assert_eq!(random_password(64).len(), 64);
        assert_ne!(random_password(8), random_password(8));
    }

    #[test]
    fn never_sends_sub_or_identities() {
        assert!(!is_writable("sub"));
        assert!(!is_writable("identities"));
        assert!(!is_writable("cognito:mfa_enabled"));
        assert!(is_writable("email"));
        assert!(is_writable("custom:tenant"));
    }

    #[test]
    fn sub_map_sits_beside_the_input() {
        assert_eq!(
            default_sub_map(Path::new("dir/backup.json")),
            PathBuf::from("dir/backup.sub-map.jsonl")
        );
        assert_eq!(
            default_sub_map(Path::new("backup-2.json.gz")),
            PathBuf::from("backup-2.sub-map.jsonl")
        );
    }
}
