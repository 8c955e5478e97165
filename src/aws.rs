//! AWS settings → SDK clients: region, profile and endpoints from flags or the SDK's default
//! chain, timeouts; for Cognito the SDK's own retries turned off (cbr retries itself, under its
//! rate limits, in `cognito`), for S3 the SDK's standard retries with the same attempt count.
//! Missing region or credentials fail here, at once, in one line, before any request. The AWS
//! flags themselves (`AwsArgs`, flattened into every command) live here too.

use anyhow::{Result, anyhow, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::ProvideCredentials;
use aws_types::service_config::ServiceConfigKey;
use clap::Args;
use std::time::Duration;

/// The heading of the flags every command takes, apart from each command's own.
const GLOBAL: &str = "Global options";

/// AWS settings shared by every command; the AWS CLI's names.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = GLOBAL)]
pub struct AwsArgs {
    /// AWS Region (default: AWS_REGION or the profile's region)
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,

    /// Named profile from the shared AWS config (default: AWS_PROFILE or "default")
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,

    /// Send Cognito requests to this endpoint instead of Cognito's (default:
    /// AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER or AWS_ENDPOINT_URL); S3 requests follow
    /// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// Address S3 buckets in the path (https://host/bucket/key), as S3-compatible stores
    /// need; automatic when an S3 endpoint URL is configured
    #[arg(long, global = true)]
    pub s3_path_style: bool,

    /// Attempts per request before giving up on throttling, 5xx, timeouts and dropped connections
    #[arg(long, global = true, default_value_t = 8, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
}

/// A Cognito client for the settings, the region it talks to and the endpoint, for messages.
pub struct Connection {
    pub client: Client,
    pub region: String,
    pub endpoint: String,
}

/// The SDK settings shared by every client: profile, region, credentials, timeouts. Loaded
/// once per process, so the Cognito and S3 clients share one credential cache. Checks that
/// there is a region and that the default chain (or the profile) yields credentials.
async fn load(args: &AwsArgs) -> Result<SdkConfig> {
    static CONFIG: tokio::sync::OnceCell<SdkConfig> = tokio::sync::OnceCell::const_new();
    let config = CONFIG.get_or_init(|| load_uncached(args)).await.clone();
    if config.region().is_none() {
        bail!("no AWS region: pass --region or set AWS_REGION (or a region in your profile)");
    }
    let Some(provider) = config.credentials_provider() else {
        bail!("no AWS credentials provider is configured");
    };
    if let Err(e) = provider.provide_credentials().await {
        return Err(credentials_error(&e));
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

/// A Cognito client for the settings. `--endpoint-url` applies to Cognito only; otherwise the
/// SDK's endpoint settings (AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER, AWS_ENDPOINT_URL, the
/// profile's `services` section) apply as in the AWS CLI.
pub async fn connect(args: &AwsArgs) -> Result<Connection> {
    let config = load(args).await?;
    let region = config.region().map(|r| r.to_string()).unwrap_or_default();
    let mut builder = aws_sdk_cognitoidentityprovider::config::Builder::from(&config);
    if let Some(url) = &args.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    let endpoint = args
        .endpoint_url
        .clone()
        .or_else(|| config.endpoint_url().map(str::to_string))
        .unwrap_or_else(|| format!("https://cognito-idp.{region}.amazonaws.com"));
    Ok(Connection {
        client: Client::from_conf(builder.build()),
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
        other => anyhow!(
            "cannot load AWS credentials: {}",
            crate::errors::error_chain(other)
        ),
    }
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
