//! Writing backup files safely: a temporary file in the destination's directory (mode 0600)
//! renamed into place only when complete (or, for S3, an upload completed only then, through
//! `location`), a SHA-256 of the bytes as they are written, and spools that hold one prefix's
//! users, gzip-compressed, until their turn in the output.
//!
//! A gzip data file is a series of gzip members, one ended after each append (the first also
//! holds the `[`, the last is the closing `]`): the file stored up to the end of any append is
//! whole, so a backup that stopped can cut its partial file there and go on
//! ([`DataWriter::resume`]), writing the bytes an uninterrupted run writes.

use super::encoding::{Encoder, Encoding};
use super::record::UserRecord;
use crate::location::{Location, Output};
use anyhow::{Context, Result};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// A writer that hashes every byte it passes on.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    /// The bytes passed on.
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
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
    /// Always `Some` but while [`DataWriter::end_member`] swaps it.
    out: Option<Encoder<HashingWriter<Output>>>,
    count: u64,
    /// Bytes written (before compression) since the last gzip member ended.
    member: u64,
}

/// What a finished data file holds.
pub struct Written {
    pub sha256: String,
    pub count: u64,
}

impl DataWriter {
    /// Starts the file; fails now if the destination cannot be written.
    pub fn create(location: &Location, encoding: &Encoding) -> Result<DataWriter> {
        DataWriter::start(location, location.create()?, encoding)
    }

    /// Starts the file `location` under the stable name `partial` (a local path), renamed to
    /// `location` on commit; a file already there is replaced.
    pub fn create_partial(
        location: &Location,
        partial: &Path,
        encoding: &Encoding,
    ) -> Result<DataWriter> {
        let path = location.as_local().context("a partial file is on disk")?;
        DataWriter::start(location, Output::partial(partial, path, 0)?, encoding)
    }

    /// Goes on with the partial file a stopped backup left: cut to its first `bytes` (the end
    /// of an append, holding `count` records), read back once for the SHA-256, continued.
    pub fn resume(
        location: &Location,
        partial: &Path,
        bytes: u64,
        count: u64,
        encoding: &Encoding,
    ) -> Result<DataWriter> {
        let path = location.as_local().context("a partial file is on disk")?;
        let mut output = Output::partial(partial, path, bytes)?;
        let mut hasher = Sha256::new();
        let file = output.read_back()?.expect("a partial file");
        let read = io::copy(file, &mut hasher)
            .with_context(|| format!("reading {}", partial.display()))?;
        if read != bytes {
            anyhow::bail!("{} changed while it was read", partial.display());
        }
        let hashing = HashingWriter {
            inner: output,
            hasher,
            bytes,
        };
        let out =
            Encoder::new(hashing, encoding).with_context(|| format!("resuming {location}"))?;
        Ok(DataWriter {
            location: location.clone(),
            out: Some(out),
            count,
            member: 0,
        })
    }

    fn start(location: &Location, output: Output, encoding: &Encoding) -> Result<DataWriter> {
        let hashing = HashingWriter {
            inner: output,
            hasher: Sha256::new(),
            bytes: 0,
        };
        let out =
            Encoder::new(hashing, encoding).with_context(|| format!("starting {location}"))?;
        let mut writer = DataWriter {
            location: location.clone(),
            out: Some(out),
            count: 0,
            member: 0,
        };
        writer.write(b"[")?;
        Ok(writer)
    }

    fn out(&mut self) -> &mut Encoder<HashingWriter<Output>> {
        self.out.as_mut().expect("a data file's encoder")
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out()
            .write_all(bytes)
            .with_context(|| format!("writing {}", self.location))?;
        self.member += bytes.len() as u64;
        Ok(())
    }

    /// Ends the gzip member written since the last one ended, if anything was written.
    fn end_member(&mut self) -> Result<()> {
        if self.member == 0 {
            return Ok(());
        }
        let out = self.out.take().expect("a data file's encoder");
        self.out = Some(
            out.end_member()
                .with_context(|| format!("writing {}", self.location))?,
        );
        self.member = 0;
        Ok(())
    }

    /// Makes every byte written so far durable and returns how many are stored: the length to
    /// cut the file to, to go on from here. Only after an append, for a file not encrypted.
    pub fn sync(&mut self) -> Result<u64> {
        let location = self.location.clone();
        let hashing = self
            .out()
            .flushed_file()
            .with_context(|| format!("writing {location}"))?
            .context("an encrypted data file cannot be continued")?;
        hashing.inner.sync()?;
        Ok(hashing.bytes)
    }

    /// The records appended so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Appends the records of a finished spool.
    pub fn append(&mut self, spool: &mut Spooled) -> Result<()> {
        let count = spool.count;
        self.append_compressed(spool.compressed()?, count)
    }

    /// Appends `count` records from a spool's compressed bytes: a finished spool's, or those a
    /// backup that stopped kept (the resume state). Reads the gzip stream to its end, so a
    /// damaged or cut one fails here. Ends a gzip member.
    pub fn append_compressed(&mut self, compressed: impl Read, count: u64) -> Result<()> {
        let mut reader = MultiGzDecoder::new(io::BufReader::new(compressed));
        if count == 0 {
            // Nothing to write, but the stream must be whole.
            io::copy(&mut reader, &mut io::sink()).context("reading a spool")?;
            return self.end_member();
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
            self.write(&buf[..n])?;
        }
        self.count += count;
        self.end_member()
    }

