//! Which users of a backup a command acts on: all of them, the ones named (`--user`,
//! `--users-from`), or the ones a filter in Cognito's own ListUsers syntax selects
//! (`--filter 'email ^= "a"'`), evaluated on the backup's records.

use crate::backup_file::UserRecord;
use anyhow::{Context, Result, bail};
use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;

/// The attributes ListUsers can filter on; a filter on anything else is refused, as Cognito
/// refuses it.
pub const SEARCHABLE: [&str; 10] = [
    "username",
    "email",
    "phone_number",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "cognito:user_status",
    "status",
    "sub",
];

/// A ListUsers filter: `attribute = "value"` (exact) or `attribute ^= "value"` (starts with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub attribute: String,
    pub prefix: bool,
    pub value: String,
}

impl FromStr for Filter {
    type Err = String;

    fn from_str(s: &str) -> Result<Filter, String> {
        let bad = || {
            format!(
                "invalid filter {s:?}: expected ATTRIBUTE = \"VALUE\" or ATTRIBUTE ^= \"VALUE\", \
                 e.g. 'email ^= \"a\"'"
            )
        };
        let (attribute, rest, prefix) = if let Some((a, r)) = s.split_once("^=") {
            (a, r, true)
        } else if let Some((a, r)) = s.split_once('=') {
            (a, r, false)
        } else {
            return Err(bad());
        };
        let attribute = attribute.trim();
        let value = rest
            .trim()
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(bad)?;
        if attribute.is_empty() || value.contains('"') {
            return Err(bad());
        }
        if !SEARCHABLE.contains(&attribute) {
            return Err(format!(
                "invalid filter {s:?}: Cognito cannot filter on {attribute:?}; it filters on {}",
                SEARCHABLE.join(", ")
            ));
        }
        Ok(Filter {
            attribute: attribute.to_string(),
            prefix,
            value: value.to_string(),
        })
    }
}

impl Filter {
    pub fn matches(&self, user: &UserRecord) -> bool {
        let enabled = if user.enabled { "Enabled" } else { "Disabled" };
        let actual = match self.attribute.as_str() {
            "username" => Some(user.username.as_str()),
            "status" => Some(enabled),
            "cognito:user_status" => user.user_status.as_deref(),
            other => user.attribute(other),
        };
        actual.is_some_and(|v| {
            if self.prefix {
                v.starts_with(&self.value)
            } else {
                v == self.value
            }
        })
    }
}

/// The users a command acts on.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Usernames given with `--user` and `--users-from`; `None` when none were given.
    pub users: Option<BTreeSet<String>>,
    pub filter: Option<Filter>,
}

impl Selection {
    /// From the flags: names (repeatable), files of names (one a line; blank lines and lines
    /// starting with `#` are skipped) and a filter.
    pub fn new(
        users: &[String],
        files: &[impl AsRef<Path>],
        filter: Option<Filter>,
    ) -> Result<Self> {
        let mut names: BTreeSet<String> = users.iter().cloned().collect();
        for file in files {
            let file = file.as_ref();
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading the user list {}", file.display()))?;
            names.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string),
            );
        }
        if names.is_empty() && (!users.is_empty() || !files.is_empty()) {
            bail!("the user lists name no user");
        }
        Ok(Selection {
            users: (!names.is_empty()).then_some(names),
            filter,
        })
    }

    pub fn is_all(&self) -> bool {
        self.users.is_none() && self.filter.is_none()
    }

    pub fn selects(&self, user: &UserRecord) -> bool {
        self.users
            .as_ref()
            .is_none_or(|names| names.contains(&user.username))
            && self.filter.as_ref().is_none_or(|f| f.matches(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, email: &str) -> UserRecord {
        UserRecord {
            enabled: false,
            ..crate::backup_file::test_user(name, &[("email", email)])
        }
    }

    #[test]
    fn filters_parse_and_match_as_cognito_does() {
        let f: Filter = r#"email ^= "a""#.parse().unwrap();
        assert!(f.prefix);
        assert!(f.matches(&user("x", "ann@x.org")));
        assert!(!f.matches(&user("x", "bob@x.org")));
        let f: Filter = r#"username="bob""#.parse().unwrap();
        assert!(f.matches(&user("bob", "")));
        assert!(!f.matches(&user("bobby", "")));
        let f: Filter = r#"status = "Disabled""#.parse().unwrap();
        assert!(f.matches(&user("x", "")));
        let f: Filter = r#"cognito:user_status = "CONFIRMED""#.parse().unwrap();
        assert!(f.matches(&user("x", "")));
    }

    #[test]
    fn bad_filters_are_refused_with_the_reason() {
        for bad in [
            "email",
            "email ^= a",
            "email = \"a",
            "= \"a\"",
            "email = \"a\"b\"",
        ] {
            let e = bad.parse::<Filter>().unwrap_err();
            assert!(e.contains("invalid filter"), "{bad}: {e}");
        }
        let e = r#"custom:plan = "gold""#.parse::<Filter>().unwrap_err();
        assert!(e.contains("cannot filter on \"custom:plan\""), "{e}");
    }

    #[test]
    fn names_come_from_flags_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users.txt");
        std::fs::write(&file, "# people to bring back\ncarol\n\n  dave \n").unwrap();
        let s = Selection::new(&["bob".into()], &[&file], None).unwrap();
        let names: Vec<&str> = s
            .users
            .as_ref()
            .unwrap()
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(names, ["bob", "carol", "dave"]);
        assert!(s.selects(&user("dave", "")));
        assert!(!s.selects(&user("erin", "")));
        assert!(Selection::new(&[], &[] as &[&Path], None).unwrap().is_all());
        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, "\n# nobody\n").unwrap();
        assert!(Selection::new(&[], &[&empty], None).is_err());
    }
}
