//! The backup file format: user records, the manifest beside them, and how both are written
//! (atomically, mode 0600, hashed, optionally gzip-compressed and age-encrypted) and read (as
//! a stream, with precise errors); shard sets; other tools' files (`cognito-backup`'s groups
//! file); memberships split between the shards of a set (`members`).

pub mod config_file;
pub mod encoding;
pub mod groups_file;
pub mod manifest;
pub mod members;
pub mod names;
pub mod reader;
pub mod record;
pub mod shard_set;
pub mod writer;

pub use config_file::{PoolConfig, Unavailable};
pub use encoding::{
    Encoding, Identities, is_age_encrypted, load_identities, load_recipients, sha256_file,
};
pub use groups_file::{GroupsFile, read_groups_files};
pub use manifest::{FORMAT_VERSION, GroupRecord, Manifest, SplitMemberships};
pub use members::SetMembers;
pub use reader::for_each_record;
#[cfg(test)]
pub use record::test_user;
pub use record::{Attribute, EXTERNAL_PROVIDER, MfaOption, UserRecord};
pub use shard_set::{missing_from_inputs, missing_members, repeated_input};
pub use writer::{DataWriter, Spool, Spooled};
