//! What a partition has in the object store: its remote segments, contiguous and oldest first.
//! Pure data with deterministic changes, so every replica that applies the same changes (from
//! the controller's log in a cluster) holds the same manifest.

use serde::{Deserialize, Serialize};

/// One uploaded range of whole batches: `<object>.log` and its offset/time index
/// `<object>.index` under the partition's directory in the store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RemoteSegment {
    pub base_offset: u64,
    /// The offset after its last batch.
    pub end_offset: u64,
    pub size_bytes: u64,
    /// The largest batch maxTimestamp in it; -1 when it holds none.
    pub max_timestamp: i64,
    /// Object name stem: `<base offset, 20 digits>-<upload id>`.
    pub object: String,
    /// Aborted transactions with records in it (producer id, first offset, last offset), so
    /// read_committed consumers of remote data still skip them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aborted: Vec<(i64, u64, u64)>,
}

/// A change to a manifest, as replicated.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ManifestChange {
    /// A segment whose upload completed. Taken only if it starts at or after the end of what
    /// is uploaded, so a deposed leader's late upload of a range already covered is refused.
    Append(RemoteSegment),
    /// Retention: the segments wholly below `below` are forgotten (their objects deleted next).
    Trim { below: u64 },
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub segments: Vec<RemoteSegment>,
    /// Everything below this offset was uploaded, including segments retention removed since:
    /// uploading continues from here.
    pub uploaded_end: u64,
}

impl Manifest {
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.uploaded_end == 0
    }

    /// The first remote offset, if any segment is left.
    pub fn start(&self) -> Option<u64> {
        self.segments.first().map(|s| s.base_offset)
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size_bytes).sum()
    }

    /// The segment to read `offset` from: the first one ending after it (a gap between
    /// segments reads on from the next one, as a gap in a local log does).
    pub fn find(&self, offset: u64) -> Option<&RemoteSegment> {
        let i = self.segments.partition_point(|s| s.end_offset <= offset);
        self.segments.get(i)
    }

    /// Applies a change; false when it is refused (an append that overlaps what is uploaded or
    /// is empty). Trimming removes whole segments only.
    pub fn apply(&mut self, change: &ManifestChange) -> bool {
        match change {
            ManifestChange::Append(segment) => {
                if segment.base_offset < self.uploaded_end
                    || segment.end_offset <= segment.base_offset
                {
                    return false;
                }
                self.uploaded_end = segment.end_offset;
                self.segments.push(segment.clone());
                true
            }
            ManifestChange::Trim { below } => {
                let n = self.segments.partition_point(|s| s.end_offset <= *below);
                self.segments.drain(..n);
                n > 0
            }
        }
    }

    /// The segments a `Trim { below }` would remove.
    pub fn trimmed_by(&self, below: u64) -> &[RemoteSegment] {
        let n = self.segments.partition_point(|s| s.end_offset <= below);
        &self.segments[..n]
    }

    /// Aborted transactions recorded for the segments overlapping `from..to`.
    pub fn aborted_between(&self, from: u64, to: u64) -> Vec<(i64, u64, u64)> {
        self.segments
            .iter()
            .filter(|s| s.end_offset > from && s.base_offset < to)
            .flat_map(|s| s.aborted.iter().copied())
            .filter(|(_, first, last)| *last >= from && *first < to)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: u64, end: u64) -> RemoteSegment {
        RemoteSegment {
            base_offset: base,
            end_offset: end,
            size_bytes: end - base,
            max_timestamp: base as i64,
            object: format!("{base:020}-x"),
            aborted: Vec::new(),
        }
    }

    #[test]
    fn appends_only_past_the_uploaded_end_and_trims_whole_segments() {
        let mut m = Manifest::default();
        assert!(m.apply(&ManifestChange::Append(seg(10, 20))));
        assert!(m.apply(&ManifestChange::Append(seg(20, 30))));
        // A deposed leader's upload of a covered range, and an empty one, are refused.
        assert!(!m.apply(&ManifestChange::Append(seg(15, 40))));
        assert!(!m.apply(&ManifestChange::Append(seg(30, 30))));
        assert_eq!(
            (m.start(), m.uploaded_end, m.size_bytes()),
            (Some(10), 30, 20)
        );
        assert_eq!(m.find(0).map(|s| s.base_offset), Some(10));
        assert_eq!(m.find(25).map(|s| s.base_offset), Some(20));
        assert!(m.find(30).is_none());
        assert_eq!(m.trimmed_by(25).len(), 1);
        assert!(m.apply(&ManifestChange::Trim { below: 25 }));
        assert!(!m.apply(&ManifestChange::Trim { below: 25 }));
        assert_eq!((m.start(), m.uploaded_end), (Some(20), 30));
        assert!(m.apply(&ManifestChange::Trim { below: 30 }));
        // Nothing left remotely, but uploads still go on from 30.
        assert_eq!((m.start(), m.uploaded_end, m.is_empty()), (None, 30, false));
        assert!(!m.apply(&ManifestChange::Append(seg(29, 40))));
    }

    #[test]
    fn aborted_ranges_are_found_by_overlap() {
        let mut m = Manifest::default();
        let mut s = seg(0, 100);
        s.aborted = vec![(7, 10, 20), (8, 50, 60)];
        m.apply(&ManifestChange::Append(s));
        assert_eq!(m.aborted_between(0, 30), vec![(7, 10, 20)]);
        assert_eq!(m.aborted_between(55, 100), vec![(8, 50, 60)]);
        assert!(m.aborted_between(100, 200).is_empty());
    }
}
