//! A pool's configuration as a whole: reading it from a live pool (for every backup and for
//! verify), the create requests that rebuild it in a new pool, and how two configurations
//! differ (verify's drift report). The JSON stays in the API's shapes; this module knows which
//! of DescribeUserPool's fields CreateUserPool accepts, and so on for each part.

use crate::backup_file::names;
use crate::backup_file::pool_config::CONFIG_FORMAT_VERSION;
use crate::backup_file::{PoolConfig, Unavailable};
use crate::cognito::{CallError, Cognito};
use anyhow::{Context, Result};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The tag that marks a pool created by `restore --create-pool`, with the source pool's id.
pub const RESTORED_FROM_TAG: &str = "cbr:restored-from";

/// DescribeUserPool fields that CreateUserPool accepts under the same name (`Name` becomes
/// `PoolName` and `SchemaAttributes` becomes `Schema`). `MfaConfiguration` is left to
/// SetUserPoolMfaConfig, which also carries the TOTP and SMS settings.
const POOL_FIELDS: &[&str] = &[
    "Policies",
    "DeletionProtection",
    "LambdaConfig",
    "AutoVerifiedAttributes",
    "AliasAttributes",
    "UsernameAttributes",
    "SmsVerificationMessage",
    "EmailVerificationMessage",
    "EmailVerificationSubject",
    "VerificationMessageTemplate",
    "SmsAuthenticationMessage",
    "UserAttributeUpdateSettings",
    "DeviceConfiguration",
    "EmailConfiguration",
    "SmsConfiguration",
    "UserPoolTags",
    "AdminCreateUserConfig",
    "UserPoolAddOns",
    "UsernameConfiguration",
    "AccountRecoverySetting",
    "UserPoolTier",
];

/// DescribeUserPoolClient fields that CreateUserPoolClient accepts.
const CLIENT_FIELDS: &[&str] = &[
    "ClientName",
    "ClientSecret",
    "RefreshTokenValidity",
    "AccessTokenValidity",
    "IdTokenValidity",
    "TokenValidityUnits",
    "ReadAttributes",
    "WriteAttributes",
    "ExplicitAuthFlows",
    "SupportedIdentityProviders",
    "CallbackURLs",
    "LogoutURLs",
    "DefaultRedirectURI",
    "AllowedOAuthFlows",
    "AllowedOAuthScopes",
    "AllowedOAuthFlowsUserPoolClient",
    "AnalyticsConfiguration",
    "PreventUserExistenceErrors",
    "EnableTokenRevocation",
    "EnablePropagateAdditionalUserContextData",
    "AuthSessionValidity",
    "RefreshTokenRotation",
];

const PROVIDER_FIELDS: &[&str] = &[
    "ProviderName",
    "ProviderType",
    "ProviderDetails",
    "AttributeMapping",
    "IdpIdentifiers",
];

const RESOURCE_SERVER_FIELDS: &[&str] = &["Identifier", "Name", "Scopes"];

const MFA_FIELDS: &[&str] = &[
    "SmsMfaConfiguration",
    "SoftwareTokenMfaConfiguration",
    "EmailMfaConfiguration",
    "MfaConfiguration",
    "WebAuthnConfiguration",
];

