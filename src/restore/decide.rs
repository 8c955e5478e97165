//! The decision for one user of the backup, given the pool's user with the same identity (if
//! any): create, unchanged, update, differs, conflict or skip, and exactly what to send. Pure:
//! no I/O, so its rules are tested one by one below.

use super::PasswordMode;
use super::report::Withheld;
use super::sub_map::SubMap;
use crate::backup_file::{EXTERNAL_PROVIDER, SetMembers, UserRecord};
use crate::cognito::PoolInfo;
use crate::compare::UserDiff;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

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
    /// The memberships of a user an earlier step updated (decided once the groups' members
    /// were listed): counted with that step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continues: bool,
}

/// How existing users are treated.
#[derive(Debug, Clone)]
pub struct Rules {
    pub update_existing: bool,
    pub password_mode: PasswordMode,
    /// Earlier restores into the pool: who became whom.
    pub sub_map: Arc<SubMap>,
    /// The memberships the members files of a split shard set add to its records, and the
    /// groups the inputs cover: memberships in other groups are neither added nor removed.
    pub members: Arc<SetMembers>,
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
/// The same person is the user with the backup's `sub` (the live pool), the user the sub map
/// of an earlier restore names, or a user with exactly the backup's attributes (one an earlier
/// run created). Anyone else is a conflict and is never touched. A user as a restore leaves it
/// (a status it maps, see [`crate::compare::restored_statuses`]) is as in the backup. For the
/// same person, the steps a restore takes for a user it creates (disable, confirm with a
/// random password, add memberships) are always finished; every other difference is changed
/// only with `--update-existing`, and never where Cognito would send a message or the user's
/// own password would be lost.
pub fn plan_user(
    want: UserRecord,
    have: Option<&UserRecord>,
    pool: &PoolInfo,
    rules: &Rules,
) -> Step {
    let mut step = Step {
        action: Action::Create,
        user: want,
        pool_username: have.map(|h| h.username.clone()),
        pool_sub: have.and_then(|h| h.sub().map(str::to_string)),
        apply: UserDiff::default(),
        not_applied: vec![],
        withheld: vec![],
        continues: false,
    };
    let want = &step.user;
    if want.status() == EXTERNAL_PROVIDER {
        step.action = Action::SkipFederated;
        return step;
    }
    let Some(have) = have else {
        return step;
    };
    // Part of a split shard set says nothing of the groups the other shards listed.
    let restricted;
    let have = match rules.members.covered() {
        Some(_) => {
            let mut h = have.clone();
            rules.members.restrict(&mut h.groups);
            restricted = h;
            &restricted
        }
        None => have,
    };
    let diff = UserDiff::between(want, have);
    if !diff.same_attributes() && !rules.sub_map.same_person(want, have) {
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
        } else if diff.status_as_restored() {
            // As a restore leaves the user: nothing to do.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cognito::PoolInfo;

    fn pool() -> PoolInfo {
        PoolInfo {
            case_sensitive: true,
            ..PoolInfo::default()
        }
    }

    fn user(name: &str, sub: &str, attrs: &[(&str, &str)]) -> UserRecord {
        let attrs: Vec<(&str, &str)> = [("sub", sub)]
            .into_iter()
            .chain(attrs.iter().copied())
            .collect();
        UserRecord {
            groups: Some(vec!["g".into()]),
            ..crate::backup_file::test_user(name, &attrs)
        }
    }

    fn rules(update_existing: bool) -> Rules {
        Rules {
            update_existing,
            password_mode: PasswordMode::Permanent,
            sub_map: Arc::default(),
            members: Arc::default(),
        }
    }
    #[allow(non_snake_case)]
    fn KEEP() -> Rules {
        rules(false)
    }
    #[allow(non_snake_case)]
    fn UPDATE() -> Rules {
        rules(true)
    }

    #[test]
    fn missing_users_are_created_and_equal_ones_left_alone() {
        let want = user("a", "1", &[("email", "a@x.org")]);
        assert_eq!(
            plan_user(want.clone(), None, &pool(), &KEEP()).action,
            Action::Create
        );
        let step = plan_user(want.clone(), Some(&want), &pool(), &KEEP());
        assert_eq!(step.action, Action::Unchanged);
        assert!(step.apply.is_empty());
    }

    #[test]
    fn another_person_with_the_same_name_is_a_conflict_even_when_updating() {
        let want = user("alice", "1", &[("email", "alice@x.org")]);
        let mut other = user("alice", "2", &[("email", "someone@else.org")]);
        other.enabled = false;
        for rules in [KEEP(), UPDATE()] {
            let step = plan_user(want.clone(), Some(&other), &pool(), &rules);
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
        let step = plan_user(want, Some(&created), &pool(), &KEEP());
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
        let kept = plan_user(want.clone(), Some(&damaged), &pool(), &KEEP());
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
        let updated = plan_user(want, Some(&damaged), &pool(), &UPDATE());
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
        let step = plan_user(want, Some(&have), &pool(), &UPDATE());
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
        let step = plan_user(want, Some(&have), &pool(), &UPDATE());
        assert_eq!(step.action, Action::Differs);
        assert_eq!(step.withheld[0].field, "status");
        assert!(
            step.withheld[0].reason.contains("discard"),
            "{:?}",
            step.withheld
        );
    }
}
