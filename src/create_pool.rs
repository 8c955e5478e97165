//! `cbr restore --create-pool NAME`: builds a new pool from a backup's recorded configuration
//! before the users are restored into it. Order: checks (configuration file, its pool, the
//! data files, the name, the domain) before anything is created; then the pool (immutable
//! settings included, tagged `cbr:restored-from=<old pool id>`), identity providers, resource
//! servers, app clients with their recorded secrets (after the providers and scopes they name),
//! domain and MFA configuration. Groups and users follow through the normal restore.
//!
//! A rerun finds the pool by its name and tag and creates only what is missing, so an
//! interrupted run can be run again and never makes a second pool.

use crate::backup_file::names::{self, find_config};
use crate::backup_file::{Identities, Manifest, PoolConfig, for_each_record, sha256_file};
use crate::cognito::Cognito;
use crate::location::Location;
use crate::pool_config::{self as config, RESTORED_FROM_TAG};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;

/// Validated options for `--create-pool`, built from the restore arguments.
pub struct Options {
    pub name: String,
    pub inputs: Vec<Location>,
    pub domain_prefix: Option<String>,
    pub client_map: PathBuf,
    pub dry_run: bool,
    pub ignore_checksum: bool,
}

/// Creates (or, on a rerun, completes) the pool and returns its id, to restore the users into.
/// With `--dry-run`, prints the configuration that would be created and returns the id of a
/// pool an earlier run created, if there is one.
pub async fn run(cognito: &Cognito, opts: &Options, ids: &Identities) -> Result<Option<String>> {
    let config = read_checked(opts, ids)?;
    let existing = find_existing(cognito, &opts.name, &config.pool_id).await?;
    let prefix = opts.domain_prefix.clone();
    check_domains(
        cognito,
        &config,
        existing.as_ref().map(|p| p.0.as_str()),
        prefix.as_deref(),
    )
    .await?;
    if opts.dry_run {
        print_plan(&config, opts, existing.as_ref().map(|p| p.0.as_str()))?;
        return Ok(existing.map(|p| p.0));
    }

    let mut summary = Vec::new();
    let (pool_id, arn) = create_or_continue(cognito, &config, opts, existing, &mut summary).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{pool_id}")?;
    stdout.flush()?;
    drop(stdout);

    // Providers before clients: a client names the providers it signs in with.
    summary.push(create_providers(cognito, &config, &pool_id).await?);
    summary.push(create_resource_servers(cognito, &config, &pool_id).await?);
    let (line, map) = create_clients(cognito, &config, &pool_id).await?;
    summary.push(line);
    summary.extend(create_domains(cognito, &config, &pool_id, prefix.as_deref()).await?);
    if let Some(line) = set_mfa(cognito, &config, &pool_id).await? {
        summary.push(line);
    }

    let mut lines = Vec::new();
    for m in &map {
        lines.extend(serde_json::to_vec(m)?);
        lines.push(b'\n');
    }
    crate::location::write_atomic(&opts.client_map, &lines)?;
    summary.push(format!("client map: {}", opts.client_map.display()));
    summary.extend(not_recreated(&config));
    summary.extend(trigger_permissions(&config, &pool_id, arn));
    eprintln!("create pool {:?} from {}:", opts.name, config.pool_id);
    for line in summary {
        eprintln!("  {line}");
    }
    Ok(Some(pool_id))
}

/// The pool an earlier run created, or a new one: its id and ARN.
async fn create_or_continue(
    cognito: &Cognito,
    config: &PoolConfig,
    opts: &Options,
    existing: Option<(String, String)>,
    summary: &mut Vec<String>,
) -> Result<(String, String)> {
    Ok(match existing {
        Some((id, arn)) => {
            summary.push(format!(
                "pool {id} found (created by an earlier run): continuing"
            ));
            (id, arn)
        }
        None => {
            let created = cognito
                .create_pool_json(&config::create_pool_request(config, &opts.name))
                .await
                .with_context(|| format!("creating user pool {:?}", opts.name))?;
            let id = created["Id"]
                .as_str()
                .context("CreateUserPool: no pool id")?;
            summary.push(format!("pool {id} created"));
            (
                id.to_string(),
                created["Arn"].as_str().unwrap_or_default().to_string(),
            )
        }
    })
}

/// The identity providers the pool lacks.
async fn create_providers(cognito: &Cognito, config: &PoolConfig, pool_id: &str) -> Result<String> {
    let present = cognito
        .providers_json(pool_id)
        .await
        .with_context(|| format!("listing identity providers of {pool_id}"))?;
    let mut made = 0;
    for req in config::provider_requests(config, pool_id) {
        if present
            .iter()
            .any(|p| p["ProviderName"] == req["ProviderName"])
        {
            continue;
        }
        cognito
            .create_provider_json(&req)
            .await
            .with_context(|| format!("creating identity provider {}", req["ProviderName"]))?;
        made += 1;
    }
    Ok(format!(
        "identity providers created   {made} of {}",
        config.identity_providers.len()
    ))
}

