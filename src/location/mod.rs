//! Where a backup's files live: a local path or an S3 object (`s3://bucket/key`). One type for
//! both, so the writer, the reader, the manifest and the commands never branch on the scheme:
//! it names siblings (the format decides the names, in `backup_file::names`), creates files atomically
//! (temporary file renamed into place; multipart upload completed on commit), reads them as a
//! stream, tells whether they exist, and expands a shard-set pattern on S3, where no shell
//! can glob.

mod atomic;

pub mod s3;

use anyhow::{Context, Result, bail};
pub use atomic::{AtomicFile, open_partial, write_atomic};
use s3::S3Path;
use serde::{Serialize, Serializer};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A backup file's place: a path on this machine or an S3 object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Location {
    Local(PathBuf),
    S3(S3Path),
}

impl FromStr for Location {
    type Err = String;

    /// `s3://bucket/key` is an S3 object; anything else a local path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some(rest) = s.strip_prefix("s3://") else {
            return Ok(Location::Local(PathBuf::from(s)));
        };
        match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() && !key.ends_with('/') => {
                Ok(Location::S3(S3Path {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                }))
            }
            _ => Err(format!(
                "invalid S3 location {s:?}: expected s3://bucket/path/file.json"
            )),
        }
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Self {
        Location::Local(p)
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Self {
        Location::Local(p.to_path_buf())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3(o) => write!(f, "{o}"),
        }
    }
}

/// As the string the user would type (a path or `s3://…`).
impl Serialize for Location {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Location {
    /// For messages, like `Path::display`.
    pub fn display(&self) -> &Self {
        self
    }

    pub fn is_s3(&self) -> bool {
        matches!(self, Location::S3(_))
    }

