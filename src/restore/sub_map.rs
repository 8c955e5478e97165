//! The sub map: one JSON line per restored user, `{"username", "old_sub", "new_sub",
//! "new_username"?, "pool_id"}`, saying which user of the target pool each backup user became.
//! Applications that keyed data on `sub` need it, and restore itself takes it as proof of
//! identity: a pool user whose `sub` the map names as the new `sub` of a backup user is that
//! person, whatever damage was done to them since (subs are never reused, in any pool).
//!
//! A map belongs to one pool: its default name carries the pool's id
//! (`backup.sub-map.us-east-1_AbC.jsonl`), every line names the pool, and a map of another pool
//! is refused before any write. A rerun keeps every line and adds lines for users not yet in
//! it.

use crate::backup_file::UserRecord;
use crate::location::AtomicFile;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

/// One line of the map.
#[derive(Debug, Serialize, Deserialize)]
pub struct Line {
    pub username: String,
    pub old_sub: Option<String>,
    pub new_sub: Option<String>,
    /// The user's username in the target, where it differs from the backup's (pools that sign
    /// in with email or phone generate a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_username: Option<String>,
    /// The pool the user was restored into (absent in maps written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_id: Option<String>,
}

/// The map of earlier restores into one pool: old `sub` → new `sub`.
#[derive(Debug, Default)]
pub struct SubMap {
    new_subs: HashMap<String, String>,
}

impl SubMap {
    /// The map at `path`, if there is one; an error if it records another pool.
    pub fn read(path: &Path, pool_id: &str) -> Result<SubMap> {
        let mut map = SubMap::default();
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(map),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let entry: Line = serde_json::from_str(&line).with_context(|| {
                format!(
                    "reading {} line {}: not a sub map line",
                    path.display(),
                    i + 1
                )
            })?;
            if let Some(other) = entry.pool_id.as_deref().filter(|p| *p != pool_id) {
                bail!(
                    "the sub map {} belongs to pool {other}, not {pool_id}; nothing was \
                     written. Pass --sub-map with the map of {pool_id} (or a new file)",
                    path.display()
                );
            }
            if let (Some(old), Some(new)) = (entry.old_sub, entry.new_sub) {
                map.new_subs.insert(old, new);
            }
        }
        tracing::debug!(
            users = map.new_subs.len(),
            "read the sub map of earlier restores"
        );
        Ok(map)
    }

    /// The `sub` the backup's user has in the pool: the one an earlier restore gave it, or
    /// its own.
    pub fn pool_sub<'a>(&'a self, want: &'a UserRecord) -> Option<&'a str> {
        let sub = want.sub()?;
        Some(self.new_subs.get(sub).map_or(sub, String::as_str))
    }

    /// Whether `have` (in the pool) is `want` (in the backup): the same `sub`, or the one the
    /// map gave it.
    pub fn same_person(&self, want: &UserRecord, have: &UserRecord) -> bool {
        let Some(sub) = want.sub() else {
            return false;
        };
        have.sub()
            .is_some_and(|h| h == sub || self.new_subs.get(sub).is_some_and(|n| n == h))
    }

    /// Whether the map already has this line (a rerun writes only what is new).
    fn has(&self, old_sub: Option<&str>, new_sub: Option<&str>) -> bool {
        match (old_sub, new_sub) {
            (Some(old), Some(new)) => self.new_subs.get(old).is_some_and(|n| n == new),
            _ => false,
        }
    }
}

/// The map being written: the earlier lines, then a line for each user this run restored or
/// found restored that the map lacks. It takes the map's name when [`Writer::commit`] is called.
pub struct Writer {
    file: AtomicFile,
    out: std::io::BufWriter<std::fs::File>,
    pool_id: String,
}

impl Writer {
    pub fn create(path: &Path, pool_id: &str) -> Result<Writer> {
        let file = AtomicFile::create(path)?;
        let mut out = std::io::BufWriter::new(file.reopen()?);
        match std::fs::File::open(path) {
            Ok(mut earlier) => {
                std::io::copy(&mut earlier, &mut out)
                    .with_context(|| format!("copying {}", path.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        Ok(Writer {
            file,
            out,
            pool_id: pool_id.to_string(),
        })
    }

    /// Records that `user` is `new_username` with `new_sub` in the pool, unless `known` says
    /// so already.
    pub fn add(
        &mut self,
        known: &SubMap,
        user: &UserRecord,
        new_sub: Option<&str>,
        new_username: Option<&str>,
    ) -> Result<()> {
        if known.has(user.sub(), new_sub) {
            return Ok(());
        }
        let line = serde_json::to_string(&Line {
            username: user.username.clone(),
            old_sub: user.sub().map(str::to_string),
            new_sub: new_sub.map(str::to_string),
            new_username: new_username
                .filter(|n| *n != user.username)
                .map(str::to_string),
            pool_id: Some(self.pool_id.clone()),
        })?;
        writeln!(self.out, "{line}").context("writing the sub map")
    }

    /// The map under its name.
    pub fn commit(self) -> Result<()> {
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.flush().context("writing the sub map")?;
        self.file.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(sub: &str) -> UserRecord {
        crate::backup_file::test_user("a", &[("sub", sub)])
    }

    #[test]
    fn a_rerun_keeps_every_line_and_adds_only_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let mut w = Writer::create(&path, "p").unwrap();
        w.add(&SubMap::default(), &user("old1"), Some("new1"), Some("a"))
            .unwrap();
        w.commit().unwrap();
        let known = SubMap::read(&path, "p").unwrap();
        assert!(known.same_person(&user("old1"), &user("new1")));
        assert!(known.same_person(&user("old2"), &user("old2")));
        assert!(!known.same_person(&user("old1"), &user("new2")));
        assert_eq!(known.pool_sub(&user("old1")), Some("new1"));

        let mut w = Writer::create(&path, "p").unwrap();
        w.add(&known, &user("old1"), Some("new1"), None).unwrap();
        w.add(&known, &user("old2"), Some("new2"), None).unwrap();
        w.commit().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("\"new1\"") && lines[0].contains("\"pool_id\":\"p\""));
        assert!(lines[1].contains("\"new2\""));
    }

    #[test]
    fn a_map_of_another_pool_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let mut w = Writer::create(&path, "pool-a").unwrap();
        w.add(&SubMap::default(), &user("o"), Some("n"), None)
            .unwrap();
        w.commit().unwrap();
        let err = SubMap::read(&path, "pool-b").unwrap_err().to_string();
        assert!(err.contains("belongs to pool pool-a"), "{err}");
        // A map written before lines named their pool is taken as it is.
        std::fs::write(
            &path,
            "{\"username\":\"a\",\"old_sub\":\"o\",\"new_sub\":\"n\"}\n",
        )
        .unwrap();
        assert!(
            SubMap::read(&path, "pool-b")
                .unwrap()
                .same_person(&user("o"), &user("n"))
        );
    }
}
