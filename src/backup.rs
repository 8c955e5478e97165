//! The backup pipeline: the pool's users (with their groups) listed by `listing` into the data
//! file in prefix order, the pool's configuration read at the same time, then the manifest and
//! the configuration file beside the data file.
//!
//! Output is deterministic: users appear in prefix order, each prefix's users in the order
//! Cognito returns them, whatever the concurrency and timing. Memory does not grow with the pool:
//! a prefix's users wait for their turn on disk (unnamed temporary files), not in memory.

use crate::backup_file::{DataWriter, Encoding, FORMAT_VERSION, Manifest, load_recipients, names};
use crate::cognito::{Cognito, PoolInfo};
use crate::listing::{self, Slice};
use crate::location::Location;
use crate::shard::Shard;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// What a finished backup wrote.
pub struct Summary {
    pub data: Location,
    pub manifest: Location,
    pub users: u64,
}

/// A backup's settings, checked and complete before any work starts.
#[derive(Debug, Clone)]
pub struct Options {
    pub pool_id: String,
    /// The data file (for a shard, the name its index is added to).
    pub out: Location,
    pub shard: Option<Shard>,
    /// ListUsers requests in flight at once.
    pub concurrency: usize,
    pub progress: bool,
    /// age public keys, and files of them, to encrypt the data file to.
    pub recipients: Vec<String>,
    pub recipients_files: Vec<PathBuf>,
}

pub async fn run(cognito: &Cognito, region: &str, args: &Options) -> Result<Summary> {
    let started_at = names::now();
    let pool_id = args.pool_id.as_str();
    let out = match args.shard {
        Some(s) => names::shard_path(&args.out, s.index),
        None => args.out.clone(),
    };
    let dir = out.spool_dir();
    let encoding = Encoding::new(
        Path::new(&out.file_name()),
        load_recipients(&args.recipients, &args.recipients_files)?,
    );
    let (compression, encryption) = (
        encoding.gzip.then(|| "gzip".to_string()),
        encoding.is_encrypted().then(|| "age".to_string()),
    );
    // Fail before any listing if the file cannot be created (for S3: no bucket, no access).
    let mut writer = DataWriter::create(&out, &encoding)?;
    // The users are listed while the configuration is read.
    let slice = Slice {
        pool_id,
        shard: args.shard,
        concurrency: args.concurrency,
        progress: args.progress.then_some("backed up"),
    };
    let announce = |pool: &PoolInfo, estimate, prefixes| {
        tracing::info!(
            pool = %pool_id,
            // Plain values in the log fields; an unsharded backup has no `shard` field.
            shard = args.shard.map(tracing::field::display),
            prefixes,
            concurrency = args.concurrency,
            "backing up about {estimate} users of {} to {}",
            pool.name,
            out.display()
        )
    };
    let (listed, config) = tokio::join!(
        listing::list_users(cognito, &slice, &dir, &mut writer, announce),
        crate::pool_config::read_live(cognito, pool_id, region)
    );
    let (pool, groups) = listed?;
    let config = config?;

    let (file, written) = writer.finish()?;
    let manifest_path = names::manifest_path(&out);
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        cbr_version: env!("CARGO_PKG_VERSION").to_string(),
        pool_id: pool_id.to_string(),
        pool_name: pool.name.clone(),
        region: region.to_string(),
        username_attributes: pool.username_attributes.clone(),
        case_sensitive: Some(pool.case_sensitive),
        shard: args.shard.map(|s| s.to_string()),
        user_count: written.count,
        started_at,
        finished_at: names::now(),
        data_file: out.file_name(),
        sha256: written.sha256,
        compression,
        encryption,
        groups,
    };
    file.commit()?;
    {
        let config_path = names::config_path(&out, encoding.is_encrypted());
        let recipients = load_recipients(&args.recipients, &args.recipients_files)?;
        config.write(&config_path, recipients)?;
        tracing::info!(
            clients = config.clients.len(),
            identity_providers = config.identity_providers.len(),
            resource_servers = config.resource_servers.len(),
            unavailable = config.unavailable.len(),
            "wrote the pool configuration to {}",
            config_path.display()
        );
    }
    manifest_path.write_atomic(&manifest.to_json()?)?;
    Ok(Summary {
        data: out,
        manifest: manifest_path,
        users: written.count,
    })
}
