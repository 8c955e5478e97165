//! Writing backup files safely: a temporary file in the destination's directory (mode 0600)
//! renamed into place only when complete (or, for S3, an upload completed only then, through
//! `location`), a SHA-256 of the bytes as they are written, and spools that hold one prefix's
//! users, gzip-compressed, until their turn in the output.

use super::encoding::{Encoder, Encoding};
use super::record::UserRecord;
use crate::location::{Location, Output};
use anyhow::{Context, Result};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
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
pub fn format_record(record: &impl serde::Serialize) -> Result<Vec<u8>> {
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

    /// Appends the records of a finished spool.
    pub fn append(&mut self, spool: &mut Spooled) -> Result<()> {
        let count = spool.count;
        self.append_compressed(spool.compressed()?, count)
    }

    /// Appends `count` records from a spool's compressed bytes: a finished spool's, or those a
    /// backup that stopped kept (the resume state). Reads the gzip stream to its end, so a
    /// damaged or cut one fails here.
    pub fn append_compressed(&mut self, compressed: impl Read, count: u64) -> Result<()> {
        let mut reader = GzDecoder::new(io::BufReader::new(compressed));
        if count == 0 {
            // Nothing to write, but the stream must be whole.
            io::copy(&mut reader, &mut io::sink()).context("reading a spool")?;
            return Ok(());
        }
        if self.count == 0 {
            // The first record of the file has no separator before it.
            let mut comma = [0u8; 1];
            reader.read_exact(&mut comma).context("reading a spool")?;
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf).context("reading a spool")?;
            if n == 0 {
                break;
            }
            self.out
                .write_all(&buf[..n])
                .with_context(|| format!("writing {}", self.location))?;
        }
        self.count += count;
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

/// How hard spools are compressed: zlib's default level. On production-shaped users it stores
/// about 120 bytes a user where the fast level stores 180 (docs/backup.md, "Disk"), and it
/// compresses far faster than ListUsers can deliver records (1,800 users, 2 MB, a second).
fn spool_level() -> Compression {
    Compression::default()
}

/// One prefix's users, formatted as they go into the data file and gzip-compressed, in an
/// unnamed temporary file (removed by the OS when closed, even if the process is killed) until
/// the output reaches that prefix.
pub struct Spool {
    /// Always `Some` but while [`Spool::clear`] swaps it.
    out: Option<GzEncoder<File>>,
    count: u64,
}

impl Spool {
    pub fn new(dir: &Path) -> Result<Spool> {
        let file = tempfile::tempfile_in(dir)
            .with_context(|| format!("creating a spool file in {}", dir.display()))?;
        Ok(Spool {
            out: Some(GzEncoder::new(file, spool_level())),
            count: 0,
        })
    }

    fn out(&mut self) -> &mut GzEncoder<File> {
        self.out.as_mut().expect("a spool's file")
    }

    /// Adds a record: a user record, or anything written in the same way (a members file's
    /// entries).
    pub fn push(&mut self, record: &impl serde::Serialize) -> Result<()> {
        let bytes = format_record(record)?;
        self.out()
            .write_all(&bytes)
            .context("writing a spool file")?;
        self.count += 1;
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Ends the spool: its records, compressed, ready to be appended or kept.
    pub fn finish(mut self) -> Result<Spooled> {
        let mut file = self
            .out
            .take()
            .expect("a spool's file")
            .finish()
            .context("writing a spool file")?;
        file.seek(SeekFrom::Start(0))?;
        Ok(Spooled {
            file,
            count: self.count,
        })
    }

    /// Reads the spool's records back, in the order they were pushed.
    pub fn for_each_record(self, each: impl FnMut(UserRecord) -> Result<()>) -> Result<()> {
        self.finish()?.for_each_record(each)
    }

    /// Forgets everything written, to list the prefix again from its start.
    pub fn clear(&mut self) -> Result<()> {
        let mut file = self
            .out
            .take()
            .expect("a spool's file")
            .finish()
            .context("writing a spool file")?;
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        self.out = Some(GzEncoder::new(file, spool_level()));
        self.count = 0;
        Ok(())
    }
}

/// A finished spool: `count` records, formatted as in the data file, gzip-compressed in a file
/// (a spool's temporary file, or a copy a backup kept to be resumed).
pub struct Spooled {
    file: File,
    count: u64,
}

impl Spooled {
    /// A spool kept in a file, holding `count` records.
    pub fn open(path: &Path, count: u64) -> Result<Spooled> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Spooled { file, count })
    }

    /// A spool's compressed bytes in an open file, holding `count` records.
    pub fn from_file(file: File, count: u64) -> Spooled {
        Spooled { file, count }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The compressed bytes, from their start.
    pub fn compressed(&mut self) -> Result<&mut File> {
        self.file.seek(SeekFrom::Start(0))?;
        Ok(&mut self.file)
    }

    /// How many bytes the spool takes on disk.
    pub fn stored_bytes(&self) -> Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Reads the records back, in order.
    pub fn for_each_record(mut self, mut each: impl FnMut(UserRecord) -> Result<()>) -> Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        let mut records =
            io::BufReader::new(GzDecoder::new(io::BufReader::new(self.compressed()?)));
        // Records are written `,\n  {…}`: without the first comma, they are an array's items.
        records.read_exact(&mut [0u8; 1])?;
        let array = io::Cursor::new(b"[")
            .chain(records)
            .chain(io::Cursor::new(b"]"));
        super::reader::read_records(array, &mut |_, user| each(user))
            .context("reading a spool back")?;
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
        let empty = Spool::new(dir.path()).unwrap();
        let mut b = Spool::new(dir.path()).unwrap();
        a.push(&user("zed")).unwrap();
        a.push(&user("amy")).unwrap();
        b.push(&user("bob")).unwrap();
        b.clear().unwrap();
        b.push(&user("kim")).unwrap();
        w.append(&mut empty.finish().unwrap()).unwrap();
        w.append(&mut a.finish().unwrap()).unwrap();
        w.append(&mut b.finish().unwrap()).unwrap();
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

    /// A spool holds the records exactly as the data file does, compressed: it reads back the
    /// same records, appends the same bytes, and takes a fraction of their size.
    #[test]
    fn a_spool_is_compressed_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let users: Vec<UserRecord> = (0..500).map(|i| user(&format!("user{i:05}"))).collect();
        let mut s = Spool::new(dir.path()).unwrap();
        let mut json = Vec::new();
        for u in &users {
            s.push(u).unwrap();
            json.extend(format_record(u).unwrap());
        }
        let mut spooled = s.finish().unwrap();
        assert_eq!(spooled.count(), 500);
        let stored = spooled.stored_bytes().unwrap();
        assert!(
            stored * 5 < json.len() as u64,
            "{stored} bytes stored for {} bytes of records",
            json.len()
        );
        let mut gz = Vec::new();
        spooled.compressed().unwrap().read_to_end(&mut gz).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip");
        let mut plain = Vec::new();
        GzDecoder::new(&gz[..]).read_to_end(&mut plain).unwrap();
        assert_eq!(plain, json, "the records as the data file holds them");

        // Appended, it gives the file a plain spool would; read back, the same records.
        let path = dir.path().join("b.json");
        let mut w = DataWriter::create(&path.clone().into(), &Encoding::default()).unwrap();
        w.append(&mut spooled).unwrap();
        let (file, written) = w.finish().unwrap();
        file.commit().unwrap();
        assert_eq!(written.count, 500);
        let mut expected = b"[".to_vec();
        expected.extend(&json[1..]);
        expected.extend(b"\n]\n");
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        let mut read = vec![];
        spooled
            .for_each_record(|u| {
                read.push(u);
                Ok(())
            })
            .unwrap();
        assert_eq!(read, users);

        // A cut spool is an error, not a shorter file.
        let mut w = DataWriter::create(&path.clone().into(), &Encoding::default()).unwrap();
        let err = w.append_compressed(&gz[..gz.len() - 9], 500).unwrap_err();
        assert!(format!("{err:#}").contains("reading a spool"), "{err:#}");
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
        w.append(&mut s.finish().unwrap()).unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
