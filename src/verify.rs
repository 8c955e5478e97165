//! `cbr verify`: is a backup whole, and does it still match the pool? Checks each file against
//! its manifest (SHA-256, user count, every record parses; an encrypted file without its key,
//! the SHA-256 alone) and that every shard of a set is present; given a pool, takes a fresh
//! backup of the same slice into a private temporary directory and compares user by user
//! (missing, extra, or with other attributes, state or groups) and group by group (missing,
//! or with another description, precedence or role). `sub` and dates are not compared: a
//! restored pool has new ones. What cannot be compared is said, never counted as a match.

use crate::backup;
use crate::backup_file::names;
use crate::backup_file::{
    EXTERNAL_PROVIDER, GroupRecord, Identities, Manifest, UserRecord, for_each_record,
    is_age_encrypted, missing_members, read_groups_files, sha256_file,
};
use crate::cli::{BackupArgs, VerifyArgs};
use crate::cognito::Cognito;
use crate::compare::{Comparison, Identity};
use crate::join::Join;
use crate::location::Location;
use crate::shard::Shard;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Examples kept per kind of difference; the counts are always complete.
const EXAMPLES: usize = 20;

#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub files: Vec<FileCheck>,
    /// Shard files of a set that are not there.
    pub missing_shards: Vec<Location>,
    /// `cognito-backup` groups files whose group settings were read.
    pub groups_files: Vec<PathBuf>,
    pub pool: Option<PoolComparison>,
    /// What could not be checked or compared, and why; never counted as a match.
    pub not_compared: Vec<NotCompared>,
    /// With a pool and a configuration file beside the first input: how the pool's
    /// configuration differs from the recorded one (`pool_config::drift`).
    pub config_drift: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct FileCheck {
    pub path: Location,
    /// Users in the file; `null` when its records could not be read.
    pub users: Option<u64>,
    pub manifest: bool,
    /// Whether the records were read (not when the file is encrypted and no key was given).
    pub records_read: bool,
    pub problems: Vec<String>,
}

/// Something verify could not check or compare: `what` (`records`, `users`,
/// `group memberships`, `group settings`) and `why`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotCompared {
    pub what: String,
    pub why: String,
}

#[derive(Debug, Serialize)]
pub struct PoolComparison {
    pub pool_id: String,
    /// `literal` with the pool the backup was taken from; `as_restored` with a pool a restore
    /// made (another pool, or one with a sub map beside the backup).
    pub comparison: Comparison,
    pub users_in_pool: u64,
    pub users_in_backup: u64,
    pub matching: u64,
    pub missing_from_pool: u64,
    pub extra_in_pool: u64,
    pub different: u64,
    /// After a restore, not differences: matching users with a new `sub`, those of them in a
    /// status restore sets, and federated users who come back on their next sign-in.
    pub restored_with_new_sub: u64,
    pub status_as_restored: u64,
    pub federated_not_restored: u64,
    pub groups_missing_from_pool: Vec<String>,
    /// Groups in the pool whose description, precedence or role differ from the backup's.
    pub groups_different: u64,
    pub examples_missing: Vec<String>,
    pub examples_extra: Vec<String>,
    pub examples_different: Vec<Difference>,
    pub examples_groups_different: Vec<GroupDifference>,
}

