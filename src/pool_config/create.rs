//! The requests that rebuild a recorded configuration in a new pool: CreateUserPool (only the
//! fields it accepts), identity providers, resource servers, app clients (with their secrets),
//! the domain and the MFA configuration; and what a printed plan must not show (secrets).

use super::*;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool_config::tests::config;

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
}
