//! The resume state of a backup: what lets a backup that stopped (killed, out of time, network
//! gone) go on without listing again the prefixes it had finished. Page tokens expire; a
//! finished `sub` prefix does not.
//!
//! The state sits beside the data file (`names::resume_dir`: `.backup.json.resume`, a directory
//! of mode 0700 on disk; for an S3 output, objects under that key prefix beside the object, so a
//! job on another machine finds it). It holds `state.json` — what the backup is (cbr version,
//! pool, shard, output, encoding), when it started, its prefix list, and the prefixes finished
//! so far with their user count, size and SHA-256; no personal data — and one spool per
//! finished prefix (`prefix-3a.json.gz`, mode 0600): its users with their `Groups`, exactly as
//! they go into the data file, gzip-compressed.
//!
//! For a local output that is not encrypted, the state also holds the data file being written
//! (`backup.json.gz.partial`, renamed to the output when whole), and `state.json` names the
//! prefixes appended to it, in order, with its length after the last one (flushed to disk
//! first). A prefix's spool goes once the prefix is in the data file, so the state holds no
//! second copy of it; a resumed run cuts the partial file to that length and goes on
//! (`DataWriter::resume`). Encrypted and S3 outputs keep every finished prefix's spool until the
//! backup succeeds, and write the data file again from them.
//!
//! A spool is written whole (renamed into place, or its upload completed) before `state.json`
//! names it, and `state.json` is replaced whole: a prefix named there is whole, one not named
//! is listed again. A state of another pool, shard, output, encoding or cbr version is refused
//! before anything is listed. A backup that succeeds removes the state.

use crate::backup_file::{DataWriter, Spooled, names};
use crate::location::Location;
use crate::shard::{self, Shard};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How a backup keeps each prefix the moment it is listed, so that a backup that stops can go
/// on without listing it again (`resume`), and gives back the prefixes an earlier run kept.
pub trait Keeper: Send + Sync {
    /// The number of users of a prefix an earlier run listed and kept; `None`: list it.
    fn kept(&self, prefix: &str) -> Option<u64>;
    /// Appends a kept prefix's users to the data file (nothing, for one an earlier run left in
    /// the partial data file it goes on with).
    fn append_kept(&self, prefix: &str, writer: &mut DataWriter) -> Result<()>;
    /// Called once a prefix is in the data file, in prefix order: a state that holds the data
    /// file records how far it got, and lets the prefix's spool go.
    fn appended(&self, prefix: &str, writer: &mut DataWriter) -> Result<()>;
    /// Keeps a prefix just listed; returns the spool to append from, or `None` when the spool is
    /// gone and the kept copy is fetched in its turn ([`Keeper::fetch_kept`]). It may block: it
    /// is called from a worker thread of the multi-threaded runtime, in `block_in_place`.
    fn keep(&self, prefix: &str, spool: Spooled) -> Result<Option<Spooled>>;
    /// A copy of a prefix this run kept without a spool, checked against the state (size and
    /// SHA-256), in an unnamed temporary file in `dir`. It blocks: it is called on a thread of
    /// its own (`spawn_blocking`), never on the thread that writes the data file.
    fn fetch_kept(&self, prefix: &str, dir: &Path) -> Result<Spooled>;
}

/// The layout of `state.json` and its spools; a state of another layout is not read.
const STATE_VERSION: u32 = 2;

/// What a backup is: what its state records and a resumed run must match.
pub struct Identity {
    pub pool_id: String,
    pub shard: Option<Shard>,
    /// The data file (with the shard's index).
    pub output: Location,
    pub gzip: bool,
    pub encrypted: bool,
}

/// `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StateFile {
    state_version: u32,
    cbr_version: String,
    pool_id: String,
    /// `"k/n"`, or `null` for the whole pool.
    shard: Option<String>,
    /// The data file, as given.
    output: String,
    gzip: bool,
    encrypted: bool,
    started_at: String,
    prefixes: Vec<String>,
    /// In the order they finished; a prefix leaves once it is in `data`.
    finished: Vec<Finished>,
    /// For a local output not encrypted: the data file kept in the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<DataFile>,
}

/// The partial data file a state holds: the prefixes in it (the first of the prefix list, in
/// order), and its length after the last of them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DataFile {
    bytes: u64,
    appended: Vec<Appended>,
}

/// A prefix in the partial data file, and its users.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Appended {
    prefix: String,
    users: u64,
}

impl StateFile {
    /// Prefixes kept: with a spool, or in the data file.
    fn kept_count(&self) -> usize {
        self.finished.len() + self.data.as_ref().map_or(0, |d| d.appended.len())
    }
}

