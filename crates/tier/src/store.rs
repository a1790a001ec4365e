//! The object store behind a `--tier-url`, with the few calls tiering needs, each bounded by a
//! timeout so that a store that hangs is an error rather than a stuck fetch or uploader.
//!
//! Layout under the url's prefix: `<topic>-<topic id>/<partition>/<base offset, 20 digits>-<upload
//! id>.{log,index}`. The topic id keeps a deleted topic's objects apart from a new topic of the
//! same name; the upload id keeps two leaders uploading the same range from overwriting each
//! other (only the one the manifest records counts; the other is garbage).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectMeta, ObjectStore, ObjectStoreExt, RetryConfig};
use uuid::Uuid;

pub use object_store::path::Path as ObjectPath;

use crate::TierError;

/// A read of remote data that takes longer fails (a retriable error to the client).
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Each write call (a whole small object, or one part of a multipart upload) must finish within
/// this, or the upload is abandoned and retried later.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct RemoteStore {
    inner: Arc<dyn ObjectStore>,
    root: Path,
    url: String,
}

impl RemoteStore {
    /// `file:///dir` (created if missing) or `s3://bucket[/prefix]`, configured from the usual
    /// `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL` for an S3-compatible server, `AWS_ALLOW_HTTP=true` for plain http).
    pub fn open(url: &str) -> Result<RemoteStore, TierError> {
        let bad = |reason: String| TierError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let (inner, root): (Arc<dyn ObjectStore>, Path) = match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| bad("not an absolute local path".into()))?;
                std::fs::create_dir_all(&dir).map_err(|e| TierError::io(dir.display(), e))?;
                let fs = LocalFileSystem::new_with_prefix(&dir)?;
                (Arc::new(fs), Path::default())
            }
            "s3" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| bad("no bucket".into()))?;
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_client_options(
                        ClientOptions::new()
                            .with_connect_timeout(Duration::from_secs(5))
                            .with_timeout(WRITE_TIMEOUT),
                    )
                    .with_retry(RetryConfig {
                        max_retries: 3,
                        retry_timeout: Duration::from_secs(20),
                        ..RetryConfig::default()
                    });
                // Not every object_store version reads the AWS CLI's name for the endpoint.
                if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
                    builder = builder.with_endpoint(endpoint);
                }
                if std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
                    builder = builder.with_allow_http(true);
                }
                let s3 = builder.build()?;
                let prefix = parsed.path().trim_matches('/');
                (Arc::new(s3), Path::from(prefix))
            }
            other => return Err(bad(format!("unsupported scheme {other:?} (file or s3)"))),
        };
        Ok(RemoteStore {
            inner,
            root,
            url: url.to_string(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where a topic's objects live (deleting the topic deletes everything under it).
    pub fn topic_dir(&self, topic: &str, topic_id: Uuid) -> Path {
        self.root
            .clone()
            .join(format!("{topic}-{}", topic_id.simple()))
    }

    pub fn partition_dir(&self, topic: &str, topic_id: Uuid, partition: i32) -> Path {
        self.topic_dir(topic, topic_id).join(partition.to_string())
    }

    pub(crate) fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    pub async fn put(&self, key: &Path, bytes: Bytes) -> Result<(), TierError> {
        bounded(WRITE_TIMEOUT, self.inner.put(key, bytes.into())).await?;
        Ok(())
    }

    pub async fn get(&self, key: &Path) -> Result<Bytes, TierError> {
        bounded(READ_TIMEOUT, async {
            self.inner.get(key).await?.bytes().await
        })
        .await
    }

    pub async fn get_range(&self, key: &Path, range: Range<u64>) -> Result<Bytes, TierError> {
        bounded(READ_TIMEOUT, self.inner.get_range(key, range)).await
    }

    /// Deletes one object; one already gone is not an error.
    pub async fn delete(&self, key: &Path) -> Result<(), TierError> {
        match bounded(WRITE_TIMEOUT, self.inner.delete(key)).await {
            Err(TierError::Store(object_store::Error::NotFound { .. })) => Ok(()),
            other => other,
        }
    }

    /// Every object under `prefix`.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>, TierError> {
        bounded(READ_TIMEOUT.saturating_mul(6), async {
            let mut out = Vec::new();
            let mut stream = self.inner.list(Some(prefix));
            while let Some(meta) = stream.next().await {
                out.push(meta?);
            }
            Ok(out)
        })
        .await
    }

    /// Deletes every object under `prefix`; returns how many there were.
    pub async fn delete_prefix(&self, prefix: &Path) -> Result<usize, TierError> {
        let objects = self.list(prefix).await?;
        for meta in &objects {
            self.delete(&meta.location).await?;
        }
        Ok(objects.len())
    }
}

/// Runs a store call under a deadline.
pub(crate) async fn bounded<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, object_store::Error>>,
) -> Result<T, TierError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(TierError::Timeout(limit)),
    }
}
