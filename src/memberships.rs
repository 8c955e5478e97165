//! The username → groups index a backup builds from ListUsersInGroup, so each user record can
//! carry its inline `Groups` list, in memory that does not grow with the pool.
//!
//! Each membership is one fixed-size entry: a 128-bit hash of the username and the group's
//! index. Entries are collected in a buffer; up to `chunk` of them stay in memory, sorted. Past
//! that, full buffers are sorted and written as runs to unnamed temporary files and merged into
//! one sorted file at the end, which lookups binary-search with positioned reads (the page
//! cache keeps the hot part in memory, the process does not). Memory is bounded by `chunk`
//! entries (32 bytes each in memory) whatever the number of members.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Entries kept in memory before spilling to disk: 1,000,000 × 32 bytes (20 on disk, padded
/// to the u128's alignment in memory) = 32 MB.
pub const DEFAULT_CHUNK: usize = 1_000_000;

const ENTRY: usize = 20;

type Key = u128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    key: Key,
    group: u32,
}

impl Entry {
    fn encode(self) -> [u8; ENTRY] {
        let mut out = [0u8; ENTRY];
        out[..16].copy_from_slice(&self.key.to_be_bytes());
        out[16..].copy_from_slice(&self.group.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8; ENTRY]) -> Entry {
        Entry {
            key: u128::from_be_bytes(bytes[..16].try_into().expect("16 bytes")),
            group: u32::from_be_bytes(bytes[16..].try_into().expect("4 bytes")),
        }
    }
}

/// The first 128 bits of the username's SHA-256: collisions are out of reach (about 2^-64 for
/// a billion users).
fn key(username: &str) -> Key {
    let digest = Sha256::digest(username.as_bytes());
    u128::from_be_bytes(digest[..16].try_into().expect("16 bytes"))
}

/// Collects memberships, then [`MembershipsBuilder::finish`] turns them into an index.
pub struct MembershipsBuilder {
    dir: PathBuf,
    chunk: usize,
    buffer: Vec<Entry>,
    runs: Vec<File>,
}

impl MembershipsBuilder {
    /// `dir` holds the (unnamed) spill files; `chunk` is the number of entries kept in memory.
    pub fn new(dir: &Path, chunk: usize) -> MembershipsBuilder {
        MembershipsBuilder {
            dir: dir.to_path_buf(),
            chunk: chunk.max(1),
            buffer: Vec::new(),
            runs: Vec::new(),
        }
    }

    pub fn add(&mut self, username: &str, group: u32) -> Result<()> {
        self.buffer.push(Entry {
            key: key(username),
            group,
        });
        if self.buffer.len() >= self.chunk {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        self.buffer.sort_unstable();
        let mut file = tempfile::tempfile_in(&self.dir)
            .with_context(|| format!("creating a spill file in {}", self.dir.display()))?;
        write_entries(&mut file, self.buffer.drain(..))?;
        self.runs.push(file);
        Ok(())
    }

    pub fn finish(mut self) -> Result<Index> {
        if self.runs.is_empty() {
            self.buffer.sort_unstable();
            return Ok(Index(Repr::Memory(self.buffer)));
        }
        if !self.buffer.is_empty() {
            self.spill()?;
        }
        let mut merged = tempfile::tempfile_in(&self.dir)
            .with_context(|| format!("creating a spill file in {}", self.dir.display()))?;
        let len = merge(&mut self.runs, &mut merged)?;
        Ok(Index(Repr::Disk {
            file: Mutex::new(merged),
            len,
        }))
    }
}

fn write_entries(file: &mut File, entries: impl Iterator<Item = Entry>) -> Result<()> {
    let mut out = BufWriter::new(file);
    for e in entries {
        out.write_all(&e.encode())?;
    }
    out.flush().context("writing a spill file")?;
    Ok(())
}

/// K-way merge of sorted runs into one sorted file; returns the number of entries.
fn merge(runs: &mut [File], out: &mut File) -> Result<u64> {
    let mut readers = Vec::with_capacity(runs.len());
    for run in runs.iter_mut() {
        run.seek(SeekFrom::Start(0))?;
        readers.push(BufReader::new(&*run));
    }
    let next = |r: &mut BufReader<&File>| -> Result<Option<Entry>> {
        let mut buf = [0u8; ENTRY];
        match r.read_exact(&mut buf) {
            Ok(()) => Ok(Some(Entry::decode(&buf))),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e).context("reading a spill file"),
        }
    };
    let mut heap = BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(e) = next(r)? {
            heap.push(Reverse((e, i)));
        }
    }
    let mut writer = BufWriter::new(&*out);
    let mut count = 0u64;
    while let Some(Reverse((e, i))) = heap.pop() {
        writer.write_all(&e.encode())?;
        count += 1;
        if let Some(e) = next(&mut readers[i])? {
            heap.push(Reverse((e, i)));
        }
    }
    writer.flush().context("writing a spill file")?;
    Ok(count)
}

