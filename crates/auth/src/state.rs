//! The replicated security state and the commands that change it. Deterministic: ordered maps
//! only, no clock.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::acl::{self, Acl, AclFilter, Operation, Requester, ResourceType};
use crate::scram::{Credential, Mechanism};

/// A quota entity as Kafka names it: (`user`|`client-id`, name), a `None` name being the
/// default for that type. Sorted by type so equal entities compare equal.
pub type QuotaEntity = Vec<(String, Option<String>)>;

/// A quota value (bytes/s, percent, ...). Compared by bits so commands stay `Eq`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for QuotaValue {}

/// Quota keys Strom enforces (Kafka's names).
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const QUOTA_KEYS: [&str; 3] = [PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE];

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityState {
    /// user -> mechanism -> credential.
    #[serde(default)]
    pub users: BTreeMap<String, BTreeMap<Mechanism, Credential>>,
    #[serde(default)]
    pub acls: BTreeSet<Acl>,
    /// Stored as a list of pairs: JSON maps need string keys.
    #[serde(default, with = "pairs")]
    pub quotas: BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>,
}

/// A map with structured keys, as a JSON list of `[key, value]` pairs.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// A change to the security state, as committed in the log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    UpsertCredential {
        user: String,
        mechanism: Mechanism,
        credential: Credential,
    },
    DeleteCredential {
        user: String,
        mechanism: Mechanism,
    },
    /// Creates the user's credentials only if it has none (the bootstrap user at every
    /// start: a changed password is kept).
    CreateUserIfAbsent {
        user: String,
        credentials: Vec<(Mechanism, Credential)>,
    },
    CreateAcls(Vec<Acl>),
    /// Deletes exactly these bindings (the proposer resolved its filters).
    DeleteAcls(Vec<Acl>),
    /// Sets (`Some`) or removes (`None`) one quota of an entity.
    SetQuota {
        entity: QuotaEntity,
        key: String,
        value: Option<QuotaValue>,
    },
}

impl SecurityState {
    pub fn apply(&mut self, cmd: &Command) {
        match cmd {
            Command::UpsertCredential {
                user,
                mechanism,
                credential,
            } => {
                self.users
                    .entry(user.clone())
                    .or_default()
                    .insert(*mechanism, credential.clone());
            }
            Command::DeleteCredential { user, mechanism } => {
                if let Some(creds) = self.users.get_mut(user) {
                    creds.remove(mechanism);
                    if creds.is_empty() {
                        self.users.remove(user);
                    }
                }
            }
            Command::CreateUserIfAbsent { user, credentials } => {
                if !self.users.contains_key(user) && !credentials.is_empty() {
                    self.users
                        .insert(user.clone(), credentials.iter().cloned().collect());
                }
            }
            Command::CreateAcls(acls) => self.acls.extend(acls.iter().cloned()),
            Command::DeleteAcls(acls) => {
                for acl in acls {
                    self.acls.remove(acl);
                }
            }
            Command::SetQuota { entity, key, value } => match value {
                Some(v) => {
                    self.quotas
                        .entry(entity.clone())
                        .or_default()
                        .insert(key.clone(), *v);
                }
                None => {
                    if let Some(q) = self.quotas.get_mut(entity) {
                        q.remove(key);
                        if q.is_empty() {
                            self.quotas.remove(entity);
                        }
                    }
                }
            },
        }
    }

    /// Whether `cmd`'s effect is visible: a node that forwarded a command waits for this
    /// before answering, so its client reads its own write.
    pub fn reflects(&self, cmd: &Command) -> bool {
        match cmd {
            Command::UpsertCredential {
                user,
                mechanism,
                credential,
            } => self.credential(user, *mechanism) == Some(credential),
            Command::DeleteCredential { user, mechanism } => {
                self.credential(user, *mechanism).is_none()
            }
            Command::CreateUserIfAbsent { user, .. } => self.users.contains_key(user),
            Command::CreateAcls(acls) => acls.iter().all(|a| self.acls.contains(a)),
            Command::DeleteAcls(acls) => acls.iter().all(|a| !self.acls.contains(a)),
            Command::SetQuota { entity, key, value } => {
                self.quotas.get(entity).and_then(|q| q.get(key)) == value.as_ref()
            }
        }
    }

