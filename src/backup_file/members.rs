//! Memberships split between the shards of a set. Each shard lists the members of only the
//! groups it owns (`shard::owner`), so together the shards list each group once: a shard's own
//! users' memberships in those groups go into their records' `Groups`, other shards' users'
//! into its members file beside the data file (`backup-2.members.json`, `names`). That file is
//! a JSON array of entries shaped like user records cut down to `Username`, the `sub`
//! attribute and one group in `Groups`, written and encoded as the data file is.
//!
//! Reading a set, [`SetMembers`] merges the members files of every input into the records they
//! name (same username and same `sub`), in memory that does not grow with the pool
//! (`memberships`), and says which groups the inputs' memberships cover: all of them, unless
//! only part of a split set is given (`--partial`).

use super::encoding::{Identities, sha256_file};
use super::manifest::Manifest;
use super::names;
use super::reader::for_each_record;
use super::record::{Attribute, UserRecord};
use crate::location::Location;
use crate::memberships::{DEFAULT_CHUNK, Index, MembershipsBuilder};
use crate::shard::Shard;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// One entry of a members file: `{"Username", "Attributes": [{"Name": "sub", …}], "Groups":
/// [group]}`.
#[derive(Serialize)]
pub struct Entry<'a> {
    #[serde(rename = "Username")]
    username: &'a str,
    #[serde(rename = "Attributes")]
    attributes: [Attribute; 1],
    #[serde(rename = "Groups")]
    groups: [&'a str; 1],
}

impl<'a> Entry<'a> {
    pub fn new(username: &'a str, sub: &str, group: &'a str) -> Entry<'a> {
        Entry {
            username,
            attributes: [Attribute {
                name: "sub".to_string(),
                value: Some(sub.to_string()),
            }],
            groups: [group],
        }
    }
}

/// The memberships the members files of a set of inputs hold, by username and `sub`, and the
/// groups the inputs' memberships cover.
#[derive(Default)]
pub struct SetMembers {
    names: Vec<String>,
    /// Absent when no input has a members file.
    index: Option<Index>,
    /// `None`: every group (a whole set, a backup of the whole pool, older shards).
    covered: Option<BTreeSet<String>>,
}

impl std::fmt::Debug for SetMembers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetMembers")
            .field("groups", &self.names.len())
            .field("covered", &self.covered)
            .finish()
    }
}

/// The key of a user in the index: its username and `sub` together.
fn key(username: &str, sub: &str) -> String {
    format!("{username}\u{0}{sub}")
}

impl SetMembers {
    /// Reads the members files of `inputs` (those whose manifest names one). Each is checked
    /// against its manifest (SHA-256 and count) unless `check` is false. Spill files go into
    /// `dir`.
    pub fn load(
        inputs: &[Location],
        ids: &Identities,
        dir: &Path,
        check: bool,
    ) -> Result<SetMembers> {
        let mut manifests = Vec::new();
        for path in inputs {
            let manifest_path = names::manifest_path(path);
            let manifest = manifest_path
                .exists()
                .then(|| Manifest::read(&manifest_path))
                .transpose()?;
            manifests.push((path, manifest));
        }
        let covered = coverage(manifests.iter().map(|(_, m)| m.as_ref()));
        let mut names = Vec::new();
        let mut numbers: HashMap<String, u32> = HashMap::new();
        let mut builder = None;
        for (path, manifest) in &manifests {
            let Some(split) = manifest.as_ref().and_then(|m| m.memberships.as_ref()) else {
                continue;
            };
            let file = path.with_file_name(&split.file);
            if check {
                let sum = sha256_file(&file)
                    .with_context(|| format!("reading {}, {}'s members file", file, path))?;
                if sum != split.sha256 {
                    bail!(
                        "{}: SHA-256 is {sum}, the manifest says {}: the file was changed or \
                         damaged",
                        file.display(),
                        split.sha256
                    );
                }
            }
            let builder =
                builder.get_or_insert_with(|| MembershipsBuilder::new(dir, DEFAULT_CHUNK));
            let count = for_each_record(&file, ids, |position, entry| {
                let Some(sub) = entry.sub() else {
                    bail!("entry {position} of {} has no sub", file.display());
                };
                for group in entry.groups() {
                    let next = names.len() as u32;
                    let number = *numbers.entry(group.clone()).or_insert_with(|| {
                        names.push(group.clone());
                        next
                    });
                    builder.add(&key(&entry.username, sub), number)?;
                }
                Ok(())
            })?;
            if check && count != split.count {
                bail!(
                    "{}: {count} memberships in the file, the manifest says {}",
                    file.display(),
                    split.count
                );
            }
        }
        Ok(SetMembers {
            names,
            index: builder.map(MembershipsBuilder::finish).transpose()?,
            covered,
        })
    }

