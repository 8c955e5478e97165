//! The configuration file beside each backup (`backup.json` → `backup.config.json`, or
//! `backup.config.json.age` when the data file is encrypted): the pool's settings, app clients
//! (with their secrets), identity providers, resource servers, domains and MFA configuration,
//! in the API's own JSON shapes. It holds secrets, so it is its own file (the manifest stays
//! free of them), written atomically with mode 0600 and encrypted with the data file's age
//! recipients when there are any.

use super::encoding::{self, Encoder, Encoding, Identities};
use crate::location::Location;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};

/// The version of the configuration file's format this build writes and reads.
pub const CONFIG_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolConfig {
    pub format_version: u32,
    pub cbr_version: String,
    pub pool_id: String,
    pub region: String,
    /// When the configuration was read, RFC 3339 UTC.
    pub read_at: String,
    /// DescribeUserPool's `UserPool`.
    pub user_pool: Value,
    /// GetUserPoolMfaConfig's answer; `null` if it could not be read.
    pub mfa_config: Value,
    /// DescribeUserPoolClient's `UserPoolClient` for every app client, secrets included.
    pub clients: Vec<Value>,
    /// DescribeIdentityProvider's `IdentityProvider` for every provider.
    pub identity_providers: Vec<Value>,
    /// ListResourceServers' `ResourceServers`, with their scopes.
    pub resource_servers: Vec<Value>,
    /// DescribeUserPoolDomain's `DomainDescription` for the pool's prefix domain and its
    /// custom domain, when it has them.
    pub domains: Vec<Value>,
    /// Further parts by operation name (GetUICustomization, DescribeRiskConfiguration,
    /// GetLogDeliveryConfiguration, ListTerms): recorded, not recreated.
    #[serde(default)]
    pub other: BTreeMap<String, Value>,
    /// What could not be read, and why.
    #[serde(default)]
    pub unavailable: Vec<Unavailable>,
}

/// A part of the configuration that could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unavailable {
    /// The operation that failed, e.g. `GetUICustomization`.
    pub part: String,
    /// The service's error code, if it gave one.
    pub code: Option<String>,
    pub message: String,
}

impl PoolConfig {
    /// Writes the file atomically (mode 0600), encrypted to `recipients` when there are any.
    pub fn write(
        &self,
        path: &Location,
        recipients: Vec<Box<dyn age::Recipient + Send>>,
    ) -> Result<()> {
        let encoding = Encoding {
            gzip: false,
            recipients,
        };
        let mut out = Encoder::new(path.create()?, &encoding)?;
        serde_json::to_writer_pretty(&mut out, self)
            .with_context(|| format!("writing {}", path.display()))?;
        out.write_all(b"\n")
            .with_context(|| format!("writing {}", path.display()))?;
        let file = out
            .finish()
            .with_context(|| format!("writing {}", path.display()))?;
        file.commit()
    }

    /// Reads a configuration file (plain or age-encrypted), refusing a newer format.
    pub fn read(path: &Location, ids: &Identities) -> Result<PoolConfig> {
        let mut text = String::new();
        encoding::open(path, ids)?
            .read_to_string(&mut text)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        match value["format_version"].as_u64() {
            Some(v) if v <= CONFIG_FORMAT_VERSION as u64 => {}
            Some(v) => bail!(
                "{} has configuration format version {v}; this cbr reads up to version \
                 {CONFIG_FORMAT_VERSION}: use a newer cbr",
                path.display()
            ),
            None => bail!(
                "{} is not a cbr pool configuration file (no format_version)",
                path.display()
            ),
        }
        serde_json::from_value(value).with_context(|| format!("parsing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn sample() -> PoolConfig {
        PoolConfig {
            format_version: CONFIG_FORMAT_VERSION,
            cbr_version: "0".into(),
            pool_id: "us-east-1_a".into(),
            region: "us-east-1".into(),
            read_at: "2026-01-01T00:00:00.000Z".into(),
            user_pool: serde_json::json!({"Name": "p"}),
            mfa_config: Value::Null,
            clients: vec![serde_json::json!({"ClientSecret": "s3cret"})],
            identity_providers: vec![],
            resource_servers: vec![],
            domains: vec![],
            other: BTreeMap::new(),
            unavailable: vec![],
        }
    }

    #[test]
    fn names_follow_the_data_file() {
        let p =
            |s: &str, e| crate::backup_file::names::config_path(&s.parse().unwrap(), e).to_string();
        assert_eq!(p("d/backup.json", false), "d/backup.config.json");
        assert_eq!(p("backup-2.json.gz.age", true), "backup-2.config.json.age");
        assert_eq!(p("backup", false), "backup.config.json");
        assert_eq!(
            p("s3://b/nightly/backup-2.json", false),
            "s3://b/nightly/backup-2.config.json"
        );
    }

    #[test]
    fn round_trips_plain_and_encrypted_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let key = age::x25519::Identity::generate();
        let path: Location = dir.path().join("b.config.json.age").into();
        sample()
            .write(&path, vec![Box::new(key.to_public())])
            .unwrap();
        let raw = std::fs::read(path.local_path()).unwrap();
        assert!(raw.starts_with(b"age-encryption.org/"));
        assert!(!String::from_utf8_lossy(&raw).contains("s3cret"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path.local_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let ids: Identities = Arc::new(vec![Box::new(key)]);
        assert_eq!(PoolConfig::read(&path, &ids).unwrap(), sample());
        let err = PoolConfig::read(&path, &Arc::new(vec![])).unwrap_err();
        assert!(format!("{err:#}").contains("--identity"), "{err:#}");

        let plain: Location = dir.path().join("b.config.json").into();
        sample().write(&plain, vec![]).unwrap();
        assert_eq!(
            PoolConfig::read(&plain, &Arc::new(vec![])).unwrap(),
            sample()
        );
    }

    #[test]
    fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path: Location = dir.path().join("b.config.json").into();
        let mut v = serde_json::to_value(sample()).unwrap();
        v["format_version"] = 2.into();
        std::fs::write(path.local_path(), v.to_string()).unwrap();
        let err = PoolConfig::read(&path, &Arc::new(vec![])).unwrap_err();
        assert!(format!("{err:#}").contains("format version 2"), "{err:#}");
    }
}
