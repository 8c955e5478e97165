//! How one user differs from another: the vocabulary shared by restore's plan, `cbr diff` and
//! `cbr verify`. A [`UserDiff`] says what would have to change for the second user (in a pool
//! or a newer backup) to be as the first (in the backup): attributes to set and delete, the
//! enabled flag, the status, group memberships to add and remove.
//!
//! `sub` is never compared (a restored user has a new one), nor are the attributes nobody can
//! write (`identities`, `cognito:*`), nor dates.
//!
//! It also owns who is who: the [`Identity`] key by which restore, verify and diff pair a
//! backup's user with a pool's (the pool's own notion of identity), and what a restore makes of
//! a user's status ([`restored_statuses`]), so that every command sees a restored pool as
//! restored.

use crate::backup_file::{EXTERNAL_PROVIDER, Manifest, UserRecord, names};
use crate::cognito::PoolInfo;
use crate::join::Join;
use crate::location::Location;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Attributes Cognito never accepts from an administrator: `sub` is assigned by Cognito, a
/// federated link (`identities`) only by AdminLinkProviderForUser, `cognito:*` are internal.
pub fn is_writable(name: &str) -> bool {
    name != "sub" && name != "identities" && !name.starts_with("cognito:")
}

/// How a pool tells its users apart: by username, case-folded where the pool does not tell
/// `Alice` from `alice`, or, where people sign in with an email or phone number instead, by
/// the first of those the user has (case-folded likewise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub username_attributes: Vec<String>,
    pub case_sensitive: bool,
}

impl Default for Identity {
    /// A pool of usernames that tells `Alice` from `alice`: the literal username.
    fn default() -> Identity {
        Identity {
            username_attributes: vec![],
            case_sensitive: true,
        }
    }
}

impl Identity {
    pub fn of(pool: &PoolInfo) -> Identity {
        Identity {
            username_attributes: pool.username_attributes.clone(),
            case_sensitive: pool.case_sensitive,
        }
    }

    /// How the pool a backup was taken from told its users apart (by the literal username when
    /// an older build's manifest does not say).
    pub fn of_backup(manifest: &Manifest) -> Identity {
        Identity {
            username_attributes: manifest.username_attributes.clone(),
            case_sensitive: manifest.case_sensitive.unwrap_or(true),
        }
    }

    /// The user's key in such a pool; `None` for a user who has none (no email in an email
    /// sign-in pool: a federated user, or one the pool could not hold).
    pub fn key(&self, user: &UserRecord) -> Option<String> {
        let raw = if self.username_attributes.is_empty() {
            Some(user.username.as_str())
        } else {
            self.username_attributes
                .iter()
                .find_map(|a| user.attribute(a))
        }?;
        Some(if self.case_sensitive {
            raw.to_string()
        } else {
            raw.to_lowercase()
        })
    }

    /// How reports name the user: the email or phone number people sign in with (the
    /// username is a generated ID there), else the username, as written.
    pub fn name(&self, user: &UserRecord) -> String {
        self.username_attributes
            .iter()
            .find_map(|a| user.attribute(a))
            .unwrap_or(&user.username)
            .to_string()
    }

    /// A key for every user: one without a key is known by its username, which never equals
    /// another user's key.
    pub fn key_or_name(&self, user: &UserRecord) -> String {
        self.key(user)
            .unwrap_or_else(|| format!("\0{}", user.username))
    }
}

/// The statuses a restore leaves a backup user in, in either password mode: CONFIRMED with a
/// random password or FORCE_CHANGE_PASSWORD with a temporary one for users who could sign in
/// (CONFIRMED, RESET_REQUIRED, COMPROMISED); FORCE_CHANGE_PASSWORD for the others, since the
/// admin API creates no UNCONFIRMED user. Federated users are not created at all.
pub fn restored_statuses(status: &str) -> &'static [&'static str] {
    match status {
        "CONFIRMED" | "RESET_REQUIRED" | "COMPROMISED" => &["CONFIRMED", "FORCE_CHANGE_PASSWORD"],
        "UNCONFIRMED" | "FORCE_CHANGE_PASSWORD" => &["FORCE_CHANGE_PASSWORD"],
        _ => &[],
    }
}

