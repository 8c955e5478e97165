//! `cbr`'s library: everything but `main`, so the binary, the tests and the fuzz target share
//! one implementation. One module owns each concept; only `cognito` calls Cognito and only
//! `s3` calls S3.

pub mod aws;
pub mod backup;
pub mod backup_file;
pub mod cli;
pub mod cognito;
pub mod compare;
pub mod create_pool;
pub mod diff;
pub mod errors;
pub mod exit_codes;
pub mod join;
pub mod listing;
pub mod location;
pub mod memberships;
pub mod packed;
pub mod pool_config;
pub mod progress;
pub mod ratelimit;
pub mod restore;
pub mod resume;
pub mod selection;
pub mod shard;
pub mod verify;
