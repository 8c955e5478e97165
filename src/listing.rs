//! The one reader of a live pool: its users listed through several `sub ^= "…"` prefix queries
//! at once (each prefix into its own spool), its groups, and the groups' members (ListGroups and
//! ListUsersInGroup, never a call per user; a shard's backup lists only the groups its shard
//! owns). A backup takes the users in prefix order into its data file; verify and diff take a
//! private copy to compare; restore takes each prefix the moment it is listed.
//!
//! Memory does not grow with the pool: a prefix's users wait on disk (unnamed temporary files,
//! gzip-compressed), and memberships go into an index that spills to disk (`memberships`). A
//! backup's listing can hand each finished prefix to a `Keeper` and skip the prefixes an
//! earlier run kept (`resume`).

use crate::backup_file::{DataWriter, Encoding, GroupRecord, Spool, members};
use crate::cognito::{Cognito, Page, PoolInfo};
use crate::location::Location;
use crate::memberships::{DEFAULT_CHUNK, Index, MembershipsBuilder};
use crate::progress::Progress;
use crate::resume::Keeper;
use crate::shard::{self, Shard};
use anyhow::{Context, Result, anyhow, bail};
use futures::{StreamExt, TryStreamExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinSet;

/// At least this many prefix queries for a backup; more where a shard's cover has more, or
/// where the pool is large ([`USERS_PER_PREFIX`]).
const MIN_PREFIXES: usize = 16;

/// A large pool is listed in sixteen times more prefixes until each holds about this many users
/// at most (by the pool's estimate). A prefix is also what a backup that stops keeps
/// (`resume`): at 1,800 users a second shared by 8 prefixes in flight, one of 200,000 users
/// takes about 15 minutes, the most listing a resumed backup does again per prefix.
const USERS_PER_PREFIX: u64 = 200_000;

/// Groups whose members are listed at the same time.
const GROUPS_AT_ONCE: usize = 8;

/// How often one prefix may start over after its page token expired.
const MAX_RESTARTS: u32 = 3;

/// Which users to list, and how.
pub struct Slice<'a> {
    pub pool_id: &'a str,
    /// One shard of the pool, or the whole pool.
    pub shard: Option<Shard>,
    /// Prefix queries in flight at once.
    pub concurrency: usize,
    /// The progress line's verb ("backed up", "read"); `None`: no progress shown.
    pub progress: Option<&'static str>,
}

/// The prefix queries of a slice of about `estimate` users, in order: the shard's cover (or the
/// whole pool) refined to at least 16 prefixes, sixteen times more while a prefix would hold
/// more than [`USERS_PER_PREFIX`]. Flags play no part, so the file's order never depends on
/// them.
pub fn prefixes(shard: Option<Shard>, estimate: u64) -> Vec<String> {
    let base = shard.map_or_else(|| vec![String::new()], |s| s.prefixes());
    let mut count = MIN_PREFIXES as u64;
    while estimate / count > USERS_PER_PREFIX && count < 16u64.pow(6) {
        count *= 16;
    }
    shard::refine(&base, count as usize)
}

/// What a listing writes: its prefixes, in order, and who keeps them.
pub struct Plan {
    pub prefixes: Vec<String>,
    pub keeper: Option<Arc<dyn Keeper>>,
}

