//! `cognito-backup`'s groups file: that npm tool writes a pool's users to `<pool>.json` (with an
//! inline `Groups` list per user) and its groups, with their description, precedence and role,
//! to `<pool>_groups.json` beside it, as the `Groups` array of ListGroups. This module finds
//! that file for an input and reads its group definitions.

use super::manifest::GroupRecord;
use crate::location::Location;
use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A groups file that was found and read.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupsFile {
    pub path: PathBuf,
    pub groups: Vec<GroupRecord>,
}

/// The group definitions for a set of input files: from `explicit` (`--groups-file`) when
/// given, which must exist; otherwise from the groups file beside each local input that has
/// one (another tool's files are local).
pub fn read_groups_files(inputs: &[Location], explicit: Option<&Path>) -> Result<Vec<GroupsFile>> {
    let paths: Vec<PathBuf> = match explicit {
        Some(path) => vec![path.to_path_buf()],
        None => {
            let mut found: Vec<PathBuf> = inputs
                .iter()
                .filter_map(|l| match l {
                    Location::Local(p) => Some(super::names::groups_file_beside(p)),
                    Location::S3(_) => None,
                })
                .filter(|p| p.is_file())
                .collect();
            found.dedup();
            found
        }
    };
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading groups file {}", path.display()))?;
            let groups = parse_groups(&text)
                .with_context(|| format!("{} is not a valid groups file", path.display()))?;
            Ok(GroupsFile { path, groups })
        })
        .collect()
}

/// One group as ListGroups returns it; dates, the pool ID and anything else are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedGroup {
    group_name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    precedence: Option<i32>,
    #[serde(default)]
    role_arn: Option<String>,
}

/// Parses a JSON array of ListGroups' group objects (`null` or `[]` for none).
pub fn parse_groups(text: &str) -> Result<Vec<GroupRecord>> {
    let values: Option<Vec<serde_json::Value>> = serde_json::from_str(text).map_err(|e| {
        anyhow!(
            "expected a JSON array of groups (GroupName, Description, Precedence, RoleArn): {e}"
        )
    })?;
    let mut groups = Vec::new();
    for (i, value) in values.unwrap_or_default().into_iter().enumerate() {
        let position = i + 1;
        let group: ListedGroup = serde_path_to_error::deserialize(value).map_err(|e| {
            let field = e.path().to_string();
            anyhow!("group {position}: field {field}: {}", e.into_inner())
        })?;
        if group.group_name.is_empty() {
            bail!("group {position} has an empty GroupName");
        }
        groups.push(GroupRecord {
            name: group.group_name,
            description: group.description,
            precedence: group.precedence,
            role_arn: group.role_arn,
        });
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_groups_file_is_named_after_the_users_file() {
        assert_eq!(
            crate::backup_file::names::groups_file_beside(Path::new("out/us-east-1_AbC.json")),
            Path::new("out/us-east-1_AbC_groups.json")
        );
        assert_eq!(
            crate::backup_file::names::groups_file_beside(Path::new("backup")),
            Path::new("backup_groups.json")
        );
    }

    #[test]
    fn reads_list_groups_objects_as_cognito_backup_writes_them() {
        let text = r#"[
{"CreationDate":"2024-03-01T10:00:00.000Z","Description":"Administrators","GroupName":"admins","LastModifiedDate":"2024-03-01T10:00:00.000Z","Precedence":1,"RoleArn":"arn:aws:iam::123456789012:role/admins","UserPoolId":"eu-west-1_Np4Gr0ups"}
,
{"CreationDate":"2024-03-02T10:00:00.000Z","GroupName":"viewers","LastModifiedDate":"2024-03-02T10:00:00.000Z","UserPoolId":"eu-west-1_Np4Gr0ups"}
]
"#;
        let groups = parse_groups(text).unwrap();
        assert_eq!(
            groups,
            [
                GroupRecord {
                    name: "admins".into(),
                    description: Some("Administrators".into()),
                    precedence: Some(1),
                    role_arn: Some("arn:aws:iam::123456789012:role/admins".into()),
                },
                GroupRecord {
                    name: "viewers".into(),
                    description: None,
                    precedence: None,
                    role_arn: None,
                }
            ]
        );
        assert!(parse_groups("[\n\n]\n").unwrap().is_empty());
        assert!(parse_groups("null").unwrap().is_empty());
    }

    #[test]
    fn bad_groups_files_say_what_is_wrong() {
        let err = |t: &str| format!("{:#}", parse_groups(t).unwrap_err());
        assert!(err("{}").contains("JSON array of groups"), "{}", err("{}"));
        assert!(err(r#"[{"Username":"a"}]"#).contains("group 1"));
        assert!(err(r#"[{"GroupName":"a","Precedence":"high"}]"#).contains("Precedence"));
        assert!(err(r#"[{"GroupName":""}]"#).contains("empty GroupName"));
    }

    #[test]
    fn finds_the_file_beside_the_input_or_takes_the_one_given() {
        let dir = tempfile::tempdir().unwrap();
        let users = [Location::Local(dir.path().join("pool.json"))];
        let beside = dir.path().join("pool_groups.json");
        assert!(read_groups_files(&users, None).unwrap().is_empty());
        std::fs::write(&beside, r#"[{"GroupName":"g","Precedence":3}]"#).unwrap();
        let found = read_groups_files(&users, None).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, beside);
        assert_eq!(found[0].groups[0].precedence, Some(3));

        let other = dir.path().join("elsewhere.json");
        let err = read_groups_files(&users, Some(&other)).unwrap_err();
        assert!(format!("{err:#}").contains("elsewhere.json"), "{err:#}");
        std::fs::write(&other, "[]").unwrap();
        let found = read_groups_files(&users, Some(&other)).unwrap();
        assert_eq!(
            found,
            [GroupsFile {
                path: other,
                groups: vec![]
            }]
        );
    }
}
