//! Restore's checks before the first write: every input file read through once (records,
//! manifests' checksums and counts, duplicates), and every user of the selection held
//! against the target pool's settings — sign-in attributes, case sensitivity, aliases,
//! schema and its constraints. Every problem is collected, so the operator sees all of them
//! at once, and nothing is written while there is one.

use super::Options;
use super::sub_map::SubMap;
use crate::backup_file::names;
use crate::backup_file::{
    EXTERNAL_PROVIDER, FORMAT_VERSION, GroupRecord, Identities, Manifest, UserRecord,
    for_each_record, sha256_file,
};
use crate::cognito::{Cognito, PoolInfo};
use crate::compare::{Identity, is_writable};
use crate::location::Location;
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{BuildHasher, Hasher};

/// The longest value Cognito accepts for an attribute.
pub const MAX_VALUE_LENGTH: usize = 2048;

/// What the selected users of the input files hold, learned by reading them all.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Selected users (native and federated).
    pub users: u64,
    pub federated: u64,
    /// Groups named by the manifests (with their settings) or by inline `Groups` lists.
    pub groups: BTreeMap<String, GroupRecord>,
    /// Names given with `--user` that no input file holds.
    pub unknown_users: Vec<String>,
    /// Everything that would go wrong in the target pool, one line each.
    pub problems: Vec<String>,
}

/// Users whose keys collide, found in two passes: hashes while reading, names only for the
/// hashes seen twice. Memory: 16 bytes a user.
struct Collisions {
    keys: (std::hash::RandomState, std::hash::RandomState),
    seen: HashSet<u128>,
    twice: HashSet<u128>,
    /// Colliding hash → the usernames that share it (second pass).
    names: BTreeMap<u128, Vec<String>>,
}

impl Collisions {
    fn new() -> Self {
        Collisions {
            keys: Default::default(),
            seen: HashSet::new(),
            twice: HashSet::new(),
            names: BTreeMap::new(),
        }
    }

    fn hash(&self, key: &str) -> u128 {
        let (mut a, mut b) = (self.keys.0.build_hasher(), self.keys.1.build_hasher());
        a.write(key.as_bytes());
        b.write(key.as_bytes());
        (u128::from(a.finish()) << 64) | u128::from(b.finish())
    }

    /// First pass: whether `key` was seen before.
    fn add(&mut self, key: &str) -> bool {
        let h = self.hash(key);
        let again = !self.seen.insert(h);
        if again {
            self.twice.insert(h);
        }
        again
    }

    /// Second pass: remember the names behind colliding keys.
    fn name(&mut self, key: &str, username: &str) {
        let h = self.hash(key);
        if self.twice.contains(&h) {
            self.names.entry(h).or_default().push(username.to_string());
        }
    }

    fn groups(&self) -> impl Iterator<Item = &Vec<String>> {
        self.names.values()
    }
}