/// How two sides are compared: exactly (two backups); literally (a backup with the pool it
/// was taken from, where only a user with a new `sub` — deleted and restored since — is judged
/// by what a restore made of it); or as restored (a pool a restore made, where what restore
/// itself chose — new subs, the statuses it maps, federated users who come back on their next
/// sign-in — is not a difference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    Exact,
    Literal,
    AsRestored,
}

/// How one pair of users compares: the fields that differ as the comparison counts them, and
/// what a restore chose that is not counted.
#[derive(Debug, Default, PartialEq)]
pub struct Judged {
    pub fields: Vec<String>,
    /// The pool's user has another `sub`: a restore made it (after a restore only).
    pub new_sub: bool,
    /// Its status is one a restore sets, not the backup's (after a restore only).
    pub status_as_restored: bool,
}

impl Comparison {
    /// How a backup compares with `pool_id`: as restored if the backup was taken from another
    /// pool (by its manifests) or a restore into this pool left its sub map beside the backup;
    /// literally otherwise.
    pub fn with_pool(pool_id: &str, input: &Location, manifests: &[Manifest]) -> Comparison {
        let from_elsewhere = manifests.iter().any(|m| m.pool_id != pool_id);
        let restored_here = names::sub_map_path(input, pool_id).exists();
        if from_elsewhere || restored_here {
            Comparison::AsRestored
        } else {
            Comparison::Literal
        }
    }

    /// `want` (the backup's) compared with `have` (the pool's, or a newer backup's). In a
    /// pool, a user with the backup's own `sub` was never restored and is compared literally;
    /// one with a new `sub` is compared with what a restore made of it.
    pub fn judge(self, want: &UserRecord, have: &UserRecord) -> Judged {
        let new_sub = self != Comparison::Exact
            && want.sub().is_some()
            && have.sub().is_some()
            && want.sub() != have.sub();
        let comparison = if new_sub {
            Comparison::AsRestored
        } else {
            Comparison::Literal
        };
        let (diff, status_as_restored) = UserDiff::between(want, have).counted(comparison);
        Judged {
            fields: diff.fields(),
            new_sub,
            status_as_restored,
        }
    }

    /// Whether a backup user missing from the pool is no difference: after a restore, a
    /// federated user, who comes back on their next sign-in.
    pub fn missing_is_expected(self, want: &UserRecord) -> bool {
        self == Comparison::AsRestored && want.status() == EXTERNAL_PROVIDER
    }
}

/// The users of two sides (the backup's, and the pool's or a newer backup's) paired by who
/// they are ([`Identity`]), in memory that does not grow with the pool (`join`): push each
/// side, then walk the pairs. How verify and diff match; restore's reading of its target pairs
/// by `sub` first and by the same key after.
pub struct Pairs {
    join: Join<UserRecord>,
    identity: Identity,
}

impl Pairs {
    /// `expected`: about the larger side's number of users.
    pub fn new(dir: &std::path::Path, expected: u64, identity: Identity) -> Result<Pairs> {
        Ok(Pairs {
            join: Join::new(dir, expected)?,
            identity,
        })
    }

    /// A user of the backup.
    pub fn want(&mut self, user: &UserRecord) -> Result<()> {
        self.join.push_left(&self.identity.key_or_name(user), user)
    }

    /// A user of the other side.
    pub fn have(&mut self, user: &UserRecord) -> Result<()> {
        self.join.push_right(&self.identity.key_or_name(user), user)
    }

    /// Calls `each` with every pair: the backup's user and the other side's, either missing.
    pub fn walk(
        self,
        each: impl FnMut(Option<UserRecord>, Option<UserRecord>) -> Result<()>,
    ) -> Result<()> {
        self.join.run(each)
    }
}

/// What differs between a wanted user (`want`, from a backup) and the user as it is (`have`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserDiff {
    /// Attributes to set to the backup's value: missing or different in `have`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<(String, String)>,
    /// Attributes `have` has and the backup does not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delete: Vec<String>,
    /// The enabled flag the backup has, when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `(have, want)` statuses, when they differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<(String, String)>,
    /// Memberships the backup has and `have` lacks (only when the backup carries groups).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_groups: Vec<String>,
    /// Memberships `have` has and the backup does not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_groups: Vec<String>,
}