    /// Adds to a record of the inputs the memberships the members files hold for it (same
    /// username, same `sub`).
    pub fn complete(&self, user: &mut UserRecord) -> Result<()> {
        let (Some(index), Some(sub)) = (&self.index, user.sub()) else {
            return Ok(());
        };
        let numbers = index.groups_of(&key(&user.username, sub))?;
        if numbers.is_empty() {
            return Ok(());
        }
        let groups = user.groups.get_or_insert_with(Vec::new);
        for n in numbers {
            let name = &self.names[n as usize];
            if !groups.contains(name) {
                groups.push(name.clone());
            }
        }
        Ok(())
    }

    /// The groups the inputs' memberships cover; `None`: all of them.
    pub fn covered(&self) -> Option<&BTreeSet<String>> {
        self.covered.as_ref()
    }

    /// Keeps only the memberships in groups the inputs cover: what is compared with them.
    pub fn restrict(&self, groups: &mut Option<Vec<String>>) {
        if let (Some(covered), Some(groups)) = (&self.covered, groups) {
            groups.retain(|g| covered.contains(g));
        }
    }
}

/// The groups whose memberships the files with these manifests hold: every group, unless
/// every file is a shard of a split set (its manifest has `memberships`) and some shard of a
/// set is not among them; then the groups the given shards listed.
fn coverage<'a>(
    manifests: impl IntoIterator<Item = Option<&'a Manifest>>,
) -> Option<BTreeSet<String>> {
    let mut given: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    let mut groups = BTreeSet::new();
    for manifest in manifests {
        let m = manifest?;
        let split = m.memberships.as_ref()?;
        let shard: Shard = m.shard.as_deref()?.parse().ok()?;
        given.entry(shard.total).or_default().insert(shard.index);
        groups.extend(split.groups.iter().cloned());
    }
    let whole = given
        .iter()
        .all(|(total, indices)| indices.len() == *total as usize);
    (!whole).then_some(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup_file::manifest::SplitMemberships;
    use crate::backup_file::record::test_user;
    use crate::backup_file::{DataWriter, Encoding, FORMAT_VERSION};

    fn manifest(shard: &str, groups: &[&str], file: Option<(&str, &str, u64)>) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            cbr_version: "0".into(),
            pool_id: "p".into(),
            pool_name: "p".into(),
            region: "r".into(),
            username_attributes: vec![],
            case_sensitive: None,
            shard: Some(shard.into()),
            user_count: 0,
            started_at: String::new(),
            finished_at: String::new(),
            data_file: String::new(),
            sha256: String::new(),
            compression: None,
            encryption: None,
            groups: vec![],
            memberships: file.map(|(name, sha256, count)| SplitMemberships {
                groups: groups.iter().map(|g| g.to_string()).collect(),
                file: name.into(),
                sha256: sha256.into(),
                count,
            }),
        }
    }

    #[test]
    fn a_whole_set_covers_every_group_and_part_of_one_its_shards_groups() {
        let one = manifest("1/3", &["a"], Some(("x", "", 0)));
        let two = manifest("2/3", &["b", "c"], Some(("x", "", 0)));
        let three = manifest("3/3", &[], Some(("x", "", 0)));
        assert_eq!(coverage([Some(&one), Some(&two), Some(&three)]), None);
        let part = coverage([Some(&one), Some(&three)]).unwrap();
        assert_eq!(part, BTreeSet::from(["a".to_string()]));
        // Older shards, files without a manifest, and whole backups cover every group.
        let old = manifest("2/3", &[], None);
        assert_eq!(coverage([Some(&one), Some(&old)]), None);
        assert_eq!(coverage([Some(&one), None]), None);
        assert_eq!(coverage([]), None);
    }

    /// Writes a members file and its manifest beside `data`, as a shard's backup does.
    fn write_set_member(
        data: &Location,
        shard: &str,
        groups: &[&str],
        entries: &[(&str, &str, &str)],
    ) {
        std::fs::write(data.local_path(), "[]").unwrap();
        let file = names::members_path(data);
        let mut writer =
            DataWriter::create(&file, &Encoding::new(Path::new(&file.file_name()), vec![]))
                .unwrap();
        let mut spool = crate::backup_file::Spool::new(&std::env::temp_dir()).unwrap();
        for (user, sub, group) in entries {
            spool.push(&Entry::new(user, sub, group)).unwrap();
        }
        writer.append(&mut spool.finish().unwrap()).unwrap();
        let (out, written) = writer.finish().unwrap();
        out.commit().unwrap();
        let m = manifest(
            shard,
            groups,
            Some((&file.file_name(), &written.sha256, written.count)),
        );
        names::manifest_path(data)
            .write_atomic(&m.to_json().unwrap())
            .unwrap();
    }

    #[test]
    fn the_members_files_complete_the_records_they_name_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let inputs: Vec<Location> = (1..=2)
            .map(|k| dir.path().join(format!("b-{k}.json")).into())
            .collect();
        write_set_member(&inputs[0], "1/2", &["a"], &[("bob", "s-bob", "a")]);
        write_set_member(
            &inputs[1],
            "2/2",
            &["b", "c"],
            &[
                ("ann", "s-ann", "b"),
                ("ann", "s-ann", "c"),
                ("bob", "other", "b"),
            ],
        );
        let set = SetMembers::load(&inputs, &Identities::default(), dir.path(), true).unwrap();
        assert_eq!(set.covered(), None);
        let mut ann = test_user("ann", &[("sub", "s-ann")]);
        ann.groups = Some(vec!["a".into()]);
        set.complete(&mut ann).unwrap();
        assert_eq!(ann.groups(), ["a", "b", "c"]);
        // Bob of shard 2 has another sub: its entry is not this bob's.
        let mut bob = test_user("bob", &[("sub", "s-bob")]);
        bob.groups = Some(vec![]);
        set.complete(&mut bob).unwrap();
        assert_eq!(bob.groups(), ["a"]);
        let mut nobody = test_user("carl", &[("sub", "s-carl")]);
        set.complete(&mut nobody).unwrap();
        assert_eq!(nobody.groups, None);

        // One file of the set: only its groups are covered.
        let part =
            SetMembers::load(&inputs[1..], &Identities::default(), dir.path(), true).unwrap();
        let covered: Vec<&str> = part.covered().unwrap().iter().map(|s| s.as_str()).collect();
        assert_eq!(covered, ["b", "c"]);
        let mut groups = Some(vec!["a".to_string(), "b".to_string(), "z".to_string()]);
        part.restrict(&mut groups);
        assert_eq!(groups.unwrap(), ["b"]);

        // A changed members file is refused.
        let file = names::members_path(&inputs[0]);
        std::fs::write(file.local_path(), "[]").unwrap();
        let err = SetMembers::load(&inputs, &Identities::default(), dir.path(), true)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("changed or damaged"), "{err:#}");
    }
}
