//! Files that appear whole or not at all: written under a temporary name (mode 0600) beside
//! their final path and renamed into place only when complete.

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

impl AtomicFile {
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // NamedTempFile creates the file with mode 0600 on Unix.
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
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

/// Writes a small file (such as a manifest) atomically with mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let file = AtomicFile::create(path)?;
    let mut f = file.reopen()?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    file.commit()
}
