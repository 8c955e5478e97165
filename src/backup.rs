//! The backup pipeline: the pool's groups and memberships, then its users listed through
//! several `sub ^= "…"` prefix queries at once, each prefix into its own spool, the spools
//! appended to the data file in prefix order, then the manifest.
//!
//! Output is deterministic: users appear in prefix order, each prefix's users in the order
//! Cognito returns them, whatever the concurrency and timing. Memory does not grow with the pool:
//! a prefix's users wait for their turn on disk (unnamed temporary files), not in memory.

use crate::backup_file::names;
use crate::backup_file::{
    DataWriter, Encoding, FORMAT_VERSION, GroupRecord, Manifest, Spool, load_recipients,
};
use crate::cli::BackupArgs;
use crate::cognito::{Cognito, Page, PoolInfo};
use crate::location::Location;
use crate::memberships::{DEFAULT_CHUNK, Index, MembershipsBuilder};
use crate::progress::Progress;
use crate::shard::{self, Shard};
use anyhow::{Context, Result, anyhow, bail};
use futures::{StreamExt, TryStreamExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinSet;

/// At least this many prefix queries for a backup; more only where a shard's cover has more.
/// Fixed (not derived from the concurrency) so the file's order never depends on the flags.
const MIN_PREFIXES: usize = 16;

/// Groups whose members are listed at the same time.
const GROUPS_AT_ONCE: usize = 8;

/// How often one prefix may start over after its page token expired.
const MAX_RESTARTS: u32 = 3;

/// What a finished backup wrote.
pub struct Summary {
    pub data: Location,
    pub manifest: Location,
    pub users: u64,
}

/// Why the users are listed into a file: a backup, or a fresh copy that `verify` reads back
/// (logged as a reading of the pool, not as a backup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Backup,
    Snapshot,
}

pub async fn run(cognito: &Cognito, region: &str, args: &BackupArgs) -> Result<Summary> {
    write(cognito, region, args, Purpose::Backup).await
}

/// A backup into a private file that is only read back, to compare a pool with a backup.
pub async fn snapshot(cognito: &Cognito, region: &str, args: &BackupArgs) -> Result<Summary> {
    write(cognito, region, args, Purpose::Snapshot).await
}

async fn write(
    cognito: &Cognito,
    region: &str,
    args: &BackupArgs,
    purpose: Purpose,
) -> Result<Summary> {
    let started_at = names::now();
    let pool_id = args.pool_id.as_str();
    let out = match args.shard {
        Some(s) => names::shard_path(&args.out, s.index),
        None => args.out.clone(),
    };
    let dir = out.spool_dir();
    let encoding = Encoding::new(
        Path::new(&out.file_name()),
        load_recipients(&args.recipient, &args.recipients_file)?,
    );
    let (compression, encryption) = (
        encoding.gzip.then(|| "gzip".to_string()),
        encoding.is_encrypted().then(|| "age".to_string()),
    );
    // Fail before any listing if the file cannot be created (for S3: no bucket, no access).
    let mut writer = DataWriter::create(&out, &encoding)?;
    // The users are listed while the configuration is read (a snapshot, for verify, compares
    // users only; verify reads the configuration itself).
    let config_read = async {
        match purpose {
            Purpose::Backup => crate::pool_config::read_live(cognito, pool_id, region)
                .await
                .map(Some),
            Purpose::Snapshot => Ok(None),
        }
    };
    let (listed, config) = tokio::join!(
        list_users(cognito, args, purpose, &out, &dir, &mut writer),
        config_read
    );
    let (pool, groups) = listed?;
    let config = config?;

    let (file, written) = writer.finish()?;
    let manifest_path = names::manifest_path(&out);
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        cbr_version: env!("CARGO_PKG_VERSION").to_string(),
        pool_id: pool_id.to_string(),
        pool_name: pool.name.clone(),
        region: region.to_string(),
        username_attributes: pool.username_attributes.clone(),
        case_sensitive: Some(pool.case_sensitive),
        shard: args.shard.map(|s| s.to_string()),
        user_count: written.count,
        started_at,
        finished_at: names::now(),
        data_file: out.file_name(),
        sha256: written.sha256,
        compression,
        encryption,
        groups,
    };
    file.commit()?;
    if let Some(config) = config {
        let config_path = names::config_path(&out, encoding.is_encrypted());
        let recipients = load_recipients(&args.recipient, &args.recipients_file)?;
        config.write(&config_path, recipients)?;
        tracing::info!(
            clients = config.clients.len(),
            identity_providers = config.identity_providers.len(),
            resource_servers = config.resource_servers.len(),
            unavailable = config.unavailable.len(),
            "wrote the pool configuration to {}",
            config_path.display()
        );
    }
    manifest_path.write_atomic(&manifest.to_json()?)?;
    Ok(Summary {
        data: out,
        manifest: manifest_path,
        users: written.count,
    })
}

