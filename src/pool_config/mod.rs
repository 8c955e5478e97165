//! A pool's configuration as a whole: reading it from a live pool (for every backup and for
//! verify), the create requests that rebuild it in a new pool, and how two configurations
//! differ (verify's drift report). The JSON stays in the API's shapes; this module knows which
//! of DescribeUserPool's fields CreateUserPool accepts, and so on for each part: reading here,
//! the create requests in `create`, the comparison in `drift`.

mod create;
mod drift;

pub use create::*;
pub use drift::*;

use crate::backup_file::config_file::CONFIG_FORMAT_VERSION;
use crate::backup_file::names;
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn config() -> PoolConfig {
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
}
