//! Where a backup lives and what its files are called: the data file (and each shard's),
//! and the companions named after it — the manifest, the configuration file, the resume state
//! of a backup under way, the sub map and the client map restore writes, and `cognito-backup`'s
//! groups file — plus the timestamps a backup records. Every file name of a backup is made
//! here.

use crate::location::Location;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Now, as a backup records it (RFC 3339, milliseconds).
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// The file a shard writes: the index goes before the extension, like the Go original
/// (`backup.json` → `backup-2.json`, `backup` → `backup-2`, `b.json.gz` → `b-2.json.gz`).
pub fn shard_path(path: &Location, index: u32) -> Location {
    let (stem, ext) = split_extension(path);
    path.with_file_name(&format!("{stem}-{index}{ext}"))
}

/// The path a shard file was named after: `backup-2.json` (shard 2) → `backup.json`.
pub fn unshard_path(path: &Location, index: u32) -> Option<Location> {
    let (stem, ext) = split_extension(path);
    let base = stem.strip_suffix(&format!("-{index}"))?;
    Some(path.with_file_name(&format!("{base}{ext}")))
}

/// The manifest beside a data file: `backup.json` → `backup.meta.json`,
/// `backup-2.json.gz` → `backup-2.meta.json`.
pub fn manifest_path(data: &Location) -> Location {
    companion_path(data, ".meta.json")
}

/// A file that belongs to a data file, named by its stem and `suffix`:
/// `backup-2.json.gz` with `.sub-map.jsonl` → `backup-2.sub-map.jsonl`.
pub fn companion_path(data: &Location, suffix: &str) -> Location {
    let (stem, _) = split_extension(data);
    data.with_file_name(&format!("{stem}{suffix}"))
}

/// Splits a file name into stem and extension, keeping `.json.gz`, `.json.age` and
/// `.json.gz.age` together.
fn split_extension(path: &Location) -> (String, String) {
    let name = path.file_name();
    for ext in [
        ".json.gz.age",
        ".json.age",
        ".json.gz",
        ".gz.age",
        ".gz",
        ".age",
    ] {
        if let Some(stem) = name.strip_suffix(ext).filter(|s| !s.is_empty()) {
            if ext.starts_with(".json") || !stem.contains('.') {
                return (stem.to_string(), ext.to_string());
            }
            // `name.csv.gz`: keep the inner extension with the outer one.
            let (inner_stem, inner_ext) = stem.rsplit_once('.').unwrap_or((stem, ""));
            return (inner_stem.to_string(), format!(".{inner_ext}{ext}"));
        }
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem.to_string(), format!(".{ext}")),
        _ => (name, String::new()),
    }
}

/// The members file of a shard whose set splits the memberships, beside its data file, with
/// the data file's extension: `backup-2.json` → `backup-2.members.json`, `b-1.json.gz.age` →
/// `b-1.members.json.gz.age`.
pub fn members_path(data: &Location) -> Location {
    let (stem, ext) = split_extension(data);
    data.with_file_name(&format!("{stem}.members{ext}"))
}

/// Whether a file name is a backup's companion rather than a data file: a manifest, or a
/// members file (a shell's `backup-*.json` matches both).
pub fn is_companion(name: &str) -> bool {
    let members = [
        "",
        ".json",
        ".json.gz",
        ".json.age",
        ".json.gz.age",
        ".gz",
        ".age",
    ]
    .iter()
    .any(|ext| {
        name.strip_suffix(&format!(".members{ext}"))
            .is_some_and(|stem| !stem.is_empty())
    });
    name.ends_with(".meta.json") || members
}

/// The configuration file's name for a data file: `backup.json` → `backup.config.json`
/// (`backup.config.json.age` when encrypted), `backup-2.json` → `backup-2.config.json`.
pub fn config_path(data: &Location, encrypted: bool) -> Location {
    let suffix = if encrypted {
        ".config.json.age"
    } else {
        ".config.json"
    };
    companion_path(data, suffix)
}

/// The configuration file beside a data file, if there is one.
pub fn find_config(data: &Location) -> Option<Location> {
    [config_path(data, false), config_path(data, true)]
        .into_iter()
        .find(|p| p.exists())
}

/// Where `cognito-backup` puts the groups of a users file: `<stem>_groups.json` beside it
/// (`us-east-1_AbC.json` → `us-east-1_AbC_groups.json`).
pub fn groups_file_beside(input: &Path) -> PathBuf {
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".json").unwrap_or(&name);
    input.with_file_name(format!("{stem}_groups.json"))
}

/// `backup.json` → `backup.sub-map.<pool>.jsonl`, beside the (first) input; an S3 input's map
/// goes to the current directory.
pub fn sub_map_path(input: &Location, pool_id: &str) -> PathBuf {
    companion_path(input, &format!(".sub-map.{pool_id}.jsonl")).local_path()
}

/// `backup.json` → `backup.client-map.jsonl`, beside the (first) input, like the sub map.
/// An S3 input's map goes to the current directory.
pub fn client_map_path(input: &Location) -> PathBuf {
    companion_path(input, ".client-map.jsonl").local_path()
}