/// Lists the pool's users (with their groups) into the data file, in prefix order; returns
/// what the manifest records of the pool.
async fn list_users(
    cognito: &Cognito,
    args: &BackupArgs,
    purpose: Purpose,
    out: &Location,
    dir: &Path,
    writer: &mut DataWriter,
) -> Result<(PoolInfo, Vec<GroupRecord>)> {
    let pool_id = args.pool_id.as_str();
    let base = args
        .shard
        .map_or_else(|| vec![String::new()], |s| s.prefixes());
    let prefixes = shard::refine(&base, MIN_PREFIXES);

    // Every prefix gets a task; a semaphore keeps `concurrency` of them listing at once. Each
    // task hands its spool over through its own channel, so they are appended in prefix order.
    // The tasks start listing at once; they keep their first page until the pool's groups
    // are read (`ready`), so reading them costs no time of its own.
    let (ready_tx, ready_rx) = watch::channel::<Option<Ready>>(None);
    let permits = Arc::new(Semaphore::new(args.concurrency as usize));
    let mut tasks = JoinSet::new();
    let mut results = Vec::with_capacity(prefixes.len());
    for prefix in &prefixes {
        let (tx, rx) = oneshot::channel();
        results.push((prefix.clone(), rx));
        let job = PrefixJob {
            cognito: cognito.clone(),
            pool_id: pool_id.to_string(),
            prefix: prefix.clone(),
            dir: dir.to_path_buf(),
            ready: Some(ready_rx.clone()),
        };
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let _ = tx.send(job.run().await);
        });
    }

    // The pool's settings and its groups, read at the same time (a missing pool is named by
    // DescribeUserPool's error).
    let (pool, groups) = tokio::join!(cognito.describe_pool(pool_id), cognito.list_groups(pool_id));
    let (pool, groups) = (pool?, groups?);
    let memberships =
        Arc::new(Memberships::load(cognito, pool_id, &groups, args.shard, dir).await?);

    let fraction = args.shard.map_or(1.0, |s| s.fraction());
    let estimate = (pool.estimated_users as f64 * fraction).round() as u64;
    // Plain values in the log fields; an unsharded backup has no `shard` field.
    let shard = args.shard.map(tracing::field::display);
    match purpose {
        Purpose::Backup => tracing::info!(
            pool = %pool_id,
            shard,
            prefixes = prefixes.len(),
            concurrency = args.concurrency,
            "backing up about {estimate} users of {} to {}",
            pool.name,
            out.display()
        ),
        Purpose::Snapshot => tracing::info!(
            pool = %pool_id,
            shard,
            prefixes = prefixes.len(),
            "reading about {estimate} users of {} to compare",
            pool.name
        ),
    }
    let progress = Arc::new(Progress::start(
        match purpose {
            Purpose::Backup => "backed up",
            Purpose::Snapshot => "read",
        },
        Some(estimate),
        !args.no_progress,
    ));

    let _ = ready_tx.send(Some((memberships, progress.clone())));
    for (prefix, rx) in results {
        let mut spool = rx
            .await
            .map_err(|_| anyhow!("the listing of prefix {prefix:?} stopped unexpectedly"))??;
        writer.append(&mut spool)?;
    }
    progress.finish();

    Ok((pool, groups))
}