    /// The last part of the path or key: `backup-2.json`.
    pub fn file_name(&self) -> String {
        match self {
            Location::Local(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Location::S3(o) => o.key.rsplit('/').next().unwrap_or_default().to_string(),
        }
    }

    /// The same directory or key prefix, another file name.
    pub fn with_file_name(&self, name: &str) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.with_file_name(name)),
            Location::S3(o) => {
                let key = match o.key.rsplit_once('/') {
                    Some((dir, _)) => format!("{dir}/{name}"),
                    None => name.to_string(),
                };
                Location::S3(S3Path {
                    bucket: o.bucket.clone(),
                    key,
                })
            }
        }
    }

    /// A file inside this location taken as a directory (for S3, a key prefix): `dir/name`.
    pub fn join(&self, name: &str) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.join(name)),
            Location::S3(o) => Location::S3(S3Path {
                bucket: o.bucket.clone(),
                key: format!("{}/{name}", o.key),
            }),
        }
    }

    /// Removes what a process killed while writing this file left: its temporary files on
    /// disk. (An S3 upload left incomplete is for a lifecycle rule to abort.)
    pub fn remove_leftovers(&self) -> Result<usize> {
        match self {
            Location::Local(p) => atomic::remove_leftovers(p),
            Location::S3(_) => Ok(0),
        }
    }

    /// The path, for a location on this machine.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::S3(_) => None,
        }
    }

    /// Makes this location a directory only its owner may enter (mode 0700 on Unix), if it is
    /// not one yet. An S3 key prefix needs nothing made.
    pub fn create_private_dir(&self) -> Result<()> {
        let Location::Local(p) = self else {
            return Ok(());
        };
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        match builder.create(p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && p.is_dir() => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
                        .with_context(|| format!("making {} private", p.display()))?;
                }
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("creating {}", p.display())),
        }
    }

    /// Removes this location taken as a directory: on disk with everything in it; in S3 the
    /// `files` named (S3 has no directories, and listing them would need s3:ListBucket).
    /// Removing what is not there is no error.
    pub fn remove_dir(&self, files: &[Location]) -> Result<()> {
        match self {
            Location::Local(p) => match std::fs::remove_dir_all(p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("removing {}", p.display()))
                }
                _ => Ok(()),
            },
            Location::S3(o) => {
                let keys: Vec<String> = files
                    .iter()
                    .filter_map(|f| match f {
                        Location::S3(f) if f.bucket == o.bucket => Some(f.key.clone()),
                        _ => None,
                    })
                    .collect();
                s3::delete(&o.bucket, &keys)
            }
        }
    }

    /// Where a local file that belongs with this one goes (such as restore's sub map): beside
    /// it for a local file, under the same name in the current directory for an S3 object.
    pub fn local_path(&self) -> PathBuf {
        match self {
            Location::Local(p) => p.clone(),
            Location::S3(_) => PathBuf::from(self.file_name()),
        }
    }

    /// The directory for temporary spool files while writing here: the destination's own
    /// directory, or the system's temporary directory for S3.
    pub fn spool_dir(&self) -> PathBuf {
        match self {
            Location::Local(p) => match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            },
            Location::S3(_) => std::env::temp_dir(),
        }
    }

    /// Whether the file exists; for S3 an error (no access, no bucket) counts as absent and is
    /// logged, as `Path::exists` treats an unreadable path.
    pub fn exists(&self) -> bool {
        match self {
            Location::Local(p) => p.exists(),
            Location::S3(o) => s3::exists(o).unwrap_or_else(|e| {
                tracing::warn!("{e:#}");
                false
            }),
        }
    }

    /// Whether the file exists, or why that cannot be told (for S3: no access, no bucket).
    pub fn try_exists(&self) -> Result<bool> {
        match self {
            Location::Local(p) => p
                .try_exists()
                .with_context(|| format!("cannot look for {}", p.display())),
            Location::S3(o) => s3::exists(o),
        }
    }

    /// The file's size in bytes; `None` when it does not exist.
    pub fn size(&self) -> Result<Option<u64>> {
        match self {
            Location::Local(p) => match std::fs::metadata(p) {
                Ok(m) => Ok(Some(m.len())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("cannot look for {}", p.display())),
            },
            Location::S3(o) => s3::size(o),
        }
    }

    /// Reads the file as a stream of its bytes as stored.
    pub fn open(&self) -> Result<Box<dyn Read + Send>> {
        Ok(match self {
            Location::Local(p) => {
                Box::new(File::open(p).with_context(|| format!("cannot open {}", p.display()))?)
            }
            Location::S3(o) => Box::new(s3::open(o)?),
        })
    }

    /// The whole file as text (manifests and other small files).
    pub fn read_to_string(&self) -> Result<String> {
        let mut text = String::new();
        self.open()?
            .read_to_string(&mut text)
            .with_context(|| format!("reading {self}"))?;
        Ok(text)
    }

    /// SHA-256 of the bytes as stored, lower-case hex. For S3, an object just read to its end
    /// is not downloaded again.
    pub fn sha256(&self) -> Result<String> {
        match self {
            Location::Local(_) => {
                use sha2::Digest;
                let mut hasher = sha2::Sha256::new();
                io::copy(&mut self.open()?, &mut hasher)
                    .with_context(|| format!("cannot read {self}"))?;
                Ok(format!("{:x}", hasher.finalize()))
            }
            Location::S3(o) => s3::sha256(o),
        }
    }

    /// Starts writing the file; nothing appears under its name until [`Output::commit`].
    /// Fails now if the destination cannot be written (no directory, no bucket, no access).
    pub fn create(&self) -> Result<Output> {
        Ok(match self {
            Location::Local(p) => {
                let file = AtomicFile::create(p)?;
                let handle = file.reopen()?;
                Output::File { file, handle }
            }
            Location::S3(o) => Output::S3(s3::Upload::create(o)?),
        })
    }

    /// Writes a small file whole, atomically (mode 0600 on disk).
    pub fn write_atomic(&self, bytes: &[u8]) -> Result<()> {
        match self {
            Location::Local(p) => write_atomic(p, bytes),
            Location::S3(o) => s3::put(o, bytes),
        }
    }

    /// Expands S3 patterns (`s3://bucket/dir/backup-*.json`: `*` matches any characters but
    /// `/`) into the objects that match, in order, by listing the key prefix before the first
    /// `*`. Local paths pass through: the shell expands those.
    pub fn expand(inputs: Vec<Location>) -> Result<Vec<Location>> {
        let mut out = Vec::new();
        for input in inputs {
            match &input {
                Location::S3(o) if o.key.contains('*') => {
                    let prefix = &o.key[..o.key.find('*').unwrap_or(0)];
                    let mut matched: Vec<Location> = s3::list(&o.bucket, prefix)?
                        .into_iter()
                        .filter(|k| glob_match(&o.key, k))
                        .map(|key| {
                            Location::S3(S3Path {
                                bucket: o.bucket.clone(),
                                key,
                            })
                        })
                        .collect();
                    if matched.is_empty() {
                        bail!("no S3 object matches {input}");
                    }
                    matched.sort();
                    out.extend(matched);
                }
                _ => out.push(input),
            }
        }
        Ok(out)
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters but `/`.
fn glob_match(pattern: &str, name: &str) -> bool {
    let Some((head, rest)) = pattern.split_once('*') else {
        return pattern == name;
    };
    let Some(tail) = name.strip_prefix(head) else {
        return false;
    };
    // Try every split of `tail` that keeps `/` out of the `*`.
    let mut end = 0;
    loop {
        if glob_match(rest, &tail[end..]) {
            return true;
        }
        match tail[end..].chars().next() {
            Some(c) if c != '/' => end += c.len_utf8(),
            _ => return false,
        }
    }
}

/// A file being written: committed into place whole, or never seen.
pub enum Output {
    File {
        file: AtomicFile,
        handle: File,
    },
    /// Written under a stable name (a backup's resume state keeps it), renamed to `path`.
    Partial {
        handle: File,
        partial: PathBuf,
        path: PathBuf,
    },
    S3(s3::Upload),
}

impl Output {
    /// A file written under the stable name `partial` from its first `keep` bytes (which it
    /// must hold), then renamed to `path` on commit. Dropped, it stays.
    pub fn partial(partial: &Path, path: &Path, keep: u64) -> Result<Output> {
        Ok(Output::Partial {
            handle: open_partial(partial, keep)?,
            partial: partial.to_path_buf(),
            path: path.to_path_buf(),
        })
    }

    /// The file as written so far, from its start, to be read again.
    pub fn read_back(&mut self) -> Result<Option<&mut File>> {
        use std::io::Seek;
        match self {
            Output::Partial { handle, .. } => {
                handle.rewind()?;
                Ok(Some(handle))
            }
            _ => Ok(None),
        }
    }

    /// Makes what was written so far durable (on disk; an S3 upload is made durable by its
    /// commit).
    pub fn sync(&mut self) -> Result<()> {
        match self {
            Output::File { handle, .. } | Output::Partial { handle, .. } => {
                handle.sync_data().context("writing the data file")
            }
            Output::S3(_) => Ok(()),
        }
    }

    /// Finishes the file under its final name.
    pub fn commit(self) -> Result<()> {
        match self {
            Output::File { file, handle } => {
                drop(handle);
                file.commit()
            }
            Output::Partial {
                handle,
                partial,
                path,
            } => {
                handle
                    .sync_all()
                    .with_context(|| format!("writing {}", path.display()))?;
                drop(handle);
                std::fs::rename(&partial, &path).with_context(|| {
                    format!("renaming {} to {}", partial.display(), path.display())
                })
            }
            Output::S3(upload) => upload.commit(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::File { handle, .. } | Output::Partial { handle, .. } => handle.write(buf),
            Output::S3(upload) => upload.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::File { handle, .. } | Output::Partial { handle, .. } => handle.flush(),
            Output::S3(upload) => upload.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(s: &str) -> Location {
        s.parse().unwrap()
    }

    #[test]
    fn parses_paths_and_s3_objects() {
        assert_eq!(
            loc("dir/b.json"),
            Location::Local(PathBuf::from("dir/b.json"))
        );
        assert_eq!(
            loc("s3://my-bucket/nightly/b.json"),
            Location::S3(S3Path {
                bucket: "my-bucket".into(),
                key: "nightly/b.json".into()
            })
        );
        for bad in [
            "s3://",
            "s3://bucket",
            "s3://bucket/",
            "s3:///key",
            "s3://b/dir/",
        ] {
            assert!(bad.parse::<Location>().is_err(), "{bad}");
        }
        assert_eq!(loc("s3://b/k/x.json").to_string(), "s3://b/k/x.json");
        assert_eq!(
            serde_json::to_string(&loc("s3://b/x.json")).unwrap(),
            "\"s3://b/x.json\""
        );
    }

    #[test]
    fn siblings_stay_in_the_same_place() {
        assert_eq!(
            loc("s3://b/a/backup.json").with_file_name("backup.meta.json"),
            loc("s3://b/a/backup.meta.json")
        );
        assert_eq!(
            loc("s3://b/backup.json").with_file_name("x.json"),
            loc("s3://b/x.json")
        );
        assert_eq!(
            loc("dir/backup.json").with_file_name("x.json"),
            loc("dir/x.json")
        );
        assert_eq!(loc("s3://b/a/backup-2.json").file_name(), "backup-2.json");
        assert_eq!(
            loc("s3://b/a/backup.json").local_path(),
            PathBuf::from("backup.json")
        );
        assert_eq!(
            loc("s3://b/a/backup.json").spool_dir(),
            std::env::temp_dir()
        );
        assert_eq!(loc("backup.json").spool_dir(), PathBuf::from("."));
    }

    #[test]
    fn files_inside_a_location() {
        assert_eq!(
            loc("d/.b.json.resume").join("state.json"),
            loc("d/.b.json.resume/state.json")
        );
        assert_eq!(
            loc("s3://b/k/.b.json.resume").join("state.json"),
            loc("s3://b/k/.b.json.resume/state.json")
        );
        assert_eq!(loc("d/x").as_local(), Some(Path::new("d/x")));
        assert_eq!(loc("s3://b/x").as_local(), None);
    }

    #[test]
    fn a_private_dir_is_mode_0700_and_removed_whole() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = Location::Local(tmp.path().join("state"));
        dir.create_private_dir().unwrap();
        dir.create_private_dir().unwrap();
        let mode = std::fs::metadata(tmp.path().join("state"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        dir.join("f").write_atomic(b"x").unwrap();
        dir.remove_dir(&[]).unwrap();
        assert!(!tmp.path().join("state").exists());
        dir.remove_dir(&[]).unwrap();
    }

    #[test]
    fn glob_matches_within_one_segment() {
        assert!(glob_match("d/backup-*.json", "d/backup-1.json"));
        assert!(glob_match("d/backup-*.json", "d/backup-12.json"));
        assert!(glob_match("d/backup-*.json", "d/backup-1.meta.json"));
        assert!(!glob_match("d/backup-*.json", "d/backup-1.json.gz"));
        assert!(!glob_match("d/backup-*.json", "d/backup-x/1.json"));
        assert!(!glob_match("d/backup-*.json", "e/backup-1.json"));
        assert!(glob_match("d/*-*.json", "d/a-b.json"));
        assert!(glob_match("plain.json", "plain.json"));
    }

    #[test]
    fn local_output_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let target = Location::Local(dir.path().join("f.json"));
        let mut out = target.create().unwrap();
        out.write_all(b"[]").unwrap();
        assert!(!target.exists());
        out.commit().unwrap();
        assert_eq!(target.read_to_string().unwrap(), "[]");
        let dropped = Location::Local(dir.path().join("g.json"));
        drop(dropped.create().unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
