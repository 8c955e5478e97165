//! Restore's reading of the target pool, and the match of each backup user with the pool's:
//! every user's step decided from one reading of the pool.
//!
//! The target is read by listing (the same calls a backup makes: ListUsers under the sub
//! prefixes and ListUsersInGroup, never a per-user read) or, for a few selected users, by one
//! filtered ListUsers each. A backup user is the same person as the pool's user with its
//! `sub`, matched as soon as that prefix of the pool is listed, so writes start while the rest
//! is still being read; every other backup user is matched by the target's notion of identity
//! (the username, case-folded in a case-insensitive pool; the email or phone number in a pool
//! that signs in with them) once the whole pool is listed, in bounded memory (`join`). Each
//! decision is a [`Step`], given to the workers at once or written to a plan file that a dry
//! run prints.

use super::Options;
use super::decide::{Action, Rules, Step, plan_user};
use super::plan_file::Steps;
use crate::backup_file::{EXTERNAL_PROVIDER, Identities, Spool, UserRecord, for_each_record};
use crate::cognito::{Cognito, PoolInfo};
use crate::compare::{Identity, UserDiff};
use crate::join::Join;
use crate::listing::{self, Listed, Memberships};
use crate::packed::{LARGE_BLOCK, Packed, block_among};
use crate::shard;
use anyhow::{Context, Result, anyhow, bail};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::oneshot;

/// How the target is read, and when its steps are given out.
pub struct Reading<'a> {
    pub opts: &'a Options,
    pub pool: &'a PoolInfo,
    pub ids: &'a Identities,
    /// Users of the backup the selection holds.
    pub selected: u64,
    pub dir: &'a Path,
    pub rules: Rules,
    /// Decide nobody before every group's members are listed, so each user gets exactly one
    /// step (a plan shown or checked before the first write). Otherwise a user whose other
    /// changes are known is given out at once and its memberships follow in a second step.
    pub whole_steps: bool,
}

/// Reads the target pool and decides every selected backup user's step, giving each to
/// `steps` as soon as it is decided; `groups` receives the pool's group names before the
/// first step. Returns `steps` and the number of users read from the pool.
///
/// The whole pool is read by listing (the selected users by one lookup each when that is
/// fewer calls). A backup user is matched first with the pool's user of the same `sub` (the
/// same person, whatever has been done to them), as soon as that user's prefix is listed;
/// every other backup user then with the pool's user of the same key, once the whole pool
/// is listed. A pool user matched by `sub` is never also another backup user's match.
pub async fn decide<S: Steps>(
    cognito: &Cognito,
    reading: Reading<'_>,
    groups: oneshot::Sender<BTreeSet<String>>,
    steps: S,
) -> Result<(S, u64)> {
    let Reading {
        opts,
        pool,
        ids,
        selected,
        dir,
        rules,
        whole_steps,
    } = reading;
    // A full listing costs one ListUsers per 60 users; a lookup, one or two per selected user.
    if !opts.selection.is_all() && selected * 60 < pool.estimated_users.max(1) {
        let names = cognito.list_groups(&pool.id).await?;
        let _ = groups.send(names.into_iter().map(|g| g.name).collect());
        return look_up(cognito, opts, pool, ids, rules, steps).await;
    }

    tracing::info!(
        pool = pool.id,
        "reading the target pool (about {} users) by listing",
        pool.estimated_users
    );
    // Prefixes of at most a join partition's users each: one prefix of the pool is held in
    // memory at a time.
    let mut count = 16;
    while pool.estimated_users / count > USERS_PER_PREFIX {
        count *= 16;
    }
    let prefixes = shard::refine(&[String::new()], count as usize);
    let (tx, rx) = std::sync::mpsc::channel::<Listed>();
    let planner = {
        let mut planner = Planner {
            pool: pool.clone(),
            identity: Identity::of(pool),
            rules,
            whole_steps,
            buckets: vec![],
            join: Join::new(dir, selected.max(pool.estimated_users))?,
            dir: dir.to_path_buf(),
            pending: None,
            memberships: None,
            waiting: vec![],
            users: 0,
            steps,
        };
        let (opts, ids, prefixes) = (opts.clone(), ids.clone(), prefixes.clone());
        tokio::task::spawn_blocking(move || -> Result<(S, u64)> {
            planner.spread_backup(&opts, &ids, &prefixes)?;
            while let Ok(listed) = rx.recv() {
                planner.take(listed)?;
            }
            planner.finish()
        })
    };
    let mut groups = Some(groups);
    let mut planner_stopped = false;
    let listed = listing::list_pool(cognito, &pool.id, &prefixes, dir, |listed| {
        if let Listed::Groups(names) = &listed
            && let Some(tx) = groups.take()
        {
            let _ = tx.send(names.iter().map(|g| g.name.clone()).collect());
        }
        tx.send(listed).map_err(|_| {
            planner_stopped = true;
            anyhow!("the restore's planning stopped")
        })
    })
    .await;
    // The planner ends when the listing's sender is gone (early, if the listing failed).
    drop(tx);
    let planned = planner.await.context("planning the restore")?;
    match listed {
        Ok(()) => planned,
        // The planner's own error says why it stopped; otherwise the listing's says.
        Err(_) if planner_stopped && planned.is_err() => planned,
        Err(e) => Err(e),
    }
}