#[derive(Debug, Serialize)]
pub struct Difference {
    pub user: String,
    /// In restore's and diff's vocabulary: `attribute:<name>`, `enabled`, `status`, `groups`.
    pub fields: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct GroupDifference {
    pub group: String,
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
                    && p.groups_different == 0
            })
            && self.config_drift.as_ref().is_none_or(Vec::is_empty)
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        for f in &self.files {
            let users = f.users.map_or("?".to_string(), |n| n.to_string());
            let status = if f.problems.is_empty() { "ok" } else { "BAD" };
            if !f.problems.is_empty() {
                s.push_str(&format!("{status} {}:\n", f.path.display()));
                for p in &f.problems {
                    s.push_str(&format!("      {p}\n"));
                }
            } else if !f.records_read {
                s.push_str(&format!(
                    "{status}  {}: SHA-256 matches the manifest ({users} users by the manifest); \
                     records not read\n",
                    f.path.display()
                ));
            } else {
                let checked = if f.manifest {
                    "checksum and count match the manifest"
                } else {
                    "no manifest: parsed only"
                };
                s.push_str(&format!(
                    "{status}  {}: {users} users, {checked}\n",
                    f.path.display()
                ));
            }
        }
        for m in &self.missing_shards {
            s.push_str(&format!("BAD missing shard file {}\n", m.display()));
        }
        for g in &self.groups_files {
            s.push_str(&format!("groups file {}\n", g.display()));
        }
        if let Some(p) = &self.pool {
            s.push_str(&match p.comparison {
                Comparison::Literal => format!(
                    "compared literally: {} is the pool the backup was taken from\n",
                    p.pool_id
                ),
                Comparison::AsRestored => format!(
                    "compared as restored: {} was restored from the backup (new subs, the \
                     statuses restore sets and federated users are not differences)\n",
                    p.pool_id
                ),
            });
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
            if p.comparison == Comparison::AsRestored {
                s.push_str(&format!(
                    "  as restored: {} users with a new sub, {} of them in a status restore \
                     sets; {} federated users come back on their next sign-in\n",
                    p.restored_with_new_sub, p.status_as_restored, p.federated_not_restored
                ));
            }
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
            for d in &p.examples_groups_different {
                s.push_str(&format!(
                    "  group different: {} ({})\n",
                    d.group,
                    d.fields.join(", ")
                ));
            }
        }
        if let Some(drift) = &self.config_drift {
            s.push_str(&format!("configuration: {} differences\n", drift.len()));
            for d in drift {
                s.push_str(&format!("  {d}\n"));
            }
        }
        for n in &self.not_compared {
            s.push_str(&format!("not compared: {}: {}\n", n.what, n.why));
        }
        s.push_str(match (self.ok(), self.not_compared.is_empty()) {
            (true, true) => "verify: OK\n",
            (true, false) => "verify: OK, except what was not compared (above)\n",
            (false, _) => "verify: DIFFERENCES FOUND\n",
        });
        s
    }
}

