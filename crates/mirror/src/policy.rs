//! How mirrored topics are named (MirrorMaker 2's replication policies) and how a record's
//! journey is recorded so that mirrors never bring it back where it came from.

/// MirrorMaker 2's replication policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// `ALIAS<separator>TOPIC`: remote topics stay apart from local ones (and from other
    /// sources' when several clusters are aggregated into one).
    Default { separator: String },
    /// The same name on both sides (one writer with standby readers, or a migration).
    Identity,
}

/// MirrorMaker 2's heartbeats topic: every mirror writes one record a second to it on its
/// target cluster, and mirrors carry every cluster's heartbeats topics on downstream.
pub const HEARTBEATS: &str = "heartbeats";

/// The separator heartbeats topics are named with under the identity policy (MirrorMaker 2's
/// default), so two clusters' heartbeats never share a topic.
const IDENTITY_HEARTBEATS_SEPARATOR: &str = ".";

impl Policy {
    /// The name the source cluster's `topic` has here.
    pub fn target_topic(&self, source_alias: &str, topic: &str) -> String {
        match self {
            Policy::Default { separator } => format!("{source_alias}{separator}{topic}"),
            Policy::Identity if self.is_heartbeats(topic) => {
                format!("{source_alias}{IDENTITY_HEARTBEATS_SEPARATOR}{topic}")
            }
            Policy::Identity => topic.to_string(),
        }
    }

    fn separator(&self) -> &str {
        match self {
            Policy::Default { separator } => separator,
            Policy::Identity => IDENTITY_HEARTBEATS_SEPARATOR,
        }
    }

    /// Whether `topic` is a heartbeats topic: this cluster's own, or a copy of another's
    /// (`us-east.heartbeats`). Mirrored whatever the topic filter says, as MirrorMaker 2 does.
    pub fn is_heartbeats(&self, topic: &str) -> bool {
        topic.rsplit(self.separator()).next() == Some(HEARTBEATS)
    }

    /// Whether the source's `topic` is itself a copy of a topic of the cluster named
    /// `target_alias` (MirrorMaker 2's cycle check: `us-west.us-east.orders` came from
    /// us-east through us-west): mirroring it back would be a loop. The identity policy's
    /// names cannot tell; the path header does for it.
    pub fn is_cycle(&self, topic: &str, target_alias: &str) -> bool {
        match self {
            Policy::Identity if !self.is_heartbeats(topic) => false,
            _ => {
                let parts: Vec<&str> = topic.split(self.separator()).collect();
                parts[..parts.len().saturating_sub(1)].contains(&target_alias)
            }
        }
    }
}

/// The header naming the clusters a record has been mirrored out of (cluster ids,
/// comma-separated, oldest first). A mirror skips records whose path names the cluster it
/// writes to, so two clusters mirroring each other do not loop, whatever the topic names.
pub const PATH_HEADER: &str = "strom.mirror.path";

/// Whether a record with `headers` has already been in the cluster `target_id`.
pub fn been_in(headers: &[(String, Option<Vec<u8>>)], target_id: &str) -> bool {
    headers
        .iter()
        .filter(|(k, _)| k == PATH_HEADER)
        .filter_map(|(_, v)| v.as_deref())
        .any(|v| v.split(|b| *b == b',').any(|id| id == target_id.as_bytes()))
}

/// `headers` with the path extended by `source_id`, the cluster the record leaves now.
pub fn with_path(
    mut headers: Vec<(String, Option<Vec<u8>>)>,
    source_id: &str,
) -> Vec<(String, Option<Vec<u8>>)> {
    let mut path: Vec<u8> = headers
        .iter()
        .filter(|(k, _)| k == PATH_HEADER)
        .filter_map(|(_, v)| v.clone())
        .next_back()
        .unwrap_or_default();
    headers.retain(|(k, _)| k != PATH_HEADER);
    if !path.is_empty() {
        path.push(b',');
    }
    path.extend_from_slice(source_id.as_bytes());
    headers.push((PATH_HEADER.to_string(), Some(path)));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_cycles() {
        let default = Policy::Default {
            separator: ".".into(),
        };
        assert_eq!(default.target_topic("us-east", "orders"), "us-east.orders");
        assert!(default.is_cycle("us-west.orders", "us-west"));
        assert!(default.is_cycle("us-east.us-west.orders", "us-west"));
        assert!(
            !default.is_cycle("us-west", "us-west"),
            "a local topic named like the alias"
        );
        assert!(!default.is_cycle("orders", "us-west"));
        assert_eq!(Policy::Identity.target_topic("us-east", "orders"), "orders");
        assert!(!Policy::Identity.is_cycle("us-west.orders", "us-west"));
    }

    #[test]
    fn heartbeats_topics_are_prefixed_under_every_policy() {
        let default = Policy::Default {
            separator: "_".into(),
        };
        for p in [&default, &Policy::Identity] {
            assert!(p.is_heartbeats("heartbeats"));
            assert!(!p.is_heartbeats("heartbeats-audit") && !p.is_heartbeats("orders"));
        }
        assert!(default.is_heartbeats("us-east_heartbeats"));
        assert_eq!(default.target_topic("a", "b_heartbeats"), "a_b_heartbeats");
        assert!(default.is_cycle("us-west_heartbeats", "us-west"));
        let identity = Policy::Identity;
        assert_eq!(
            identity.target_topic("us-east", "heartbeats"),
            "us-east.heartbeats"
        );
        assert_eq!(
            identity.target_topic("us-east", "eu.heartbeats"),
            "us-east.eu.heartbeats"
        );
        assert!(identity.is_cycle("us-west.heartbeats", "us-west"));
        assert!(!identity.is_cycle("us-west.orders", "us-west"));
    }

    #[test]
    fn the_path_grows_and_stops_loops() {
        let original = vec![
            ("app".to_string(), Some(b"1".to_vec())),
            ("nil".to_string(), None),
        ];
        let at_b = with_path(original.clone(), "A");
        assert!(been_in(&at_b, "A"));
        assert!(!been_in(&at_b, "B"));
        let at_c = with_path(at_b, "B");
        assert_eq!(
            at_c[..2],
            original[..],
            "the record's own headers are kept, in order"
        );
        assert_eq!(at_c[2], (PATH_HEADER.to_string(), Some(b"A,B".to_vec())));
        assert!(been_in(&at_c, "A") && been_in(&at_c, "B"));
        assert!(!been_in(&at_c, "AB"), "ids are compared whole");
    }
}
