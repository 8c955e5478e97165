//! `cbr diff`: what changed between two backups, or between a backup and a live pool, user by
//! user, in the vocabulary restore's plan uses (`compare`): users only on one side, and for
//! users on both, the fields that differ (`attribute:email`, `enabled`, `status`, `groups`).
//! Never attribute values. Users are matched by username, or in pools where people sign in
//! with email or phone, by that attribute; memory does not grow with the pool (`join`).

use crate::backup;
use crate::backup_file::{Identities, Manifest, UserRecord, for_each_record};
use crate::cognito::Cognito;
use crate::compare::UserDiff;
use crate::join::Join;
use crate::shard;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The second side of a comparison.
pub enum Other<'a> {
    Backup(PathBuf),
    Pool {
        cognito: &'a Cognito,
        region: &'a str,
        pool_id: String,
    },
}

#[derive(Debug, Default, Serialize)]
pub struct DiffReport {
    pub a: String,
    pub b: String,
    pub users_in_a: u64,
    pub users_in_b: u64,
    pub same: u64,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub different: Vec<UserChange>,
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
        let mut s = format!(
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
        );
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

/// From the backup's manifest, if it has one: the attribute users are matched by (the
/// sign-in attribute of its pool) and about how many users there are.
fn from_manifest(path: &Path) -> Result<(Option<String>, u64)> {
    let manifest = shard::manifest_path(path);
    if !manifest.exists() {
        return Ok((None, 0));
    }
    let m = Manifest::read(&manifest)?;
    Ok((m.username_attributes.first().cloned(), m.user_count))
}

fn key(user: &UserRecord, sign_in: Option<&str>) -> String {
    sign_in
        .and_then(|a| user.attribute(a))
        .map_or_else(|| user.username.clone(), str::to_string)
}

/// Compares the backup `a` with `b`.
pub async fn run(a: &Path, b: Other<'_>, ids: &Identities) -> Result<DiffReport> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let (sign_in, expected) = from_manifest(a)?;
    let (b_path, b_name) = match b {
        Other::Backup(path) => {
            let name = path.display().to_string();
            (path, name)
        }
        Other::Pool {
            cognito,
            region,
            pool_id,
        } => {
            let snap = backup::read_pool(cognito, region, &pool_id, dir.path(), false).await?;
            (snap.data, format!("pool {pool_id}"))
        }
    };
    let mut report = DiffReport {
        a: a.display().to_string(),
        b: b_name,
        ..DiffReport::default()
    };
    let mut join = Join::new(dir.path(), expected)?;
    let sign_in = sign_in.as_deref();
    report.users_in_a = for_each_record(a, ids, |_, u| join.push_left(&key(&u, sign_in), &u))?;
    report.users_in_b =
        for_each_record(&b_path, ids, |_, u| join.push_right(&key(&u, sign_in), &u))?;
    join.run(|a, b| {
        match (a, b) {
            (Some(a), Some(b)) => {
                let fields = UserDiff::between(&a, &b).fields();
                if fields.is_empty() {
                    report.same += 1;
                } else {
                    report.different.push(UserChange {
                        username: key(&a, sign_in),
                        fields,
                    });
                }
            }
            (Some(a), None) => report.only_in_a.push(key(&a, sign_in)),
            (None, Some(b)) => report.only_in_b.push(key(&b, sign_in)),
            (None, None) => {}
        }
        Ok(())
    })?;
    report.only_in_a.sort();
    report.only_in_b.sort();
    report.different.sort_by(|x, y| x.username.cmp(&y.username));
    Ok(report)
}
