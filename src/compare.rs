//! How one user differs from another: the vocabulary shared by restore's plan, `cbr diff` and
//! `cbr verify`. A [`UserDiff`] says what would have to change for the second user (in a pool
//! or a newer backup) to be as the first (in the backup): attributes to set and delete, the
//! enabled flag, the status, group memberships to add and remove.
//!
//! `sub` is never compared (a restored user has a new one), nor are the attributes nobody can
//! write (`identities`, `cognito:*`), nor dates.

use crate::backup_file::UserRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Attributes Cognito never accepts from an administrator: `sub` is assigned by Cognito, a
/// federated link (`identities`) only by AdminLinkProviderForUser, `cognito:*` are internal.
pub fn is_writable(name: &str) -> bool {
    name != "sub" && name != "identities" && !name.starts_with("cognito:")
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
    use crate::backup_file::Attribute;

    pub fn user(name: &str, attrs: &[(&str, &str)]) -> UserRecord {
        UserRecord {
            attributes: attrs
                .iter()
                .map(|(n, v)| Attribute {
                    name: n.to_string(),
                    value: Some(v.to_string()),
                })
                .collect(),
            enabled: true,
            mfa_options: None,
            user_create_date: None,
            user_last_modified_date: None,
            user_status: Some("CONFIRMED".into()),
            username: name.into(),
            groups: None,
        }
    }

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