/// Reads the whole configuration of a live pool. The pool itself must be readable; any other
/// part that fails is recorded in `unavailable` with its error code, and the read goes on.
pub async fn read_live(cognito: &Cognito, pool_id: &str, region: &str) -> Result<PoolConfig> {
    let user_pool = cognito
        .describe_pool_json(pool_id)
        .await
        .with_context(|| format!("describing user pool {pool_id}"))?;
    let mut unavailable = Vec::new();
    let mut note = |part: &str, e: CallError| {
        tracing::warn!(
            pool = %pool_id,
            "configuration: {part} could not be read ({}); recorded as unavailable",
            e.code.as_deref().unwrap_or("no error code")
        );
        unavailable.push(Unavailable {
            part: part.to_string(),
            code: e.code.clone(),
            message: e.to_string(),
        });
    };
    let mfa_config = match cognito.mfa_config_json(pool_id).await {
        Ok(v) => v,
        Err(e) => {
            note("GetUserPoolMfaConfig", e);
            Value::Null
        }
    };
    let clients = cognito.clients_json(pool_id).await.unwrap_or_else(|e| {
        note("DescribeUserPoolClient", e);
        vec![]
    });
    let identity_providers = cognito.providers_json(pool_id).await.unwrap_or_else(|e| {
        note("DescribeIdentityProvider", e);
        vec![]
    });
    let resource_servers = cognito
        .resource_servers_json(pool_id)
        .await
        .unwrap_or_else(|e| {
            note("ListResourceServers", e);
            vec![]
        });
    let mut domains = Vec::new();
    for key in ["Domain", "CustomDomain"] {
        if let Some(domain) = user_pool[key].as_str() {
            match cognito.describe_domain_json(domain).await {
                Ok(Some(d)) => domains.push(d),
                Ok(None) => domains.push(json!({ "Domain": domain, "UserPoolId": pool_id })),
                Err(e) => note("DescribeUserPoolDomain", e),
            }
        }
    }
    let mut other = BTreeMap::new();
    for (part, result) in cognito.optional_parts_json(pool_id).await {
        match result {
            Ok(mut v) => {
                if let Value::Object(m) = &mut v {
                    m.remove("ResponseMetadata");
                }
                other.insert(part.to_string(), v);
            }
            Err(e) => note(part, e),
        }
    }
    Ok(PoolConfig {
        format_version: CONFIG_FORMAT_VERSION,
        cbr_version: env!("CARGO_PKG_VERSION").to_string(),
        pool_id: pool_id.to_string(),
        region: region.to_string(),
        read_at: names::now(),
        user_pool,
        mfa_config,
        clients,
        identity_providers,
        resource_servers,
        domains,
        other,
        unavailable,
    })
}

fn pick(from: &Value, fields: &[&str]) -> Map<String, Value> {
    fields
        .iter()
        .filter_map(|&f| match &from[f] {
            Value::Null => None,
            v => Some((f.to_string(), v.clone())),
        })
        .collect()
}

/// The pool's name in the configuration.
pub fn pool_name(config: &PoolConfig) -> &str {
    config.user_pool["Name"].as_str().unwrap_or_default()
}

/// The CreateUserPool request that rebuilds the recorded pool under `name`, tagged with
/// [`RESTORED_FROM_TAG`].
pub fn create_pool_request(config: &PoolConfig, name: &str) -> Value {
    let pool = &config.user_pool;
    let mut req = pick(pool, POOL_FIELDS);
    req.insert("PoolName".into(), name.into());
    // The legacy message fields may not be sent beside the template that replaces them.
    if pool["VerificationMessageTemplate"].is_object() {
        for f in [
            "SmsVerificationMessage",
            "EmailVerificationMessage",
            "EmailVerificationSubject",
        ] {
            req.remove(f);
        }
    }
    // Deprecated in favour of the password policy's TemporaryPasswordValidityDays.
    if pool["Policies"]["PasswordPolicy"]["TemporaryPasswordValidityDays"].is_number()
        && let Some(Value::Object(admin)) = req.get_mut("AdminCreateUserConfig")
    {
        admin.remove("UnusedAccountValidityDays");
    }
    let mut tags = match pool["UserPoolTags"].clone() {
        Value::Object(t) => t,
        _ => Map::new(),
    };
    tags.insert(RESTORED_FROM_TAG.into(), config.pool_id.clone().into());
    req.insert("UserPoolTags".into(), Value::Object(tags));
    let schema: Vec<Value> = pool["SchemaAttributes"]
        .as_array()
        .map(|attrs| attrs.iter().filter_map(schema_attribute).collect())
        .unwrap_or_default();
    if !schema.is_empty() {
        req.insert("Schema".into(), schema.into());
    }
    Value::Object(req)
}