/// The resource servers the pool lacks.
async fn create_resource_servers(
    cognito: &Cognito,
    config: &PoolConfig,
    pool_id: &str,
) -> Result<String> {
    let present = cognito
        .resource_servers_json(pool_id)
        .await
        .with_context(|| format!("listing resource servers of {pool_id}"))?;
    let mut made = 0;
    for req in config::resource_server_requests(config, pool_id) {
        if present.iter().any(|s| s["Identifier"] == req["Identifier"]) {
            continue;
        }
        cognito
            .create_resource_server_json(&req)
            .await
            .with_context(|| format!("creating resource server {}", req["Identifier"]))?;
        made += 1;
    }
    Ok(format!(
        "resource servers created     {made} of {}",
        config.resource_servers.len()
    ))
}

/// The app clients the pool lacks, and the old → new client id map of every client.
async fn create_clients(
    cognito: &Cognito,
    config: &PoolConfig,
    pool_id: &str,
) -> Result<(String, Vec<Value>)> {
    // Clients are matched by name, in order (Cognito allows two clients of one name).
    let mut present = cognito
        .clients_json(pool_id)
        .await
        .with_context(|| format!("listing app clients of {pool_id}"))?;
    let mut made = 0;
    let mut map = Vec::new();
    for (old, req) in config
        .clients
        .iter()
        .zip(config::client_requests(config, pool_id))
    {
        let new_id = match present
            .iter()
            .position(|c| c["ClientName"] == req["ClientName"])
        {
            Some(i) => present.remove(i)["ClientId"].clone(),
            None => {
                let created = cognito
                    .create_client_json(&req)
                    .await
                    .with_context(|| format!("creating app client {}", req["ClientName"]))?;
                made += 1;
                created["ClientId"].clone()
            }
        };
        map.push(json!({
            "client_name": old["ClientName"],
            "old_client_id": old["ClientId"],
            "new_client_id": new_id,
        }));
    }
    let line = format!(
        "app clients created          {made} of {}",
        config.clients.len()
    );
    Ok((line, map))
}

/// The domain, unless the pool has it already.
async fn create_domains(
    cognito: &Cognito,
    config: &PoolConfig,
    pool_id: &str,
    prefix: Option<&str>,
) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for req in config::domain_requests(config, pool_id, prefix) {
        let domain = req["Domain"].as_str().unwrap_or_default();
        let owner = cognito
            .describe_domain_json(domain)
            .await
            .with_context(|| format!("describing domain {domain}"))?;
        if owner.is_some_and(|d| d["UserPoolId"] == pool_id) {
            continue;
        }
        cognito
            .create_domain_json(&req)
            .await
            .with_context(|| format!("creating domain {domain}"))?;
        lines.push(format!("domain {domain} created"));
    }
    if lines.is_empty() && !config.domains.is_empty() {
        lines.push("domain already present".to_string());
    }
    Ok(lines)
}

/// The MFA configuration, if one was recorded.
async fn set_mfa(cognito: &Cognito, config: &PoolConfig, pool_id: &str) -> Result<Option<String>> {
    let Some(req) = config::mfa_request(config, pool_id) else {
        return Ok(None);
    };
    cognito
        .set_mfa_config_json(&req)
        .await
        .with_context(|| format!("setting the MFA configuration of {pool_id}"))?;
    Ok(Some(format!(
        "MFA configuration set        {}",
        req["MfaConfiguration"].as_str().unwrap_or("?")
    )))
}

/// The parts that could not be read at backup time, or that cbr records but does not create.
fn not_recreated(config: &PoolConfig) -> Vec<String> {
    let unreadable = config.unavailable.iter().map(|u| {
        format!(
            "not recreated: {} could not be read at backup time ({})",
            u.part,
            u.code.as_deref().unwrap_or("no error code")
        )
    });
    let kept = config
        .other
        .keys()
        .map(|part| format!("not recreated: {part} (recorded in the configuration file)"));
    unreadable.chain(kept).collect()
}

/// The commands that let the new pool invoke its Lambda triggers, which keep their ARNs.
fn trigger_permissions(config: &PoolConfig, pool_id: &str, arn: String) -> Vec<String> {
    let arns = config::lambda_arns(config);
    if arns.is_empty() {
        return vec![];
    }
    let pool_arn = if arn.is_empty() {
        // An endpoint that does not echo the ARN: the old one with the new id.
        config.user_pool["Arn"]
            .as_str()
            .unwrap_or_default()
            .replace(&config.pool_id, pool_id)
    } else {
        arn
    };
    let mut lines =
        vec!["Lambda triggers keep their ARNs; let the new pool invoke each function:".to_string()];
    for arn in arns {
        lines.push(format!(
            "  aws lambda add-permission --function-name {arn} --statement-id cbr-{pool_id} \
             --action lambda:InvokeFunction --principal cognito-idp.amazonaws.com \
             --source-arn {pool_arn}"
        ));
    }
    lines
}

