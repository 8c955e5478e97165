//! How data files are stored on disk: plain JSON, gzip (chosen by a `.gz` file name),
//! age encryption (chosen by recipients), or gzip inside age. Reading recognises each by its
//! first bytes, whatever the file is called, and decrypts with the operator's identities.

use crate::location::Location;
use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// Age identities (private keys) for reading encrypted files.
pub type Identities = Arc<Vec<Box<dyn age::Identity + Send + Sync>>>;

/// How a data file is written.
#[derive(Default)]
pub struct Encoding {
    pub gzip: bool,
    pub recipients: Vec<Box<dyn age::Recipient + Send>>,
}

impl Encoding {
    /// gzip when the file name ends in `.gz` (or `.gz.age`); age when there are recipients.
    pub fn new(path: &Path, recipients: Vec<Box<dyn age::Recipient + Send>>) -> Encoding {
        let name = path.to_string_lossy();
        Encoding {
            gzip: name.ends_with(".gz") || name.ends_with(".gz.age"),
            recipients,
        }
    }

    pub fn is_encrypted(&self) -> bool {
        !self.recipients.is_empty()
    }
}

/// Parses `--recipient` values and `--recipients-file` files (one `age1…` key a line, `#`
/// comments and blank lines ignored).
pub fn load_recipients(
    keys: &[String],
    files: &[PathBuf],
) -> Result<Vec<Box<dyn age::Recipient + Send>>> {
    let mut lines: Vec<(String, String)> = keys
        .iter()
        .map(|k| (k.clone(), "--recipient".to_string()))
        .collect();
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading recipients file {}", file.display()))?;
        for line in text.lines().map(str::trim) {
            if !line.is_empty() && !line.starts_with('#') {
                lines.push((line.to_string(), file.display().to_string()));
            }
        }
    }
    lines
        .into_iter()
        .map(|(key, source)| {
            age::x25519::Recipient::from_str(&key)
                .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
                .map_err(|e| anyhow::anyhow!("invalid age recipient in {source}: {e}"))
        })
        .collect()
}

/// Reads age identity files (as written by `age-keygen`).
pub fn load_identities(files: &[PathBuf]) -> Result<Identities> {
    let mut all = Vec::new();
    for file in files {
        let identities = age::IdentityFile::from_file(file.to_string_lossy().into_owned())
            .with_context(|| format!("reading identity file {}", file.display()))?
            .into_identities()
            .with_context(|| format!("reading identity file {}", file.display()))?;
        all.extend(identities);
    }
    Ok(Arc::new(all))
}

/// The writer chain under a data file: JSON → [gzip] → [age] → file.
pub enum Encoder<W: Write> {
    Plain(BufWriter<W>),
    Gzip(GzEncoder<BufWriter<W>>),
    Age(age::stream::StreamWriter<BufWriter<W>>),
    GzipAge(GzEncoder<age::stream::StreamWriter<BufWriter<W>>>),
}

impl<W: Write> Encoder<W> {
    pub fn new(out: W, encoding: &Encoding) -> Result<Encoder<W>> {
        let out = BufWriter::with_capacity(64 * 1024, out);
        let encrypt = |out| -> Result<age::stream::StreamWriter<BufWriter<W>>> {
            let recipients = encoding
                .recipients
                .iter()
                .map(|r| r.as_ref() as &dyn age::Recipient);
            Ok(age::Encryptor::with_recipients(recipients)?.wrap_output(out)?)
        };
        Ok(match (encoding.gzip, encoding.is_encrypted()) {
            (false, false) => Encoder::Plain(out),
            (true, false) => Encoder::Gzip(GzEncoder::new(out, Compression::default())),
            (false, true) => Encoder::Age(encrypt(out)?),
            (true, true) => Encoder::GzipAge(GzEncoder::new(encrypt(out)?, Compression::default())),
        })
    }

    /// Ends the gzip member written so far and starts another (gzip members concatenate into
    /// one stream), so that the bytes stored up to here are whole; without gzip, nothing to do.
    pub fn end_member(self) -> io::Result<Encoder<W>> {
        Ok(match self {
            Encoder::Gzip(g) => Encoder::Gzip(GzEncoder::new(g.finish()?, Compression::default())),
            Encoder::GzipAge(g) => {
                Encoder::GzipAge(GzEncoder::new(g.finish()?, Compression::default()))
            }
            other => other,
        })
    }

    /// The file beneath a plain or gzip encoding, with what is buffered above it written out
    /// (after [`Encoder::end_member`], every byte written so far); `None` when encrypted.
    pub fn flushed_file(&mut self) -> io::Result<Option<&mut W>> {
        let buffered = match self {
            Encoder::Plain(w) => w,
            // Not the encoder's own flush: it would start the next member's header.
            Encoder::Gzip(g) => g.get_mut(),
            Encoder::Age(_) | Encoder::GzipAge(_) => return Ok(None),
        };
        buffered.flush()?;
        Ok(Some(buffered.get_mut()))
    }

