//! Writing backup files safely: a temporary file in the destination's directory (mode 0600)
//! renamed into place only when complete (or, for S3, an upload completed only then, through
//! `location`), a SHA-256 of the bytes as they are written, and spools that hold one prefix's
//! users until their turn in the output.

use super::encoding::{Encoder, Encoding};
use super::record::UserRecord;
use crate::location::{Location, Output};
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// A writer that hashes every byte it passes on.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Formats one record as it appears in the data file: pretty-printed with two spaces, indented
/// one level inside the array, preceded by the `,\n` that separates it from the one before.
pub fn format_record(record: &UserRecord) -> Result<Vec<u8>> {
    let body = serde_json::to_vec_pretty(record)?;
    let mut out = Vec::with_capacity(body.len() + body.len() / 8 + 4);
    out.extend_from_slice(b",\n  ");
    for &b in &body {
        out.push(b);
        if b == b'\n' {
            out.extend_from_slice(b"  ");
        }
    }
    Ok(out)
}

/// The data file: a JSON array of user records, written in chunks, compressed and encrypted
/// as its encoding says, hashed as stored.
pub struct DataWriter {
    location: Location,
    out: Encoder<HashingWriter<Output>>,
    count: u64,
}

/// What a finished data file holds.
pub struct Written {
    pub sha256: String,
    pub count: u64,
}

impl DataWriter {
    /// Starts the file; fails now if the destination cannot be written.
    pub fn create(location: &Location, encoding: &Encoding) -> Result<DataWriter> {
        let hashing = HashingWriter {
            inner: location.create()?,
            hasher: Sha256::new(),
        };
        let mut out =
            Encoder::new(hashing, encoding).with_context(|| format!("starting {location}"))?;
        out.write_all(b"[")?;
        Ok(DataWriter {
            location: location.clone(),
            out,
            count: 0,
        })
    }

    /// Appends the records held in a spool.
    pub fn append(&mut self, spool: &mut Spool) -> Result<()> {
        if spool.count == 0 {
            return Ok(());
        }
        spool.out.flush()?;
        let file = spool.out.get_mut();
        file.seek(SeekFrom::Start(0))?;
        let mut reader = io::BufReader::new(&*file);
        if self.count == 0 {
            // The first record of the file has no separator before it.
            let mut comma = [0u8; 1];
            reader.read_exact(&mut comma)?;
        }
        io::copy(&mut reader, &mut self.out)
            .with_context(|| format!("writing {}", self.location))?;
        self.count += spool.count;
        Ok(())
    }

    /// Closes the array, flushes, and returns the hash and count. The file is not under its
    /// final name until [`Output::commit`].
    pub fn finish(mut self) -> Result<(Output, Written)> {
        self.out.write_all(b"\n]\n")?;
        let inner = self
            .out
            .finish()
            .with_context(|| format!("writing {}", self.location))?;
        let sha256 = format!("{:x}", inner.hasher.finalize());
        Ok((
            inner.inner,
            Written {
                sha256,
                count: self.count,
            },
        ))
    }
}

/// One prefix's users, formatted, in an unnamed temporary file (removed by the OS when closed,
/// even if the process is killed) until the output reaches that prefix.
pub struct Spool {
    out: BufWriter<File>,
    count: u64,
}

impl Spool {
    pub fn new(dir: &Path) -> Result<Spool> {
        let file = tempfile::tempfile_in(dir)
            .with_context(|| format!("creating a spool file in {}", dir.display()))?;
        Ok(Spool {
            out: BufWriter::new(file),
            count: 0,
        })
    }

    pub fn push(&mut self, record: &UserRecord) -> Result<()> {
        self.out.write_all(&format_record(record)?)?;
        self.count += 1;
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Reads the spool's records back, in the order they were pushed.
    pub fn for_each_record(mut self, mut each: impl FnMut(UserRecord) -> Result<()>) -> Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        self.out.flush()?;
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        let mut records = io::BufReader::new(file);
        // Records are written `,\n  {…}`: without the first comma, they are an array's items.
        records.read_exact(&mut [0u8; 1])?;
        let array = io::Cursor::new(b"[")
            .chain(records)
            .chain(io::Cursor::new(b"]"));
        super::reader::read_records(array, &mut |_, user| each(user))
            .context("reading a spool back")?;
        Ok(())
    }

    /// Forgets everything written, to list the prefix again from its start.
    pub fn clear(&mut self) -> Result<()> {
        self.out.flush()?;
        let file = self.out.get_mut();
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        self.count = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserRecord {
        let email = format!("{name}@example.org");
        UserRecord {
            user_create_date: Some("2024-01-02T03:04:05.678Z".into()),
            user_last_modified_date: Some("2024-01-02T03:04:05.678Z".into()),
            ..crate::backup_file::test_user(name, &[("email", &email)])
        }
    }

    #[test]
    fn spools_concatenate_into_one_array_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup.json");
        let mut w = DataWriter::create(&path.clone().into(), &Encoding::default()).unwrap();
        let mut a = Spool::new(dir.path()).unwrap();
        let mut empty = Spool::new(dir.path()).unwrap();
        let mut b = Spool::new(dir.path()).unwrap();
        a.push(&user("zed")).unwrap();
        a.push(&user("amy")).unwrap();
        b.push(&user("bob")).unwrap();
        b.clear().unwrap();
        b.push(&user("kim")).unwrap();
        w.append(&mut a).unwrap();
        w.append(&mut empty).unwrap();
        w.append(&mut b).unwrap();
        let (file, written) = w.finish().unwrap();
        assert!(!path.exists(), "nothing under the final name before commit");
        file.commit().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let users: Vec<UserRecord> = serde_json::from_slice(&bytes).unwrap();
        let names: Vec<_> = users.iter().map(|u| u.username.as_str()).collect();
        assert_eq!(names, ["zed", "amy", "kim"]);
        assert_eq!(written.count, 3);
        assert_eq!(written.sha256, format!("{:x}", Sha256::digest(&bytes)));
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("[\n  {\n    \"Attributes\": ["), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Only the data file is left: spools are unnamed, the temporary name is gone.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_spool_reads_back_what_was_pushed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path()).unwrap();
        for name in ["zed", "amy", "kim"] {
            s.push(&user(name)).unwrap();
        }
        let mut read = vec![];
        s.for_each_record(|u| {
            read.push(u);
            Ok(())
        })
        .unwrap();
        assert_eq!(read, [user("zed"), user("amy"), user("kim")]);
        let empty = Spool::new(dir.path()).unwrap();
        empty.for_each_record(|_| panic!("no record")).unwrap();
    }

    #[test]
    fn empty_backup_is_an_empty_array() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        let (file, written) = DataWriter::create(&path.clone().into(), &Encoding::default())
            .unwrap()
            .finish()
            .unwrap();
        file.commit().unwrap();
        let users: Vec<UserRecord> =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(users.is_empty());
        assert_eq!(written.count, 0);
    }

    #[test]
    fn dropped_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        let mut w = DataWriter::create(&path.clone().into(), &Encoding::default()).unwrap();
        let mut s = Spool::new(dir.path()).unwrap();
        s.push(&user("a")).unwrap();
        w.append(&mut s).unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
