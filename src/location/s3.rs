//! The only module that calls S3: objects written atomically (a multipart upload completed on
//! commit and aborted on drop or failure; small files with one PutObject), read as a stream
//! whose SHA-256 is remembered, checked for existence, listed by prefix, and deleted. Server-side
//! encryption is SSE-S3 unless a KMS key is given.
//!
//! The backup format's code is synchronous (`std::io::Read`/`Write`), so these functions block
//! the calling thread on the SDK's futures (`block_in_place`): they must run inside cbr's
//! multi-threaded Tokio runtime, on a worker, a blocking-pool thread, or the main thread.
//! Errors name the bucket and the IAM action that was refused.

use anyhow::{Result, anyhow, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
    ServerSideEncryption,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io::{self, Read, Write};
use std::sync::{Mutex, OnceLock};

/// Parts are this big (S3's minimum is 5 MiB, except the last) and grow after every 1,000
/// parts, so the 10,000-part limit is far beyond any pool's backup.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// An object's address: `s3://bucket/key`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct S3Path {
    pub bucket: String,
    pub key: String,
}

impl fmt::Display for S3Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// The S3 client and how objects are written, set once by `main` from the same AWS settings
/// as the Cognito client.
pub struct Store {
    pub client: Client,
    /// SSE-KMS with this key; SSE-S3 (AES256) when `None`.
    pub kms_key_id: Option<String>,
}

static STORE: OnceLock<Store> = OnceLock::new();

/// SHA-256 of objects read to the end, by bucket, key and ETag, so checking an object against
/// its manifest after streaming it needs no second download.
static HASHES: OnceLock<Mutex<HashMap<(S3Path, String), String>>> = OnceLock::new();

/// Makes S3 locations usable. Called once, before any S3 location is read or written.
pub fn connect(store: Store) {
    let _ = STORE.set(store);
}

fn store() -> Result<&'static Store> {
    STORE
        .get()
        .ok_or_else(|| anyhow!("S3 is not set up (an s3:// location before the AWS settings)"))
}

/// Runs an SDK future to completion from synchronous code.
fn block_on<F: Future>(f: F) -> F::Output {
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| handle.block_on(f))
}

/// Turns an SDK error into one line that names the bucket and the IAM action.
fn refused<E>(e: SdkError<E>, action: &str, path: &S3Path) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_string);
    let detail = match (&code, e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        _ => format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e)),
    };
    let bucket = &path.bucket;
    match (code.as_deref(), status) {
        (Some("NoSuchBucket"), _) => anyhow!("S3 bucket {bucket} does not exist ({action})"),
        (Some("AccessDenied" | "AllAccessDisabled"), _) | (_, Some(403)) => anyhow!(
            "access to S3 bucket {bucket} denied: the credentials need {action} on {path} ({detail})"
        ),
        (Some("NoSuchKey"), _) | (_, Some(404)) => anyhow!("{path} does not exist ({action})"),
        _ => anyhow!("{action} on {path} failed: {detail}"),
    }
}

/// Whether the object exists (HeadObject; 404 means no). Without s3:ListBucket, S3 answers 403
/// for a missing object: that is an error, not "missing".
pub fn exists(path: &S3Path) -> Result<bool> {
    Ok(size(path)?.is_some())
}

/// The object's size in bytes, `None` when it does not exist (HeadObject).
pub fn size(path: &S3Path) -> Result<Option<u64>> {
    let s = store()?;
    let out = block_on(
        s.client
            .head_object()
            .bucket(&path.bucket)
            .key(&path.key)
            .send(),
    );
    match out {
        Ok(head) => Ok(Some(head.content_length().unwrap_or(0).max(0) as u64)),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
        Err(e) => Err(refused(e, "s3:GetObject", path)),
    }
}

/// Writes a small object in one PutObject: it appears whole or not at all.
pub fn put(path: &S3Path, bytes: &[u8]) -> Result<()> {
    let s = store()?;
    let (sse, kms) = encryption(s);
    block_on(
        s.client
            .put_object()
            .bucket(&path.bucket)
            .key(&path.key)
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms)
            .body(ByteStream::from(bytes.to_vec()))
            .send(),
    )
    .map_err(|e| refused(e, "s3:PutObject", path))?;
    Ok(())
}

fn encryption(s: &Store) -> (ServerSideEncryption, Option<String>) {
    match &s.kms_key_id {
        Some(k) => (ServerSideEncryption::AwsKms, Some(k.clone())),
        None => (ServerSideEncryption::Aes256, None),
    }
}