/// Lists a slice of the pool's users (with their groups) into `writer`, in prefix order; returns
/// the pool's settings and groups. `plan` is called once the pool's size is known, with the
/// estimated number of users in the slice: it says which prefixes to write (usually
/// [`prefixes`]) and who keeps them; the prefixes it has kept are appended, not listed. Prefixes
/// start listing in order; the keeper hears of each once it is in the data file.
///
/// With `members` (a shard's backup), the shard lists the members of only the groups it owns
/// (`shard::owner`): its users' records carry those, and the other shards' users' memberships
/// in them go into `members` (`backup_file::members`). Without, every group is listed and the
/// slice's users carry all their groups.
pub async fn list_users(
    cognito: &Cognito,
    slice: &Slice<'_>,
    dir: &Path,
    writer: &mut DataWriter,
    members: Option<&mut DataWriter>,
    plan: impl FnOnce(&PoolInfo, u64) -> Result<Plan>,
) -> Result<(PoolInfo, Vec<GroupRecord>)> {
    let pool_id = slice.pool_id;
    // The pool's settings and its groups, read at the same time (a missing pool is named by
    // DescribeUserPool's error).
    let (pool, groups) = tokio::join!(cognito.describe_pool(pool_id), cognito.list_groups(pool_id));
    let (pool, groups) = (pool?, groups?);
    let fraction = slice.shard.map_or(1.0, |s| s.fraction());
    let estimate = (pool.estimated_users as f64 * fraction).round() as u64;
    let Plan { prefixes, keeper } = plan(&pool, estimate)?;
    let kept = |prefix: &str| keeper.as_ref().and_then(|k| k.kept(prefix));

    // Every prefix still to list gets a task; a semaphore keeps `concurrency` of them listing
    // at once. Each task hands its spool over through its own channel, so they are appended
    // in prefix order. The tasks start listing at once; they keep their first page until the
    // groups' members are read (`ready`), so reading them costs no time of its own.
    let (ready_tx, ready_rx) = watch::channel::<Option<Ready>>(None);
    let permits = Arc::new(Semaphore::new(slice.concurrency));
    let mut tasks = JoinSet::new();
    let mut results = Vec::with_capacity(prefixes.len());
    let mut kept_users = 0;
    // Prefixes start in order (each task takes its permit after the one before it), so the
    // listed prefixes that wait for their turn in the file are few.
    let mut started: Option<oneshot::Receiver<()>> = None;
    for prefix in &prefixes {
        if let Some(users) = kept(prefix) {
            kept_users += users;
            results.push((prefix.clone(), None));
            continue;
        }
        let (tx, rx) = oneshot::channel();
        results.push((prefix.clone(), Some(rx)));
        let job = PrefixJob {
            cognito: cognito.clone(),
            pool_id: pool_id.to_string(),
            prefix: prefix.clone(),
            dir: dir.to_path_buf(),
            ready: Some(ready_rx.clone()),
        };
        let permits = permits.clone();
        let keeper = keeper.clone();
        let (started_tx, started_rx) = oneshot::channel();
        let after = started.replace(started_rx);
        tasks.spawn(async move {
            if let Some(after) = after {
                let _ = after.await;
            }
            let _permit = permits.acquire_owned().await;
            let _ = started_tx.send(());
            let prefix = job.prefix.clone();
            let listed = async {
                let spooled = job.run().await?.finish()?;
                match &keeper {
                    // Keeping is blocking work (files, S3 uploads, a lock held across them):
                    // this worker's other tasks move to another thread meanwhile.
                    Some(keeper) => tokio::task::block_in_place(|| keeper.keep(&prefix, spooled)),
                    None => Ok(Some(spooled)),
                }
            };
            let _ = tx.send(listed.await);
        });
    }

    let memberships = match (slice.shard, members) {
        (Some(shard), Some(members)) => {
            Memberships::load_split(cognito, pool_id, &groups, shard, dir, members).await?
        }
        _ => Memberships::load(cognito, pool_id, &groups, slice.shard, dir).await?,
    };
    let memberships = Arc::new(memberships);
    let progress = Arc::new(Progress::start_at(
        slice.progress.unwrap_or_default(),
        Some(estimate),
        kept_users,
        slice.progress.is_some(),
    ));

    let _ = ready_tx.send(Some((memberships, progress.clone())));
    for (prefix, rx) in results {
        let Some(rx) = rx else {
            let keeper = keeper.as_ref().expect("kept prefixes have a keeper");
            keeper.append_kept(&prefix, writer)?;
            keeper.appended(&prefix, writer)?;
            continue;
        };
        let spooled = rx
            .await
            .map_err(|_| anyhow!("the listing of prefix {prefix:?} stopped unexpectedly"))??;
        let mut spooled = match spooled {
            Some(spooled) => spooled,
            // Kept in S3 without a spool: a copy is fetched on a thread of its own (reading S3
            // blocks on the runtime, which this thread drives).
            None => {
                let keeper = keeper.clone().expect("only a keeper keeps");
                let (prefix, dir) = (prefix.clone(), dir.to_path_buf());
                tokio::task::spawn_blocking(move || keeper.fetch_kept(&prefix, &dir))
                    .await
                    .context("fetching a kept prefix")??
            }
        };
        writer.append(&mut spooled)?;
        if let Some(keeper) = &keeper {
            keeper.appended(&prefix, writer)?;
        }
    }
    progress.finish();
    // Every task has handed its spool over; let them end, and drop what they hold.
    tasks.shutdown().await;

    Ok((pool, groups))
}

