//! `cbr diff`: what changed between two backups, or between a backup and a live pool, user by
//! user, in the vocabulary restore's plan uses (`compare`): users only on one side, and for
//! users on both, the fields that differ (`attribute:email`, `enabled`, `status`, `groups`).
//! Never attribute values. Users are matched as the pool tells them apart (`compare::Identity`:
//! the username, case-folded in a case-insensitive pool, or the email or phone number people
//! sign in with); memory does not grow with the pool (`join`). Two backups, or a backup and the
//! pool it was taken from, are compared literally; a backup and a pool a restore made, as
//! restored (`compare::Comparison`). The backup compared with a pool can be a shard set; a set
//! that splits the memberships is compared with the memberships of its members files, and part
//! of one in the groups its shards listed (`backup_file::members`).

use crate::backup_file::names;
use crate::backup_file::{Identities, Manifest, SetMembers, for_each_record};
use crate::cognito::Cognito;
use crate::compare::{Comparison, Identity, Pairs};
use crate::listing;
use crate::location::Location;
use anyhow::{Context, Result};
use serde::Serialize;

/// The second side of a comparison.
pub enum Other<'a> {
    Backup(Location),
    Pool {
        cognito: &'a Cognito,
        pool_id: String,
    },
}

#[derive(Debug, Serialize)]
pub struct DiffReport {
    pub a: String,
    pub b: String,
    /// `literal`, or `as_restored` when the second side is a pool a restore made.
    pub comparison: Comparison,
    pub users_in_a: u64,
    pub users_in_b: u64,
    pub same: u64,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub different: Vec<UserChange>,
    /// After a restore, not differences: users with a new `sub`, those of them in a status
    /// restore sets, and federated users missing from the pool.
    pub restored_with_new_sub: u64,
    pub status_as_restored: u64,
    pub federated_not_restored: u64,
}

#[derive(Debug, Serialize)]
pub struct UserChange {
    pub username: String,
    pub fields: Vec<String>,
}

impl DiffReport {
    pub fn is_same(&self) -> bool {
        self.only_in_a.is_empty() && self.only_in_b.is_empty() && self.different.is_empty()
    }

    pub fn text(&self) -> String {
        let mut s = match self.comparison {
            Comparison::Exact => format!("compared exactly: {} with {}\n", self.a, self.b),
            Comparison::Literal => format!(
                "compared literally: {} is the pool {} was taken from (users with a new sub, \
                 deleted and restored since, are compared with what the restore made)\n",
                self.b, self.a
            ),
            Comparison::AsRestored => format!(
                "compared as restored: {} was restored from {} (new subs, the statuses \
                 restore sets and federated users are not differences)\n",
                self.b, self.a
            ),
        };
        s.push_str(&format!(
            "{} ({} users) and {} ({} users): {} the same, {} only in the first, {} only in \
             the second, {} different\n",
            self.a,
            self.users_in_a,
            self.b,
            self.users_in_b,
            self.same,
            self.only_in_a.len(),
            self.only_in_b.len(),
            self.different.len()
        ));
        if self.comparison == Comparison::AsRestored || self.restored_with_new_sub > 0 {
            s.push_str(&format!(
                "  as restored: {} users with a new sub, {} of them in a status restore sets; \
                 {} federated users come back on their next sign-in\n",
                self.restored_with_new_sub, self.status_as_restored, self.federated_not_restored
            ));
        }
        for u in &self.only_in_a {
            s.push_str(&format!("  only in the first: {u}\n"));
        }
        for u in &self.only_in_b {
            s.push_str(&format!("  only in the second: {u}\n"));
        }
        for d in &self.different {
            s.push_str(&format!(
                "  different: {} ({})\n",
                d.username,
                d.fields.join(", ")
            ));
        }
        s.push_str(if self.is_same() {
            "diff: the same\n"
        } else {
            "diff: DIFFERENCES FOUND\n"
        });
        s
    }
}

