//! The backup pipeline: the pool's users (with their groups) listed by `listing` into the data
//! file in prefix order, the pool's configuration read at the same time, then the manifest and
//! the configuration file beside the data file. A shard also writes its members file: the
//! memberships in the groups it owns of users in other shards (`backup_file::members`).
//!
//! Output is deterministic: users appear in prefix order, each prefix's users in the order
//! Cognito returns them, whatever the concurrency and timing. Memory does not grow with the pool:
//! a prefix's users wait for their turn on disk (unnamed temporary files), not in memory.
//!
//! Each prefix is also kept, the moment it is listed, in the backup's resume state (`resume`):
//! a backup that stops is run again with `--resume` and lists only the prefixes it had not
//! finished; the file it writes is the one an uninterrupted run would have written. A local
//! output that is not encrypted is written inside that state, under a stable name, and renamed
//! into place when whole: a resumed run goes on with it.

use crate::backup_file::{
    DataWriter, Encoding, FORMAT_VERSION, Manifest, SplitMemberships, load_recipients, names,
};
use crate::cognito::{Category, Cognito, PoolInfo};
use crate::listing::{self, Plan, Slice};
use crate::location::Location;
use crate::progress;
use crate::resume::{self, Identity, Start, State};
use crate::shard::Shard;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a finished backup wrote.
pub struct Summary {
    pub data: Location,
    pub manifest: Location,
    pub users: u64,
}

/// A backup's settings, checked and complete before any work starts.
#[derive(Debug, Clone)]
pub struct Options {
    pub pool_id: String,
    /// The data file (for a shard, the name its index is added to).
    pub out: Location,
    pub shard: Option<Shard>,
    /// ListUsers requests in flight at once.
    pub concurrency: usize,
    pub progress: bool,
    /// age public keys, and files of them, to encrypt the data file to.
    pub recipients: Vec<String>,
    pub recipients_files: Vec<PathBuf>,
    /// Go on from the state of a backup of the same pool, shard and output that stopped.
    pub resume: bool,
}

impl Options {
    /// The data file this backup writes: `out`, with the shard's index for a shard.
    pub fn data_file(&self) -> Location {
        match self.shard {
            Some(s) => names::shard_path(&self.out, s.index),
            None => self.out.clone(),
        }
    }

    /// Where this backup keeps what it has listed until it is written, for `--resume`.
    pub fn state_dir(&self) -> Location {
        resume::dir_of(&self.data_file())
    }
}

pub async fn run(cognito: &Cognito, region: &str, args: &Options) -> Result<Summary> {
    let mut state = None;
    let result = write(cognito, region, args, &mut state).await;
    match (result, state) {
        (Err(e), Some(state)) => Err(state.stopped(e)),
        (Err(e), None) => {
            // Stopped before its state was written: what it started of its data file goes.
            resume::discard_unstarted(&args.data_file());
            Err(e)
        }
        (result, _) => result,
    }
}