/// A finished prefix, as `state.json` names it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Finished {
    prefix: String,
    users: u64,
    /// The spool's size and SHA-256, as stored.
    bytes: u64,
    sha256: String,
}

/// A backup's resume state, kept up to date as its prefixes finish.
pub struct State {
    dir: Location,
    prefixes: Vec<String>,
    started_at: String,
    /// `None` once the state is removed: a prefix that finishes after that is not kept.
    file: Mutex<Option<StateFile>>,
    /// The prefixes an earlier run finished, by prefix.
    kept: HashMap<String, Finished>,
    /// Whether an earlier run made this state.
    resumed: bool,
    /// The data file the state holds, if it holds one (`partial_file`).
    partial: Option<PathBuf>,
    /// The prefixes an earlier run left in the data file, and their users.
    in_data: HashMap<String, u64>,
}

/// How a backup starts.
pub enum Start {
    /// Afresh: there was no state to go on from (or one was removed).
    New,
    /// From the state of a stopped backup of the same pool, shard and output.
    Resumed(Box<State>),
}

/// Where the state of a backup that writes `output` is kept.
pub fn dir_of(output: &Location) -> Location {
    names::resume_dir(output)
}

/// The partial data file the state of backup `id` holds: for a local output not encrypted.
pub fn partial_file(id: &Identity) -> Option<PathBuf> {
    if id.encrypted {
        return None;
    }
    let file = names::resume_data_file(&dir_of(&id.output), &id.output);
    file.as_local().map(Path::to_path_buf)
}

/// Removes the state directory a failed backup made before it wrote `state.json` (holding at
/// most the start of a partial data file): there is nothing to go on from.
pub fn discard_unstarted(output: &Location) {
    let dir = dir_of(output);
    if dir.as_local().is_some_and(|d| d.is_dir())
        && matches!(names::resume_state_file(&dir).try_exists(), Ok(false))
        && let Err(e) = dir.remove_dir(&[])
    {
        tracing::debug!("removing {dir}: {e:#}");
    }
}

/// Looks for the state of a stopped backup beside the output. With `resume`, reads it and
/// checks that it is this backup's, refusing it with the reason if not; without, names a
/// leftover state in a warning and removes it, since this backup starts over.
pub fn open(id: &Identity, resume: bool) -> Result<Start> {
    let dir = dir_of(&id.output);
    let path = names::resume_state_file(&dir);
    let (start, found) = find(id, resume, &dir, &path)?;
    if found {
        // The run that stopped may have been killed while it wrote the data file (or a
        // shard's members file).
        let mut removed = id.output.remove_leftovers()?;
        if id.shard.is_some() {
            removed += names::members_path(&id.output).remove_leftovers()?;
        }
        if removed > 0 {
            tracing::info!(
                "removed {removed} temporary file(s) of a stopped run of {}",
                id.output
            );
        }
    }
    Ok(start)
}

/// How the backup starts, and whether a stopped backup's state was found.
fn find(id: &Identity, resume: bool, dir: &Location, path: &Location) -> Result<(Start, bool)> {
    if !resume {
        // A state that cannot even be looked for (S3 without s3:GetObject, or without
        // s3:ListBucket for a missing object) is taken as none: this backup starts over anyway.
        match path.try_exists() {
            Ok(true) => {
                // What cannot be removed does no harm: the new state.json replaces the old one,
                // and only the spools it names are ever read.
                if let Err(e) = remove_leftover(dir, path) {
                    tracing::warn!("the stopped backup's state could not all be removed: {e:#}");
                }
                return Ok((Start::New, true));
            }
            Ok(false) => {}
            Err(e) => tracing::debug!("cannot look for a stopped backup's state: {e:#}"),
        }
        return Ok((Start::New, false));
    }
    if !path
        .try_exists()
        .with_context(|| format!("cannot look for the state of a stopped backup in {dir}"))?
    {
        tracing::info!("no stopped backup to resume in {dir}: starting a new one");
        return Ok((Start::New, false));
    }
    let file = read(path)?;
    if let Err(reason) = file.matches(id) {
        bail!(
            "cannot resume the backup kept in {dir}: {reason}; nothing was listed (run without \
             --resume to start over)"
        );
    }
    let mut kept = HashMap::new();
    for f in &file.finished {
        // A spool named but missing or of another size is listed again.
        let spool = names::resume_spool_file(dir, &f.prefix);
        match spool.size()? {
            Some(bytes) if bytes == f.bytes => {
                kept.insert(f.prefix.clone(), f.clone());
            }
            _ => tracing::warn!(
                "{spool} is missing or not the size the state says: prefix {} is listed again",
                f.prefix
            ),
        }
    }
    let mut file = file;
    file.finished.retain(|f| kept.contains_key(&f.prefix));
    let partial = partial_file(id);
    let mut in_data = HashMap::new();
    if let Some(partial) = &partial {
        let data = file.data.get_or_insert_with(DataFile::default);
        let size = std::fs::metadata(partial).map(|m| m.len()).ok();
        if size.is_some_and(|size| size >= data.bytes) {
            in_data = data
                .appended
                .iter()
                .map(|a| (a.prefix.clone(), a.users))
                .collect();
        } else if !data.appended.is_empty() {
            tracing::warn!(
                "{} is missing or shorter than the state says: its {} prefixes are listed again",
                partial.display(),
                data.appended.len()
            );
            *data = DataFile::default();
        }
    }
    let state = State {
        dir: dir.clone(),
        prefixes: file.prefixes.clone(),
        started_at: file.started_at.clone(),
        file: Mutex::new(Some(file)),
        kept,
        resumed: true,
        partial,
        in_data,
    };
    Ok((Start::Resumed(Box::new(state)), true))
}