/// Sorted membership entries, in memory or in a file.
pub struct Index(Repr);

enum Repr {
    Memory(Vec<Entry>),
    Disk { file: Mutex<File>, len: u64 },
}

impl Index {
    /// The indices of the user's groups, in ascending order.
    pub fn groups_of(&self, username: &str) -> Result<Vec<u32>> {
        let k = key(username);
        match &self.0 {
            Repr::Memory(entries) => {
                let start = entries.partition_point(|e| e.key < k);
                Ok(entries[start..]
                    .iter()
                    .take_while(|e| e.key == k)
                    .map(|e| e.group)
                    .collect())
            }
            Repr::Disk { file, len } => {
                let mut file = file.lock().expect("index lock");
                let mut read = |i: u64| -> Result<Entry> {
                    let mut buf = [0u8; ENTRY];
                    file.seek(SeekFrom::Start(i * ENTRY as u64))?;
                    file.read_exact(&mut buf)
                        .context("reading the membership index")?;
                    Ok(Entry::decode(&buf))
                };
                // First entry with key >= k.
                let (mut lo, mut hi) = (0u64, *len);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if read(mid)?.key < k {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                let mut groups = Vec::new();
                let mut i = lo;
                while i < *len {
                    let e = read(i)?;
                    if e.key != k {
                        break;
                    }
                    groups.push(e.group);
                    i += 1;
                }
                Ok(groups)
            }
        }
    }

    pub fn is_on_disk(&self) -> bool {
        matches!(self.0, Repr::Disk { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn build(memberships: &[(String, u32)], chunk: usize) -> Index {
        let dir = tempfile::tempdir().unwrap();
        let mut b = MembershipsBuilder::new(dir.path(), chunk);
        for (user, group) in memberships {
            b.add(user, *group).unwrap();
        }
        b.finish().unwrap()
    }

    fn sample() -> Vec<(String, u32)> {
        // Group by group, as ListUsersInGroup delivers them.
        let mut out = Vec::new();
        for group in 0..7u32 {
            for u in 0..500u32 {
                if (u + group) % (group + 2) == 0 {
                    out.push((format!("user{u}"), group));
                }
            }
        }
        out
    }

    #[test]
    fn memory_and_disk_agree_with_a_plain_map() {
        let memberships = sample();
        let mut expected: HashMap<&str, Vec<u32>> = HashMap::new();
        for (u, g) in &memberships {
            expected.entry(u).or_default().push(*g);
        }
        let in_memory = build(&memberships, 1_000_000);
        let on_disk = build(&memberships, 37);
        assert!(!in_memory.is_on_disk());
        assert!(on_disk.is_on_disk());
        for u in 0..520 {
            let name = format!("user{u}");
            let want = expected.get(name.as_str()).cloned().unwrap_or_default();
            assert_eq!(in_memory.groups_of(&name).unwrap(), want, "{name}");
            assert_eq!(on_disk.groups_of(&name).unwrap(), want, "{name}");
        }
    }

    #[test]
    fn empty_index_finds_nothing() {
        assert!(build(&[], 10).groups_of("anyone").unwrap().is_empty());
    }
}