/// The backup; `kept_state` is its resume state, once it has one.
async fn write(
    cognito: &Cognito,
    region: &str,
    args: &Options,
    kept_state: &mut Option<Arc<State>>,
) -> Result<Summary> {
    let started_at = names::now();
    let pool_id = args.pool_id.as_str();
    let out = args.data_file();
    let dir = out.spool_dir();
    let encoding = Encoding::new(
        Path::new(&out.file_name()),
        load_recipients(&args.recipients, &args.recipients_files)?,
    );
    let (compression, encryption) = (
        encoding.gzip.then(|| "gzip".to_string()),
        encoding.is_encrypted().then(|| "age".to_string()),
    );
    let identity = Identity {
        pool_id: pool_id.to_string(),
        shard: args.shard,
        output: out.clone(),
        gzip: encoding.gzip,
        encrypted: encoding.is_encrypted(),
    };
    // Fail before any listing if the state to resume from is not this backup's, or if the file
    // cannot be created (for S3: no bucket, no access). A stopped run's leftovers go first.
    let start = resume::open(&identity, args.resume)?;
    let mut writer = match resume::partial_file(&identity) {
        // A local output, not encrypted: written inside the state, where a resumed run finds
        // it.
        Some(partial) => match &start {
            Start::Resumed(state) if let Some((bytes, users)) = state.data_file_end() => {
                DataWriter::resume(&out, &partial, bytes, users, &encoding)?
            }
            _ => {
                args.state_dir().create_private_dir()?;
                DataWriter::create_partial(&out, &partial, &encoding)?
            }
        },
        None => DataWriter::create(&out, &encoding)?,
    };
    // A shard's members file: its groups' members who are other shards' users.
    let members_out = names::members_path(&out);
    let mut members = match args.shard {
        Some(_) => Some(DataWriter::create(&members_out, &encoding)?),
        None => None,
    };
    // The users are listed while the configuration is read.
    let slice = Slice {
        pool_id,
        shard: args.shard,
        concurrency: args.concurrency,
        progress: args.progress.then_some("backed up"),
    };
    let plan = |pool: &PoolInfo, estimate: u64| -> Result<Plan> {
        let state = match start {
            Start::Resumed(state) => *state,
            Start::New => State::create(
                &identity,
                &listing::prefixes(args.shard, estimate),
                &started_at,
            )?,
        };
        let prefixes = state.prefixes().to_vec();
        announce(cognito, args, pool, &out, estimate, &state, prefixes.len());
        let state = Arc::new(state);
        *kept_state = Some(state.clone());
        Ok(Plan {
            prefixes,
            keeper: Some(state),
        })
    };
    let (listed, config) = tokio::join!(
        listing::list_users(cognito, &slice, &dir, &mut writer, members.as_mut(), plan),
        crate::pool_config::read_live(cognito, pool_id, region)
    );
    let (pool, groups) = listed?;
    let config = config?;
    let state = kept_state.clone().expect("the listing made its plan");

    let (file, written) = writer.finish()?;
    let memberships = match (members, args.shard) {
        (Some(members), Some(shard)) => {
            let (members_file, members_written) = members.finish()?;
            members_file.commit()?;
            tracing::info!(
                "wrote {} memberships of other shards' users in the groups shard {shard} lists \
                 to {}",
                members_written.count,
                members_out.display()
            );
            Some(SplitMemberships {
                groups: groups
                    .iter()
                    .filter(|g| shard.owns_group(&g.name))
                    .map(|g| g.name.clone())
                    .collect(),
                file: members_out.file_name(),
                sha256: members_written.sha256,
                count: members_written.count,
            })
        }
        _ => None,
    };
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
        // A resumed backup's users were listed from its first run's start on.
        started_at: state.started_at().to_string(),
        finished_at: names::now(),
        data_file: out.file_name(),
        sha256: written.sha256,
        compression,
        encryption,
        groups,
        memberships,
    };
    file.commit()?;
    {
        let config_path = names::config_path(&out, encoding.is_encrypted());
        let recipients = load_recipients(&args.recipients, &args.recipients_files)?;
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
    // The backup is whole: its state goes.
    let removed = state
        .remove()
        .with_context(|| format!("removing {}", state.dir()));
    if let Err(e) = removed {
        tracing::warn!(
            "the backup is written, but its resume state could not be removed ({e:#}); remove \
             it: it holds the users' data"
        );
    }
    Ok(Summary {
        data: out,
        manifest: manifest_path,
        users: written.count,
    })
}

/// Logs what the backup will do and the time the quota makes it take: the users left to list
/// at the UserList rate (60 users a request), plus the groups' members, which share that
/// quota; for a shard, the whole set's.
fn announce(
    cognito: &Cognito,
    args: &Options,
    pool: &PoolInfo,
    out: &Location,
    estimate: u64,
    state: &State,
    prefixes: usize,
) {
    tracing::info!(
        pool = %args.pool_id,
        // Plain values in the log fields; an unsharded backup has no `shard` field.
        shard = args.shard.map(tracing::field::display),
        prefixes,
        concurrency = args.concurrency,
        "backing up about {estimate} users of {} to {}",
        pool.name,
        out.display()
    );
    let (kept_prefixes, kept_users) = state.kept();
    if state.resumed() {
        tracing::info!(
            "resuming the backup started at {}: {kept_prefixes} of {prefixes} prefixes \
             ({kept_users} users) kept in {}",
            state.started_at(),
            state.dir()
        );
    }
    let rps = cognito.ceiling(Category::UserList);
    let left = estimate.saturating_sub(kept_users);
    tracing::info!(
        "listing about {left} users takes {} at {rps:.0} ListUsers requests/s ({:.0} users/s), \
         plus the groups' members",
        listing_time(left, rps),
        rps * USERS_PER_REQUEST
    );
    if let Some(s) = args.shard.filter(|s| s.total > 1) {
        let whole = (pool.estimated_users as f64).max(estimate as f64) as u64;
        tracing::info!(
            "the {} shards hold about {whole} users: {} in all, whether they run one after \
             another or at the same time (they share one quota)",
            s.total,
            listing_time(whole, rps)
        );
    }
}

/// ListUsers' largest page.
const USERS_PER_REQUEST: f64 = 60.0;

/// The least time listing `users` takes at `rps` ListUsers requests a second: `at least 6h
/// 10m`.
fn listing_time(users: u64, rps: f64) -> String {
    let seconds = users as f64 / (rps.max(0.5) * USERS_PER_REQUEST);
    if seconds < 1.0 {
        return "less than a second".to_string();
    }
    format!("at least {}", progress::duration_text(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_sets_the_least_time() {
        // The pool: 40,000,000 users at 30 requests of 60 users a second.
        assert_eq!(listing_time(40_000_000, 30.0), "at least 6h 10m");
        assert_eq!(listing_time(40_000_000, 60.0), "at least 3h 05m");
        assert_eq!(listing_time(40, 30.0), "less than a second");
    }
}
