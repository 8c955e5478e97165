//! AWS settings → SDK clients: region, profile and endpoints from flags or the SDK's default
//! chain, timeouts; for Cognito the SDK's own retries turned off (cbr retries itself, under its
//! rate limits, in `cognito`), for S3 the SDK's standard retries with the same attempt count.

use crate::cli::AwsArgs;
use anyhow::{Result, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_cognitoidentityprovider::Client;
use aws_types::service_config::ServiceConfigKey;
use std::time::Duration;

/// The SDK settings shared by every client: profile, region, credentials, timeouts. Loaded
/// once per process, so the Cognito and S3 clients share one credential cache.
async fn load(args: &AwsArgs) -> Result<SdkConfig> {
    static CONFIG: tokio::sync::OnceCell<SdkConfig> = tokio::sync::OnceCell::const_new();
    let config = CONFIG.get_or_init(|| load_uncached(args)).await.clone();
    if config.region().is_none() {
        bail!("no AWS region: pass --region or set AWS_REGION (or a region in your profile)");
    }
    Ok(config)
}

async fn load_uncached(args: &AwsArgs) -> SdkConfig {
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
    loader.load().await
}

/// A Cognito client for the settings, and the region it talks to. `--endpoint-url` applies to
/// Cognito only; otherwise the SDK's endpoint settings (AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER,
/// AWS_ENDPOINT_URL, the profile's `services` section) apply as in the AWS CLI.
pub async fn client(args: &AwsArgs) -> Result<(Client, String)> {
    let config = load(args).await?;
    let region = config.region().map(|r| r.to_string()).unwrap_or_default();
    let mut builder = aws_sdk_cognitoidentityprovider::config::Builder::from(&config);
    if let Some(url) = &args.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    Ok((Client::from_conf(builder.build()), region))
}

/// An S3 client for the same settings. Endpoints follow the SDK (AWS_ENDPOINT_URL_S3,
/// AWS_ENDPOINT_URL, the profile's `services` section); with a custom endpoint, or
/// `--s3-path-style`, buckets are addressed in the path, as S3-compatible stores need.
pub async fn s3_client(args: &AwsArgs) -> Result<aws_sdk_s3::Client> {
    let config = load(args).await?;
    let key = ServiceConfigKey::builder()
        .service_id("S3")
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()?;
    let custom_endpoint = config.endpoint_url().is_some()
        || config
            .service_config()
            .and_then(|c| c.load_config(key))
            .is_some();
    let s3 = aws_sdk_s3::config::Builder::from(&config)
        .retry_config(RetryConfig::standard().with_max_attempts(args.max_attempts))
        .force_path_style(args.s3_path_style || custom_endpoint)
        .build();
    Ok(aws_sdk_s3::Client::from_conf(s3))
}