/// Reads the configuration beside the first input and checks it and the data files before
/// anything is created: its format version, that it comes from the same pool as every
/// manifest, and that each data file parses and matches its manifest.
fn read_checked(opts: &Options, ids: &Identities) -> Result<PoolConfig> {
    let first = &opts.inputs[0];
    let path = find_config(first).with_context(|| {
        format!(
            "no pool configuration beside {} ({}): --create-pool needs a backup that \
             recorded it",
            first.display(),
            names::config_path(first, false).display()
        )
    })?;
    let config = PoolConfig::read(&path, ids)?;
    if !config.user_pool.is_object() {
        bail!("{} records no pool settings", path.display());
    }
    for input in &opts.inputs {
        let manifest_path = names::manifest_path(input);
        let manifest = manifest_path
            .exists()
            .then(|| Manifest::read(&manifest_path))
            .transpose()?;
        if let Some(m) = &manifest
            && m.pool_id != config.pool_id
        {
            bail!(
                "{} describes pool {} but {} is a backup of pool {}: they are not from the \
                 same backup",
                path.display(),
                config.pool_id,
                input.display(),
                m.pool_id
            );
        }
        let count = for_each_record(input, ids, |_, _| Ok(()))?;
        if let Some(m) = manifest
            && !opts.ignore_checksum
        {
            let sha = sha256_file(input)?;
            if sha != m.sha256 || count != m.user_count {
                bail!(
                    "{} does not match its manifest (SHA-256 or user count): it changed after \
                     the backup (--ignore-checksum to restore it anyway)",
                    input.display()
                );
            }
        }
    }
    Ok(config)
}

/// A pool an earlier run created: same name and `cbr:restored-from` tag. Another pool of the
/// same name is an error, so that nothing is created beside it by mistake.
async fn find_existing(
    cognito: &Cognito,
    name: &str,
    source: &str,
) -> Result<Option<(String, String)>> {
    let mut found = None;
    for pool in cognito
        .list_pools()
        .await?
        .into_iter()
        .filter(|p| p.name == name)
    {
        let described = cognito
            .describe_pool_json(&pool.id)
            .await
            .with_context(|| format!("describing user pool {}", pool.id))?;
        if described["UserPoolTags"][RESTORED_FROM_TAG] != source {
            bail!(
                "a pool named {name:?} exists already ({}) and was not created by `cbr restore \
                 --create-pool` from {source}: choose another name",
                pool.id
            );
        }
        if found.is_some() {
            bail!("more than one pool named {name:?} was restored from {source}");
        }
        found = Some((
            pool.id.clone(),
            described["Arn"].as_str().unwrap_or_default().to_string(),
        ));
    }
    Ok(found)
}

/// Refuses a recorded (or chosen) domain that another pool holds, before anything is created.
async fn check_domains(
    cognito: &Cognito,
    config: &PoolConfig,
    ours: Option<&str>,
    prefix: Option<&str>,
) -> Result<()> {
    for req in config::domain_requests(config, "-", prefix) {
        let domain = req["Domain"].as_str().unwrap_or_default();
        let owner = cognito
            .describe_domain_json(domain)
            .await
            .with_context(|| format!("describing domain {domain}"))?;
        if let Some(d) = owner {
            let holder = d["UserPoolId"].as_str().unwrap_or_default();
            if Some(holder) != ours {
                bail!(
                    "the domain {domain:?} belongs to pool {holder}: delete it there, or pass \
                     --domain-prefix with another prefix for the new pool"
                );
            }
        }
    }
    Ok(())
}

/// `--dry-run`: the requests that would be sent, secrets redacted, as JSON on stdout.
fn print_plan(config: &PoolConfig, opts: &Options, existing: Option<&str>) -> Result<()> {
    let new = existing.unwrap_or("<new pool id>");
    let all = |reqs: Vec<Value>| -> Vec<Value> { reqs.iter().map(config::redacted).collect() };
    let plan = json!({
        "create_pool": opts.name,
        "from_pool": config.pool_id,
        "existing_pool": existing,
        "CreateUserPool": config::create_pool_request(config, &opts.name),
        "CreateIdentityProvider": all(config::provider_requests(config, new)),
        "CreateResourceServer": all(config::resource_server_requests(config, new)),
        "CreateUserPoolClient": all(config::client_requests(config, new)),
        "CreateUserPoolDomain": config::domain_requests(config, new, opts.domain_prefix.as_deref()),
        "SetUserPoolMfaConfig": config::mfa_request(config, new),
        "not_recreated": config.unavailable.iter().map(|u| &u.part)
            .chain(config.other.keys()).collect::<Vec<_>>(),
    });
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &plan)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}