/// A fresh backup of a whole pool in a private directory: how restore, diff and verify read a
/// pool to compare it with a backup.
pub struct Snapshot {
    pub data: Location,
    pub users: u64,
    pub groups: Vec<GroupRecord>,
}

pub async fn read_pool(
    cognito: &Cognito,
    region: &str,
    pool_id: &str,
    dir: &Path,
    progress: bool,
) -> Result<Snapshot> {
    let args = BackupArgs {
        pool_id: pool_id.to_string(),
        out: dir.join("pool.json").into(),
        sse_kms_key_id: None,
        shard: None,
        concurrency: 8,
        max_rps: None,
        no_progress: !progress,
        recipient: vec![],
        recipients_file: vec![],
    };
    let summary = snapshot(cognito, region, &args).await?;
    Ok(Snapshot {
        users: summary.users,
        groups: Manifest::read(&summary.manifest)?.groups,
        data: summary.data,
    })
}

/// Prefix queries at once when restore reads its target: enough to keep ListUsers near its
/// quota while the groups' members are listed too, few enough that the first prefixes are
/// complete early (restore decides a prefix's users as soon as it is listed).
const RESTORE_PREFIXES_AT_ONCE: usize = 4;

/// What restore's reading of its target hands over, each part as soon as it is read.
pub enum Listed {
    /// The pool's groups, first.
    Groups(Vec<GroupRecord>),
    /// The users of the `i`th prefix, without their groups.
    Prefix(usize, Spool),
    /// Every group's members, once all are listed.
    Memberships(Arc<Memberships>),
}

/// Reads a whole pool for restore: its groups, then the users of each prefix and the groups'
/// members at the same time, handing each to `each` the moment it is complete (prefixes in the
/// order they finish). The same calls as a backup's listing, none per user.
pub async fn list_pool(
    cognito: &Cognito,
    pool_id: &str,
    prefixes: &[String],
    dir: &Path,
    mut each: impl FnMut(Listed) -> Result<()>,
) -> Result<()> {
    let permits = Arc::new(Semaphore::new(RESTORE_PREFIXES_AT_ONCE));
    let mut jobs = JoinSet::new();
    for (i, prefix) in prefixes.iter().enumerate() {
        let job = PrefixJob {
            cognito: cognito.clone(),
            pool_id: pool_id.to_string(),
            prefix: prefix.clone(),
            dir: dir.to_path_buf(),
            ready: None,
        };
        let permits = permits.clone();
        jobs.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (i, job.run().await)
        });
    }
    let groups = cognito.list_groups(pool_id).await?;
    let memberships = Memberships::load(cognito, pool_id, &groups, None, dir);
    each(Listed::Groups(groups.clone()))?;
    tokio::pin!(memberships);
    let mut members_listed = false;
    while !members_listed || !jobs.is_empty() {
        tokio::select! {
            listed = &mut memberships, if !members_listed => {
                members_listed = true;
                each(Listed::Memberships(Arc::new(listed?)))?;
            }
            Some(job) = jobs.join_next(), if !jobs.is_empty() => {
                let (i, spool) = job.context("a prefix listing stopped unexpectedly")?;
                each(Listed::Prefix(i, spool?))?;
            }
        }
    }
    Ok(())
}

/// Lists the users of one prefix into a spool.
struct PrefixJob {
    cognito: Cognito,
    pool_id: String,
    prefix: String,
    dir: PathBuf,
    /// For a backup: the memberships and progress each page waits for. Without it, users are
    /// spooled as listed, without their groups.
    ready: Option<watch::Receiver<Option<Ready>>>,
}

/// What a prefix job needs before it keeps a page: the memberships that fill each record's
/// `Groups`, and the progress counter.
type Ready = (Arc<Memberships>, Arc<Progress>);

