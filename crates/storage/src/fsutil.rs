//! Small filesystem helpers shared by the log, its indexes and its checkpoint.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::StorageError;

/// Suffix of files written before an atomic rename; leftovers are removed on open.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
}

/// fsync of a directory, making creations, renames and deletions in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let handle = File::open(dir).map_err(|e| StorageError::io(dir, e))?;
    handle.sync_all().map_err(|e| StorageError::fsync(dir, e))
}