/// A private copy of a slice of a pool, to compare with a backup: the users (with their groups)
/// in a plain data file in `dir`, and the pool's settings and groups.
pub struct Snapshot {
    pub data: Location,
    pub users: u64,
    pub pool: PoolInfo,
    pub groups: Vec<GroupRecord>,
}

pub async fn snapshot(
    cognito: &Cognito,
    pool_id: &str,
    shard: Option<Shard>,
    dir: &Path,
    progress: bool,
) -> Result<Snapshot> {
    let data: Location = dir.join("pool.json").into();
    let mut writer = DataWriter::create(&data, &Encoding::new(Path::new("pool.json"), vec![]))?;
    let slice = Slice {
        pool_id,
        shard,
        concurrency: 8,
        progress: progress.then_some("read"),
    };
    let (pool, groups) = list_users(cognito, &slice, dir, &mut writer, None, |pool, estimate| {
        let prefixes = prefixes(shard, estimate);
        tracing::info!(
            pool = %pool_id,
            shard = shard.map(tracing::field::display),
            prefixes = prefixes.len(),
            "reading about {estimate} users of {} to compare",
            pool.name
        );
        Ok(Plan {
            prefixes,
            keeper: None,
        })
    })
    .await?;
    let (file, written) = writer.finish()?;
    file.commit()?;
    Ok(Snapshot {
        data,
        users: written.count,
        pool,
        groups,
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

    /// A shard's memberships when its set splits them: the members of only the groups `shard`
    /// owns, its own users' kept in the index, the others' written to `members` (the members
    /// file), group by group in the pool's order of groups, each group's members in the order
    /// Cognito lists them, so a run again writes the same file.
    async fn load_split(
        cognito: &Cognito,
        pool_id: &str,
        groups: &[GroupRecord],
        shard: Shard,
        dir: &Path,
        members: &mut DataWriter,
    ) -> Result<Memberships> {
        let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
        if groups.is_empty() {
            return Ok(Memberships {
                groups: names,
                index: None,
            });
        }
        let builder = std::sync::Mutex::new(MembershipsBuilder::new(dir, DEFAULT_CHUNK));
        let shared = &builder;
        let owned = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| shard.owns_group(&g.name));
        // Several groups are listed at once; their others' members wait in a spool each and
        // are written in the groups' order.
        let mut listed = futures::stream::iter(owned)
            .map(|(i, group)| async move {
                let mut others = Spool::new(dir)?;
                cognito
                    .for_each_member(pool_id, &group.name, |member| {
                        let Some(sub) = &member.sub else {
                            return Ok(());
                        };
                        if shard.contains_sub(sub) {
                            shared
                                .lock()
                                .expect("memberships lock")
                                .add(&member.username, i as u32)
                        } else {
                            others.push(&members::Entry::new(&member.username, sub, &group.name))
                        }
                    })
                    .await?;
                others.finish()
            })
            .buffered(GROUPS_AT_ONCE);
        while let Some(mut others) = listed.try_next().await? {
            members.append(&mut others)?;
        }
        drop(listed);
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
