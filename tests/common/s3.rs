//! S3 on the moto server the tests share: a client, buckets, objects, and `cbr` with its S3
//! requests sent there (`AWS_ENDPOINT_URL_S3`, as the AWS CLI reads it).

use super::{REGION, cbr_command, moto, unique};
use std::path::Path;
use std::process::{Command, Output};

/// An S3 client aimed at moto, with dummy credentials, path-style.
pub fn s3() -> aws_sdk_s3::Client {
    let creds = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "tests");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_s3::config::Region::new(REGION))
        .credentials_provider(creds)
        .endpoint_url(moto())
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A new, empty bucket with a unique name.
pub async fn bucket(name: &str) -> String {
    let name = unique(name);
    s3().create_bucket().bucket(&name).send().await.unwrap();
    name
}

/// Keys in the bucket, sorted.
pub async fn keys(bucket: &str) -> Vec<String> {
    let out = s3().list_objects_v2().bucket(bucket).send().await.unwrap();
    let mut keys: Vec<String> = out
        .contents()
        .iter()
        .map(|o| o.key().unwrap().to_string())
        .collect();
    keys.sort();
    keys
}

pub async fn get(bucket: &str, key: &str) -> Vec<u8> {
    let out = s3()
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// `cbr` with S3 requests going to moto through `AWS_ENDPOINT_URL_S3`.
pub fn cbr_s3_command(endpoint: &str, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = cbr_command(endpoint, dir, args);
    cmd.env("AWS_ENDPOINT_URL_S3", moto());
    cmd
}

pub fn cbr_s3(endpoint: &str, dir: &Path, args: &[&str]) -> Output {
    cbr_s3_command(endpoint, dir, args).output().unwrap()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}