/// Reads every input file, checking each record, the manifests and the selected users
/// against `pool`. Errors in the files end the check at once; problems with the target are
/// collected in [`Inventory::problems`].
pub fn inventory(opts: &Options, ids: &Identities, pool: &PoolInfo) -> Result<Inventory> {
    let mut inv = Inventory::default();
    let identity = Identity::of(pool);
    let mut usernames = Collisions::new();
    let mut keys = Collisions::new();
    let mut aliases = Collisions::new();
    let mut found = BTreeSet::new();
    let mut source_username_attributes = BTreeSet::new();
    let mut manifests = 0;
    let mut native = 0u64;
    let mut usernames_are_subs = 0u64;
    let mut lacking_sign_in = 0u64;
    let mut alias_formats: Vec<String> = Vec::new();
    let mut schema_problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in &opts.inputs {
        let manifest_path = names::manifest_path(path);
        let manifest = manifest_path
            .exists()
            .then(|| Manifest::read(&manifest_path))
            .transpose()?;
        if let Some(m) = &manifest
            && m.format_version > FORMAT_VERSION
        {
            bail!(
                "{} is backup format version {}; this cbr reads up to version \
                 {FORMAT_VERSION}: use a newer cbr",
                path.display(),
                m.format_version
            );
        }
        let count = for_each_record(path, ids, |position, user| {
            if usernames.add(&user.username) {
                bail!(
                    "record {position} (username {:?}): this username appears more than once \
                     in the input files",
                    user.username
                );
            }
            if !opts.selection.selects(&user) {
                return Ok(());
            }
            found.insert(user.username.clone());
            inv.users += 1;
            if user.status() == EXTERNAL_PROVIDER {
                inv.federated += 1;
                return Ok(());
            }
            native += 1;
            if user.sub() == Some(user.username.as_str()) {
                usernames_are_subs += 1;
            }
            match identity.key(&user) {
                Some(k) => {
                    keys.add(&k);
                }
                None => lacking_sign_in += 1,
            }
            for alias in alias_values(&user, pool) {
                aliases.add(&alias);
            }
            if let Some(kind) = alias_format(&user.username, pool) {
                alias_formats.push(format!("{} ({kind})", user.username));
            }
            check_schema(&user, pool, &mut schema_problems);
            for g in user.groups() {
                inv.groups.entry(g.clone()).or_insert_with(|| GroupRecord {
                    name: g.clone(),
                    description: None,
                    precedence: None,
                    role_arn: None,
                });
            }
            Ok(())
        })?;
        if let Some(m) = manifest {
            manifests += 1;
            let sha256 = sha256_file(path)?;
            if m.sha256 != sha256 && !opts.ignore_checksum {
                bail!(
                    "{} does not match its manifest {} (SHA-256 {} expected, {} found): the \
                     file was changed or damaged; pass --ignore-checksum to restore it anyway",
                    path.display(),
                    manifest_path.display(),
                    m.sha256,
                    sha256
                );
            }
            if m.user_count != count && !opts.ignore_checksum {
                bail!(
                    "{} holds {} users but its manifest says {}",
                    path.display(),
                    count,
                    m.user_count
                );
            }
            for g in m.groups {
                inv.groups.insert(g.name.clone(), g);
            }
            source_username_attributes.extend(m.username_attributes.iter().cloned());
        }
    }
    for g in &opts.extra_groups {
        inv.groups.insert(g.name.clone(), g.clone());
    }
    if let Some(names) = &opts.selection.users {
        inv.unknown_users = names.difference(&found).cloned().collect();
    }

    // Names behind the collisions, from a second pass (only when there are any).
    if !keys.twice.is_empty() || !aliases.twice.is_empty() {
        for path in &opts.inputs {
            for_each_record(path, ids, |_, user| {
                if opts.selection.selects(&user) && user.status() != EXTERNAL_PROVIDER {
                    if let Some(k) = identity.key(&user) {
                        keys.name(&k, &user.username);
                    }
                    for alias in alias_values(&user, pool) {
                        aliases.name(&alias, &user.username);
                    }
                }
                Ok(())
            })?;
        }
    }

    let problems = &mut inv.problems;
    let by_alias = |source: &BTreeSet<String>| -> bool {
        !source.is_empty() || (native > 0 && usernames_are_subs == native)
    };
    let source_signs_in_by_alias = if manifests > 0 {
        !source_username_attributes.is_empty()
    } else {
        by_alias(&source_username_attributes)
    };
    if pool.username_attributes.is_empty() && source_signs_in_by_alias {
        problems.push(
            "the backup comes from a pool where people sign in with email or phone (its \
             usernames are generated IDs), but the target pool signs in with usernames: \
             create the target with the same sign-in attributes"
                .to_string(),
        );
    }
    if !pool.username_attributes.is_empty() && !source_signs_in_by_alias && native > 0 {
        problems.push(format!(
            "the backup comes from a pool where people sign in with a username, but the target \
             pool signs in with {}: its users would lose their usernames, and users sharing \
             an email or phone number would become one; create the target with usernames",
            pool.username_attributes.join(" or ")
        ));
    } else if lacking_sign_in > 0 {
        problems.push(format!(
            "the target pool signs in with {}, but {lacking_sign_in} users in the backup have \
             none",
            pool.username_attributes.join(" or ")
        ));
    }
    for names in keys.groups() {
        let what = if pool.username_attributes.is_empty() {
            "usernames that differ only in case, one user in this case-insensitive pool"
        } else {
            "the same sign-in value, one user in the target pool"
        };
        problems.push(format!("{} have {what}", names.join(", ")));
    }
    for names in aliases.groups() {
        problems.push(format!(
            "{} share a verified email or phone number, which the target pool's alias \
             settings give to one user only",
            names.join(", ")
        ));
    }
    if !alias_formats.is_empty() {
        problems.push(format!(
            "usernames the target pool refuses because it uses that attribute as an alias: {}",
            alias_formats.join(", ")
        ));
    }
    for (problem, users) in schema_problems {
        problems.push(format!("{problem}: {}", users.join(", ")));
    }
    Ok(inv)
}

/// The verified alias values a user would hold in the target (`email:…`, `phone_number:…`).
fn alias_values(user: &UserRecord, pool: &PoolInfo) -> Vec<String> {
    ["email", "phone_number"]
        .into_iter()
        .filter(|a| pool.alias_attributes.iter().any(|x| x == a))
        .filter(|a| user.attribute(&format!("{a}_verified")) == Some("true"))
        .filter_map(|a| {
            let v = user.attribute(a)?;
            let v = if a == "email" {
                v.to_lowercase()
            } else {
                v.to_string()
            };
            Some(format!("{a}:{v}"))
        })
        .collect()
}

/// Why the target would refuse this username, if it would: an email-format username in a
/// pool with email as an alias, a phone-format one with phone_number as an alias.
fn alias_format(username: &str, pool: &PoolInfo) -> Option<&'static str> {
    let has = |a: &str| pool.alias_attributes.iter().any(|x| x == a);
    let phone = username.len() > 1
        && username.starts_with('+')
        && username[1..].chars().all(|c| c.is_ascii_digit());
    if has("email") && username.contains('@') {
        Some("email format, and email is an alias")
    } else if has("phone_number") && phone {
        Some("phone number format, and phone_number is an alias")
    } else {
        None
    }
}