/// The backup's manifest, if it has one.
fn manifest_of(path: &Location) -> Result<Option<Manifest>> {
    let manifest = names::manifest_path(path);
    if !manifest.exists() {
        return Ok(None);
    }
    Manifest::read(&manifest).map(Some)
}

/// How the first side is named: its file, or the first of its files and their number.
fn name_of(files: &[Location]) -> String {
    match files {
        [one] => one.display().to_string(),
        [first, ..] => format!("{} … ({} files)", first.display(), files.len()),
        [] => String::new(),
    }
}

/// Compares the backup in the files `a` (one file, or the shards of a set) with `b`.
pub async fn run(a: &[Location], b: Other<'_>, ids: &Identities) -> Result<DiffReport> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let manifests = a
        .iter()
        .map(manifest_of)
        .collect::<Result<Vec<Option<Manifest>>>>()?;
    let manifest = manifests.first().cloned().flatten();
    let expected = manifests.iter().flatten().map(|m| m.user_count).sum();
    let (b_path, b_name, identity, comparison) = match b {
        Other::Backup(path) => {
            let name = path.display().to_string();
            let identity = manifest
                .as_ref()
                .map(Identity::of_backup)
                .unwrap_or_default();
            (path, name, identity, Comparison::Exact)
        }
        Other::Pool { cognito, pool_id } => {
            let known: Vec<Manifest> = manifests.iter().flatten().cloned().collect();
            let comparison = Comparison::with_pool(&pool_id, &a[0], &known);
            let snap = listing::snapshot(cognito, &pool_id, None, dir.path(), false).await?;
            let identity = Identity::of(&snap.pool);
            (snap.data, format!("pool {pool_id}"), identity, comparison)
        }
    };
    let mut report = DiffReport {
        a: name_of(a),
        b: b_name,
        comparison,
        users_in_a: 0,
        users_in_b: 0,
        same: 0,
        only_in_a: vec![],
        only_in_b: vec![],
        different: vec![],
        restored_with_new_sub: 0,
        status_as_restored: 0,
        federated_not_restored: 0,
    };
    // A shard set that splits the memberships: its records with the memberships its members
    // files hold, compared in the groups both sides cover.
    let members_a = SetMembers::load(a, ids, dir.path(), false)?;
    let members_b = match comparison {
        Comparison::Exact => {
            SetMembers::load(std::slice::from_ref(&b_path), ids, dir.path(), false)?
        }
        _ => SetMembers::default(),
    };
    let mut pairs = Pairs::new(dir.path(), expected, identity.clone())?;
    for path in a {
        report.users_in_a += for_each_record(path, ids, |_, mut u| {
            members_a.complete(&mut u)?;
            members_b.restrict(&mut u.groups);
            pairs.want(&u)
        })?;
    }
    report.users_in_b = for_each_record(&b_path, ids, |_, mut u| {
        members_b.complete(&mut u)?;
        members_a.restrict(&mut u.groups);
        pairs.have(&u)
    })?;
    pairs.walk(|a, b| {
        match (a, b) {
            (Some(a), Some(b)) => {
                let judged = comparison.judge(&a, &b);
                report.restored_with_new_sub += u64::from(judged.new_sub);
                report.status_as_restored += u64::from(judged.status_as_restored);
                if judged.fields.is_empty() {
                    report.same += 1;
                } else {
                    report.different.push(UserChange {
                        username: identity.name(&a),
                        fields: judged.fields,
                    });
                }
            }
            (Some(a), None) if comparison.missing_is_expected(&a) => {
                report.federated_not_restored += 1;
            }
            (Some(a), None) => report.only_in_a.push(identity.name(&a)),
            (None, Some(b)) => report.only_in_b.push(identity.name(&b)),
            (None, None) => {}
        }
        Ok(())
    })?;
    report.only_in_a.sort();
    report.only_in_b.sort();
    report.different.sort_by(|x, y| x.username.cmp(&y.username));
    Ok(report)
}
