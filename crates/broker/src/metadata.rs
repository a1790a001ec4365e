//! Topic metadata on disk: one small TOML file per topic under `<data>/meta/topics/`, plus the
//! cluster id in `<data>/meta/cluster.toml`. Files are replaced atomically (write a temp file,
//! fsync it, rename, fsync the directory), so a crash leaves the old or the new version, never half.
//!
//! ```toml
//! id = "6f1c...-uuid"
//! partitions = 4
//! [config]
//! "retention.ms" = "3600000"
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::BrokerError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopicRecord {
    pub id: uuid::Uuid,
    pub partitions: u32,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ClusterRecord {
    cluster_id: String,
}

pub struct MetadataStore {
    topics_dir: PathBuf,
    meta_dir: PathBuf,
}

fn io_err(path: &Path, source: std::io::Error) -> BrokerError {
    BrokerError::Storage(strom_storage::StorageError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl MetadataStore {
    pub fn open(data_dir: &Path) -> Result<MetadataStore, BrokerError> {
        let meta_dir = data_dir.join("meta");
        let topics_dir = meta_dir.join("topics");
        fs::create_dir_all(&topics_dir).map_err(|e| io_err(&topics_dir, e))?;
        sync_dir(data_dir)?;
        sync_dir(&meta_dir)?;
        Ok(MetadataStore {
            topics_dir,
            meta_dir,
        })
    }

    /// The cluster id, created on first start.
    pub fn cluster_id(&self) -> Result<String, BrokerError> {
        let path = self.meta_dir.join("cluster.toml");
        if let Ok(text) = fs::read_to_string(&path) {
            if let Ok(rec) = toml::from_str::<ClusterRecord>(&text) {
                return Ok(rec.cluster_id);
            }
            tracing::warn!(path = %path.display(), "unreadable cluster id, making a new one");
        }
        let rec = ClusterRecord {
            cluster_id: uuid::Uuid::new_v4().simple().to_string(),
        };
        write_atomic(&path, toml::to_string(&rec).unwrap_or_default())?;
        Ok(rec.cluster_id)
    }

    /// Every stored topic. An unreadable file is skipped with an error log rather than
    /// refusing to start: its partition directories stay untouched on disk.
    pub fn load_all(&self) -> Result<Vec<(String, TopicRecord)>, BrokerError> {
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.topics_dir).map_err(|e| io_err(&self.topics_dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| io_err(&self.topics_dir, e))?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".toml"))
            else {
                continue;
            };
            let parsed = fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| toml::from_str::<TopicRecord>(&t).map_err(|e| e.to_string()));
            match parsed {
                Ok(rec) => out.push((name.to_string(), rec)),
                Err(e) => {
                    tracing::error!(path = %path.display(), "skipping unreadable topic metadata: {e}")
                }
            }
        }
        Ok(out)
    }

    pub fn save(&self, name: &str, rec: &TopicRecord) -> Result<(), BrokerError> {
        let text = toml::to_string(rec).map_err(|e| BrokerError::InvalidConfig(e.to_string()))?;
        write_atomic(&self.topics_dir.join(format!("{name}.toml")), &text)
    }

    pub fn remove(&self, name: &str) -> Result<(), BrokerError> {
        let path = self.topics_dir.join(format!("{name}.toml"));
        fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        sync_dir(&self.topics_dir)
    }
}

pub(crate) fn write_atomic(path: &Path, data: impl AsRef<[u8]>) -> Result<(), BrokerError> {
    write_atomic_with(path, |out| out.write_all(data.as_ref()))
}

/// [`write_atomic`] with the content written by `write` (buffered).
pub(crate) fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), BrokerError> {
    write_atomic_paced(path, Pace::NONE, write)
}

/// How fast a large file goes to disk (see [`write_atomic_paced`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    /// Synced every this many bytes (0: only at the end).
    pub chunk: u64,
    pub bytes_per_sec: u64,
}

impl Pace {
    const NONE: Pace = Pace {
        chunk: 0,
        bytes_per_sec: u64::MAX,
    };
}

/// [`write_atomic_with`] for large files written beside a latency-sensitive log: the data
/// reaches the disk in synced chunks at a bounded rate, so the device never holds a large
/// backlog that the log's own small fsyncs would queue behind.
pub(crate) fn write_atomic_paced(
    path: &Path,
    pace: Pace,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), BrokerError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let f = fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    let paced = Paced {
        file: f,
        pace,
        pending: 0,
        written: 0,
        start: std::time::Instant::now(),
        path: &tmp,
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, paced);
    write(&mut out).map_err(|e| io_err(&tmp, e))?;
    let paced = out.into_inner().map_err(|e| io_err(&tmp, e.into_error()))?;
    if let Err(e) = paced.file.sync_all() {
        crate::fatal::fail_stop(format!("fsync {}: {e}", tmp.display()));
    }
    fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

struct Paced<'a> {
    file: fs::File,
    pace: Pace,
    /// Written since the last sync.
    pending: u64,
    written: u64,
    start: std::time::Instant,
    path: &'a Path,
}

impl Write for Paced<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.pending += n as u64;
        if self.pace.chunk > 0 && self.pending >= self.pace.chunk {
            if let Err(e) = self.file.sync_data() {
                crate::fatal::fail_stop(format!("fsync {}: {e}", self.path.display()));
            }
            self.written += std::mem::take(&mut self.pending);
            let due = self.written as f64 / self.pace.bytes_per_sec as f64;
            let due = std::time::Duration::from_secs_f64(due);
            if let Some(lead) = due.checked_sub(self.start.elapsed()) {
                std::thread::sleep(lead);
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), BrokerError> {
    let f = fs::File::open(dir).map_err(|e| io_err(dir, e))?;
    if let Err(e) = f.sync_all() {
        crate::fatal::fail_stop(format!("fsync dir {}: {e}", dir.display()));
    }
    Ok(())
}
