//! Restore's plan: what to do for each user of the backup, decided from one reading of the
//! target pool before anything is written.
//!
//! The target is read by listing (the same listing a backup makes: ListUsers under the sub
//! prefixes and ListUsersInGroup, never a per-user read) or, for a few selected users, by one
//! filtered ListUsers each. Backup and target users are matched by the target's notion of
//! identity (the username, case-folded in a case-insensitive pool; the email or phone number in
//! a pool that signs in with them) in bounded memory (`join`). Each decision is a
//! [`Step`], written to an unnamed temporary file that the apply stage (or the dry run) reads.

use super::report::Withheld;
use super::{Options, key};
use crate::backup;
use crate::backup_file::{EXTERNAL_PROVIDER, Identities, UserRecord, for_each_record};
use crate::cli::PasswordMode;
use crate::cognito::{Cognito, PoolInfo};
use crate::compare::UserDiff;
use crate::join::Join;
use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

/// What happens to one user of the backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Not in the pool: created.
    Create,
    /// In the pool as the backup has it: nothing is sent.
    Unchanged,
    /// The same user in another state: changed to be as in the backup.
    Update,
    /// The same user in another state, left alone (no `--update-existing`, or every change
    /// withheld).
    Differs,
    /// Another user of the same name: left exactly as it is.
    Conflict,
    /// Federated users come back on their next sign-in.
    SkipFederated,
}

/// The decision for one user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub action: Action,
    /// The user as the backup has it.
    pub user: UserRecord,
    /// The user's username and sub in the pool, when it is there.
    #[serde(default)]
    pub pool_username: Option<String>,
    #[serde(default)]
    pub pool_sub: Option<String>,
    /// What will be changed (`Update`), or what differs (`Conflict`).
    #[serde(default)]
    pub apply: UserDiff,
    /// Fields that differ and are left alone without `--update-existing`.
    #[serde(default)]
    pub not_applied: Vec<String>,
    /// Changes that are not made even with `--update-existing`, and why.
    #[serde(default)]
    pub withheld: Vec<Withheld>,
}

/// How existing users are treated.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub update_existing: bool,
    pub password_mode: PasswordMode,
}

/// Users who could sign in before come back CONFIRMED with a random password (in the default
/// password mode): CONFIRMED ones, and RESET_REQUIRED or COMPROMISED ones, whose reset would
/// otherwise send them a message.
pub fn wants_permanent_password(user: &UserRecord, mode: PasswordMode) -> bool {
    mode == PasswordMode::Permanent
        && matches!(
            user.status(),
            "CONFIRMED" | "RESET_REQUIRED" | "COMPROMISED"
        )
}