    /// Closes the array, flushes, and returns the hash and count. The file is not under its
    /// final name until [`Output::commit`].
    pub fn finish(mut self) -> Result<(Output, Written)> {
        self.write(b"\n]\n")?;
        let inner = self
            .out
            .take()
            .expect("a data file's encoder")
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
            io::BufReader::new(MultiGzDecoder::new(io::BufReader::new(self.compressed()?)));
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
        MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .unwrap();
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

    fn spool_of(dir: &Path, names: &[&str]) -> Spooled {
        let mut s = Spool::new(dir).unwrap();
        for n in names {
            s.push(&user(n)).unwrap();
        }
        s.finish().unwrap()
    }

    /// The prefixes the tests below append, the second one empty.
    const PREFIXES: [&[&str]; 4] = [&["amy", "bob"], &[], &["kim"], &["zed", "ann", "joe"]];

    /// A gzip data file holds a gzip member per append (the first with the `[`, the closing
    /// `]` in one of its own): a plain gzip reader stops after the first, every reader of cbr
    /// reads them all; the same with age around it.
    #[test]
    fn a_gzip_file_is_a_member_per_append_and_every_reader_reads_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let key = age::x25519::Identity::generate();
        let ids: crate::backup_file::Identities = std::sync::Arc::new(vec![Box::new(key.clone())]);
        let expected: Vec<UserRecord> = PREFIXES
            .iter()
            .flat_map(|p| p.iter().map(|n| user(n)))
            .collect();
        for (name, encrypt) in [("b.json.gz", false), ("b.json.gz.age", true)] {
            let path: Location = dir.path().join(name).into();
            let recipients: Vec<Box<dyn age::Recipient + Send>> = if encrypt {
                vec![Box::new(key.to_public())]
            } else {
                vec![]
            };
            let encoding = Encoding::new(Path::new(name), recipients);
            let mut w = DataWriter::create(&path, &encoding).unwrap();
            for p in PREFIXES {
                w.append(&mut spool_of(dir.path(), p)).unwrap();
            }
            let (file, written) = w.finish().unwrap();
            file.commit().unwrap();
            assert_eq!(written.count, 6);
            let mut read = vec![];
            let n = crate::backup_file::for_each_record(&path, &ids, |_, u| {
                read.push(u);
                Ok(())
            })
            .unwrap();
            assert_eq!((n, &read), (6, &expected), "{name}");
            if !encrypt {
                let gz = std::fs::read(path.as_local().unwrap()).unwrap();
                // Members: `[` and the first prefix, the third, the fourth, `]`.
                let mut first = Vec::new();
                flate2::read::GzDecoder::new(&gz[..])
                    .read_to_end(&mut first)
                    .unwrap();
                let mut all = Vec::new();
                MultiGzDecoder::new(&gz[..]).read_to_end(&mut all).unwrap();
                assert!(first.len() < all.len() && all.starts_with(&first));
                assert!(all.ends_with(b"\n]\n"));
                let members = gz.windows(3).filter(|w| w == &[0x1f, 0x8b, 8]).count();
                assert_eq!(members, 4, "a member per non-empty append and the end");
            }
        }
    }

    /// A partial file cut at the end of an append and continued gives the bytes, hash and count
    /// of one written without a stop: plain and gzip, whatever was written after the cut.
    #[test]
    fn a_partial_file_cut_at_an_append_goes_on_to_the_file_an_uninterrupted_run_writes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.json", "b.json.gz"] {
            let encoding = Encoding::new(Path::new(name), vec![]);
            let path: Location = dir.path().join(name).into();
            let partial = dir.path().join(format!("{name}.partial"));
            let mut w = DataWriter::create_partial(&path, &partial, &encoding).unwrap();
            for p in PREFIXES {
                w.append(&mut spool_of(dir.path(), p)).unwrap();
            }
            let (file, whole) = w.finish().unwrap();
            assert!(!path.exists(), "nothing under the final name before commit");
            file.commit().unwrap();
            assert!(!partial.exists());
            let expected = std::fs::read(path.as_local().unwrap()).unwrap();
            let mode = std::fs::metadata(path.as_local().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);

            for cut_after in 0..PREFIXES.len() {
                // Stopped after `cut_after + 1` appends and part of the next.
                let mut w = DataWriter::create_partial(&path, &partial, &encoding).unwrap();
                for p in &PREFIXES[..=cut_after] {
                    w.append(&mut spool_of(dir.path(), p)).unwrap();
                }
                let (bytes, count) = (w.sync().unwrap(), w.count());
                assert_eq!(std::fs::metadata(&partial).unwrap().len(), bytes);
                if let Some(next) = PREFIXES.get(cut_after + 1) {
                    w.append(&mut spool_of(dir.path(), next)).unwrap();
                }
                w.write(b"half a record").unwrap();
                w.out().flush().unwrap();
                drop(w);
                assert!(partial.exists(), "a partial file stays");

                let mut w = DataWriter::resume(&path, &partial, bytes, count, &encoding).unwrap();
                for p in &PREFIXES[cut_after + 1..] {
                    w.append(&mut spool_of(dir.path(), p)).unwrap();
                }
                let (file, written) = w.finish().unwrap();
                file.commit().unwrap();
                let bytes = std::fs::read(path.as_local().unwrap()).unwrap();
                assert!(bytes == expected, "{name}, cut after {cut_after}");
                assert_eq!(written.sha256, whole.sha256);
                assert_eq!(written.count, 6);
            }
            // A partial file shorter than the length to go on from is refused.
            std::fs::write(&partial, b"[").unwrap();
            let err = DataWriter::resume(&path, &partial, 100, 2, &encoding)
                .err()
                .unwrap();
            assert!(format!("{err:#}").contains("fewer than the 100"), "{err:#}");
        }
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
