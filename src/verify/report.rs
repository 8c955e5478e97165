//! What verify found, as JSON (`--output json`) and as text, and whether it all matched.

use crate::compare::Comparison;
use crate::location::Location;
use serde::Serialize;
use std::path::PathBuf;

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
                Comparison::Exact | Comparison::Literal => format!(
                    "compared literally: {} is the pool the backup was taken from (users with a \
                     new sub, deleted and restored since, are compared with what the restore \
                     made)\n",
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
            if p.comparison == Comparison::AsRestored || p.restored_with_new_sub > 0 {
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
