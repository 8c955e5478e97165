//! The manifest beside each data file (`backup.json` → `backup.meta.json`): everything about
//! the backup as a whole. It holds no personal data, so it stays readable when the data file is
//! encrypted.

use crate::location::Location;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The version of the backup format this build writes (data file and manifest together).
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub cbr_version: String,
    pub pool_id: String,
    pub pool_name: String,
    pub region: String,
    /// `email` and/or `phone_number` when the pool's users sign in with those; their
    /// usernames are then generated IDs.
    #[serde(default)]
    pub username_attributes: Vec<String>,
    /// Whether the pool told `Alice` from `alice` (absent in backups of older builds: then
    /// usernames are compared as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_sensitive: Option<bool>,
    /// `"k/n"` for a sharded backup, `null` for the whole pool.
    pub shard: Option<String>,
    pub user_count: u64,
    pub started_at: String,
    pub finished_at: String,
    /// The data file's name (no directory), as written.
    pub data_file: String,
    /// SHA-256 of the data file's bytes as stored (after compression and encryption),
    /// lower-case hex.
    pub sha256: String,
    /// `"gzip"` when the data file is gzip-compressed.
    #[serde(default)]
    pub compression: Option<String>,
    /// `"age"` when the data file is encrypted with age.
    #[serde(default)]
    pub encryption: Option<String>,
    /// The pool's groups; every shard of a backup carries all of them.
    #[serde(default)]
    pub groups: Vec<GroupRecord>,
    /// For a shard whose set splits the listing of the groups' members between its shards:
    /// which groups this shard listed, and the members file that holds those of their members
    /// who are other shards' users. Absent: each record's `Groups` is complete (a backup of
    /// the whole pool, or a shard of a set written before memberships were split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memberships: Option<SplitMemberships>,
}

/// The memberships one shard of a set listed ([`crate::shard::owner`] says which groups).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitMemberships {
    /// The groups whose members this shard listed: its own users' memberships in them are in
    /// their records' `Groups`, other shards' users' in the members file.
    pub groups: Vec<String>,
    /// The members file's name (no directory), beside the data file.
    pub file: String,
    /// SHA-256 of the members file's bytes as stored, lower-case hex.
    pub sha256: String,
    /// The number of memberships in the members file.
    pub count: u64,
}

/// A group definition, as ListGroups returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub name: String,
    pub description: Option<String>,
    pub precedence: Option<i32>,
    pub role_arn: Option<String>,
}

impl Manifest {
    pub fn read(path: &Location) -> Result<Manifest> {
        let text = path
            .read_to_string()
            .with_context(|| format!("reading {path}"))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {path}"))
    }

    pub fn to_json(&self) -> Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}
