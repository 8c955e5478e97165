//! `cbr verify`: is a backup whole, and does it still match the pool? Checks each file against
//! its manifest (SHA-256, user count, every record parses) and that every shard of a set is
//! present; given a pool, takes a fresh backup of the same slice into a private temporary
//! directory and compares user by user: missing, extra, or with other attributes, state or
//! groups. `sub` and dates are not compared: a restored pool has new ones.

use crate::backup;
use crate::backup_file::{
    EXTERNAL_PROVIDER, Identities, Manifest, UserRecord, for_each_record, sha256_file,
};
use crate::cli::{BackupArgs, VerifyArgs};
use crate::cognito::Cognito;
use crate::shard::{self, Shard};
use anyhow::Result;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

/// Examples kept per kind of difference; the counts are always complete.
const EXAMPLES: usize = 20;

#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub files: Vec<FileCheck>,
    /// Shard files of a set that are not there.
    pub missing_shards: Vec<PathBuf>,
    pub pool: Option<PoolComparison>,
    /// With a pool and a configuration file beside the first input: how the pool's
    /// configuration differs from the recorded one (`pool_config::drift`).
    pub config_drift: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct FileCheck {
    pub path: PathBuf,
    pub users: Option<u64>,
    pub manifest: bool,
    pub problems: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct PoolComparison {
    pub pool_id: String,
    pub users_in_pool: u64,
    pub users_in_backup: u64,
    pub matching: u64,
    pub missing_from_pool: u64,
    pub extra_in_pool: u64,
    pub different: u64,
    pub groups_missing_from_pool: Vec<String>,
    pub examples_missing: Vec<String>,
    pub examples_extra: Vec<String>,
    pub examples_different: Vec<Difference>,
}

#[derive(Debug, Serialize)]
pub struct Difference {
    pub user: String,
    pub fields: Vec<&'static str>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.files.iter().all(|f| f.problems.is_empty())
            && self.missing_shards.is_empty()
            && self.pool.as_ref().is_none_or(|p| {
                p.missing_from_pool == 0
                    && p.extra_in_pool == 0
                    && p.different == 0
                    && p.groups_missing_from_pool.is_empty()
            })
            && self.config_drift.as_ref().is_none_or(Vec::is_empty)
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        for f in &self.files {
            let users = f.users.map_or("?".to_string(), |n| n.to_string());
            let status = if f.problems.is_empty() { "ok" } else { "BAD" };
            let checked = if f.manifest {
                "checksum and count match the manifest"
            } else {
                "no manifest: parsed only"
            };
            if f.problems.is_empty() {
                s.push_str(&format!(
                    "{status}  {}: {users} users, {checked}\n",
                    f.path.display()
                ));
            } else {
                s.push_str(&format!("{status} {}:\n", f.path.display()));
                for p in &f.problems {
                    s.push_str(&format!("      {p}\n"));
                }
            }
        }
        for m in &self.missing_shards {
            s.push_str(&format!("BAD missing shard file {}\n", m.display()));
        }
        if let Some(p) = &self.pool {
            s.push_str(&format!(
                "pool {}: {} users in the pool, {} in the backup: {} match, {} missing from the \
                 pool, {} only in the pool, {} different\n",
                p.pool_id,
                p.users_in_pool,
                p.users_in_backup,
                p.matching,
                p.missing_from_pool,
                p.extra_in_pool,
                p.different
            ));
            for u in &p.examples_missing {
                s.push_str(&format!("  missing from the pool: {u}\n"));
            }
            for u in &p.examples_extra {
                s.push_str(&format!("  only in the pool: {u}\n"));
            }
            for d in &p.examples_different {
                s.push_str(&format!(
                    "  different: {} ({})\n",
                    d.user,
                    d.fields.join(", ")
                ));
            }
            for g in &p.groups_missing_from_pool {
                s.push_str(&format!("  group missing from the pool: {g}\n"));
            }
        }
        if let Some(drift) = &self.config_drift {
            s.push_str(&format!("configuration: {} differences\n", drift.len()));
            for d in drift {
                s.push_str(&format!("  {d}\n"));
            }
        }
        s.push_str(if self.ok() {
            "verify: OK\n"
        } else {
            "verify: DIFFERENCES FOUND\n"
        });
        s
    }
}

