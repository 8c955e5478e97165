//! AWS settings → one SDK client: region, profile and endpoint from flags or the SDK's default
//! chain, timeouts, and the SDK's own retries turned off (cbr retries itself, under its rate
//! limits, in `cognito`).

use crate::cli::AwsArgs;
use anyhow::{Result, bail};
use aws_config::{BehaviorVersion, Region, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_cognitoidentityprovider::Client;
use std::time::Duration;

/// A client for the settings, and the region it talks to.
pub async fn client(args: &AwsArgs) -> Result<(Client, String)> {
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
    Ok((Client::new(&config), region))
}