    /// Finishes every layer (the gzip trailer, the last age chunk) and returns the file.
    pub fn finish(self) -> io::Result<W> {
        let buffered = match self {
            Encoder::Plain(w) => w,
            Encoder::Gzip(g) => g.finish()?,
            Encoder::Age(a) => a.finish()?,
            Encoder::GzipAge(g) => g.finish()?.finish()?,
        };
        buffered.into_inner().map_err(|e| e.into_error())
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
            Encoder::Age(w) => w.write(buf),
            Encoder::GzipAge(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Age(w) => w.flush(),
            Encoder::GzipAge(w) => w.flush(),
        }
    }
}

const AGE_BINARY: &[u8] = b"age-encryption.org/";
const AGE_ARMOR: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
const GZIP: &[u8] = &[0x1f, 0x8b];

/// Opens a data file for reading, decrypting and decompressing as its first bytes say.
pub fn open(path: &Location, identities: &Identities) -> Result<Box<dyn Read + Send>> {
    let file = path.open()?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let head = reader
        .fill_buf()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if head.is_empty() {
        bail!(
            "{} is empty: expected a JSON array of user records",
            path.display()
        );
    }
    let decrypted: Box<dyn BufRead + Send> =
        if head.starts_with(AGE_BINARY) || head.starts_with(AGE_ARMOR) {
            if identities.is_empty() {
                bail!(
                    "{} is encrypted with age: pass --identity FILE with its private key",
                    path.display()
                );
            }
            let armored = age::armor::ArmoredReader::new(reader);
            let decryptor = age::Decryptor::new(armored)
                .with_context(|| format!("{} is not a valid age file", path.display()))?;
            let plain = decryptor
                .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
                .with_context(|| format!("cannot decrypt {}", path.display()))?;
            Box::new(BufReader::with_capacity(64 * 1024, plain))
        } else {
            Box::new(reader)
        };
    let mut decrypted = decrypted;
    let is_gzip = decrypted
        .fill_buf()
        .with_context(|| format!("cannot read {}", path.display()))?
        .starts_with(GZIP);
    Ok(if is_gzip {
        Box::new(BufReader::with_capacity(
            64 * 1024,
            MultiGzDecoder::new(decrypted),
        ))
    } else {
        Box::new(decrypted)
    })
}

/// Whether a data file is age-encrypted, by its first bytes (so it cannot be read without an
/// identity).
pub fn is_age_encrypted(path: &Location) -> Result<bool> {
    let mut head = Vec::with_capacity(AGE_ARMOR.len());
    path.open()?
        .take(AGE_ARMOR.len() as u64)
        .read_to_end(&mut head)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(head.starts_with(AGE_BINARY) || head.starts_with(AGE_ARMOR))
}

/// SHA-256 of a file's bytes as stored, lower-case hex.
pub fn sha256_file(path: &Location) -> Result<String> {
    path.sha256()
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn roundtrip(gzip: bool, encrypt: bool) {
        let key = age::x25519::Identity::generate();
        let recipients: Vec<Box<dyn age::Recipient + Send>> = if encrypt {
            vec![Box::new(key.to_public())]
        } else {
            vec![]
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let mut enc = Encoder::new(
            std::fs::File::create(&path).unwrap(),
            &Encoding { gzip, recipients },
        )
        .unwrap();
        enc.write_all(b"[{\"Username\":\"a\"}]").unwrap();
        enc.finish().unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(raw.starts_with(GZIP), gzip && !encrypt);
        assert_eq!(raw.starts_with(AGE_BINARY), encrypt);

        let identity = age::x25519::Identity::from_str(key.to_string().expose_secret()).unwrap();
        let ids: Identities = Arc::new(vec![Box::new(identity)]);
        let mut text = String::new();
        open(&path.clone().into(), &ids)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "[{\"Username\":\"a\"}]");
        assert_eq!(is_age_encrypted(&path.clone().into()).unwrap(), encrypt);
        if encrypt {
            let err = open(&path.clone().into(), &Arc::new(vec![])).err().unwrap();
            assert!(format!("{err:#}").contains("--identity"), "{err:#}");
        }
    }

    #[test]
    fn plain_gzip_age_and_both_round_trip() {
        roundtrip(false, false);
        roundtrip(true, false);
        roundtrip(false, true);
        roundtrip(true, true);
    }

    #[test]
    fn gzip_is_chosen_by_name() {
        assert!(Encoding::new(Path::new("b.json.gz"), vec![]).gzip);
        assert!(Encoding::new(Path::new("b.json.gz.age"), vec![]).gzip);
        assert!(!Encoding::new(Path::new("b.json"), vec![]).gzip);
        assert!(!Encoding::new(Path::new("b.json.age"), vec![]).gzip);
    }

    #[test]
    fn bad_recipients_are_refused() {
        let err = load_recipients(&["age1nope".into()], &[]).err().unwrap();
        assert!(format!("{err:#}").contains("--recipient"));
        let key = age::x25519::Identity::generate().to_public().to_string();
        assert_eq!(load_recipients(&[key], &[]).unwrap().len(), 1);
    }
}
