//! The pool configuration beside every backup, `restore --create-pool` and verify's drift
//! report, end to end against moto (and through the recording layer for the exact requests).

mod common;

use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::types::{
    AttributeDataType, IdentityProviderTypeType, LambdaConfigType, NumberAttributeConstraintsType,
    OAuthFlowType, PasswordPolicyType, ResourceServerScopeType, SchemaAttributeType,
    SoftwareTokenMfaConfigType, StringAttributeConstraintsType, UserPoolMfaType,
    UserPoolPolicyType, UsernameAttributeType, UsernameConfigurationType,
};
use common::*;
use serde_json::Value;
use std::path::Path;

const WEB_SECRET: &str = "web-client-secret-0123456789abcdefghijklmnopqrstuvw";
const IDP_SECRET: &str = "oidc-provider-secret-42";
const TRIGGER: &str = "arn:aws:lambda:us-east-1:123456789012:function:pre-sign-up";

fn attr(
    name: &str,
    t: AttributeDataType,
    mutable: bool,
) -> aws_sdk_cognitoidentityprovider::types::builders::SchemaAttributeTypeBuilder {
    SchemaAttributeType::builder()
        .name(name)
        .attribute_data_type(t)
        .mutable(mutable)
}

/// A richly configured pool: custom attributes of four types with constraints, email sign-in,
/// case-insensitive, a password policy, optional TOTP MFA, an OIDC provider with a secret, a
/// resource server with scopes, two clients (one with a secret and OAuth), a prefix domain,
/// a trigger, groups and `users` users. Returns the pool id.
async fn rich_pool(c: &Client, name: &str, domain: &str, users: usize) -> String {
    let out = c
        .create_user_pool()
        .pool_name(name)
        .username_attributes(UsernameAttributeType::Email)
        .username_configuration(
            UsernameConfigurationType::builder()
                .case_sensitive(false)
                .build()
                .unwrap(),
        )
        .auto_verified_attributes(
            aws_sdk_cognitoidentityprovider::types::VerifiedAttributeType::Email,
        )
        .policies(
            UserPoolPolicyType::builder()
                .password_policy(
                    PasswordPolicyType::builder()
                        .minimum_length(12)
                        .require_symbols(true)
                        .require_numbers(true)
                        .require_uppercase(true)
                        .require_lowercase(true)
                        .temporary_password_validity_days(3)
                        .build(),
                )
                .build(),
        )
        .lambda_config(LambdaConfigType::builder().pre_sign_up(TRIGGER).build())
        .user_pool_tags("team", "identity")
        .schema(
            attr("email", AttributeDataType::String, true)
                .required(true)
                .build(),
        )
        .schema(
            attr("tenant", AttributeDataType::String, true)
                .string_attribute_constraints(
                    StringAttributeConstraintsType::builder()
                        .min_length("1")
                        .max_length("20")
                        .build(),
                )
                .build(),
        )
        .schema(
            attr("score", AttributeDataType::Number, false)
                .number_attribute_constraints(
                    NumberAttributeConstraintsType::builder()
                        .min_value("0")
                        .max_value("100")
                        .build(),
                )
                .build(),
        )
        .schema(attr("vip", AttributeDataType::Boolean, true).build())
        .schema(attr("joined", AttributeDataType::Datetime, true).build())
        .send()
        .await
        .expect("create pool");
    let pool = out.user_pool().unwrap().id().unwrap().to_string();
    c.set_user_pool_mfa_config()
        .user_pool_id(&pool)
        .software_token_mfa_configuration(
            SoftwareTokenMfaConfigType::builder().enabled(true).build(),
        )
        .mfa_configuration(UserPoolMfaType::Optional)
        .send()
        .await
        .expect("mfa config");
    c.create_identity_provider()
        .user_pool_id(&pool)
        .provider_name("corp")
        .provider_type(IdentityProviderTypeType::Oidc)
        .provider_details("client_id", "corp-client")
        .provider_details("client_secret", IDP_SECRET)
        .provider_details("authorize_scopes", "openid email")
        .provider_details("oidc_issuer", "https://idp.example.com")
        .provider_details("attributes_request_method", "GET")
        .attribute_mapping("email", "email")
        .send()
        .await
        .expect("identity provider");
    c.create_resource_server()
        .user_pool_id(&pool)
        .identifier("https://api.example.com")
        .name("api")
        .scopes(
            ResourceServerScopeType::builder()
                .scope_name("read")
                .scope_description("Read")
                .build()
                .unwrap(),
        )
        .scopes(
            ResourceServerScopeType::builder()
                .scope_name("write")
                .scope_description("Write")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("resource server");
    c.create_user_pool_client()
        .user_pool_id(&pool)
        .client_name("web")
        .generate_secret(true)
        .client_secret(WEB_SECRET)
        .allowed_o_auth_flows(OAuthFlowType::Code)
        .allowed_o_auth_flows_user_pool_client(true)
        .allowed_o_auth_scopes("openid")
        .allowed_o_auth_scopes("https://api.example.com/read")
        .callback_urls("https://app.example.com/callback")
        .logout_urls("https://app.example.com/bye")
        .supported_identity_providers("COGNITO")
        .supported_identity_providers("corp")
        .send()
        .await
        .expect("web client");
    c.create_user_pool_client()
        .user_pool_id(&pool)
        .client_name("mobile")
        .refresh_token_validity(10)
        .send()
        .await
        .expect("mobile client");
    c.create_user_pool_domain()
        .user_pool_id(&pool)
        .domain(domain)
        .send()
        .await
        .expect("domain");
    create_groups(c, &pool).await;
    let seeds: Vec<Seed> = (0..users)
        .map(|i| {
            let email = format!("person{i:04}@example.org");
            let mut s = Seed::new(&email);
            s.attributes
                .push(("custom:tenant".into(), format!("t{}", i % 7)));
            if i % 3 == 0 {
                s.attributes.push(("custom:vip".into(), "true".into()));
            }
            s.confirmed = i % 2 == 0;
            s.disabled = i % 9 == 4;
            if i % 5 == 0 {
                s.groups.push("admins".into());
            }
            if i % 4 == 0 {
                s.groups.push("editors".into());
            }
            s
        })
        .collect();
    seed(c, &pool, &seeds).await;
    pool
}

/// Users without their (generated) usernames, sorted: what must come back.
async fn users_of(
    c: &Client,
    pool: &str,
) -> Vec<(Vec<(String, String)>, bool, String, Vec<String>)> {
    let mut users: Vec<_> = snapshot(c, pool)
        .await
        .into_iter()
        .map(|s| (s.attributes, s.enabled, s.status, s.groups))
        .collect();
    users.sort();
    users
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A setting, client, provider or server with the fields that always differ between two pools
/// (ids, dates, the pool id) removed.
fn normalized(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        for k in [
            "Id",
            "Arn",
            "UserPoolId",
            "ClientId",
            "CreationDate",
            "LastModifiedDate",
            "Name",
            "Domain",
            "EstimatedNumberOfUsers",
            "AWSAccountId",
            "CloudFrontDistribution",
        ] {
            m.remove(k);
        }
        if let Some(Value::Object(tags)) = m.get_mut("UserPoolTags") {
            tags.remove("cbr:restored-from");
        }
        // Deprecated beside the password policy's TemporaryPasswordValidityDays, which it
        // duplicates; CreateUserPool is not sent both.
        if let Some(Value::Object(admin)) = m.get_mut("AdminCreateUserConfig") {
            admin.remove("UnusedAccountValidityDays");
        }
    }
    v
}

async fn pools_named(c: &Client, name: &str) -> Vec<String> {
    let out = c.list_user_pools().max_results(60).send().await.unwrap();
    out.user_pools()
        .iter()
        .filter(|p| p.name() == Some(name))
        .map(|p| p.id().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_pool_comes_back_whole_with_create_pool() {
    let c = client(moto()).await;
    let name = unique("rich");
    let domain = unique("rich-auth");
    let old = rich_pool(&c, &name, &domain, 240).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &old]));

    let config_path = env.path().join("backup.config.json");
    assert_eq!(mode(&config_path), 0o600);
    let config = read_json(&config_path);
    assert_eq!(config["format_version"], 1);
    assert_eq!(config["pool_id"], old.as_str());
    let text = std::fs::read_to_string(&config_path).unwrap();
    assert!(text.contains(WEB_SECRET) && text.contains(IDP_SECRET));
    let manifest = std::fs::read_to_string(env.path().join("backup.meta.json")).unwrap();
    assert!(!manifest.contains(WEB_SECRET) && !manifest.contains(IDP_SECRET));
    // moto has no UI customization, risk configuration, log delivery or terms: recorded as such.
    let unavailable: Vec<&str> = config["unavailable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["part"].as_str().unwrap())
        .collect();
    assert!(
        unavailable.contains(&"GetUICustomization"),
        "{unavailable:?}"
    );
    assert!(
        unavailable.contains(&"DescribeRiskConfiguration"),
        "{unavailable:?}"
    );

    let users_before = users_of(&c, &old).await;
    assert_eq!(users_before.len(), 240);
    c.delete_user_pool_domain()
        .user_pool_id(&old)
        .domain(&domain)
        .send()
        .await
        .unwrap();
    c.delete_user_pool()
        .user_pool_id(&old)
        .send()
        .await
        .unwrap();

    // Through the recording layer, to check the exact requests.
    let record = env.path().join("requests.jsonl");
    let layer = layer(&["--record", record.to_str().unwrap()]);
    let new_name = format!("{name}-restored");
    let out = cbr(
        &layer.url,
        env.path(),
        &["restore", "--create-pool", &new_name, "--allow-triggers"],
    );
    assert_ok(&out);
    let new = stdout(&out).trim().to_string();
    assert_eq!(pools_named(&c, &new_name).await, std::slice::from_ref(&new));
    let err = stderr(&out);
    assert!(
        !err.contains(WEB_SECRET) && !err.contains(IDP_SECRET),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "aws lambda add-permission --function-name {TRIGGER}"
        )) && err.contains(&format!("userpool/{new}")),
        "{err}"
    );

    // Every recorded setting, client (secret included), provider, server, domain and MFA
    // setting is in the new pool: its own backup's configuration matches the old one.
    let after = tempfile::tempdir().unwrap();
    assert_ok(&cbr(moto(), after.path(), &["backup", "-p", &new]));
    let again = read_json(&after.path().join("backup.config.json"));
    assert_eq!(
        normalized(again["user_pool"].clone()),
        normalized(config["user_pool"].clone())
    );
    assert_eq!(again["mfa_config"], config["mfa_config"]);
    for part in ["clients", "identity_providers", "resource_servers"] {
        let n = |v: &Value| -> Vec<Value> {
            let mut items: Vec<Value> = v[part]
                .as_array()
                .unwrap()
                .iter()
                .cloned()
                .map(normalized)
                .collect();
            items.sort_by_key(|i| i.to_string());
            items
        };
        assert_eq!(n(&again), n(&config), "{part}");
    }
    assert_eq!(again["domains"][0]["Domain"], domain.as_str());
    assert_eq!(again["domains"][0]["UserPoolId"], new.as_str());
    // Independently of cbr's reader: the secrets, the schema, case sensitivity.
    let clients = c
        .list_user_pool_clients()
        .user_pool_id(&new)
        .max_results(60)
        .send()
        .await
        .unwrap();
    let web = clients
        .user_pool_clients()
        .iter()
        .find(|c| c.client_name() == Some("web"))
        .unwrap();
    let web = c
        .describe_user_pool_client()
        .user_pool_id(&new)
        .client_id(web.client_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        web.user_pool_client().unwrap().client_secret(),
        Some(WEB_SECRET)
    );
    let idp = c
        .describe_identity_provider()
        .user_pool_id(&new)
        .provider_name("corp")
        .send()
        .await
        .unwrap();
    assert_eq!(
        idp.identity_provider().unwrap().provider_details().unwrap()["client_secret"],
        IDP_SECRET
    );
    let described = c
        .describe_user_pool()
        .user_pool_id(&new)
        .send()
        .await
        .unwrap();
    let pool = described.user_pool().unwrap();
    assert!(!pool.username_configuration().unwrap().case_sensitive());
    let score = pool
        .schema_attributes()
        .iter()
        .find(|a| a.name() == Some("custom:score"))
        .unwrap();
    assert_eq!(score.mutable(), Some(false));
    assert_eq!(
        score.number_attribute_constraints().unwrap().max_value(),
        Some("100")
    );

    // Groups and users, as the normal restore brings them.
    assert_eq!(users_of(&c, &new).await, users_before);

    // The client map: old → new id for each client.
    let map = std::fs::read_to_string(env.path().join("backup.client-map.jsonl")).unwrap();
    assert_eq!(mode(&env.path().join("backup.client-map.jsonl")), 0o600);
    let lines: Vec<Value> = map
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        let old_id = config["clients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["ClientName"] == l["client_name"])
            .unwrap()["ClientId"]
            .clone();
        assert_eq!(l["old_client_id"], old_id);
        assert!(
            clients
                .user_pool_clients()
                .iter()
                .any(|c| Some(l["new_client_id"].as_str().unwrap()) == c.client_id())
        );
    }

    // The exact requests: providers and scopes before the clients that name them; the
    // recorded secret sent; no read-only field; custom attributes without their prefix.
    let records = recorded(&record);
    let ops: Vec<&str> = records.iter().map(|r| r["op"].as_str().unwrap()).collect();
    let first = |op: &str| {
        ops.iter()
            .position(|o| *o == op)
            .unwrap_or_else(|| panic!("{op} in {ops:?}"))
    };
    assert!(first("CreateUserPool") < first("CreateIdentityProvider"));
    assert!(first("CreateIdentityProvider") < first("CreateUserPoolClient"));
    assert!(first("CreateResourceServer") < first("CreateUserPoolClient"));
    assert!(first("CreateUserPoolClient") < first("AdminCreateUser"));
    let create = recorded_ops(&records, "CreateUserPool");
    assert_eq!(create.len(), 1);
    for read_only in [
        "Id",
        "Arn",
        "CreationDate",
        "Domain",
        "EstimatedNumberOfUsers",
        "SchemaAttributes",
        "MfaConfiguration",
    ] {
        assert!(
            create[0].get(read_only).is_none(),
            "{read_only} sent: {}",
            create[0]
        );
    }
    // Cognito takes one of each pair; moto does not check.
    for legacy in [
        "SmsVerificationMessage",
        "EmailVerificationMessage",
        "EmailVerificationSubject",
    ] {
        assert!(
            create[0].get(legacy).is_none(),
            "{legacy} beside VerificationMessageTemplate"
        );
    }
    assert!(
        create[0]["AdminCreateUserConfig"]
            .get("UnusedAccountValidityDays")
            .is_none()
    );
    assert!(create[0]["VerificationMessageTemplate"].is_object());
    assert_eq!(create[0]["PoolName"], new_name.as_str());
    assert_eq!(create[0]["UserPoolTags"]["cbr:restored-from"], old.as_str());
    let schema: Vec<&str> = create[0]["Schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Name"].as_str().unwrap())
        .collect();
    assert!(
        schema.contains(&"score")
            && !schema.contains(&"sub")
            && !schema.iter().any(|n| n.starts_with("custom:")),
        "{schema:?}"
    );
    let web_req = recorded_ops(&records, "CreateUserPoolClient")
        .into_iter()
        .find(|b| b["ClientName"] == "web")
        .unwrap();
    assert_eq!(web_req["ClientSecret"], WEB_SECRET);
    assert_eq!(web_req["UserPoolId"], new.as_str());
    assert!(web_req.get("ClientId").is_none());
    assert_eq!(
        recorded_ops(&records, "CreateUserPoolDomain")[0]["Domain"],
        domain.as_str()
    );
    assert_eq!(
        recorded_ops(&records, "SetUserPoolMfaConfig")[0]["SoftwareTokenMfaConfiguration"]["Enabled"],
        true
    );

    // A rerun finds the pool it created and creates nothing twice.
    let out = env.cbr(&["restore", "--create-pool", &new_name, "--allow-triggers"]);
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), new);
    assert_eq!(pools_named(&c, &new_name).await, std::slice::from_ref(&new));
    let clients = c
        .list_user_pool_clients()
        .user_pool_id(&new)
        .max_results(60)
        .send()
        .await
        .unwrap();
    assert_eq!(clients.user_pool_clients().len(), 2);
    assert_eq!(users_of(&c, &new).await, users_before);

    // verify of the old backup against the rebuilt pool: no configuration drift, every user.
    let out = env.cbr(&["verify", "-p", &new, "--output", "json"]);
    let report: Value = serde_json::from_str(&stdout(&out)).expect("verify JSON");
    assert_eq!(report["config_drift"], serde_json::json!([]), "{report}");
    assert_eq!(report["pool"]["matching"], 240, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_create_pool_is_continued_not_repeated() {
    let c = client(moto()).await;
    let name = unique("halfway");
    let domain = unique("halfway-auth");
    let old = rich_pool(&c, &name, &domain, 6).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &old]));
    c.delete_user_pool_domain()
        .user_pool_id(&old)
        .domain(&domain)
        .send()
        .await
        .unwrap();
    c.delete_user_pool()
        .user_pool_id(&old)
        .send()
        .await
        .unwrap();
    let users_before = {
        let data = read_backup(&env.path().join("backup.json"));
        data.len()
    };

    // The first run stops at the app clients: the pool and its providers exist, no client.
    let failing = layer(&["--fail-always", "CreateUserPoolClient"]);
    let target = format!("{name}-again");
    let out = cbr(
        &failing.url,
        env.path(),
        &[
            "restore",
            "--create-pool",
            &target,
            "--max-attempts",
            "2",
            "-vv",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("creating app client"),
        "{}",
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        !err.contains(WEB_SECRET) && !err.contains(IDP_SECRET),
        "secrets in -vv logs"
    );
    let first = stdout(&out).trim().to_string();
    assert_eq!(pools_named(&c, &target).await, std::slice::from_ref(&first));
    let clients = c
        .list_user_pool_clients()
        .user_pool_id(&first)
        .max_results(60)
        .send()
        .await
        .unwrap();
    assert!(clients.user_pool_clients().is_empty());

    // The rerun continues in the same pool and creates each thing once. The users wait for
    // --allow-triggers (the pool has a trigger), as the summary's add-permission advice says.
    let out = env.cbr(&["restore", "--create-pool", &target]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--allow-triggers"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("aws lambda add-permission"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out).trim(), first);
    let out = env.cbr(&["restore", "--create-pool", &target, "--allow-triggers"]);
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), first);
    assert!(
        stderr(&out).contains("found (created by an earlier run)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(pools_named(&c, &target).await, std::slice::from_ref(&first));
    let clients = c
        .list_user_pool_clients()
        .user_pool_id(&first)
        .max_results(60)
        .send()
        .await
        .unwrap();
    assert_eq!(clients.user_pool_clients().len(), 2);
    let providers = c
        .list_identity_providers()
        .user_pool_id(&first)
        .max_results(60)
        .send()
        .await
        .unwrap();
    assert_eq!(providers.providers().len(), 1);
    let servers = c
        .list_resource_servers()
        .user_pool_id(&first)
        .max_results(50)
        .send()
        .await
        .unwrap();
    assert_eq!(servers.resource_servers().len(), 1);
    assert_eq!(snapshot(&c, &first).await.len(), users_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sharded_backup_records_the_configuration_in_every_shard() {
    let c = client(moto()).await;
    let name = unique("sharded");
    let old = rich_pool(&c, &name, &unique("sharded-auth"), 8).await;
    let env = TestEnv::new();
    for k in ["1/2", "2/2"] {
        assert_ok(&env.cbr(&["backup", "-p", &old, "--shard", k]));
    }
    for k in [1, 2] {
        let config = read_json(&env.path().join(format!("backup-{k}.config.json")));
        assert_eq!(config["pool_id"], old.as_str());
        assert_eq!(config["clients"].as_array().unwrap().len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_configuration_files_are_refused_before_anything_is_created() {
    let c = client(moto()).await;
    let name = unique("bad");
    let domain = unique("bad-auth");
    let old = rich_pool(&c, &name, &domain, 5).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &old]));
    let path = env.path().join("backup.config.json");
    let original = read_json(&path);
    let target = format!("{name}-new");
    let refuse = |config: &Value, expect: &str| {
        std::fs::write(&path, config.to_string()).unwrap();
        let out = env.cbr(&["restore", "--create-pool", &target]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(expect),
            "{expect:?} in {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty());
    };

    let mut newer = original.clone();
    newer["format_version"] = 2.into();
    refuse(&newer, "format version 2");
    let mut other = original.clone();
    other["pool_id"] = "us-east-1_SomeOther".into();
    refuse(&other, "not from the same backup");
    // The recorded domain still belongs to the old pool.
    refuse(
        &original,
        &format!("the domain \"{domain}\" belongs to pool {old}"),
    );
    assert!(
        pools_named(&c, &target).await.is_empty(),
        "a pool was created"
    );

    // --domain-prefix chooses another; --dry-run shows the configuration and creates nothing.
    let free = unique("free-auth");
    let out = env.cbr(&[
        "restore",
        "--create-pool",
        &target,
        "--domain-prefix",
        &free,
        "--dry-run",
    ]);
    assert_ok(&out);
    let plan: Value = serde_json::from_str(&stdout(&out)).expect("a JSON plan");
    assert_eq!(plan["CreateUserPool"]["PoolName"], target.as_str());
    assert_eq!(plan["CreateUserPoolDomain"][0]["Domain"], free.as_str());
    assert!(!stdout(&out).contains(WEB_SECRET) && !stdout(&out).contains(IDP_SECRET));
    assert!(
        pools_named(&c, &target).await.is_empty(),
        "a dry run created a pool"
    );
    let out = env.cbr(&[
        "restore",
        "--create-pool",
        &target,
        "--domain-prefix",
        &free,
        "--allow-triggers",
    ]);
    assert_ok(&out);
    let owner = c
        .describe_user_pool_domain()
        .domain(&free)
        .send()
        .await
        .unwrap();
    assert_eq!(
        owner.domain_description().unwrap().user_pool_id(),
        Some(stdout(&out).trim())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_encrypted_backup_encrypts_its_configuration() {
    let c = client(moto()).await;
    let old = rich_pool(&c, &unique("enc"), &unique("enc-auth"), 2).await;
    let env = TestEnv::new();
    let key = age::x25519::Identity::generate();
    let recipient = key.to_public().to_string();
    assert_ok(&env.cbr(&[
        "backup",
        "-p",
        &old,
        "-o",
        "b.json.age",
        "--recipient",
        &recipient,
    ]));
    assert!(!env.path().join("b.config.json").exists());
    let path = env.path().join("b.config.json.age");
    let raw = std::fs::read(&path).unwrap();
    assert!(raw.starts_with(b"age-encryption.org/"));
    assert!(!String::from_utf8_lossy(&raw).contains(WEB_SECRET));
    assert_eq!(mode(&path), 0o600);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_configuration_drift() {
    let c = client(moto()).await;
    let pool = rich_pool(&c, &unique("drift"), &unique("drift-auth"), 3).await;
    let env = TestEnv::new();
    assert_ok(&env.cbr(&["backup", "-p", &pool]));
    let out = env.cbr(&["verify", "-p", &pool]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("configuration: 0 differences"),
        "{}",
        stdout(&out)
    );

    let clients = c
        .list_user_pool_clients()
        .user_pool_id(&pool)
        .max_results(60)
        .send()
        .await
        .unwrap();
    let web = clients
        .user_pool_clients()
        .iter()
        .find(|c| c.client_name() == Some("web"))
        .unwrap();
    c.update_user_pool_client()
        .user_pool_id(&pool)
        .client_id(web.client_id().unwrap())
        .client_name("web")
        .callback_urls("https://elsewhere.example.com/cb")
        .send()
        .await
        .unwrap();
    c.update_user_pool()
        .user_pool_id(&pool)
        .policies(
            UserPoolPolicyType::builder()
                .password_policy(PasswordPolicyType::builder().minimum_length(8).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let out = env.cbr(&["verify", "-p", &pool]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("setting Policies changed"), "{text}");
    assert!(
        text.contains("client web changed: ") && text.contains("CallbackURLs"),
        "{text}"
    );
    assert!(text.contains("DIFFERENCES FOUND"), "{text}");
}
