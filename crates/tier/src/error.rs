use thiserror::Error;

#[derive(Debug, Error)]
pub enum TierError {
    #[error("tier url {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("object store call timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A remote object or the local view of one does not hold what its manifest says.
    #[error("remote data {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(transparent)]
    Storage(#[from] strom_storage::StorageError),
}

impl TierError {
    pub(crate) fn io(path: impl std::fmt::Display, source: std::io::Error) -> TierError {
        TierError::Io {
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn corrupt(key: impl std::fmt::Display, reason: impl Into<String>) -> TierError {
        TierError::Corrupt {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}
