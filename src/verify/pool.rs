//! A backup compared with a live pool: a fresh private copy of the same slice of the pool
//! (`listing::snapshot`), matched user by user by the pool's identity key and judged literally
//! or as restored (`compare`), and the groups compared setting by setting.

use super::{Difference, GroupDifference, NotCompared, Options, PoolComparison};
use crate::backup_file::{
    EXTERNAL_PROVIDER, GroupRecord, Identities, Manifest, SetMembers, UserRecord, for_each_record,
};
use crate::cognito::Cognito;
use crate::compare::{Comparison, Identity, Pairs};
use crate::listing;
use crate::shard::Shard;
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};

/// Examples kept per kind of difference; the counts are always complete.
const EXAMPLES: usize = 20;

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

pub async fn compare_with_pool(
    cognito: &Cognito,
    pool_id: &str,
    args: &Options,
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
    let dir = tempfile::tempdir()?;
    let snapshot = listing::snapshot(cognito, pool_id, single, dir.path(), true).await?;
    // Who is who, as the pool tells its users apart; and whether a restore made the pool.
    let identity = Identity::of(&snapshot.pool);
    let comparison = Comparison::with_pool(pool_id, &args.inputs[0], manifests);
    let in_scope = |user: &UserRecord| {
        whole
            || single.is_some()
            || user
                .sub()
                .is_some_and(|sub| shards.iter().flatten().any(|s| s.contains_sub(sub)))
    };
    let mut pairs = Pairs::new(dir.path(), snapshot.users, identity.clone())?;
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
    // A split shard set's memberships are in its records and its members files; part of the
    // set covers only the groups its shards listed.
    let members = SetMembers::load(&args.inputs, ids, dir.path(), false)?;
    for_each_record(&snapshot.data, &Identities::default(), |_, mut user| {
        if in_scope(&user) {
            cmp.users_in_pool += 1;
            members.restrict(&mut user.groups);
            pairs.have(&user)?;
        }
        Ok(())
    })?;
    let live_groups: BTreeMap<String, GroupRecord> = snapshot
        .groups
        .into_iter()
        .map(|g| (g.name.clone(), g))
        .collect();
    let mut wanted_groups: BTreeSet<String> = definitions.keys().cloned().collect();
    let mut without_memberships = 0u64;
    for path in &args.inputs {
        for_each_record(path, ids, |_, mut user| {
            members.complete(&mut user)?;
            cmp.users_in_backup += 1;
            wanted_groups.extend(user.groups().iter().cloned());
            without_memberships += u64::from(user.groups.is_none());
            pairs.want(&user)
        })?;
    }
    pairs.walk(|was, now| {
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
    if let Some(covered) = members.covered() {
        let others: Vec<&str> = live_groups
            .keys()
            .filter(|g| !covered.contains(*g))
            .map(String::as_str)
            .collect();
        if !others.is_empty() {
            not_compared.push(NotCompared {
                what: "group memberships".to_string(),
                why: format!(
                    "in groups the shards not given listed ({})",
                    others.join(", ")
                ),
            });
        }
    }
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