/// An object being written by a multipart upload. Nothing is visible under its key until
/// [`Upload::commit`]; dropped without a commit, or on any failure, the upload is aborted so
/// no parts are left behind.
pub struct Upload {
    path: S3Path,
    upload_id: String,
    buffer: Vec<u8>,
    parts: Vec<CompletedPart>,
    /// Set once the upload is completed or aborted.
    done: bool,
}

impl Upload {
    /// Starts the upload (CreateMultipartUpload): the check that the bucket exists and may be
    /// written, before any work.
    pub fn create(path: &S3Path) -> Result<Upload> {
        let s = store()?;
        let (sse, kms) = encryption(s);
        let out = block_on(
            s.client
                .create_multipart_upload()
                .bucket(&path.bucket)
                .key(&path.key)
                .server_side_encryption(sse)
                .set_ssekms_key_id(kms)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .send(),
        )
        .map_err(|e| refused(e, "s3:PutObject", path))?;
        let upload_id = out
            .upload_id()
            .ok_or_else(|| anyhow!("S3 started no upload for {path}"))?
            .to_string();
        tracing::debug!(object = %path, "multipart upload started");
        Ok(Upload {
            path: path.clone(),
            upload_id,
            buffer: Vec::with_capacity(PART_SIZE),
            parts: Vec::new(),
            done: false,
        })
    }

    fn part_size(&self) -> usize {
        PART_SIZE << (self.parts.len() / 1000).min(4)
    }

    /// Uploads the buffer as the next part.
    fn send_part(&mut self) -> Result<()> {
        let s = store()?;
        let number = self.parts.len() as i32 + 1;
        let next_size = self.part_size();
        let body = std::mem::replace(&mut self.buffer, Vec::with_capacity(next_size));
        let out = block_on(
            s.client
                .upload_part()
                .bucket(&self.path.bucket)
                .key(&self.path.key)
                .upload_id(&self.upload_id)
                .part_number(number)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .body(ByteStream::from(body))
                .send(),
        )
        .map_err(|e| refused(e, "s3:PutObject", &self.path))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
                .build(),
        );
        Ok(())
    }

    /// Uploads what is left and completes the upload: only now does the object appear.
    pub fn commit(mut self) -> Result<()> {
        // S3 needs at least one part, even for an empty object.
        if !self.buffer.is_empty() || self.parts.is_empty() {
            self.send_part()?;
        }
        let s = store()?;
        block_on(
            s.client
                .complete_multipart_upload()
                .bucket(&self.path.bucket)
                .key(&self.path.key)
                .upload_id(&self.upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(std::mem::take(&mut self.parts)))
                        .build(),
                )
                .send(),
        )
        .map_err(|e| refused(e, "s3:PutObject", &self.path))?;
        self.done = true;
        tracing::debug!(object = %self.path, "multipart upload completed");
        Ok(())
    }
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.part_size() - self.buffer.len();
        let n = buf.len().min(room);
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() >= self.part_size() {
            self.send_part().map_err(io::Error::other)?;
        }
        Ok(n)
    }

    /// Parts are sent when full; a flush sends nothing (S3 parts have a minimum size).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Ok(s) = store() else { return };
        let aborted = block_on(
            s.client
                .abort_multipart_upload()
                .bucket(&self.path.bucket)
                .key(&self.path.key)
                .upload_id(&self.upload_id)
                .send(),
        );
        match aborted {
            Ok(_) => tracing::debug!(object = %self.path, "multipart upload aborted"),
            Err(e) => tracing::warn!(
                "could not abort the upload of {}: {:#} (a lifecycle rule that aborts incomplete \
                 multipart uploads removes its parts)",
                self.path,
                refused(e, "s3:AbortMultipartUpload", &self.path)
            ),
        }
    }
}

/// An object read as a stream (GetObject), hashed as it goes; at the end its SHA-256 is
/// remembered for [`sha256`].
pub struct Download {
    path: S3Path,
    etag: String,
    body: ByteStream,
    /// The last chunk of the body, read up to `at`.
    chunk: Vec<u8>,
    at: usize,
    hasher: Option<Sha256>,
}