/// Names a leftover state in a warning and removes it.
fn remove_leftover(dir: &Location, path: &Location) -> Result<()> {
    let mut files = vec![path.clone()];
    match read(path) {
        Ok(old) => {
            let what = match &old.shard {
                Some(s) => format!("shard {s} of {}", old.pool_id),
                None => old.pool_id.clone(),
            };
            tracing::warn!(
                "a backup of {what} to {} stopped part way ({} of {} prefixes listed, kept in \
                 {dir}); add --resume to continue it. This backup starts over and replaces it",
                old.output,
                old.kept_count(),
                old.prefixes.len()
            );
            files.extend(
                old.prefixes
                    .iter()
                    .map(|p| names::resume_spool_file(dir, p)),
            );
        }
        Err(e) => tracing::warn!(
            "{dir} holds the state of a backup that stopped part way, but it cannot be read \
             ({e:#}). This backup starts over and replaces it"
        ),
    }
    // The state file first: what is left of the spools is never taken for this backup's.
    dir.remove_dir(&files[..1])?;
    dir.remove_dir(&files[1..])
}

fn read(path: &Location) -> Result<StateFile> {
    let text = path
        .read_to_string()
        .with_context(|| format!("reading {path}"))?;
    serde_json::from_str(&text).with_context(|| format!("{path} is not a backup's resume state"))
}

