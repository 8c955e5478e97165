//! AWS settings → one SDK client: region, profile and endpoint from flags or the SDK's default
//! chain, timeouts, and the SDK's own retries turned off (cbr retries itself, under its rate
//! limits, in `cognito`). Missing region or credentials fail here, at once, in one line, before
//! any request.

use crate::cli::AwsArgs;
use anyhow::{Result, anyhow, bail};
use aws_config::{BehaviorVersion, Region, retry::RetryConfig, timeout::TimeoutConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::ProvideCredentials;
use std::time::Duration;

/// A client for the settings, the region it talks to and the endpoint, for messages.
pub struct Connection {
    pub client: Client,
    pub region: String,
    pub endpoint: String,
}

/// Builds the client, after checking that there is a region and that the default chain (or
/// the profile) yields credentials.
pub async fn connect(args: &AwsArgs) -> Result<Connection> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        );
    if let Some(profile) = &args.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &args.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &args.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;
    let Some(region) = config.region().map(|r| r.to_string()) else {
        bail!("no AWS region: pass --region or set AWS_REGION (or a region in your profile)");
    };
    let Some(provider) = config.credentials_provider() else {
        bail!("no AWS credentials provider is configured");
    };
    if let Err(e) = provider.provide_credentials().await {
        return Err(credentials_error(&e));
    }
    let endpoint = config.endpoint_url().map_or_else(
        || format!("https://cognito-idp.{region}.amazonaws.com"),
        str::to_string,
    );
    Ok(Connection {
        client: Client::new(&config),
        region,
        endpoint,
    })
}

/// One line: none found, or why the configured source failed (the messages of the error's
/// chain, without the SDK's debug structures).
fn credentials_error(e: &CredentialsError) -> anyhow::Error {
    match e {
        CredentialsError::CredentialsNotLoaded(_) => anyhow!(
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, pass \
             --profile, or configure SSO or a role (the same sources the AWS CLI reads)"
        ),
        other => anyhow!("cannot load AWS credentials: {}", error_chain(other)),
    }
}

/// An error's message and its sources' messages, joined with `: `.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