/// Opens an object for reading.
pub fn open(path: &S3Path) -> Result<Download> {
    let s = store()?;
    let out = block_on(
        s.client
            .get_object()
            .bucket(&path.bucket)
            .key(&path.key)
            .send(),
    )
    .map_err(|e| refused(e, "s3:GetObject", path))?;
    Ok(Download {
        path: path.clone(),
        etag: out.e_tag().unwrap_or_default().to_string(),
        body: out.body,
        chunk: Vec::new(),
        at: 0,
        hasher: Some(Sha256::new()),
    })
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.chunk.len() {
            let next = block_on(self.body.try_next()).map_err(|e| {
                io::Error::other(format!(
                    "reading {}: {}",
                    self.path,
                    crate::errors::error_chain(&e)
                ))
            })?;
            match next {
                Some(bytes) => {
                    if let Some(h) = &mut self.hasher {
                        h.update(&bytes);
                    }
                    self.chunk = bytes.to_vec();
                    self.at = 0;
                }
                None => {
                    if let Some(h) = self.hasher.take() {
                        remember(&self.path, &self.etag, format!("{:x}", h.finalize()));
                    }
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn hashes() -> &'static Mutex<HashMap<(S3Path, String), String>> {
    HASHES.get_or_init(Default::default)
}

fn remember(path: &S3Path, etag: &str, sha256: String) {
    if etag.is_empty() {
        return;
    }
    if let Ok(mut map) = hashes().lock() {
        map.insert((path.clone(), etag.to_string()), sha256);
    }
}

/// SHA-256 of an object's bytes: remembered from a read to the end of the same version (same
/// ETag), or computed by streaming it.
pub fn sha256(path: &S3Path) -> Result<String> {
    let s = store()?;
    let head = block_on(
        s.client
            .head_object()
            .bucket(&path.bucket)
            .key(&path.key)
            .send(),
    )
    .map_err(|e| refused(e, "s3:GetObject", path))?;
    let etag = head.e_tag().unwrap_or_default().to_string();
    if let Some(sum) = hashes()
        .lock()
        .ok()
        .and_then(|m| m.get(&(path.clone(), etag)).cloned())
    {
        return Ok(sum);
    }
    let mut download = open(path)?;
    let mut hasher = Sha256::new();
    io::copy(&mut download, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// Deletes objects of a bucket (DeleteObjects, 1,000 keys a request); a key that is not there
/// is no error.
pub fn delete(bucket: &str, keys: &[String]) -> Result<()> {
    let s = store()?;
    for chunk in keys.chunks(1000) {
        let where_ = S3Path {
            bucket: bucket.to_string(),
            key: chunk[0].clone(),
        };
        let objects = chunk
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()?;
        let request = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()?;
        let out = block_on(
            s.client
                .delete_objects()
                .bucket(bucket)
                .delete(request)
                .send(),
        )
        .map_err(|e| refused(e, "s3:DeleteObject", &where_))?;
        if let Some(failed) = out.errors().first() {
            let key = failed.key().unwrap_or_default();
            let detail = match (failed.code(), failed.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                _ => "refused".to_string(),
            };
            bail!(
                "s3:DeleteObject on s3://{bucket}/{key} failed: {detail} ({} of {} keys not deleted)",
                out.errors().len(),
                chunk.len()
            );
        }
    }
    Ok(())
}

/// Keys of the bucket that start with `prefix`, in S3's (lexicographic) order.
pub fn list(bucket: &str, prefix: &str) -> Result<Vec<String>> {
    let s = store()?;
    let where_ = S3Path {
        bucket: bucket.to_string(),
        key: prefix.to_string(),
    };
    let mut pages = s
        .client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let mut keys = Vec::new();
    while let Some(page) = block_on(pages.next()) {
        let page = page.map_err(|e| refused(e, "s3:ListBucket", &where_))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::config::http::HttpResponse;
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadError;
    use aws_sdk_s3::primitives::SdkBody;

    fn answer(status: u16, code: Option<&str>) -> SdkError<CreateMultipartUploadError> {
        let mut meta = ErrorMetadata::builder().message("refused");
        if let Some(c) = code {
            meta = meta.code(c);
        }
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(CreateMultipartUploadError::generic(meta.build()), raw)
    }

    #[test]
    fn errors_name_the_bucket_and_the_action() {
        let path = S3Path {
            bucket: "my-backups".into(),
            key: "c/backup.json".into(),
        };
        let msg =
            |status, code| format!("{}", refused(answer(status, code), "s3:PutObject", &path));
        assert_eq!(
            msg(404, Some("NoSuchBucket")),
            "S3 bucket my-backups does not exist (s3:PutObject)"
        );
        assert_eq!(
            msg(403, Some("AccessDenied")),
            "access to S3 bucket my-backups denied: the credentials need s3:PutObject on \
             s3://my-backups/c/backup.json (AccessDenied: refused)"
        );
        assert!(msg(403, None).starts_with("access to S3 bucket my-backups denied"));
        assert_eq!(
            msg(404, Some("NoSuchKey")),
            "s3://my-backups/c/backup.json does not exist (s3:PutObject)"
        );
        assert_eq!(
            msg(400, Some("InvalidArgument")),
            "s3:PutObject on s3://my-backups/c/backup.json failed: InvalidArgument: refused"
        );
    }
}