impl StateFile {
    /// Why this state is not the one of the backup `id`, if it is not.
    fn matches(&self, id: &Identity) -> Result<(), String> {
        let version = env!("CARGO_PKG_VERSION");
        let shard =
            |s: Option<&str>| s.map_or("the whole pool".to_string(), |s| format!("shard {s}"));
        let encryption = |e: bool| {
            if e {
                "encrypted (age)"
            } else {
                "not encrypted"
            }
        };
        let this_shard = id.shard.map(|s| s.to_string());
        if self.state_version != STATE_VERSION {
            return Err(format!(
                "its layout is version {}, this cbr reads version {STATE_VERSION}",
                self.state_version
            ));
        }
        if self.cbr_version != version {
            return Err(format!(
                "it was made by cbr {}, this is cbr {version} (finish it with cbr {})",
                self.cbr_version, self.cbr_version
            ));
        }
        if self.pool_id != id.pool_id {
            return Err(format!(
                "it is a backup of pool {}, not {}",
                self.pool_id, id.pool_id
            ));
        }
        if self.shard != this_shard {
            return Err(format!(
                "it is a backup of {}, not {}",
                shard(self.shard.as_deref()),
                shard(this_shard.as_deref())
            ));
        }
        let output: Location = self.output.parse().map_err(|e: String| e)?;
        if output.file_name() != id.output.file_name() {
            return Err(format!("it writes {}, not {}", self.output, id.output));
        }
        if self.gzip != id.gzip || self.encrypted != id.encrypted {
            return Err(format!(
                "its data file is {}{}, this one {}{}",
                if self.gzip { "gzip, " } else { "" },
                encryption(self.encrypted),
                if id.gzip { "gzip, " } else { "" },
                encryption(id.encrypted)
            ));
        }
        if !shard::tiles(id.shard, &self.prefixes) {
            return Err(format!(
                "its prefixes do not cover {} (the state is damaged)",
                shard(this_shard.as_deref())
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let appended = self.data.as_ref().map_or(&[][..], |d| &d.appended[..]);
        if appended.len() > self.prefixes.len()
            || appended
                .iter()
                .zip(&self.prefixes)
                .any(|(a, p)| &a.prefix != p)
        {
            return Err(
                "the prefixes it names as in the data file are not its first ones in order (the \
                 state is damaged)"
                    .to_string(),
            );
        }
        seen.extend(appended.iter().map(|a| &a.prefix));
        for f in &self.finished {
            if !self.prefixes.contains(&f.prefix) || !seen.insert(&f.prefix) {
                return Err(format!(
                    "it names prefix {:?} as finished, which is not one of its own or is named \
                     twice (the state is damaged)",
                    f.prefix
                ));
            }
        }
        Ok(())
    }
}

impl State {
    /// A new state, for a backup of `prefixes` started at `started_at`: written at once, before
    /// any prefix finishes.
    pub fn create(id: &Identity, prefixes: &[String], started_at: &str) -> Result<State> {
        let dir = dir_of(&id.output);
        dir.create_private_dir()?;
        let file = StateFile {
            state_version: STATE_VERSION,
            cbr_version: env!("CARGO_PKG_VERSION").to_string(),
            pool_id: id.pool_id.clone(),
            shard: id.shard.map(|s| s.to_string()),
            output: id.output.to_string(),
            gzip: id.gzip,
            encrypted: id.encrypted,
            started_at: started_at.to_string(),
            prefixes: prefixes.to_vec(),
            finished: vec![],
            data: partial_file(id).map(|_| DataFile::default()),
        };
        let state = State {
            dir,
            prefixes: prefixes.to_vec(),
            started_at: started_at.to_string(),
            file: Mutex::new(None),
            kept: HashMap::new(),
            resumed: false,
            partial: partial_file(id),
            in_data: HashMap::new(),
        };
        state.save(&file)?;
        *state.file.lock().expect("state lock") = Some(file);
        Ok(state)
    }

    /// Where the state is.
    pub fn dir(&self) -> &Location {
        &self.dir
    }

    /// The backup's prefixes, in order.
    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    /// When the backup (its first run) started.
    pub fn started_at(&self) -> &str {
        &self.started_at
    }

    /// Whether this run goes on from an earlier one.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// The prefixes an earlier run finished, and their users.
    pub fn kept(&self) -> (usize, u64) {
        (
            self.kept.len() + self.in_data.len(),
            self.kept.values().map(|f| f.users).sum::<u64>() + self.in_data.values().sum::<u64>(),
        )
    }

    /// Where a resumed run goes on in the partial data file an earlier run left: its length
    /// and its users after the last prefix appended. `None`: the data file starts afresh.
    pub fn data_file_end(&self) -> Option<(u64, u64)> {
        if self.in_data.is_empty() {
            return None;
        }
        let file = self.file.lock().expect("state lock");
        let data = file.as_ref()?.data.as_ref()?;
        Some((data.bytes, data.appended.iter().map(|a| a.users).sum()))
    }

    /// Removes the state: the backup is written (or nothing was kept). A prefix that finishes
    /// afterwards is not kept.
    pub fn remove(&self) -> Result<()> {
        let mut file = self.file.lock().expect("state lock");
        *file = None;
        let spools: Vec<Location> = self
            .prefixes
            .iter()
            .map(|p| names::resume_spool_file(&self.dir, p))
            .collect();
        // The state file first: what might be left of the spools is never taken for a backup's.
        self.dir
            .remove_dir(&[names::resume_state_file(&self.dir)])?;
        self.dir.remove_dir(&spools)
    }

    /// What becomes of a backup that failed: with prefixes kept, the error says how to go on;
    /// with none, the state goes, as there is nothing to go on from.
    pub fn stopped(&self, error: anyhow::Error) -> anyhow::Error {
        let finished = match &*self.file.lock().expect("state lock") {
            Some(file) => file.kept_count(),
            None => return error,
        };
        if finished == 0 {
            if let Err(e) = self.remove() {
                tracing::debug!("removing the empty resume state {}: {e:#}", self.dir);
            }
            return error;
        }
        error.context(format!(
            "the backup stopped with {finished} of {} prefixes listed and kept in {}: run the \
             same command with --resume to go on",
            self.prefixes.len(),
            self.dir
        ))
    }

    fn save(&self, file: &StateFile) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(file)?;
        bytes.push(b'\n');
        names::resume_state_file(&self.dir).write_atomic(&bytes)
    }
}

impl Keeper for State {
    fn kept(&self, prefix: &str) -> Option<u64> {
        (self.in_data.get(prefix).copied()).or_else(|| self.kept.get(prefix).map(|f| f.users))
    }

    fn append_kept(&self, prefix: &str, writer: &mut DataWriter) -> Result<()> {
        if self.in_data.contains_key(prefix) {
            return Ok(());
        }
        let f = &self.kept[prefix];
        let path = names::resume_spool_file(&self.dir, prefix);
        let mut reader = Hashing::new(path.open()?);
        writer
            .append_compressed(&mut reader, f.users)
            .with_context(|| format!("appending {path}"))?;
        io::copy(&mut reader, &mut io::sink()).with_context(|| format!("reading {path}"))?;
        let (bytes, sha256) = reader.finish();
        if bytes != f.bytes || sha256 != f.sha256 {
            bail!(
                "{path} is not the spool its state names (its size or SHA-256 differs): the \
                 state is damaged; run without --resume to start over"
            );
        }
        Ok(())
    }

    fn appended(&self, prefix: &str, writer: &mut DataWriter) -> Result<()> {
        if self.partial.is_none() || self.in_data.contains_key(prefix) {
            return Ok(());
        }
        // On disk before the state names it: a prefix named is in the file up to `bytes`.
        let bytes = writer.sync()?;
        {
            let mut file = self.file.lock().expect("state lock");
            let Some(file) = file.as_mut() else {
                return Ok(());
            };
            let data = file.data.get_or_insert_with(DataFile::default);
            let before: u64 = data.appended.iter().map(|a| a.users).sum();
            data.appended.push(Appended {
                prefix: prefix.to_string(),
                users: writer.count() - before,
            });
            data.bytes = bytes;
            file.finished.retain(|f| f.prefix != prefix);
            self.save(file)?;
        }
        // The kept copy is in the data file now.
        if let Some(spool) = names::resume_spool_file(&self.dir, prefix).as_local() {
            match std::fs::remove_file(spool) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", spool.display()));
                }
                _ => {}
            }
        }
        tracing::debug!(prefix, bytes, "prefix in the kept data file");
        Ok(())
    }