impl UserDiff {
    /// `want` compared with `have`. Groups are compared only when `want` carries a `Groups`
    /// list: a file without memberships says nothing about them.
    pub fn between(want: &UserRecord, have: &UserRecord) -> UserDiff {
        let wanted = writable_attributes(want);
        let current = writable_attributes(have);
        let set = wanted
            .iter()
            .filter(|(name, value)| current.get(*name) != Some(value))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let delete = current
            .keys()
            .filter(|name| !wanted.contains_key(*name))
            .map(|n| n.to_string())
            .collect();
        let (add_groups, remove_groups) = match &want.groups {
            Some(groups) => {
                let have_groups = have.groups();
                (
                    sorted(groups.iter().filter(|g| !have_groups.contains(g))),
                    sorted(have_groups.iter().filter(|g| !groups.contains(g))),
                )
            }
            None => (vec![], vec![]),
        };
        UserDiff {
            set,
            delete,
            enabled: (want.enabled != have.enabled).then_some(want.enabled),
            status: (want.status() != have.status())
                .then(|| (have.status().to_string(), want.status().to_string())),
            add_groups,
            remove_groups,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == UserDiff::default()
    }

    /// Whether the status differs only as a restore leaves it (see [`restored_statuses`]).
    pub fn status_as_restored(&self) -> bool {
        self.status
            .as_ref()
            .is_some_and(|(have, want)| restored_statuses(want).contains(&have.as_str()))
    }

    /// The difference as `comparison` counts it: with [`Comparison::AsRestored`], a status a
    /// restore leaves is dropped (and `true` says one was).
    pub fn counted(mut self, comparison: Comparison) -> (UserDiff, bool) {
        let mapped = comparison == Comparison::AsRestored && self.status_as_restored();
        if mapped {
            self.status = None;
        }
        (self, mapped)
    }

    /// Whether the attributes are the same (whatever the state and groups).
    pub fn same_attributes(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty()
    }

    /// The names of what differs, for reports: `attribute:<name>`, `enabled`, `status`,
    /// `groups`. Attribute values never appear.
    pub fn fields(&self) -> Vec<String> {
        let mut fields: Vec<String> = self
            .set
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(self.delete.iter().map(String::as_str))
            .map(|n| format!("attribute:{n}"))
            .collect();
        fields.sort();
        if self.enabled.is_some() {
            fields.push("enabled".into());
        }
        if self.status.is_some() {
            fields.push("status".into());
        }
        if !self.add_groups.is_empty() || !self.remove_groups.is_empty() {
            fields.push("groups".into());
        }
        fields
    }
}

fn writable_attributes(user: &UserRecord) -> BTreeMap<&str, &str> {
    user.attributes
        .iter()
        .filter(|a| is_writable(&a.name))
        .filter_map(|a| Some((a.name.as_str(), a.value.as_deref()?)))
        .collect()
}

fn sorted<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut v: Vec<String> = names.cloned().collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::backup_file::test_user as user;

    #[test]
    fn same_user_with_another_sub_has_no_difference() {
        let a = user("a", &[("sub", "1"), ("email", "a@x.org")]);
        let b = user("a", &[("email", "a@x.org"), ("sub", "2")]);
        assert!(UserDiff::between(&a, &b).is_empty());
    }

    #[test]
    fn every_kind_of_difference_is_named() {
        let mut want = user("a", &[("email", "a@x.org"), ("custom:plan", "gold")]);
        want.enabled = false;
        want.groups = Some(vec!["admins".into(), "editors".into()]);
        let mut have = user("a", &[("email", "a@x.org"), ("name", "Zoë")]);
        have.user_status = Some("FORCE_CHANGE_PASSWORD".into());
        have.groups = Some(vec!["editors".into(), "viewers".into()]);
        let d = UserDiff::between(&want, &have);
        assert_eq!(d.set, [("custom:plan".to_string(), "gold".to_string())]);
        assert_eq!(d.delete, ["name"]);
        assert_eq!(d.enabled, Some(false));
        assert_eq!(
            d.status,
            Some(("FORCE_CHANGE_PASSWORD".into(), "CONFIRMED".into()))
        );
        assert_eq!(d.add_groups, ["admins"]);
        assert_eq!(d.remove_groups, ["viewers"]);
        assert_eq!(
            d.fields(),
            [
                "attribute:custom:plan",
                "attribute:name",
                "enabled",
                "status",
                "groups"
            ]
        );
        assert!(!d.same_attributes());
    }