/// A schema attribute as CreateUserPool takes it: custom ones without their `custom:` (or
/// `dev:custom:`) prefix, which Cognito adds back; `sub`, which Cognito defines itself, left out.
fn schema_attribute(attr: &Value) -> Option<Value> {
    let name = attr["Name"].as_str()?;
    if name == "sub" {
        return None;
    }
    let mut a = attr.clone();
    let short = name
        .strip_prefix("dev:custom:")
        .or_else(|| name.strip_prefix("custom:"))
        .unwrap_or(name);
    a["Name"] = short.into();
    Some(a)
}

/// CreateIdentityProvider requests, in the recorded order.
pub fn provider_requests(config: &PoolConfig, pool_id: &str) -> Vec<Value> {
    config
        .identity_providers
        .iter()
        .map(|p| with_pool(pick(p, PROVIDER_FIELDS), pool_id))
        .collect()
}

/// CreateResourceServer requests.
pub fn resource_server_requests(config: &PoolConfig, pool_id: &str) -> Vec<Value> {
    config
        .resource_servers
        .iter()
        .map(|s| with_pool(pick(s, RESOURCE_SERVER_FIELDS), pool_id))
        .collect()
}

/// CreateUserPoolClient requests, each with its recorded secret.
pub fn client_requests(config: &PoolConfig, pool_id: &str) -> Vec<Value> {
    config
        .clients
        .iter()
        .map(|c| {
            let mut req = pick(c, CLIENT_FIELDS);
            if req.contains_key("ClientSecret") {
                req.insert("GenerateSecret".into(), true.into());
            }
            with_pool(req, pool_id)
        })
        .collect()
}

/// CreateUserPoolDomain requests; `prefix` replaces the recorded prefix domain's name.
pub fn domain_requests(config: &PoolConfig, pool_id: &str, prefix: Option<&str>) -> Vec<Value> {
    config
        .domains
        .iter()
        .filter_map(|d| {
            let mut req = Map::new();
            let custom = d["CustomDomainConfig"].is_object();
            let name = match (custom, prefix) {
                (false, Some(p)) => p.to_string(),
                _ => d["Domain"].as_str()?.to_string(),
            };
            req.insert("Domain".into(), name.into());
            if custom {
                req.insert("CustomDomainConfig".into(), d["CustomDomainConfig"].clone());
            }
            if let Some(v) = d["ManagedLoginVersion"].as_i64() {
                req.insert("ManagedLoginVersion".into(), v.into());
            }
            Some(with_pool(req, pool_id))
        })
        .collect()
}

/// The SetUserPoolMfaConfig request, or `None` when the MFA configuration was not read.
pub fn mfa_request(config: &PoolConfig, pool_id: &str) -> Option<Value> {
    if !config.mfa_config.is_object() {
        return None;
    }
    Some(with_pool(pick(&config.mfa_config, MFA_FIELDS), pool_id))
}

fn with_pool(mut req: Map<String, Value>, pool_id: &str) -> Value {
    req.insert("UserPoolId".into(), pool_id.into());
    Value::Object(req)
}

/// The Lambda functions named by the pool's triggers, without repeats.
pub fn lambda_arns(config: &PoolConfig) -> Vec<String> {
    let mut arns = Vec::new();
    let mut add = |v: &Value| {
        if let Some(s) = v.as_str()
            && s.starts_with("arn:")
            && !arns.iter().any(|a| a == s)
        {
            arns.push(s.to_string());
        }
    };
    if let Value::Object(triggers) = &config.user_pool["LambdaConfig"] {
        for (key, v) in triggers {
            if key == "KMSKeyID" {
                continue;
            }
            add(v);
            add(&v["LambdaArn"]);
        }
    }
    arns
}

/// A copy of a request with its secrets replaced, for printing.
pub fn redacted(req: &Value) -> Value {
    let mut r = req.clone();
    if r["ClientSecret"].is_string() {
        r["ClientSecret"] = "<redacted>".into();
    }
    if let Value::Object(details) = &mut r["ProviderDetails"] {
        for (k, v) in details.iter_mut() {
            if k.contains("secret") || k == "private_key" {
                *v = "<redacted>".into();
            }
        }
    }
    r
}

/// How a recorded configuration differs from a live one.
#[derive(Debug, Default, PartialEq)]
pub struct Drift {
    /// Lines such as `setting Policies changed`, `client web added in the pool`,
    /// `client web changed: CallbackURLs`.
    pub changed: Vec<String>,
    /// Parts not compared because one side could not read them, with the reason.
    pub not_compared: Vec<String>,
}