    fn keep(&self, prefix: &str, mut spool: Spooled) -> Result<Option<Spooled>> {
        if self.file.lock().expect("state lock").is_none() {
            return Ok(Some(spool));
        }
        let path = names::resume_spool_file(&self.dir, prefix);
        let mut out = Hashing::new(path.create()?);
        io::copy(spool.compressed()?, &mut out).with_context(|| format!("writing {path}"))?;
        let (bytes, sha256, out) = out.into_parts();
        out.commit()?;
        let users = spool.count();
        {
            let mut file = self.file.lock().expect("state lock");
            let Some(file) = file.as_mut() else {
                return Ok(Some(spool));
            };
            file.finished.push(Finished {
                prefix: prefix.to_string(),
                users,
                bytes,
                sha256,
            });
            self.save(file)?;
        }
        tracing::debug!(prefix, users, bytes, "prefix kept in the resume state");
        // The kept copy is the one to append from: on disk, the temporary spool goes now; for
        // S3 it goes too, and the copy is fetched in its turn, so listed prefixes do not wait
        // on local disk.
        match path.as_local() {
            Some(local) => Spooled::open(local, users).map(Some),
            None => Ok(None),
        }
    }

    fn fetch_kept(&self, prefix: &str, dir: &Path) -> Result<Spooled> {
        let f = self
            .file
            .lock()
            .expect("state lock")
            .as_ref()
            .and_then(|file| file.finished.iter().find(|f| f.prefix == prefix).cloned())
            .with_context(|| format!("prefix {prefix:?} is not kept in {}", self.dir))?;
        let path = names::resume_spool_file(&self.dir, prefix);
        let mut reader = Hashing::new(path.open()?);
        let mut copy = tempfile::tempfile_in(dir)
            .with_context(|| format!("creating a spool file in {}", dir.display()))?;
        io::copy(&mut reader, &mut copy).with_context(|| format!("reading {path}"))?;
        let (bytes, sha256) = reader.finish();
        if bytes != f.bytes || sha256 != f.sha256 {
            bail!("{path} is not the spool its state names (its size or SHA-256 differs)");
        }
        Ok(Spooled::from_file(copy, f.users))
    }
}

/// A reader or writer that counts and hashes the bytes that pass.
struct Hashing<T> {
    inner: T,
    bytes: u64,
    hasher: Sha256,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Hashing {
            inner,
            bytes: 0,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> (u64, String) {
        (self.bytes, format!("{:x}", self.hasher.finalize()))
    }

    fn into_parts(self) -> (u64, String, T) {
        (
            self.bytes,
            format!("{:x}", self.hasher.finalize()),
            self.inner,
        )
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
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

#[cfg(test)]
mod tests;
