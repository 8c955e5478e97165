//! Shard sets: the files of a sharded backup belong together (`backup-1.json` …
//! `backup-n.json`, each manifest saying `"shard": "k/n"`). From the inputs and their
//! manifests, this module names the members of each set that are missing; `verify` asks
//! which are not on disk, `restore` which are not among its inputs.

use super::manifest::Manifest;
use super::names;
use crate::location::Location;
use crate::shard::Shard;
use anyhow::Result;
use std::collections::BTreeSet;

/// Every member of the shard sets that `files` (data files with their manifests) belong to,
/// for which `present` is false; sorted, each once. Files without a shard, or whose name does
/// not follow the shard naming, belong to no set.
pub fn missing_members<'a>(
    files: impl IntoIterator<Item = (&'a Location, &'a Manifest)>,
    present: impl Fn(&Location) -> bool,
) -> Vec<Location> {
    let mut missing = BTreeSet::new();
    for (path, manifest) in files {
        let Some(set) = manifest
            .shard
            .as_deref()
            .and_then(|s| s.parse::<Shard>().ok())
        else {
            continue;
        };
        let Some(base) = names::unshard_path(path, set.index) else {
            continue;
        };
        for i in 1..=set.total {
            let member = names::shard_path(&base, i);
            if !present(&member) {
                missing.insert(member);
            }
        }
    }
    missing.into_iter().collect()
}

/// The members of the inputs' shard sets that are not among the inputs, as their manifests
/// say (inputs without a manifest belong to no set). A restore of these inputs would leave
/// those shards' users out.
pub fn missing_from_inputs(inputs: &[Location]) -> Result<Vec<Location>> {
    let mut files = Vec::new();
    for path in inputs {
        let manifest_path = names::manifest_path(path);
        if manifest_path.exists() {
            files.push((path, Manifest::read(&manifest_path)?));
        }
    }
    let given: BTreeSet<Location> = inputs.iter().map(same_file).collect();
    Ok(missing_members(
        files.iter().map(|(p, m)| (*p, m)),
        |member| given.contains(&same_file(member)),
    ))
}

/// The first input given more than once (however its path is written), if any: the same
/// shard twice is not a complete set.
pub fn repeated_input(inputs: &[Location]) -> Option<&Location> {
    let mut seen = BTreeSet::new();
    inputs.iter().find(|p| !seen.insert(same_file(p)))
}

/// A location that names the same file however its path was written (`./a.json`,
/// `dir/../a.json`).
fn same_file(location: &Location) -> Location {
    match location {
        Location::Local(path) => {
            Location::Local(std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()))
        }
        s3 => s3.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup_file::FORMAT_VERSION;

    fn manifest(shard: Option<&str>) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            cbr_version: "0".into(),
            pool_id: "p".into(),
            pool_name: "p".into(),
            region: "r".into(),
            username_attributes: vec![],
            case_sensitive: None,
            shard: shard.map(str::to_string),
            user_count: 0,
            started_at: String::new(),
            finished_at: String::new(),
            data_file: String::new(),
            sha256: String::new(),
            compression: None,
            encryption: None,
            groups: vec![],
            memberships: None,
        }
    }

    #[test]
    fn names_the_members_that_are_not_present() {
        let m = manifest(Some("1/3"));
        let whole = manifest(None);
        let (b1, whole_file): (Location, Location) = (
            "d/b-1.json".parse().unwrap(),
            "d/whole.json".parse().unwrap(),
        );
        let files = [(&b1, &m), (&whole_file, &whole)];
        let b3: Location = "d/b-3.json".parse().unwrap();
        let missing = missing_members(files, |p| *p == b3);
        let expected: [Location; 2] =
            ["d/b-1.json".parse().unwrap(), "d/b-2.json".parse().unwrap()];
        assert_eq!(missing, expected);
        assert!(missing_members(files, |_| true).is_empty());
    }

    #[test]
    fn a_restore_of_part_of_a_set_names_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let inputs: Vec<Location> = (1..=3)
            .map(|k| {
                let data: Location = dir.path().join(format!("b-{k}.json")).into();
                std::fs::write(data.local_path(), "[]").unwrap();
                let m = manifest(Some(&format!("{k}/3")));
                super::names::manifest_path(&data)
                    .write_atomic(&m.to_json().unwrap())
                    .unwrap();
                data
            })
            .collect();
        assert!(missing_from_inputs(&inputs).unwrap().is_empty());
        assert_eq!(repeated_input(&inputs), None);
        // The same file written another way counts as given.
        let other_spelling: Location = dir.path().join(".").join("b-2.json").into();
        let twice = [inputs[1].clone(), inputs[0].clone(), other_spelling.clone()];
        assert_eq!(repeated_input(&twice), Some(&other_spelling));
        let some = [inputs[0].clone(), other_spelling];
        assert_eq!(missing_from_inputs(&some).unwrap(), [inputs[2].clone()]);
        // A file without a manifest belongs to no set.
        let loose: Location = dir.path().join("loose.json").into();
        std::fs::write(loose.local_path(), "[]").unwrap();
        assert!(missing_from_inputs(&[loose]).unwrap().is_empty());
    }
}