    pub fn credential(&self, user: &str, mechanism: Mechanism) -> Option<&Credential> {
        self.users.get(user).and_then(|c| c.get(&mechanism))
    }

    pub fn matching_acls<'a>(&'a self, filter: &'a AclFilter) -> impl Iterator<Item = &'a Acl> {
        self.acls.iter().filter(move |a| filter.matches(a))
    }

    /// The authorizer's decision, super users aside (the caller knows them).
    pub fn allows(
        &self,
        who: &Requester<'_>,
        op: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        acl::decide(&self.acls, who, op, resource_type, name)
    }

    /// Kafka's quota precedence: the most specific entity that sets `key` wins
    /// (user+client, user+default client, user, default user+client, default user+default
    /// client, default user, client, default client).
    pub fn quota(&self, user: Option<&str>, client_id: &str, key: &str) -> Option<f64> {
        let u = |n: Option<&str>| ("user".to_string(), n.map(String::from));
        let c = |n: Option<&str>| ("client-id".to_string(), n.map(String::from));
        let mut candidates: Vec<QuotaEntity> = Vec::with_capacity(8);
        if let Some(user) = user {
            candidates.push(vec![c(Some(client_id)), u(Some(user))]);
            candidates.push(vec![c(None), u(Some(user))]);
            candidates.push(vec![u(Some(user))]);
            candidates.push(vec![c(Some(client_id)), u(None)]);
            candidates.push(vec![c(None), u(None)]);
            candidates.push(vec![u(None)]);
        }
        candidates.push(vec![c(Some(client_id))]);
        candidates.push(vec![c(None)]);
        candidates
            .iter()
            .find_map(|e| self.quotas.get(e).and_then(|q| q.get(key)))
            .map(|v| v.0)
    }
}

/// Puts an entity's parts in the one order the state keys them by.
pub fn normalize_entity(mut entity: QuotaEntity) -> QuotaEntity {
    entity.sort();
    entity
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scram::MIN_ITERATIONS;

    #[test]
    fn commands_apply_and_reflect() {
        let mut s = SecurityState::default();
        let cred = Credential::new(Mechanism::Sha256, "pw", MIN_ITERATIONS);
        let up = Command::UpsertCredential {
            user: "alice".into(),
            mechanism: Mechanism::Sha256,
            credential: cred.clone(),
        };
        assert!(!s.reflects(&up));
        s.apply(&up);
        assert!(s.reflects(&up));
        let boot = Command::CreateUserIfAbsent {
            user: "alice".into(),
            credentials: vec![(Mechanism::Sha512, cred.clone())],
        };
        s.apply(&boot);
        assert!(
            s.credential("alice", Mechanism::Sha512).is_none(),
            "kept as it was"
        );
        let del = Command::DeleteCredential {
            user: "alice".into(),
            mechanism: Mechanism::Sha256,
        };
        s.apply(&del);
        assert!(s.users.is_empty());
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<SecurityState>(&json).unwrap(), s);
    }

    #[test]
    fn quota_precedence() {
        let mut s = SecurityState::default();
        let set = |entity: QuotaEntity, v: f64| Command::SetQuota {
            entity: normalize_entity(entity),
            key: PRODUCER_BYTE_RATE.into(),
            value: Some(QuotaValue(v)),
        };
        s.apply(&set(vec![("client-id".into(), None)], 1.0));
        assert_eq!(s.quota(Some("alice"), "app", PRODUCER_BYTE_RATE), Some(1.0));
        s.apply(&set(vec![("user".into(), Some("alice".into()))], 2.0));
        assert_eq!(s.quota(Some("alice"), "app", PRODUCER_BYTE_RATE), Some(2.0));
        s.apply(&set(
            vec![
                ("user".into(), Some("alice".into())),
                ("client-id".into(), Some("app".into())),
            ],
            3.0,
        ));
        assert_eq!(s.quota(Some("alice"), "app", PRODUCER_BYTE_RATE), Some(3.0));
        assert_eq!(s.quota(Some("bob"), "other", PRODUCER_BYTE_RATE), Some(1.0));
        assert_eq!(s.quota(None, "x", CONSUMER_BYTE_RATE), None);
        // Snapshots and the controller's state are JSON: quotas must survive the round trip.
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<SecurityState>(&json).unwrap(), s);
    }
}