/// The most users of the pool one listing prefix should hold (they are in memory together).
const USERS_PER_PREFIX: u64 = 50_000;

/// A pool user kept for the match by key, and whether a backup user with its `sub` took it.
#[derive(Serialize, Deserialize)]
struct Live {
    claimed: bool,
    user: UserRecord,
}

/// A backup user matched by `sub` before the groups' members were listed: its memberships (or
/// its whole step, when nothing else of it changes) are decided once they are.
#[derive(Serialize, Deserialize)]
struct Pending {
    want: UserRecord,
    have: UserRecord,
    /// The user's other changes have been given out already.
    started: bool,
}

/// The decisions of a listing, on a thread of its own, in memory bounded by one prefix of the
/// pool: backup users wait in files by `sub` prefix (`buckets`) or by key (`join`), compressed
/// (`packed`); users are kept with what the decisions read of them (`matching`).
struct Planner<S> {
    pool: PoolInfo,
    identity: Identity,
    rules: Rules,
    whole_steps: bool,
    /// The selected backup users whose `sub` falls under each listing prefix.
    buckets: Vec<Option<Packed>>,
    join: Join<Live>,
    dir: PathBuf,
    pending: Option<Packed>,
    memberships: Option<Arc<Memberships>>,
    /// Prefixes listed before the memberships, when `whole_steps`.
    waiting: Vec<(usize, Spool)>,
    users: u64,
    steps: S,
}