/// Checks the files; with `pool` (the client and its region, needed only with `--pool-id`),
/// compares them with the pool too.
pub async fn run(
    pool: Option<(&Cognito, &str)>,
    args: &VerifyArgs,
    ids: Identities,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut manifests = Vec::new();
    let mut missing = BTreeSet::new();
    for path in &args.inputs {
        let (check, manifest) = check_file(path, &ids);
        report.files.push(check);
        if let Some(m) = manifest {
            if let Some(shard) = m.shard.as_deref().and_then(|s| s.parse::<Shard>().ok())
                && let Some(base) = shard::unshard_path(path, shard.index)
            {
                for i in 1..=shard.total {
                    let sibling = shard::shard_path(&base, i);
                    if !sibling.exists() {
                        missing.insert(sibling);
                    }
                }
            }
            manifests.push(m);
        }
    }
    report.missing_shards = missing.into_iter().collect();
    if let (Some(pool_id), Some((cognito, region))) = (&args.pool_id, pool) {
        report.pool =
            Some(compare_with_pool(cognito, region, pool_id, args, &manifests, &ids).await?);
        report.config_drift =
            crate::pool_config::drift_from_backup(cognito, region, pool_id, &args.inputs[0], &ids)
                .await?;
    }
    Ok(report)
}

fn check_file(path: &Path, ids: &Identities) -> (FileCheck, Option<Manifest>) {
    let mut check = FileCheck {
        path: path.to_path_buf(),
        users: None,
        manifest: false,
        problems: Vec::new(),
    };
    match for_each_record(path, ids, |_, _| Ok(())) {
        Ok(n) => check.users = Some(n),
        Err(e) => check.problems.push(format!("{e:#}")),
    }
    let manifest_path = shard::manifest_path(path);
    if !manifest_path.exists() {
        return (check, None);
    }
    check.manifest = true;
    let manifest = match Manifest::read(&manifest_path) {
        Ok(m) => m,
        Err(e) => {
            check.problems.push(format!("{e:#}"));
            return (check, None);
        }
    };
    match sha256_file(path) {
        Ok(sum) if sum != manifest.sha256 => check.problems.push(format!(
            "SHA-256 is {sum}, the manifest says {}: the file was changed or damaged",
            manifest.sha256
        )),
        Ok(_) => {}
        Err(e) => check.problems.push(format!("{e:#}")),
    }
    if let Some(n) = check.users
        && n != manifest.user_count
    {
        check.problems.push(format!(
            "{n} users in the file, the manifest says {}",
            manifest.user_count
        ));
    }
    (check, Some(manifest))
}

/// What is compared of a user: attributes without `sub`, enabled, status, groups.
struct Fingerprint {
    attributes: u64,
    enabled: bool,
    status: String,
    groups: Option<u64>,
}

fn fingerprint(user: &UserRecord) -> Fingerprint {
    let mut attributes: Vec<(&str, Option<&str>)> = user
        .attributes
        .iter()
        .filter(|a| a.name != "sub")
        .map(|a| (a.name.as_str(), a.value.as_deref()))
        .collect();
    attributes.sort();
    let groups = user.groups.as_ref().map(|g| {
        let mut g: Vec<&String> = g.iter().collect();
        g.sort();
        hash(&g)
    });
    Fingerprint {
        attributes: hash(&attributes),
        enabled: user.enabled,
        status: user.status().to_string(),
        groups,
    }
}