/// Each attribute against the target's schema: present, writable, of its type and within its
/// constraints. Problems are keyed by what is wrong, with the users it applies to.
fn check_schema(user: &UserRecord, pool: &PoolInfo, problems: &mut BTreeMap<String, Vec<String>>) {
    let mut note = |problem: String| {
        problems
            .entry(problem)
            .or_default()
            .push(user.username.clone())
    };
    for a in user.attributes.iter().filter(|a| is_writable(&a.name)) {
        let Some(value) = a.value.as_deref() else {
            continue;
        };
        let name = a.name.as_str();
        let custom = name.starts_with("custom:") || name.starts_with("dev:custom:");
        let Some(schema) = pool.schema_attribute(name) else {
            if custom {
                let bare = name
                    .trim_start_matches("dev:")
                    .trim_start_matches("custom:");
                let other = pool.schema.iter().find(|s| {
                    s.name
                        .trim_start_matches("dev:")
                        .trim_start_matches("custom:")
                        == bare
                });
                note(match other {
                    Some(s) if s.developer_only => format!(
                        "{name}: the target defines it as developer-only ({})",
                        s.name
                    ),
                    Some(s) => format!("{name}: the target defines it as {}", s.name),
                    None => format!(
                        "{name}: missing from the target pool's schema (add it to the pool first)"
                    ),
                });
            }
            if value.chars().count() > MAX_VALUE_LENGTH {
                note(format!(
                    "{name}: value longer than Cognito's {MAX_VALUE_LENGTH} characters"
                ));
            }
            continue;
        };
        let len = value.chars().count() as u64;
        let max = schema.max_length.unwrap_or(MAX_VALUE_LENGTH as u64);
        match schema.data_type.as_str() {
            "Number" => match value.parse::<i64>() {
                Err(_) => note(format!(
                    "{name}: not a whole number, as the target's schema requires"
                )),
                Ok(n) => {
                    if schema.min_value.is_some_and(|min| n < min)
                        || schema.max_value.is_some_and(|max| n > max)
                    {
                        note(format!(
                            "{name}: outside the target's range {}..{}",
                            schema.min_value.map_or(String::new(), |v| v.to_string()),
                            schema.max_value.map_or(String::new(), |v| v.to_string())
                        ));
                    }
                }
            },
            "Boolean" if value != "true" && value != "false" => note(format!(
                "{name}: not true or false, as the target's schema requires"
            )),
            _ => {
                if len > max {
                    note(format!(
                        "{name}: value longer than the target's {max} characters"
                    ));
                }
                if schema.min_length.is_some_and(|min| len < min) {
                    note(format!(
                        "{name}: value shorter than the target's {} characters",
                        schema.min_length.unwrap_or_default()
                    ));
                }
            }
        }
    }
}

/// Lists the files' problems and the target's in one error.
pub fn refuse(pool_id: &str, problems: &[String]) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "the backup does not fit pool {pool_id}; nothing was written:\n  - {}",
        problems.join("\n  - ")
    )
}

/// Inputs for the message: `backup.json` and its siblings.
pub fn describe_inputs(inputs: &[Location]) -> String {
    inputs
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Lambda triggers that run when a user is created with AdminCreateUser, or when Cognito
/// sends an invitation.
const CREATION_TRIGGERS: [&str; 1] = ["PreSignUp"];
const MESSAGE_TRIGGERS: [&str; 3] = ["CustomMessage", "CustomEmailSender", "CustomSMSSender"];

/// The checks before anything is read from the pool's users: its settings, and every input
/// file against them, all problems at once; and the sub map of earlier restores into the pool.
pub async fn check(
    cognito: &Cognito,
    opts: &Options,
    ids: &Identities,
) -> Result<(PoolInfo, Inventory, SubMap)> {
    let pool = cognito.describe_pool(&opts.pool_id).await?;
    let inv = {
        let (opts, ids, pool) = (opts.clone(), ids.clone(), pool.clone());
        tokio::task::spawn_blocking(move || inventory(&opts, &ids, &pool))
            .await
            .context("checking the input files")??
    };
    if !inv.unknown_users.is_empty() {
        bail!(
            "no user named {} in {}; nothing was written",
            inv.unknown_users.join(", "),
            describe_inputs(&opts.inputs)
        );
    }
    refuse(&opts.pool_id, &inv.problems)?;
    tracing::debug!(
        users = inv.users,
        groups = inv.groups.len(),
        "input files checked; the target pool fits"
    );
    let known = SubMap::read(&opts.sub_map_path(), &opts.pool_id)?;
    Ok((pool, inv, known))
}

/// The triggers a run would set off: creation triggers when users are created, message
/// triggers when invitations are sent.
pub fn triggers_run(pool: &PoolInfo, creates: u64, invitations: bool) -> Vec<String> {
    if creates == 0 {
        return vec![];
    }
    pool.triggers
        .iter()
        .filter(|t| {
            CREATION_TRIGGERS.contains(&t.as_str())
                || (invitations && MESSAGE_TRIGGERS.contains(&t.as_str()))
        })
        .cloned()
        .collect()
}
