//! Files that appear whole or not at all: written under a temporary name (mode 0600) beside
//! their final path and renamed into place only when complete. The temporary name is random
//! ([`AtomicFile`]), or a stable one a stopped backup finds again ([`open_partial`]).

use anyhow::{Context, Result};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// A file written under a temporary name beside its final path and renamed into place by
/// [`AtomicFile::commit`]. Dropped without a commit, the temporary file is removed.
pub struct AtomicFile {
    tmp: NamedTempFile,
    path: PathBuf,
}

/// The directory and the file name of `path`, and the prefix and suffix of its temporary
/// files: `.<name>.` and `.tmp`.
fn temporary_name(path: &Path) -> (&Path, String, &'static str) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, format!(".{name}."), ".tmp")
}

/// Removes the temporary files a process killed while writing `path` left beside it; returns
/// how many there were.
pub fn remove_leftovers(path: &Path) -> Result<usize> {
    let (dir, prefix, suffix) = temporary_name(path);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.len() > prefix.len() + suffix.len()
            && name.starts_with(&prefix)
            && name.ends_with(suffix)
            && entry.file_type()?.is_file()
        {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let (dir, prefix, suffix) = temporary_name(path);
        // NamedTempFile creates the file with mode 0600 on Unix.
        let tmp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(suffix)
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        Ok(AtomicFile {
            tmp,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Another handle to the temporary file, for writing.
    pub fn reopen(&self) -> Result<File> {
        Ok(self.tmp.as_file().try_clone()?)
    }

    /// Flushes the file to disk and renames it to its final name.
    pub fn commit(self) -> Result<()> {
        self.tmp
            .as_file()
            .sync_all()
            .with_context(|| format!("writing {}", self.path.display()))?;
        let path = self.path;
        self.tmp
            .persist(&path)
            .with_context(|| format!("renaming the temporary file to {}", path.display()))?;
        Ok(())
    }
}

/// Opens the partial file of a backup under its stable name (mode 0600), created if missing,
/// cut to its first `keep` bytes and positioned at its end: to be continued, then renamed into
/// place.
pub fn open_partial(partial: &Path, keep: u64) -> Result<File> {
    use std::io::{Seek, SeekFrom};
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(partial)
        .with_context(|| format!("opening {}", partial.display()))?;
    let len = file.metadata()?.len();
    if len < keep {
        anyhow::bail!(
            "{} holds {len} bytes, fewer than the {keep} its state names",
            partial.display()
        );
    }
    file.set_len(keep)
        .with_context(|| format!("cutting {}", partial.display()))?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// Writes a small file (such as a manifest) atomically with mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let file = AtomicFile::create(path)?;
    let mut f = file.reopen()?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_writers_temporary_files_are_found_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        let left = AtomicFile::create(&path).unwrap();
        // As a killed process leaves it: the temporary file stays.
        let kept = left.tmp.into_temp_path().keep().unwrap();
        assert!(kept.exists());
        for other in [
            ".b.json.resume",
            "b.json.tmp",
            ".b.json2.x.tmp",
            ".c.json.x.tmp",
        ] {
            std::fs::write(dir.path().join(other), b"x").unwrap();
        }
        assert_eq!(remove_leftovers(&path).unwrap(), 1);
        assert!(!kept.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
        assert_eq!(
            remove_leftovers(&dir.path().join("none/x.json")).unwrap(),
            0
        );
    }
}