/// Decides what to do for `want` (from the backup), given the user with the same key in the
/// pool, if any.
///
/// The same person is the user with the backup's `sub` (the live pool), or a user with exactly
/// the backup's attributes (one an earlier run created). Anyone else is a conflict and is never
/// touched. For the same person, the steps a restore takes for a user it creates (disable,
/// confirm with a random password, add memberships) are always finished; every other
/// difference is changed only with `--update-existing`, and never where Cognito would send a
/// message or the user's own password would be lost.
pub fn plan_user(
    want: UserRecord,
    have: Option<&UserRecord>,
    pool: &PoolInfo,
    rules: Rules,
) -> Step {
    let mut step = Step {
        action: Action::Create,
        user: want,
        pool_username: have.map(|h| h.username.clone()),
        pool_sub: have.and_then(|h| h.sub().map(str::to_string)),
        apply: UserDiff::default(),
        not_applied: vec![],
        withheld: vec![],
    };
    let want = &step.user;
    if want.status() == EXTERNAL_PROVIDER {
        step.action = Action::SkipFederated;
        return step;
    }
    let Some(have) = have else {
        return step;
    };
    let diff = UserDiff::between(want, have);
    let same_sub = want.sub().is_some() && want.sub() == have.sub();
    if !diff.same_attributes() && !same_sub {
        step.action = Action::Conflict;
        step.apply = diff;
        return step;
    }
    let username = want.username.clone();
    let withhold = |field: &str, reason: &str| Withheld {
        username: username.clone(),
        field: field.to_string(),
        reason: reason.to_string(),
    };
    let mut apply = UserDiff::default();
    let mut rest = UserDiff::default();
    let mut withheld = Vec::new();

    // Attributes: an email or phone number only with its verified flag, which Cognito then
    // takes without sending a code; never an immutable attribute.
    let unverified = |name: &str| {
        let flag = format!("{name}_verified");
        matches!(name, "email" | "phone_number") && want.attribute(&flag) != Some("true")
    };
    let blocked: BTreeSet<&str> = diff
        .set
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| unverified(n))
        .collect();
    for (name, value) in &diff.set {
        let flag_of_blocked = name
            .strip_suffix("_verified")
            .is_some_and(|base| blocked.contains(base));
        if blocked.contains(name.as_str()) {
            withheld.push(withhold(
                &format!("attribute:{name}"),
                "the backup's value is not verified: setting it would make Cognito send a \
                 verification code",
            ));
        } else if flag_of_blocked {
            continue; // marking the pool's current value verified would be wrong
        } else if pool
            .schema_attribute(name)
            .is_some_and(|s| !s.mutable && s.name.contains("custom:"))
        {
            withheld.push(withhold(
                &format!("attribute:{name}"),
                "immutable in the target pool's schema",
            ));
        } else {
            rest.set.push((name.clone(), value.clone()));
        }
    }
    rest.delete = diff.delete.clone();

    match diff.enabled {
        Some(false) => apply.enabled = Some(false),
        Some(true) => rest.enabled = Some(true),
        None => {}
    }
    if let Some((now, was)) = &diff.status {
        let confirm = wants_permanent_password(want, rules.password_mode)
            && matches!(now.as_str(), "FORCE_CHANGE_PASSWORD" | "RESET_REQUIRED");
        if confirm && now == "FORCE_CHANGE_PASSWORD" {
            apply.status = diff.status.clone();
        } else if confirm {
            rest.status = diff.status.clone();
        } else {
            let reason = match (now.as_str(), was.as_str()) {
                ("CONFIRMED", _) => format!(
                    "the user is CONFIRMED in the pool: setting {was} would discard the \
                     password the user has now"
                ),
                (_, "UNCONFIRMED") => "Cognito's admin API cannot make a user UNCONFIRMED".into(),
                (_, "CONFIRMED") => {
                    "--password-mode temporary gives users a temporary password".into()
                }
                _ => format!("Cognito's admin API cannot change {now} to {was}"),
            };
            withheld.push(withhold("status", &reason));
        }
    }
    apply.add_groups = diff.add_groups.clone();
    rest.remove_groups = diff.remove_groups.clone();

    if rules.update_existing {
        // Setting a verified email or phone number carries its flag, even when the flag is
        // already the same, so Cognito sends nothing.
        for name in ["email", "phone_number"] {
            let flag = format!("{name}_verified");
            if rest.set.iter().any(|(n, _)| n == name) && !rest.set.iter().any(|(n, _)| *n == flag)
            {
                rest.set.push((flag, "true".to_string()));
            }
        }
        apply.set = rest.set;
        apply.delete = rest.delete;
        apply.enabled = apply.enabled.or(rest.enabled);
        apply.status = apply.status.or(rest.status);
        apply.remove_groups = rest.remove_groups;
    } else {
        step.not_applied = rest.fields();
    }
    step.withheld = withheld;
    step.action = if !apply.is_empty() {
        Action::Update
    } else if step.not_applied.is_empty() && step.withheld.is_empty() {
        Action::Unchanged
    } else {
        Action::Differs
    };
    step.apply = apply;
    step
}

/// The target pool as restore needs it: its users joined with the backup's, its groups.
pub struct Target {
    join: Join,
    pub users: u64,
    pub groups: BTreeSet<String>,
}

