//! `cbr verify`: is a backup whole, and does it still match the pool? Checks each file against
//! its manifest (SHA-256, user count, every record parses; an encrypted file without its key,
//! the SHA-256 alone) and that every shard of a set is present; given a pool, takes a fresh
//! backup of the same slice into a private temporary directory and compares user by user
//! (missing, extra, or with other attributes, state or groups) and group by group (missing,
//! or with another description, precedence or role). `sub` and dates are not compared: a
//! restored pool has new ones. What cannot be compared is said, never counted as a match.
//!
//! By part: `report` (what was found, and its text), `files` (each file against its manifest),
//! `pool` (the comparison with a live pool).

mod files;
mod pool;
mod report;

pub use report::{
    Difference, FileCheck, GroupDifference, NotCompared, PoolComparison, VerifyReport,
};

use crate::backup_file::{GroupRecord, Identities, Manifest, missing_members, read_groups_files};
use crate::cognito::Cognito;
use crate::location::Location;
use anyhow::{Context, Result, bail};
use files::check_file;
use pool::compare_with_pool;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What to verify, checked and complete before any work starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// Backup files or S3 objects (for a sharded backup, any or all shards of the set).
    pub inputs: Vec<Location>,
    /// Also compare with this live pool.
    pub pool_id: Option<String>,
    /// `cognito-backup`'s groups file, when not beside an input.
    pub groups_file: Option<PathBuf>,
}

/// Checks the files; with `pool` (the client and its region, needed only with `--pool-id`),
/// compares them with the pool too. A file that cannot be opened, or an encrypted file with
/// neither key nor manifest, is an error; what a readable file holds that is wrong is a
/// problem in the report.
pub async fn run(
    pool: Option<(&Cognito, &str)>,
    args: &Options,
    ids: Identities,
) -> Result<VerifyReport> {
    for path in &args.inputs {
        let Location::Local(local) = path else {
            continue; // S3 objects are checked as they are read
        };
        let meta =
            std::fs::metadata(local).with_context(|| format!("reading {}", path.display()))?;
        if !meta.is_file() {
            bail!("reading {}: not a file", path.display());
        }
    }
    let mut report = VerifyReport::default();
    let mut manifests = Vec::new();
    for path in &args.inputs {
        let (check, manifest) = check_file(path, &ids)?;
        if !check.records_read {
            report.not_compared.push(NotCompared {
                what: "records".to_string(),
                why: format!(
                    "{} is encrypted and no --identity was given: only its SHA-256 was checked",
                    path.display()
                ),
            });
        }
        report.files.push(check);
        if let Some(m) = manifest {
            manifests.push((path.clone(), m));
        }
    }
    report.missing_shards = missing_members(manifests.iter().map(|(p, m)| (p, m)), |p| p.exists());
    let groups_files = read_groups_files(&args.inputs, args.groups_file.as_deref())?;
    report.groups_files = groups_files.iter().map(|g| g.path.clone()).collect();
    let mut definitions: BTreeMap<String, GroupRecord> = BTreeMap::new();
    for g in manifests
        .iter()
        .flat_map(|(_, m)| m.groups.iter())
        .chain(groups_files.iter().flat_map(|f| f.groups.iter()))
    {
        definitions.insert(g.name.clone(), g.clone());
    }
    if let (Some(pool_id), Some((cognito, region))) = (&args.pool_id, pool) {
        if report.files.iter().all(|f| f.records_read) {
            let manifests: Vec<Manifest> = manifests.into_iter().map(|(_, m)| m).collect();
            let (cmp, not_compared) =
                compare_with_pool(cognito, pool_id, args, &manifests, &definitions, &ids).await?;
            report.pool = Some(cmp);
            report.not_compared.extend(not_compared);
        } else {
            report.not_compared.push(NotCompared {
                what: format!("pool {pool_id}"),
                why: "the backup's records were not read (pass --identity)".to_string(),
            });
        }
        let (drift, not_compared) =
            crate::pool_config::drift_from_backup(cognito, region, pool_id, &args.inputs[0], &ids)
                .await?;
        report.config_drift = drift;
        report
            .not_compared
            .extend(not_compared.into_iter().map(|why| NotCompared {
                what: "configuration".to_string(),
                why,
            }));
    }
    Ok(report)
}