    #[test]
    fn keys_follow_the_pools_notion_of_identity() {
        let mut id = Identity::default();
        let user: UserRecord = serde_json::from_str(
            r#"{"Username":"Alice","Attributes":[{"Name":"email","Value":"Alice@X.org"}]}"#,
        )
        .unwrap();
        assert_eq!(id.key(&user).unwrap(), "Alice");
        id.case_sensitive = false;
        assert_eq!(id.key(&user).unwrap(), "alice");
        id.username_attributes = vec!["phone_number".into(), "email".into()];
        assert_eq!(id.key(&user).unwrap(), "alice@x.org");
        let federated: UserRecord =
            serde_json::from_str(r#"{"Username":"Google_1","Attributes":[]}"#).unwrap();
        assert_eq!(id.key(&federated), None);
        assert_eq!(id.key_or_name(&federated), "\0Google_1");
    }

    #[test]
    fn a_status_restore_chose_is_no_difference_after_a_restore_only() {
        for (backup, pool, mapped) in [
            ("UNCONFIRMED", "FORCE_CHANGE_PASSWORD", true),
            ("RESET_REQUIRED", "CONFIRMED", true),
            ("RESET_REQUIRED", "FORCE_CHANGE_PASSWORD", true),
            ("COMPROMISED", "CONFIRMED", true),
            ("CONFIRMED", "FORCE_CHANGE_PASSWORD", true),
            ("UNCONFIRMED", "CONFIRMED", false),
            ("FORCE_CHANGE_PASSWORD", "CONFIRMED", false),
            ("CONFIRMED", "RESET_REQUIRED", false),
        ] {
            let mut want = user("a", &[]);
            want.user_status = Some(backup.into());
            let mut have = user("a", &[]);
            have.user_status = Some(pool.into());
            let diff = UserDiff::between(&want, &have);
            assert_eq!(diff.status_as_restored(), mapped, "{backup} -> {pool}");
            let (literal, _) = diff.clone().counted(Comparison::Literal);
            assert_eq!(literal.fields(), ["status"]);
            let (restored, was_mapped) = diff.counted(Comparison::AsRestored);
            assert_eq!(restored.is_empty(), mapped, "{backup} -> {pool}");
            assert_eq!(was_mapped, mapped);
        }
    }

    #[test]
    fn after_a_restore_only_restored_users_are_judged_as_restored() {
        let mut want = user("a", &[("sub", "old"), ("email", "a@x.org")]);
        want.user_status = Some("RESET_REQUIRED".into());
        let mut restored = user("a", &[("sub", "new"), ("email", "a@x.org")]);
        restored.user_status = Some("CONFIRMED".into());
        let judged = Comparison::AsRestored.judge(&want, &restored);
        assert_eq!(
            judged,
            Judged {
                fields: vec![],
                new_sub: true,
                status_as_restored: true
            }
        );
        // In the pool the backup was taken from, a user deleted and restored since is judged
        // the same way; two backups are compared exactly.
        assert!(
            Comparison::Literal
                .judge(&want, &restored)
                .fields
                .is_empty()
        );
        assert_eq!(Comparison::Exact.judge(&want, &restored).fields, ["status"]);
        // The original user, who reset their password since the backup: a change.
        let mut original = restored.clone();
        original.attributes[0].value = Some("old".into());
        assert_eq!(
            Comparison::AsRestored.judge(&want, &original).fields,
            ["status"]
        );
        // Attributes are never excused.
        restored.attributes[1].value = Some("b@x.org".into());
        assert_eq!(
            Comparison::AsRestored.judge(&want, &restored).fields,
            ["attribute:email"]
        );
        let mut federated = want.clone();
        federated.user_status = Some(EXTERNAL_PROVIDER.into());
        assert!(Comparison::AsRestored.missing_is_expected(&federated));
        assert!(!Comparison::Literal.missing_is_expected(&federated));
        assert!(!Comparison::AsRestored.missing_is_expected(&want));
    }

    #[test]
    fn groups_are_compared_only_when_the_backup_has_them() {
        let want = user("a", &[]);
        let mut have = user("a", &[]);
        have.groups = Some(vec!["admins".into()]);
        assert!(UserDiff::between(&want, &have).is_empty());
        let mut want = want;
        want.groups = Some(vec![]);
        assert_eq!(UserDiff::between(&want, &have).remove_groups, ["admins"]);
        // An empty list and no membership at all are the same thing.
        have.groups = None;
        assert!(UserDiff::between(&want, &have).is_empty());
    }
}