/// Reads the target: the whole pool by listing when the selection is large (or everything),
/// the selected users by one filtered ListUsers each when that is fewer calls. Returns the
/// join of the backup's selected users (left) with the pool's (right).
pub async fn read_target(
    cognito: &Cognito,
    opts: &Options,
    pool: &PoolInfo,
    ids: &Identities,
    selected: u64,
    dir: &Path,
) -> Result<Target> {
    // A full listing costs one ListUsers per 60 users; a lookup, one per selected user.
    let lookups = !opts.selection.is_all() && selected * 60 < pool.estimated_users.max(1);
    let mut join = Join::new(dir, selected.max(pool.estimated_users))?;
    let mut users = 0u64;
    let groups: BTreeSet<String>;
    if lookups {
        groups = cognito
            .list_groups(&pool.id)
            .await?
            .into_iter()
            .map(|g| g.name)
            .collect();
        // The selected users, to look up one by one.
        let mut wanted = Vec::new();
        for path in &opts.inputs {
            for_each_record(path, ids, |_, user| {
                if opts.selection.selects(&user) && user.status() != EXTERNAL_PROVIDER {
                    wanted.push((lookup_filter(&user, pool), user.groups.is_some()));
                }
                Ok(())
            })?;
        }
        tracing::debug!(
            users = wanted.len(),
            "looking up the selected users in the pool"
        );
        let found: Vec<Vec<UserRecord>> = futures::stream::iter(wanted)
            .map(|(filter, with_groups)| async move {
                let Some(filter) = filter else {
                    return Ok(vec![]);
                };
                let mut found = cognito.find_users(&pool.id, filter).await?;
                if with_groups {
                    for u in &mut found {
                        u.groups = Some(cognito.groups_of_user(&pool.id, &u.username).await?);
                    }
                }
                anyhow::Ok(found)
            })
            .buffer_unordered(opts.concurrency)
            .try_collect()
            .await?;
        for user in found.iter().flatten() {
            if let Some(k) = key(user, pool) {
                join.push_right(&k, user)?;
                users += 1;
            }
        }
    } else {
        tracing::info!(
            pool = pool.id,
            "reading the target pool (about {} users) by listing",
            pool.estimated_users
        );
        let snapshot =
            backup::read_pool(cognito, &opts.region, &pool.id, dir, opts.progress).await?;
        groups = snapshot.groups.iter().map(|g| g.name.clone()).collect();
        for_each_record(&snapshot.data, &Identities::default(), |_, user| {
            if let Some(k) = key(&user, pool) {
                join.push_right(&k, &user)?;
                users += 1;
            }
            Ok(())
        })?;
    }
    for path in &opts.inputs {
        for_each_record(path, ids, |_, user| {
            if opts.selection.selects(&user) {
                // A user without a key is created (and fails with the reason).
                let k = key(&user, pool).unwrap_or_else(|| format!("\0{}", user.username));
                join.push_left(&k, &user)?;
            }
            Ok(())
        })?;
    }
    Ok(Target {
        join,
        users,
        groups,
    })
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

/// Decides every selected backup user's step and writes them to an unnamed temporary file;
/// calls `each` with each step as it is decided. Users only in the pool are not the
/// restore's business.
pub fn plan(
    target: Target,
    pool: &PoolInfo,
    rules: Rules,
    dir: &Path,
    mut each: impl FnMut(&Step),
) -> Result<File> {
    let mut out = BufWriter::new(
        tempfile::tempfile_in(dir)
            .with_context(|| format!("creating the plan in {}", dir.display()))?,
    );
    target.join.run(|mine, theirs| {
        let Some(user) = mine else { return Ok(()) };
        let step = plan_user(user, theirs.as_ref(), pool, rules);
        each(&step);
        serde_json::to_writer(&mut out, &step)?;
        out.write_all(b"\n")?;
        Ok(())
    })?;
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// Calls `each` with every step of a plan file.
pub fn for_each_step(file: File, mut each: impl FnMut(Step) -> Result<()>) -> Result<()> {
    for line in BufReader::new(file).lines() {
        each(serde_json::from_str(&line?).context("reading the plan")?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup_file::Attribute;

    fn pool() -> PoolInfo {
        PoolInfo {
            case_sensitive: true,
            ..PoolInfo::default()
        }
    }

    fn user(name: &str, sub: &str, attrs: &[(&str, &str)]) -> UserRecord {
        let mut attributes = vec![Attribute {
            name: "sub".into(),
            value: Some(sub.into()),
        }];
        attributes.extend(attrs.iter().map(|(n, v)| Attribute {
            name: n.to_string(),
            value: Some(v.to_string()),
        }));
        UserRecord {
            attributes,
            enabled: true,
            mfa_options: None,
            user_create_date: None,
            user_last_modified_date: None,
            user_status: Some("CONFIRMED".into()),
            username: name.into(),
            groups: Some(vec!["g".into()]),
        }
    }

    const KEEP: Rules = Rules {
        update_existing: false,
        password_mode: PasswordMode::Permanent,
    };
    const UPDATE: Rules = Rules {
        update_existing: true,
        password_mode: PasswordMode::Permanent,
    };

    #[test]
    fn missing_users_are_created_and_equal_ones_left_alone() {
        let want = user("a", "1", &[("email", "a@x.org")]);
        assert_eq!(
            plan_user(want.clone(), None, &pool(), KEEP).action,
            Action::Create
        );
        let step = plan_user(want.clone(), Some(&want), &pool(), KEEP);
        assert_eq!(step.action, Action::Unchanged);
        assert!(step.apply.is_empty());
    }

    #[test]
    fn another_person_with_the_same_name_is_a_conflict_even_when_updating() {
        let want = user("alice", "1", &[("email", "alice@x.org")]);
        let mut other = user("alice", "2", &[("email", "someone@else.org")]);
        other.enabled = false;
        for rules in [KEEP, UPDATE] {
            let step = plan_user(want.clone(), Some(&other), &pool(), rules);
            assert_eq!(step.action, Action::Conflict);
            assert_eq!(step.apply.fields()[0], "attribute:email");
        }
    }

    #[test]
    fn a_user_an_earlier_run_created_is_finished() {
        let want = {
            let mut u = user("a", "old", &[("email", "a@x.org")]);
            u.enabled = false;
            u.groups = Some(vec!["g".into(), "h".into()]);
            u
        };
        let mut created = user("a", "new", &[("email", "a@x.org")]);
        created.user_status = Some("FORCE_CHANGE_PASSWORD".into());
        created.groups = Some(vec!["g".into()]);
        let step = plan_user(want, Some(&created), &pool(), KEEP);
        assert_eq!(step.action, Action::Update);
        assert_eq!(step.apply.enabled, Some(false));
        assert!(step.apply.status.is_some());
        assert_eq!(step.apply.add_groups, ["h"]);
    }

    #[test]
    fn live_users_change_only_with_update_existing() {
        let want = user(
            "a",
            "1",
            &[
                ("email", "a@x.org"),
                ("email_verified", "true"),
                ("custom:plan", "gold"),
            ],
        );
        let mut damaged = user(
            "a",
            "1",
            &[("email", "b@x.org"), ("email_verified", "true")],
        );
        damaged.enabled = false;
        damaged.groups = Some(vec!["g".into(), "extra".into()]);
        let kept = plan_user(want.clone(), Some(&damaged), &pool(), KEEP);
        assert_eq!(kept.action, Action::Differs);
        assert_eq!(
            kept.not_applied,
            [
                "attribute:custom:plan",
                "attribute:email",
                "enabled",
                "groups"
            ]
        );
        let updated = plan_user(want, Some(&damaged), &pool(), UPDATE);
        assert_eq!(updated.action, Action::Update);
        let set: Vec<&str> = updated.apply.set.iter().map(|(n, _)| n.as_str()).collect();
        // The verified flag goes with the email, so Cognito sends no code.
        assert_eq!(set, ["custom:plan", "email", "email_verified"]);
        assert_eq!(updated.apply.enabled, Some(true));
        assert_eq!(updated.apply.remove_groups, ["extra"]);
        assert!(updated.withheld.is_empty());
    }

    #[test]
    fn changes_that_would_message_the_user_are_withheld() {
        let want = user(
            "a",
            "1",
            &[("email", "a@x.org"), ("phone_number", "+15550001")],
        );
        let have = user(
            "a",
            "1",
            &[("email", "b@x.org"), ("phone_number", "+15550002")],
        );
        let step = plan_user(want, Some(&have), &pool(), UPDATE);
        assert_eq!(step.action, Action::Differs);
        let fields: Vec<&str> = step.withheld.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(fields, ["attribute:email", "attribute:phone_number"]);
        assert!(step.withheld[0].reason.contains("verification code"));
        assert!(step.apply.is_empty());
    }

    #[test]
    fn a_password_the_user_chose_is_never_discarded() {
        let mut want = user("a", "1", &[]);
        want.user_status = Some("FORCE_CHANGE_PASSWORD".into());
        let have = user("a", "1", &[]);
        let step = plan_user(want, Some(&have), &pool(), UPDATE);
        assert_eq!(step.action, Action::Differs);
        assert_eq!(step.withheld[0].field, "status");
        assert!(
            step.withheld[0].reason.contains("discard"),
            "{:?}",
            step.withheld
        );
    }
}