/// The resume state of a backup that writes `data`, beside it: `backup.json` →
/// `.backup.json.resume` (a directory on disk; for an S3 object, a key prefix beside it).
pub fn resume_dir(data: &Location) -> Location {
    data.with_file_name(&format!(".{}.resume", data.file_name()))
}

/// The file in a resume state that says what the backup is and how far it got.
pub fn resume_state_file(dir: &Location) -> Location {
    dir.join("state.json")
}

/// The data file being written, kept in the resume state of a local, unencrypted output until
/// it is whole: `backup.json.gz` → `.backup.json.gz.resume/backup.json.gz.partial`.
pub fn resume_data_file(dir: &Location, data: &Location) -> Location {
    dir.join(&format!("{}.partial", data.file_name()))
}

/// The users of one finished prefix in a resume state: `prefix-3a.json.gz`.
pub fn resume_spool_file(dir: &Location, prefix: &str) -> Location {
    dir.join(&format!("prefix-{prefix}.json.gz"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_and_manifest_names() {
        let p = |s: &str| s.parse::<Location>().unwrap();
        assert_eq!(shard_path(&p("backup.json"), 2), p("backup-2.json"));
        assert_eq!(shard_path(&p("backup"), 2), p("backup-2"));
        assert_eq!(shard_path(&p("out/b.json"), 3), p("out/b-3.json"));
        assert_eq!(shard_path(&p("b.json.gz"), 1), p("b-1.json.gz"));
        assert_eq!(shard_path(&p("b.json.gz.age"), 1), p("b-1.json.gz.age"));
        assert_eq!(manifest_path(&p("backup.json")), p("backup.meta.json"));
        assert_eq!(
            manifest_path(&p("dir/backup-2.json")),
            p("dir/backup-2.meta.json")
        );
        assert_eq!(manifest_path(&p("b.json.gz.age")), p("b.meta.json"));
        assert_eq!(manifest_path(&p("backup")), p("backup.meta.json"));
        assert_eq!(members_path(&p("d/b-2.json")), p("d/b-2.members.json"));
        assert_eq!(
            members_path(&p("s3://bkt/b-1.json.gz.age")),
            p("s3://bkt/b-1.members.json.gz.age")
        );
        assert_eq!(members_path(&p("b-3")), p("b-3.members"));
        assert!(is_companion("b-2.members.json.gz") && is_companion("b-2.meta.json"));
        assert!(is_companion("b-2.members") && is_companion("b-2.members.json.gz.age"));
        assert!(!is_companion("b-2.json") && !is_companion("members.json"));
        assert!(!is_companion("team.members-2.json"));
        for name in ["backup.json", "b", "dir/b.json.gz.age", "x.tar.gz"] {
            assert_eq!(unshard_path(&shard_path(&p(name), 7), 7), Some(p(name)));
        }
        assert_eq!(unshard_path(&p("backup-2.json"), 3), None);
        // The same names for S3 objects, under the same key prefix.
        assert_eq!(
            shard_path(&p("s3://bkt/nightly/b.json.gz"), 2),
            p("s3://bkt/nightly/b-2.json.gz")
        );
        assert_eq!(
            manifest_path(&p("s3://bkt/nightly/b-2.json.gz.age")),
            p("s3://bkt/nightly/b-2.meta.json")
        );
        assert_eq!(
            unshard_path(&p("s3://bkt/b-3.json"), 3),
            Some(p("s3://bkt/b.json"))
        );
    }

    #[test]
    fn the_resume_state_sits_beside_the_data_file() {
        let p = |s: &str| s.parse::<Location>().unwrap();
        let dir = resume_dir(&p("out/backup-2.json.gz"));
        assert_eq!(dir, p("out/.backup-2.json.gz.resume"));
        assert_eq!(
            resume_state_file(&dir),
            p("out/.backup-2.json.gz.resume/state.json")
        );
        assert_eq!(
            resume_spool_file(&dir, "3a"),
            p("out/.backup-2.json.gz.resume/prefix-3a.json.gz")
        );
        assert_eq!(
            resume_data_file(&dir, &p("out/backup-2.json.gz")),
            p("out/.backup-2.json.gz.resume/backup-2.json.gz.partial")
        );
        assert_eq!(resume_dir(&p("backup.json")), p(".backup.json.resume"));
        let s3 = resume_dir(&p("s3://bkt/nightly/b.json"));
        assert_eq!(s3, p("s3://bkt/nightly/.b.json.resume"));
        assert_eq!(
            resume_spool_file(&s3, "f"),
            p("s3://bkt/nightly/.b.json.resume/prefix-f.json.gz")
        );
    }

    #[test]
    fn restores_maps_sit_beside_the_input_and_name_the_pool() {
        assert_eq!(
            sub_map_path(&"dir/backup.json".parse().unwrap(), "us-east-1_A"),
            PathBuf::from("dir/backup.sub-map.us-east-1_A.jsonl")
        );
        assert_eq!(
            sub_map_path(&"backup-2.json.gz".parse().unwrap(), "eu-west-1_B"),
            PathBuf::from("backup-2.sub-map.eu-west-1_B.jsonl")
        );
        assert_eq!(
            client_map_path(&"dir/backup.json".parse().unwrap()),
            PathBuf::from("dir/backup.client-map.jsonl")
        );
    }
}
