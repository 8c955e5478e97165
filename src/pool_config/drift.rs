//! How a pool's configuration differs from the one recorded beside a backup: settings by name,
//! app clients, identity providers and resource servers added, removed or changed (with the
//! changed fields), MFA and the domain. What a rebuilt pool cannot keep (ids, dates, cbr's own
//! tag) is not drift; a part that could not be read is said, not compared.

use super::*;

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
    use crate::pool_config::tests::config;
    use serde_json::json;

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