impl<S: Steps> Planner<S> {
    /// Spreads the selected backup users over the prefix buckets (or, without a `sub`, into
    /// the match by key).
    fn spread_backup(
        &mut self,
        opts: &Options,
        ids: &Identities,
        prefixes: &[String],
    ) -> Result<()> {
        let block = block_among(prefixes.len());
        for _ in prefixes {
            self.buckets.push(Some(Packed::new(&self.dir, block)?));
        }
        let members = self.rules.members.clone();
        for path in &opts.inputs {
            for_each_record(path, ids, |_, mut user| {
                if !opts.selection.selects(&user) {
                    return Ok(());
                }
                members.complete(&mut user)?;
                let user = matching(user);
                let sub = self.rules.sub_map.pool_sub(&user);
                match sub.and_then(|sub| prefix_of(prefixes, sub)) {
                    Some(i) => self.buckets[i].as_mut().expect("bucket").push(&user)?,
                    None => self.push_unmatched(user)?,
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn take(&mut self, listed: Listed) -> Result<()> {
        match listed {
            Listed::Groups(_) => Ok(()),
            Listed::Prefix(i, spool) if self.whole_steps && self.memberships.is_none() => {
                self.waiting.push((i, spool));
                Ok(())
            }
            Listed::Prefix(i, spool) => self.match_prefix(i, spool),
            Listed::Memberships(memberships) => {
                self.memberships = Some(memberships);
                self.decide_pending()?;
                for (i, spool) in std::mem::take(&mut self.waiting) {
                    self.match_prefix(i, spool)?;
                }
                Ok(())
            }
        }
    }

    /// Matches the backup users of one listed prefix with the pool's users of the same `sub`.
    fn match_prefix(&mut self, i: usize, spool: Spool) -> Result<()> {
        let mut by_sub: HashMap<String, UserRecord> = HashMap::new();
        spool.for_each_record(|user| {
            self.users += 1;
            let user = matching(user);
            match user.sub() {
                Some(sub) => {
                    by_sub.insert(sub.to_string(), user);
                    Ok(())
                }
                None => self.push_live(user, false),
            }
        })?;
        let bucket = self.buckets[i].take().expect("each prefix is listed once");
        bucket.finish()?.for_each(|want: UserRecord| {
            match self
                .rules
                .sub_map
                .pool_sub(&want)
                .and_then(|sub| by_sub.remove(sub))
            {
                Some(have) => {
                    self.decide_same(want, &have)?;
                    self.push_live(have, true)
                }
                None => self.push_unmatched(want),
            }
        })?;
        for (_, have) in by_sub {
            self.push_live(have, false)?;
        }
        Ok(())
    }

    /// Decides a backup user and the pool's user with its `sub`: at once if the memberships
    /// are known; otherwise the changes that do not involve groups now (with
    /// `--update-existing`), and the rest when the members are listed.
    fn decide_same(&mut self, want: UserRecord, have: &UserRecord) -> Result<()> {
        let mut have = have.clone();
        if let Some(memberships) = &self.memberships {
            have.groups = memberships.groups_of(&have.username)?;
            return self
                .steps
                .push(plan_user(want, Some(&have), &self.pool, &self.rules));
        }
        let mut started = false;
        if self.rules.update_existing {
            let without_groups = UserRecord {
                groups: None,
                ..want.clone()
            };
            let step = plan_user(without_groups, Some(&have), &self.pool, &self.rules);
            if step.action == Action::Update {
                self.steps.push(Step {
                    user: want.clone(),
                    ..step
                })?;
                started = true;
            }
        }
        let pending = match &mut self.pending {
            Some(file) => file,
            None => self.pending.insert(Packed::new(&self.dir, LARGE_BLOCK)?),
        };
        pending.push(&Pending {
            want,
            have,
            started,
        })
    }

    /// The pending users' memberships (or whole steps), now that every group's members are
    /// listed.
    fn decide_pending(&mut self) -> Result<()> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        let memberships = self.memberships.clone().expect("memberships listed");
        pending.finish()?.for_each(
            |Pending {
                 want,
                 mut have,
                 started,
             }: Pending| {
                have.groups = memberships.groups_of(&have.username)?;
                let mut step = plan_user(want, Some(&have), &self.pool, &self.rules);
                if !started {
                    return self.steps.push(step);
                }
                let groups = UserDiff {
                    add_groups: std::mem::take(&mut step.apply.add_groups),
                    remove_groups: std::mem::take(&mut step.apply.remove_groups),
                    ..UserDiff::default()
                };
                if groups.is_empty() {
                    return Ok(());
                }
                self.steps.push(Step {
                    action: Action::Update,
                    apply: groups,
                    withheld: vec![],
                    not_applied: vec![],
                    continues: true,
                    ..step
                })
            },
        )
    }

    fn push_unmatched(&mut self, user: UserRecord) -> Result<()> {
        // A user without a key is created (and fails with the reason).
        self.join
            .push_left(&self.identity.key_or_name(&user), &user)
    }

    fn push_live(&mut self, user: UserRecord, claimed: bool) -> Result<()> {
        match self.identity.key(&user) {
            Some(k) => self.join.push_right(&k, &Live { claimed, user }),
            None => Ok(()),
        }
    }

    /// Once the whole pool is listed: the backup users no `sub` matched, by key.
    fn finish(mut self) -> Result<(S, u64)> {
        if self.buckets.iter().any(Option::is_some) || self.memberships.is_none() {
            bail!("the listing of the target pool ended early");
        }
        let memberships = self.memberships.take().expect("memberships listed");
        let (pool, rules, steps) = (&self.pool, &self.rules, &mut self.steps);
        self.join.run(|want, live| {
            let Some(want) = want else { return Ok(()) };
            let Some(Live {
                claimed,
                user: mut have,
            }) = live
            else {
                return steps.push(plan_user(want, None, pool, rules));
            };
            have.groups = memberships.groups_of(&have.username)?;
            let step = plan_user(want, Some(&have), pool, rules);
            if claimed && !matches!(step.action, Action::Conflict | Action::SkipFederated) {
                // The pool's user is another backup user's (by `sub`): never this one's.
                return steps.push(Step {
                    action: Action::Conflict,
                    apply: UserDiff::between(&step.user, &have),
                    not_applied: vec![],
                    withheld: vec![],
                    ..step
                });
            }
            steps.push(step)
        })?;
        Ok((self.steps, self.users))
    }
}

/// A user of the backup or the pool as the decisions and the steps read it: without its dates,
/// which none reads (they take a fourth of a compressed user), once the selection has seen them.
fn matching(user: UserRecord) -> UserRecord {
    UserRecord {
        user_create_date: None,
        user_last_modified_date: None,
        ..user
    }
}

/// The listing prefix a `sub` falls under (prefixes are sorted and do not overlap).
fn prefix_of(prefixes: &[String], sub: &str) -> Option<usize> {
    let i = prefixes
        .partition_point(|p| p.as_str() <= sub)
        .checked_sub(1)?;
    sub.starts_with(&prefixes[i]).then_some(i)
}

/// The selected users, each looked up on its own: by `sub` first where people sign in with
/// an email or phone number (which can change), then by its key.
async fn look_up<S: Steps>(
    cognito: &Cognito,
    opts: &Options,
    pool: &PoolInfo,
    ids: &Identities,
    rules: Rules,
    mut steps: S,
) -> Result<(S, u64)> {
    let mut wanted = Vec::new();
    for path in &opts.inputs {
        for_each_record(path, ids, |_, mut user| {
            if opts.selection.selects(&user) {
                rules.members.complete(&mut user)?;
                wanted.push(user);
            }
            Ok(())
        })?;
    }
    tracing::debug!(
        users = wanted.len(),
        "looking up the selected users in the pool"
    );
    // By `sub` first where the key can change, or where an earlier restore gave the user a
    // new one.
    let rules = &rules;
    let by_sub = |want: &UserRecord| {
        !pool.username_attributes.is_empty() || rules.sub_map.pool_sub(want) != want.sub()
    };
    let found: Vec<(UserRecord, Option<UserRecord>)> = futures::stream::iter(wanted)
        .map(|want| async move {
            if want.status() == EXTERNAL_PROVIDER {
                return Ok((want, None));
            }
            let mut have = None;
            if by_sub(&want)
                && let Some(sub) = rules.sub_map.pool_sub(&want).filter(|s| !s.contains('"'))
            {
                have = cognito
                    .find_users(&pool.id, format!("sub = \"{sub}\""))
                    .await?
                    .pop();
            }
            if have.is_none() {
                have = find_by_key(cognito, pool, &want).await?;
            }
            let have = match have {
                Some(have) => Some(with_groups(cognito, pool, &want, have).await?),
                None => None,
            };
            anyhow::Ok((want, have))
        })
        .buffer_unordered(opts.concurrency)
        .try_collect()
        .await?;
    let users = found.iter().filter(|(_, have)| have.is_some()).count() as u64;
    let (pool, rules) = (pool.clone(), rules.clone());
    tokio::task::spawn_blocking(move || {
        for (want, have) in found {
            steps.push(plan_user(want, have.as_ref(), &pool, &rules))?;
        }
        Ok((steps, users))
    })
    .await
    .context("planning the restore")?
}

/// The pool's user with `want`'s key, by one filtered ListUsers; `None` if there is none or
/// no filter can name it.
pub async fn find_by_key(
    cognito: &Cognito,
    pool: &PoolInfo,
    want: &UserRecord,
) -> Result<Option<UserRecord>> {
    let Some(filter) = lookup_filter(want, pool) else {
        return Ok(None);
    };
    let identity = Identity::of(pool);
    let k = identity.key(want);
    Ok(cognito
        .find_users(&pool.id, filter)
        .await?
        .into_iter()
        .find(|u| identity.key(u) == k))
}

/// A pool user found by a lookup, with its groups (AdminListGroupsForUser) when the backup
/// carries `want`'s groups.
pub async fn with_groups(
    cognito: &Cognito,
    pool: &PoolInfo,
    want: &UserRecord,
    mut have: UserRecord,
) -> Result<UserRecord> {
    if want.groups.is_some() {
        have.groups = Some(cognito.groups_of_user(&pool.id, &have.username).await?);
    }
    Ok(have)
}

/// The ListUsers filter that finds this user in the target, if one can be written.
pub fn lookup_filter(user: &UserRecord, pool: &PoolInfo) -> Option<String> {
    let (attribute, value) = if pool.username_attributes.is_empty() {
        ("username", user.username.as_str())
    } else {
        pool.username_attributes
            .iter()
            .find_map(|a| Some((a.as_str(), user.attribute(a)?)))?
    };
    (!value.contains('"')).then(|| format!("{attribute} = \"{value}\""))
}