fn hash(value: &impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Users are matched by username, or in pools where people sign in with email or phone (whose
/// usernames are generated), by that attribute.
fn key(user: &UserRecord, sign_in: Option<&str>) -> String {
    sign_in
        .and_then(|a| user.attribute(a))
        .map_or_else(|| user.username.clone(), str::to_string)
}

async fn compare_with_pool(
    cognito: &Cognito,
    region: &str,
    pool_id: &str,
    args: &VerifyArgs,
    manifests: &[Manifest],
    ids: &Identities,
) -> Result<PoolComparison> {
    // The slice to read: one shard if every input is that shard, else the whole pool
    // filtered to the inputs' shards.
    let shards: Vec<Option<Shard>> = if manifests.len() == args.inputs.len() {
        manifests
            .iter()
            .map(|m| m.shard.as_deref().and_then(|s| s.parse().ok()))
            .collect()
    } else {
        vec![None]
    };
    let whole = shards.iter().any(Option::is_none);
    let single = match shards.as_slice() {
        [Some(s)] => Some(*s),
        _ => None,
    };
    let sign_in = manifests
        .iter()
        .flat_map(|m| m.username_attributes.first())
        .next()
        .cloned();

    let dir = tempfile::tempdir()?;
    let live_path = dir.path().join("live.json");
    let live_args = BackupArgs {
        pool_id: pool_id.to_string(),
        out: live_path.clone(),
        shard: single,
        concurrency: 8,
        max_rps: args.max_rps,
        no_progress: false,
        recipient: vec![],
        recipients_file: vec![],
    };
    let summary = backup::run(cognito, region, &live_args).await?;
    let mut live: HashMap<String, Fingerprint> = HashMap::new();
    let in_scope = |user: &UserRecord| {
        whole
            || single.is_some()
            || user
                .sub()
                .is_some_and(|sub| shards.iter().flatten().any(|s| s.contains_sub(sub)))
    };
    for_each_record(&summary.data, &Identities::default(), |_, user| {
        if in_scope(&user) {
            live.insert(key(&user, sign_in.as_deref()), fingerprint(&user));
        }
        Ok(())
    })?;
    let mut cmp = PoolComparison {
        pool_id: pool_id.to_string(),
        users_in_pool: live.len() as u64,
        ..Default::default()
    };
    let live_groups: BTreeSet<String> = Manifest::read(&summary.manifest)?
        .groups
        .into_iter()
        .map(|g| g.name)
        .collect();
    let mut wanted_groups = BTreeSet::new();
    for m in manifests {
        wanted_groups.extend(m.groups.iter().map(|g| g.name.clone()));
    }

    let mut seen: BTreeSet<String> = BTreeSet::new();
    for path in &args.inputs {
        for_each_record(path, ids, |_, user| {
            cmp.users_in_backup += 1;
            wanted_groups.extend(user.groups().iter().cloned());
            let k = key(&user, sign_in.as_deref());
            let Some(now) = live.get(&k) else {
                cmp.missing_from_pool += 1;
                if cmp.examples_missing.len() < EXAMPLES {
                    let note = if user.status() == EXTERNAL_PROVIDER {
                        " (federated: returns on next sign-in)"
                    } else {
                        ""
                    };
                    cmp.examples_missing.push(format!("{k}{note}"));
                }
                return Ok(());
            };
            seen.insert(k.clone());
            let was = fingerprint(&user);
            let mut fields = Vec::new();
            if was.attributes != now.attributes {
                fields.push("attributes");
            }
            if was.enabled != now.enabled {
                fields.push("enabled");
            }
            if was.status != now.status {
                fields.push("status");
            }
            if was.groups.is_some() && was.groups != now.groups {
                fields.push("groups");
            }
            if fields.is_empty() {
                cmp.matching += 1;
            } else {
                cmp.different += 1;
                if cmp.examples_different.len() < EXAMPLES {
                    cmp.examples_different.push(Difference { user: k, fields });
                }
            }
            Ok(())
        })?;
    }
    for k in live.keys().filter(|k| !seen.contains(*k)) {
        cmp.extra_in_pool += 1;
        if cmp.examples_extra.len() < EXAMPLES {
            cmp.examples_extra.push(k.clone());
        }
    }
    cmp.examples_extra.sort();
    cmp.groups_missing_from_pool = wanted_groups.difference(&live_groups).cloned().collect();
    Ok(cmp)
}