pub fn drift(recorded: &PoolConfig, live: &PoolConfig) -> Drift {
    let mut out = Vec::new();
    let mut not_compared = Vec::new();
    // Settings are compared as CreateUserPool would take them, so that what a rebuilt pool
    // cannot differ in (ids, dates, read-only fields, cbr's own tag) is not drift.
    let settings = |c: &PoolConfig| {
        let mut req = match create_pool_request(c, "") {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        req.remove("PoolName");
        if let Some(Value::Object(tags)) = req.get_mut("UserPoolTags") {
            tags.remove(RESTORED_FROM_TAG);
            if tags.is_empty() {
                req.remove("UserPoolTags");
            }
        }
        req
    };
    let (a, b) = (settings(recorded), settings(live));
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for f in names {
        if a.get(f) != b.get(f) {
            out.push(format!("setting {f} changed"));
        }
    }
    // A part that could not be read on either side is reported as such, not as drift.
    let mut compared = |part: &str, what: &str| {
        let missing = [recorded, live]
            .iter()
            .any(|c| c.unavailable.iter().any(|u| u.part == part));
        if missing {
            not_compared.push(format!("{what}: {part} could not be read"));
        }
        !missing
    };
    if compared("GetUserPoolMfaConfig", "MFA configuration") {
        let (ma, mb) = (
            pick(&recorded.mfa_config, MFA_FIELDS),
            pick(&live.mfa_config, MFA_FIELDS),
        );
        for f in MFA_FIELDS {
            if ma.get(*f) != mb.get(*f) {
                out.push(format!("MFA setting {f} changed"));
            }
        }
    }
    if compared("DescribeUserPoolClient", "clients") {
        let (a, b) = (&recorded.clients, &live.clients);
        compare_set(&mut out, "client", "ClientName", CLIENT_FIELDS, a, b);
    }
    if compared("DescribeIdentityProvider", "identity providers") {
        let (a, b) = (&recorded.identity_providers, &live.identity_providers);
        compare_set(
            &mut out,
            "identity provider",
            "ProviderName",
            PROVIDER_FIELDS,
            a,
            b,
        );
    }
    if compared("ListResourceServers", "resource servers") {
        let (a, b) = (&recorded.resource_servers, &live.resource_servers);
        let fields = RESOURCE_SERVER_FIELDS;
        compare_set(&mut out, "resource server", "Identifier", fields, a, b);
    }
    let domains = |c: &PoolConfig| -> Vec<String> {
        c.domains
            .iter()
            .filter_map(|d| d["Domain"].as_str().map(str::to_string))
            .collect()
    };
    if compared("DescribeUserPoolDomain", "domains") && domains(recorded) != domains(live) {
        out.push(format!(
            "domain changed: {:?} in the backup, {:?} in the pool",
            domains(recorded),
            domains(live)
        ));
    }
    Drift {
        changed: out,
        not_compared,
    }
}

/// Verify's configuration check: the configuration recorded beside `data` against the live
/// pool's. Returns the differences (`None` when there is no configuration file, or it could not
/// be read) and what was not compared, and why.
pub async fn drift_from_backup(
    cognito: &Cognito,
    region: &str,
    pool_id: &str,
    data: &crate::location::Location,
    ids: &crate::backup_file::Identities,
) -> Result<(Option<Vec<String>>, Vec<String>)> {
    let Some(path) = crate::backup_file::names::find_config(data) else {
        return Ok((None, vec![]));
    };
    if ids.is_empty() && path.file_name().ends_with(".age") {
        let why = format!(
            "{} is encrypted and no --identity was given",
            path.display()
        );
        return Ok((None, vec![why]));
    }
    let recorded = PoolConfig::read(&path, ids)?;
    let live = read_live(cognito, pool_id, region).await?;
    let d = drift(&recorded, &live);
    Ok((Some(d.changed), d.not_compared))
}

/// Compares two lists of named items: added, removed, and changed (with the changed fields).
fn compare_set(
    out: &mut Vec<String>,
    what: &str,
    key: &str,
    fields: &[&str],
    recorded: &[Value],
    live: &[Value],
) {
    let index = |items: &[Value]| -> BTreeMap<String, Map<String, Value>> {
        items
            .iter()
            .map(|i| {
                (
                    i[key].as_str().unwrap_or_default().to_string(),
                    pick(i, fields),
                )
            })
            .collect()
    };
    let (a, b) = (index(recorded), index(live));
    for (name, old) in &a {
        match b.get(name) {
            None => out.push(format!("{what} {name} removed from the pool")),
            Some(new) => {
                let changed: Vec<&str> = fields
                    .iter()
                    .copied()
                    .filter(|f| old.get(*f) != new.get(*f))
                    .collect();
                if !changed.is_empty() {
                    out.push(format!("{what} {name} changed: {}", changed.join(", ")));
                }
            }
        }
    }
    for name in b.keys().filter(|n| !a.contains_key(*n)) {
        out.push(format!("{what} {name} added in the pool"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PoolConfig {
        PoolConfig {
            format_version: 1,
            cbr_version: "0".into(),
            pool_id: "us-east-1_old".into(),
            region: "us-east-1".into(),
            read_at: String::new(),
            user_pool: json!({
                "Id": "us-east-1_old", "Arn": "arn:x", "Name": "prod",
                "CreationDate": 1.5, "EstimatedNumberOfUsers": 3, "Domain": "prod-auth",
                "MfaConfiguration": "OPTIONAL",
                "Policies": {"PasswordPolicy": {"MinimumLength": 12, "TemporaryPasswordValidityDays": 3}},
                "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": true, "UnusedAccountValidityDays": 7},
                "SmsVerificationMessage": "{####}",
                "VerificationMessageTemplate": {"SmsMessage": "{####}"},
                "UserPoolTags": {"team": "id"},
                "LambdaConfig": {"PreSignUp": "arn:aws:lambda:f1", "PostConfirmation": "arn:aws:lambda:f1",
                                  "CustomEmailSender": {"LambdaArn": "arn:aws:lambda:f2", "LambdaVersion": "V1_0"},
                                  "KMSKeyID": "arn:aws:kms:k"},
                "SchemaAttributes": [
                    {"Name": "sub", "AttributeDataType": "String"},
                    {"Name": "email", "AttributeDataType": "String", "Required": true},
                    {"Name": "custom:tier", "AttributeDataType": "String"},
                    {"Name": "dev:custom:x", "AttributeDataType": "Number", "DeveloperOnlyAttribute": true}
                ]
            }),
            mfa_config: json!({"MfaConfiguration": "OPTIONAL", "SoftwareTokenMfaConfiguration": {"Enabled": true}}),
            clients: vec![
                json!({"ClientId": "old1", "ClientName": "web", "ClientSecret": "s",
                                 "UserPoolId": "us-east-1_old", "CreationDate": 1.0, "CallbackURLs": ["https://a"]}),
            ],
            identity_providers: vec![json!({"ProviderName": "corp", "ProviderType": "OIDC",
                                            "ProviderDetails": {"client_id": "c", "client_secret": "cs"},
                                            "UserPoolId": "us-east-1_old", "LastModifiedDate": 2.0})],
            resource_servers: vec![
                json!({"Identifier": "api", "Name": "api", "UserPoolId": "us-east-1_old",
                                          "Scopes": [{"ScopeName": "read", "ScopeDescription": "r"}]}),
            ],
            domains: vec![
                json!({"Domain": "prod-auth", "UserPoolId": "us-east-1_old", "Status": "ACTIVE"}),
            ],
            other: BTreeMap::new(),
            unavailable: vec![],
        }
    }

    #[test]
    fn create_pool_request_keeps_settings_and_drops_read_only_fields() {
        let req = create_pool_request(&config(), "prod-restored");
        assert_eq!(req["PoolName"], "prod-restored");
        for gone in [
            "Id",
            "Arn",
            "Name",
            "CreationDate",
            "EstimatedNumberOfUsers",
            "Domain",
            "MfaConfiguration",
            "SchemaAttributes",
            "SmsVerificationMessage",
        ] {
            assert!(req.get(gone).is_none(), "{gone} in {req}");
        }
        assert_eq!(req["Policies"]["PasswordPolicy"]["MinimumLength"], 12);
        assert_eq!(
            req["AdminCreateUserConfig"],
            json!({"AllowAdminCreateUserOnly": true})
        );
        assert_eq!(
            req["UserPoolTags"],
            json!({"team": "id", "cbr:restored-from": "us-east-1_old"})
        );
        let names: Vec<&str> = req["Schema"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["email", "tier", "x"]);
    }

    #[test]
    fn client_provider_server_domain_and_mfa_requests() {
        let c = config();
        let clients = client_requests(&c, "new");
        assert_eq!(
            clients,
            [
                json!({"ClientName": "web", "ClientSecret": "s", "GenerateSecret": true,
                                    "CallbackURLs": ["https://a"], "UserPoolId": "new"})
            ]
        );
        assert_eq!(
            provider_requests(&c, "new")[0]["ProviderDetails"]["client_secret"],
            "cs"
        );
        assert!(
            provider_requests(&c, "new")[0]
                .get("LastModifiedDate")
                .is_none()
        );
        assert_eq!(resource_server_requests(&c, "new")[0]["UserPoolId"], "new");
        assert_eq!(
            domain_requests(&c, "new", None),
            [json!({"Domain": "prod-auth", "UserPoolId": "new"})]
        );
        assert_eq!(
            domain_requests(&c, "new", Some("other"))[0]["Domain"],
            "other"
        );
        assert_eq!(
            mfa_request(&c, "new").unwrap()["SoftwareTokenMfaConfiguration"]["Enabled"],
            true
        );
        assert_eq!(lambda_arns(&c), ["arn:aws:lambda:f2", "arn:aws:lambda:f1"]);
    }

    #[test]
    fn secrets_are_redacted_for_printing() {
        let c = config();
        let shown = format!(
            "{}{}",
            redacted(&client_requests(&c, "n")[0]),
            redacted(&provider_requests(&c, "n")[0])
        );
        assert!(!shown.contains("\"s\"") && !shown.contains("cs"), "{shown}");
    }

    #[test]
    fn drift_names_what_changed() {
        let old = config();
        assert_eq!(drift(&old, &old), Drift::default());
        // A rebuilt pool: new ids, cbr's tag, the deprecated field Cognito is not sent.
        let mut rebuilt = old.clone();
        rebuilt.pool_id = "us-east-1_new".into();
        rebuilt.user_pool["Id"] = "us-east-1_new".into();
        rebuilt.user_pool["UserPoolTags"][RESTORED_FROM_TAG] = "us-east-1_old".into();
        rebuilt.user_pool["AdminCreateUserConfig"]
            .as_object_mut()
            .unwrap()
            .remove("UnusedAccountValidityDays");
        rebuilt.clients[0]["ClientId"] = "new1".into();
        assert_eq!(drift(&old, &rebuilt), Drift::default());
        // Clients that could not be read are not reported as removed.
        let mut unreadable = old.clone();
        unreadable.clients.clear();
        unreadable.unavailable.push(Unavailable {
            part: "DescribeUserPoolClient".into(),
            code: Some("AccessDeniedException".into()),
            message: String::new(),
        });
        let d = drift(&old, &unreadable);
        assert!(d.changed.is_empty(), "{d:?}");
        assert_eq!(
            d.not_compared,
            ["clients: DescribeUserPoolClient could not be read"]
        );
        let mut new = old.clone();
        new.user_pool["Policies"]["PasswordPolicy"]["MinimumLength"] = 8.into();
        new.clients[0]["CallbackURLs"] = json!(["https://b"]);
        new.clients.push(json!({"ClientName": "cli"}));
        new.resource_servers.clear();
        let d = drift(&old, &new).changed;
        assert_eq!(
            d,
            [
                "setting Policies changed",
                "client web changed: CallbackURLs",
                "client cli added in the pool",
                "resource server api removed from the pool",
            ]
        );
    }
}