impl PrefixJob {
    async fn run(mut self) -> Result<Spool> {
        let mut spool = Spool::new(&self.dir)?;
        let mut token: Option<String> = None;
        let mut restarts = 0;
        loop {
            let page = self
                .cognito
                .list_users_page(&self.pool_id, &self.prefix, token.as_deref())
                .await
                .with_context(|| {
                    format!(
                        "listing users of {} with sub prefix {:?}",
                        self.pool_id, self.prefix
                    )
                })?;
            let ready = match &mut self.ready {
                Some(ready) => Some(
                    ready
                        .wait_for(Option::is_some)
                        .await
                        .map_err(|_| anyhow!("the pool's groups could not be read"))?
                        .clone()
                        .expect("ready"),
                ),
                None => None,
            };
            match page {
                Page::Users { users, next } => {
                    if let Some((_, progress)) = &ready {
                        progress.add(users.len() as u64);
                    }
                    for mut user in users {
                        if let Some((memberships, _)) = &ready {
                            user.groups = memberships.groups_of(&user.username)?;
                        }
                        spool.push(&user)?;
                    }
                    token = next;
                    if token.is_none() {
                        tracing::debug!(
                            prefix = self.prefix,
                            users = spool.count(),
                            "prefix listed"
                        );
                        return Ok(spool);
                    }
                }
                Page::TokenExpired => {
                    restarts += 1;
                    if restarts > MAX_RESTARTS {
                        bail!(
                            "listing users of {} with sub prefix {:?}: page token expired {restarts} times",
                            self.pool_id,
                            self.prefix
                        );
                    }
                    tracing::warn!(
                        prefix = self.prefix,
                        "page token expired; listing this prefix again from its start"
                    );
                    if let Some((_, progress)) = &ready {
                        progress.sub(spool.count());
                    }
                    spool.clear()?;
                    token = None;
                }
            }
        }
    }
}

/// Group memberships by username, for the inline `Groups` list of each record. Loaded with
/// ListUsersInGroup (one call per 60 members of a group), never per user, into an index whose
/// memory does not grow with the pool (`memberships`). A sharded backup keeps only its own
/// users' memberships.
pub struct Memberships {
    groups: Vec<String>,
    /// Absent when the pool has no groups: records then carry no `Groups` field.
    index: Option<Index>,
}

impl Memberships {
    async fn load(
        cognito: &Cognito,
        pool_id: &str,
        groups: &[GroupRecord],
        shard: Option<Shard>,
        dir: &Path,
    ) -> Result<Memberships> {
        let names = groups.iter().map(|g| g.name.clone()).collect();
        if groups.is_empty() {
            return Ok(Memberships {
                groups: names,
                index: None,
            });
        }
        // Several groups are listed at once (each group's pages follow one another); the
        // index sorts its entries, so the order they arrive in does not matter.
        let builder = std::sync::Mutex::new(MembershipsBuilder::new(dir, DEFAULT_CHUNK));
        let shared = &builder;
        futures::stream::iter(groups.iter().enumerate())
            .map(|(i, group)| async move {
                cognito
                    .for_each_member(pool_id, &group.name, |member| {
                        let mine = match (shard, &member.sub) {
                            (None, _) => true,
                            (Some(s), Some(sub)) => s.contains_sub(sub),
                            (Some(_), None) => false,
                        };
                        if mine {
                            shared
                                .lock()
                                .expect("memberships lock")
                                .add(&member.username, i as u32)?;
                        }
                        Ok(())
                    })
                    .await
            })
            .buffer_unordered(GROUPS_AT_ONCE)
            .try_collect::<Vec<()>>()
            .await?;
        let builder = builder.into_inner().expect("memberships lock");
        Ok(Memberships {
            groups: names,
            index: Some(builder.finish()?),
        })
    }

    /// The groups of a user of the pool, by username; `None` when the pool has no groups.
    pub fn groups_of(&self, username: &str) -> Result<Option<Vec<String>>> {
        let Some(index) = &self.index else {
            return Ok(None);
        };
        let ids = index.groups_of(username)?;
        Ok(Some(
            ids.iter()
                .map(|&i| self.groups[i as usize].clone())
                .collect(),
        ))
    }
}
