//! Unnamed temporary files of JSON lines, compressed: what restore and the match of two sides
//! (`join`) keep of users while they wait (partitions, buckets, pending users, the plan).
//!
//! Lines are gathered in memory into a block of up to `block` bytes; each full block is written
//! to the file as one gzip member at zlib's fastest level. A file's memory is its one block,
//! whatever its size, so thousands can be open at once; on disk a user takes a fraction of its
//! JSON. The file is read back as one stream (gzip members concatenate), a line at a time.
//! Files are made with `tempfile` (mode 0600, no name: the OS removes them when they are
//! closed, even if the process is killed).

use anyhow::{Context, Result};
use flate2::Compression;
use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

/// A block for files of which a few hundred at most are open at once: users compressed in
/// 64 KiB blocks take about a tenth more than compressed as one stream.
pub const LARGE_BLOCK: usize = 64 * 1024;

/// The smallest block: users compressed in 8 KiB blocks take about 60 % more than in 64 KiB
/// ones.
pub const SMALL_BLOCK: usize = 8 * 1024;

/// Memory that the blocks of many files open at once share.
const SHARED_BLOCKS: usize = 32 << 20;

/// The block for each of `files` files open at once: their blocks share 32 MiB, each between
/// [`SMALL_BLOCK`] and [`LARGE_BLOCK`].
pub fn block_among(files: usize) -> usize {
    (SHARED_BLOCKS / files.max(1)).clamp(SMALL_BLOCK, LARGE_BLOCK)
}

/// A temporary file of JSON lines being written.
pub struct Packed {
    file: File,
    block: Vec<u8>,
    limit: usize,
    lines: u64,
}

impl Packed {
    /// A new, empty file in `dir`; lines are compressed `block` bytes at a time.
    pub fn new(dir: &Path, block: usize) -> Result<Packed> {
        let file = tempfile::tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        Ok(Packed {
            file,
            block: Vec::new(),
            limit: block.max(1),
            lines: 0,
        })
    }

    /// Appends `value` as one line.
    pub fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        if self.block.capacity() == 0 {
            // Once, at its full size: growing by doubling could end at twice the block.
            self.block.reserve_exact(self.limit + self.limit / 8);
        }
        serde_json::to_writer(&mut self.block, value)?;
        self.block.push(b'\n');
        self.lines += 1;
        if self.block.len() >= self.limit {
            self.write_block()?;
        }
        Ok(())
    }

    /// Lines pushed so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    fn write_block(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let mut out = GzEncoder::new(BufWriter::new(&mut self.file), Compression::fast());
        out.write_all(&self.block)
            .and_then(|()| out.finish()?.flush())
            .context("writing a temporary file")?;
        self.block.clear();
        Ok(())
    }

    /// Writes what is left in memory; the file, ready to be read from its start.
    pub fn finish(mut self) -> Result<Lines> {
        self.write_block()?;
        self.file.seek(SeekFrom::Start(0))?;
        Ok(Lines {
            file: self.file,
            lines: self.lines,
        })
    }
}

/// A finished file of lines.
pub struct Lines {
    file: File,
    lines: u64,
}

impl Lines {
    /// Calls `each` with every line, in the order they were pushed.
    pub fn for_each<T: DeserializeOwned>(
        self,
        mut each: impl FnMut(T) -> Result<()>,
    ) -> Result<()> {
        if self.lines == 0 {
            return Ok(());
        }
        let reader = BufReader::new(MultiGzDecoder::new(BufReader::new(self.file)));
        for line in reader.lines() {
            let line = line.context("reading a temporary file")?;
            each(serde_json::from_str(&line).context("reading a temporary file")?)?;
        }
        Ok(())
    }

    /// Bytes the file takes on disk.
    pub fn stored_bytes(&self) -> Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

/// Writes `values` to a file and reads them back (for tests).
#[cfg(test)]
fn round_trip<T: Serialize + DeserializeOwned>(values: &[T], block: usize) -> (Vec<T>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Packed::new(dir.path(), block).unwrap();
    for v in values {
        p.push(v).unwrap();
    }
    assert_eq!(p.lines(), values.len() as u64);
    let lines = p.finish().unwrap();
    let stored = lines.stored_bytes().unwrap();
    let mut out = Vec::new();
    lines
        .for_each(|v: T| {
            out.push(v);
            Ok(())
        })
        .unwrap();
    // Unnamed: nothing is left in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    (out, stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup_file::UserRecord;

    fn user(i: usize) -> UserRecord {
        let email = format!("person.{i}@example.org");
        let sub = format!("{:08x}-1b2c-4d5e-8f90-{:012x}", i * 7919, i * 104_729);
        UserRecord {
            user_create_date: Some(format!("2024-01-02T03:{:02}:05.678Z", i % 60)),
            ..crate::backup_file::test_user(
                &format!("user{i:06}"),
                &[("sub", &sub), ("email", &email), ("email_verified", "true")],
            )
        }
    }

    #[test]
    fn blocks_shared_by_many_files_stay_within_bounds() {
        assert_eq!(block_among(1), LARGE_BLOCK);
        assert_eq!(block_among(256), LARGE_BLOCK);
        assert_eq!(block_among(4096), SMALL_BLOCK);
        assert_eq!(block_among(1 << 20), SMALL_BLOCK);
    }

    #[test]
    fn lines_round_trip_across_blocks_in_order() {
        let users: Vec<UserRecord> = (0..3000).map(user).collect();
        let plain: usize = users
            .iter()
            .map(|u| serde_json::to_vec(u).unwrap().len() + 1)
            .sum();
        for block in [1, 700, SMALL_BLOCK, LARGE_BLOCK, 10 << 20] {
            let (back, stored) = round_trip(&users, block);
            assert_eq!(back, users, "block {block}");
            if block >= SMALL_BLOCK {
                assert!(
                    stored * 4 < plain as u64,
                    "block {block}: {stored} bytes stored for {plain} of JSON"
                );
            }
        }
    }

    #[test]
    fn an_empty_file_reads_nothing_and_odd_lines_survive() {
        let (back, stored) = round_trip::<String>(&[], LARGE_BLOCK);
        assert!(back.is_empty());
        assert_eq!(stored, 0);
        let odd = vec![
            String::new(),
            "line\nbreak".to_string(),
            "emoji 🎉 and \"quotes\"".to_string(),
            "x".repeat(3 * SMALL_BLOCK),
        ];
        assert_eq!(round_trip(&odd, SMALL_BLOCK).0, odd);
    }

    /// A writer holds one block in memory, however many lines it is given.
    #[test]
    fn memory_is_one_block() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Packed::new(dir.path(), SMALL_BLOCK).unwrap();
        for i in 0..20_000 {
            p.push(&user(i)).unwrap();
            assert!(p.block.capacity() <= SMALL_BLOCK + SMALL_BLOCK / 8 + 1024);
        }
        assert!(p.finish().unwrap().stored_bytes().unwrap() > 0);
    }

    /// A damaged file is an error, not fewer lines.
    #[test]
    fn a_cut_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Packed::new(dir.path(), LARGE_BLOCK).unwrap();
        for i in 0..100 {
            p.push(&user(i)).unwrap();
        }
        let lines = p.finish().unwrap();
        let len = lines.stored_bytes().unwrap();
        lines.file.set_len(len - 10).unwrap();
        let err = lines.for_each(|_: UserRecord| Ok(())).unwrap_err();
        assert!(
            format!("{err:#}").contains("reading a temporary file"),
            "{err:#}"
        );
    }
}