/// Checks the files; with `pool` (the client and its region, needed only with `--pool-id`),
/// compares them with the pool too. A file that cannot be opened, or an encrypted file with
/// neither key nor manifest, is an error; what a readable file holds that is wrong is a
/// problem in the report.
pub async fn run(
    pool: Option<(&Cognito, &str)>,
    args: &VerifyArgs,
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
            let (cmp, not_compared) = compare_with_pool(
                cognito,
                region,
                pool_id,
                args,
                &manifests,
                &definitions,
                &ids,
            )
            .await?;
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

/// Checks one file against its manifest. An encrypted file without identities is checked by
/// its SHA-256 alone, which needs a manifest.
fn check_file(path: &Location, ids: &Identities) -> Result<(FileCheck, Option<Manifest>)> {
    let mut check = FileCheck {
        path: path.clone(),
        users: None,
        manifest: false,
        records_read: true,
        problems: Vec::new(),
    };
    let manifest_path = names::manifest_path(path);
    let has_manifest = manifest_path.exists();
    if ids.is_empty() && is_age_encrypted(path)? {
        if !has_manifest {
            bail!(
                "{} is encrypted with age and has no manifest ({}): without --identity there \
                 is nothing to check it against",
                path.display(),
                manifest_path.display()
            );
        }
        check.records_read = false;
    } else {
        match for_each_record(path, ids, |_, _| Ok(())) {
            Ok(n) => check.users = Some(n),
            Err(e) => check.problems.push(format!("{e:#}")),
        }
    }
    if !has_manifest {
        return Ok((check, None));
    }
    check.manifest = true;
    let manifest = match Manifest::read(&manifest_path) {
        Ok(m) => m,
        Err(e) => {
            check.problems.push(format!("{e:#}"));
            return Ok((check, None));
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
    if !check.records_read {
        check.users = Some(manifest.user_count);
    } else if let Some(n) = check.users
        && n != manifest.user_count
    {
        check.problems.push(format!(
            "{n} users in the file, the manifest says {}",
            manifest.user_count
        ));
    }
    Ok((check, Some(manifest)))
}

/// The settings of a group that differ between the backup and the pool. An empty description
/// is no description, as Cognito returns it.
fn group_differences(was: &GroupRecord, now: &GroupRecord) -> Vec<&'static str> {
    let text = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let mut fields = Vec::new();
    if text(&was.description) != text(&now.description) {
        fields.push("description");
    }
    if was.precedence != now.precedence {
        fields.push("precedence");
    }
    if text(&was.role_arn) != text(&now.role_arn) {
        fields.push("role");
    }
    fields
}

async fn compare_with_pool(
    cognito: &Cognito,
    region: &str,
    pool_id: &str,
    args: &VerifyArgs,
    manifests: &[Manifest],
    definitions: &BTreeMap<String, GroupRecord>,
    ids: &Identities,
) -> Result<(PoolComparison, Vec<NotCompared>)> {
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
    // Who is who, as the pool tells its users apart; and whether a restore made the pool.
    let identity = Identity::of(&cognito.describe_pool(pool_id).await?);
    let comparison = Comparison::with_pool(pool_id, &args.inputs[0], manifests);

    let dir = tempfile::tempdir()?;
    let live_args = BackupArgs {
        pool_id: pool_id.to_string(),
        out: dir.path().join("live.json").into(),
        shard: single,
        concurrency: 8,
        max_rps: None,
        no_progress: false,
        recipient: vec![],
        recipients_file: vec![],
        sse_kms_key_id: None,
    };
    let summary = backup::snapshot(cognito, region, &live_args).await?;
    let in_scope = |user: &UserRecord| {
        whole
            || single.is_some()
            || user
                .sub()
                .is_some_and(|sub| shards.iter().flatten().any(|s| s.contains_sub(sub)))
    };
    let mut join = Join::new(dir.path(), summary.users)?;
    let mut cmp = PoolComparison {
        pool_id: pool_id.to_string(),
        comparison,
        users_in_pool: 0,
        users_in_backup: 0,
        matching: 0,
        missing_from_pool: 0,
        extra_in_pool: 0,
        different: 0,
        restored_with_new_sub: 0,
        status_as_restored: 0,
        federated_not_restored: 0,
        groups_missing_from_pool: vec![],
        groups_different: 0,
        examples_missing: vec![],
        examples_extra: vec![],
        examples_different: vec![],
        examples_groups_different: vec![],
    };
    for_each_record(&summary.data, &Identities::default(), |_, user| {
        if in_scope(&user) {
            cmp.users_in_pool += 1;
            join.push_right(&identity.key_or_name(&user), &user)?;
        }
        Ok(())
    })?;
    let live_groups: BTreeMap<String, GroupRecord> = Manifest::read(&summary.manifest)?
        .groups
        .into_iter()
        .map(|g| (g.name.clone(), g))
        .collect();
    let mut wanted_groups: BTreeSet<String> = definitions.keys().cloned().collect();
    let mut without_memberships = 0u64;
    for path in &args.inputs {
        for_each_record(path, ids, |_, user| {
            cmp.users_in_backup += 1;
            wanted_groups.extend(user.groups().iter().cloned());
            without_memberships += u64::from(user.groups.is_none());
            join.push_left(&identity.key_or_name(&user), &user)
        })?;
    }
    join.run(|was, now| {
        match (was, now) {
            (Some(was), None) if comparison.missing_is_expected(&was) => {
                cmp.federated_not_restored += 1;
            }
            (Some(was), None) => {
                cmp.missing_from_pool += 1;
                if cmp.examples_missing.len() < EXAMPLES {
                    let note = if was.status() == EXTERNAL_PROVIDER {
                        " (federated: returns on next sign-in)"
                    } else {
                        ""
                    };
                    cmp.examples_missing
                        .push(format!("{}{note}", identity.name(&was)));
                }
            }
            (None, Some(now)) => {
                cmp.extra_in_pool += 1;
                if cmp.examples_extra.len() < EXAMPLES {
                    cmp.examples_extra.push(identity.name(&now));
                }
            }
            (Some(was), Some(now)) => {
                // A file without memberships says nothing about them (see not_compared).
                let judged = comparison.judge(&was, &now);
                cmp.restored_with_new_sub += u64::from(judged.new_sub);
                cmp.status_as_restored += u64::from(judged.status_as_restored);
                if judged.fields.is_empty() {
                    cmp.matching += 1;
                } else {
                    cmp.different += 1;
                    if cmp.examples_different.len() < EXAMPLES {
                        cmp.examples_different.push(Difference {
                            user: identity.name(&was),
                            fields: judged.fields,
                        });
                    }
                }
            }
            (None, None) => {}
        }
        Ok(())
    })?;
    cmp.examples_extra.sort();
    cmp.groups_missing_from_pool = wanted_groups
        .iter()
        .filter(|g| !live_groups.contains_key(*g))
        .cloned()
        .collect();
    for (name, was) in definitions {
        let Some(now) = live_groups.get(name) else {
            continue;
        };
        let fields = group_differences(was, now);
        if !fields.is_empty() {
            cmp.groups_different += 1;
            if cmp.examples_groups_different.len() < EXAMPLES {
                cmp.examples_groups_different.push(GroupDifference {
                    group: name.clone(),
                    fields,
                });
            }
        }
    }

    let mut not_compared = Vec::new();
    if without_memberships > 0 && !live_groups.is_empty() {
        not_compared.push(NotCompared {
            what: "group memberships".to_string(),
            why: format!(
                "not in the file ({without_memberships} users have no Groups list; the pool has \
                 groups)"
            ),
        });
    }
    let undefined: Vec<&String> = wanted_groups
        .iter()
        .filter(|g| !definitions.contains_key(*g) && live_groups.contains_key(*g))
        .collect();
    if definitions.is_empty() && !live_groups.is_empty() {
        not_compared.push(NotCompared {
            what: "group settings".to_string(),
            why: "not in the file (no manifest or --groups-file holds the groups' description, \
                  precedence and role)"
                .to_string(),
        });
    } else if !undefined.is_empty() {
        not_compared.push(NotCompared {
            what: "group settings".to_string(),
            why: format!(
                "not in the file for {} group(s), named only in Groups lists (a manifest or \
                 --groups-file holds them)",
                undefined.len()
            ),
        });
    }
    Ok((cmp, not_compared))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::UserDiff;

    fn group(
        description: Option<&str>,
        precedence: Option<i32>,
        role: Option<&str>,
    ) -> GroupRecord {
        GroupRecord {
            name: "g".into(),
            description: description.map(str::to_string),
            precedence,
            role_arn: role.map(str::to_string),
        }
    }

    #[test]
    fn group_settings_are_compared_field_by_field() {
        let backup = group(Some("Admins"), Some(1), Some("arn:r"));
        assert!(group_differences(&backup, &backup).is_empty());
        assert_eq!(
            group_differences(&backup, &group(None, None, None)),
            ["description", "precedence", "role"]
        );
        assert_eq!(
            group_differences(&backup, &group(Some("Admins"), Some(2), Some("arn:r"))),
            ["precedence"]
        );
        assert!(
            group_differences(&group(Some(""), None, None), &group(None, None, None)).is_empty()
        );
    }

    #[test]
    fn an_empty_group_list_is_no_groups_in_any_order() {
        let user = |groups: Option<&[&str]>| -> UserRecord {
            let mut u: UserRecord = serde_json::from_str(r#"{"Username":"a"}"#).unwrap();
            u.groups = groups.map(|g| g.iter().map(|s| s.to_string()).collect());
            u
        };
        let empty: &[&str] = &[];
        assert!(UserDiff::between(&user(Some(empty)), &user(None)).is_empty());
        let (ab, ba) = (user(Some(&["a", "b"])), user(Some(&["b", "a"])));
        assert!(UserDiff::between(&ab, &ba).is_empty());
        assert_eq!(
            UserDiff::between(&ab, &user(Some(empty))).fields(),
            ["groups"]
        );
    }
}
