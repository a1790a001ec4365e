//! Kafka's ACL model and its authorizer's decision (kafka.security.authorizer.AclAuthorizer):
//! DENY wins, then any matching ALLOW; no ACL means denied; super users pass everything.

use serde::{Deserialize, Serialize};

/// Kafka's resource type codes (`ResourceType` in the protocol).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
    User,
    /// Keys of the etcd API (Strom's own type: Kafka clients never see it unless they ask
    /// for it by its code).
    EtcdKey,
}

impl ResourceType {
    pub const ALL: [ResourceType; 7] = [
        ResourceType::Topic,
        ResourceType::Group,
        ResourceType::Cluster,
        ResourceType::TransactionalId,
        ResourceType::DelegationToken,
        ResourceType::User,
        ResourceType::EtcdKey,
    ];

    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
            ResourceType::DelegationToken => 6,
            ResourceType::User => 7,
            ResourceType::EtcdKey => 100,
        }
    }

    pub fn from_code(code: i8) -> Option<ResourceType> {
        ResourceType::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Topic => "Topic",
            ResourceType::Group => "Group",
            ResourceType::Cluster => "Cluster",
            ResourceType::TransactionalId => "TransactionalId",
            ResourceType::DelegationToken => "DelegationToken",
            ResourceType::User => "User",
            ResourceType::EtcdKey => "EtcdKey",
        }
    }

    pub fn from_name(name: &str) -> Option<ResourceType> {
        ResourceType::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(name))
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PatternType {
    Literal,
    Prefixed,
}

impl PatternType {
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PatternType::Literal => "LITERAL",
            PatternType::Prefixed => "PREFIXED",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens,
}

impl Operation {
    pub const ALL: [Operation; 13] = [
        Operation::All,
        Operation::Read,
        Operation::Write,
        Operation::Create,
        Operation::Delete,
        Operation::Alter,
        Operation::Describe,
        Operation::ClusterAction,
        Operation::DescribeConfigs,
        Operation::AlterConfigs,
        Operation::IdempotentWrite,
        Operation::CreateTokens,
        Operation::DescribeTokens,
    ];

    pub fn code(self) -> i8 {
        // All = 2 .. DescribeTokens = 14, in declaration order.
        Operation::ALL.iter().position(|o| *o == self).unwrap_or(0) as i8 + 2
    }

    pub fn from_code(code: i8) -> Option<Operation> {
        usize::try_from(code - 2)
            .ok()
            .and_then(|i| Operation::ALL.get(i).copied())
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::All => "All",
            Operation::Read => "Read",
            Operation::Write => "Write",
            Operation::Create => "Create",
            Operation::Delete => "Delete",
            Operation::Alter => "Alter",
            Operation::Describe => "Describe",
            Operation::ClusterAction => "ClusterAction",
            Operation::DescribeConfigs => "DescribeConfigs",
            Operation::AlterConfigs => "AlterConfigs",
            Operation::IdempotentWrite => "IdempotentWrite",
            Operation::CreateTokens => "CreateTokens",
            Operation::DescribeTokens => "DescribeTokens",
        }
    }

    pub fn from_name(name: &str) -> Option<Operation> {
        let plain: String = name.chars().filter(|c| *c != '_' && *c != '-').collect();
        Operation::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(&plain))
    }

    /// The operations whose ALLOW also allows `self` (Kafka: READ, WRITE, DELETE and ALTER
    /// imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS).
    fn implied_by(self) -> &'static [Operation] {
        match self {
            Operation::Describe => &[
                Operation::Describe,
                Operation::Read,
                Operation::Write,
                Operation::Delete,
                Operation::Alter,
            ],
            Operation::DescribeConfigs => &[Operation::DescribeConfigs, Operation::AlterConfigs],
            Operation::Read => &[Operation::Read],
            Operation::Write => &[Operation::Write],
            Operation::Create => &[Operation::Create],
            Operation::Delete => &[Operation::Delete],
            Operation::Alter => &[Operation::Alter],
            Operation::ClusterAction => &[Operation::ClusterAction],
            Operation::AlterConfigs => &[Operation::AlterConfigs],
            Operation::IdempotentWrite => &[Operation::IdempotentWrite],
            Operation::CreateTokens => &[Operation::CreateTokens],
            Operation::DescribeTokens => &[Operation::DescribeTokens],
            Operation::All => &[],
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    Deny,
    Allow,
}

impl Permission {
    pub fn code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Permission::Deny => "DENY",
            Permission::Allow => "ALLOW",
        }
    }
}

/// One ACL binding: `principal` is `User:NAME` (or `User:*`), `host` an IP or `*`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Acl {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl Acl {
    /// Whether this binding is about `name` of its resource type.
    fn covers(&self, name: &str) -> bool {
        match self.pattern_type {
            PatternType::Literal => self.resource_name == "*" || self.resource_name == name,
            PatternType::Prefixed => name.starts_with(&self.resource_name),
        }
    }

    /// Checks what Kafka checks before storing a binding.
    pub fn validate(&self) -> Result<(), String> {
        if self.resource_name.is_empty() {
            return Err("resource name must not be empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != "kafka-cluster" {
            return Err("the Cluster resource is named kafka-cluster".into());
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == "*" {
            return Err("a PREFIXED pattern cannot be *".into());
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return Err(format!("principal {:?} is not TYPE:NAME", self.principal)),
        }
        if self.host.is_empty() {
            return Err("host must not be empty (use * for any)".into());
        }
        Ok(())
    }
}

/// Which pattern types a filter selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatternFilter {
    Any,
    /// The bindings that would apply to the filter's resource name (literal equal, literal
    /// `*`, or a prefix of it).
    Match,
    Exactly(PatternType),
}

/// A filter of DescribeAcls and DeleteAcls; `None` fields match anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    pub fn matches(&self, acl: &Acl) -> bool {
        let eq = |f: &Option<String>, v: &str| f.as_deref().is_none_or(|f| f == v);
        let name_ok = match (self.pattern, &self.resource_name) {
            (PatternFilter::Match, Some(name)) => acl.covers(name),
            (PatternFilter::Match, None) => true,
            (PatternFilter::Any, name) => eq(name, &acl.resource_name),
            (PatternFilter::Exactly(p), name) => {
                p == acl.pattern_type && eq(name, &acl.resource_name)
            }
        };
        // ANY leaves out Strom's own etcd key bindings: Kafka clients do not know their code.
        let type_ok = match self.resource_type {
            Some(t) => t == acl.resource_type,
            None => acl.resource_type != ResourceType::EtcdKey,
        };
        name_ok
            && type_ok
            && eq(&self.principal, &acl.principal)
            && eq(&self.host, &acl.host)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
    }
}

/// Who is asking, from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requester<'a> {
    /// `User:NAME`; `User:ANONYMOUS` on a plaintext listener.
    pub principal: &'a str,
    /// The client's IP as text.
    pub host: &'a str,
}

/// Kafka's decision for `op` on resource `name` of `resource_type`.
pub fn decide<'a>(
    acls: impl IntoIterator<Item = &'a Acl>,
    who: &Requester<'_>,
    op: Operation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    let mut allowed = false;
    for acl in acls {
        if acl.resource_type != resource_type
            || !acl.covers(name)
            || !(acl.principal == who.principal || acl.principal == "User:*")
            || !(acl.host == "*" || acl.host == who.host)
        {
            continue;
        }
        match acl.permission {
            Permission::Deny if acl.operation == op || acl.operation == Operation::All => {
                return false
            }
            Permission::Deny => {}
            Permission::Allow => {
                allowed |=
                    acl.operation == Operation::All || op.implied_by().contains(&acl.operation)
            }
        }
    }
    allowed
}

/// The first key after every key starting with `prefix` (etcd's prefix end); empty when there
/// is none (a prefix of 0xff bytes only, or the empty prefix): every key up to the end.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

/// Kafka's decision over a key range `[start, end)` (etcd's `range_end`: empty for the key
/// `start` alone, `\0` for every key from `start`): allowed when one ALLOW binding covers the
/// whole range and no DENY binding touches any key of it.
pub fn decide_range<'a>(
    acls: impl IntoIterator<Item = &'a Acl>,
    who: &Requester<'_>,
    op: Operation,
    resource_type: ResourceType,
    start: &[u8],
    end: &[u8],
) -> bool {
    // Both the request and each binding as a range [lo, hi), `None` for no upper bound.
    let request: (Vec<u8>, Option<Vec<u8>>) = match end {
        [] => (start.to_vec(), Some(after(start))),
        [0] => (start.to_vec(), None),
        e => (start.to_vec(), Some(e.to_vec())),
    };
    let span = |acl: &Acl| -> (Vec<u8>, Option<Vec<u8>>) {
        let name = acl.resource_name.as_bytes();
        match acl.pattern_type {
            PatternType::Literal if acl.resource_name == "*" => (Vec::new(), None),
            PatternType::Literal => (name.to_vec(), Some(after(name))),
            PatternType::Prefixed => {
                let end = prefix_end(name);
                (name.to_vec(), (!end.is_empty()).then_some(end))
            }
        }
    };
    let below = |k: &[u8], hi: &Option<Vec<u8>>| hi.as_deref().is_none_or(|h| k < h);
    let mut allowed = false;
    for acl in acls {
        if acl.resource_type != resource_type
            || !(acl.principal == who.principal || acl.principal == "User:*")
            || !(acl.host == "*" || acl.host == who.host)
        {
            continue;
        }
        let binding = span(acl);
        match acl.permission {
            Permission::Deny if acl.operation == op || acl.operation == Operation::All => {
                let overlaps = below(&request.0, &binding.1) && below(&binding.0, &request.1);
                if overlaps {
                    return false;
                }
            }
            Permission::Deny => {}
            Permission::Allow
                if acl.operation == Operation::All || op.implied_by().contains(&acl.operation) =>
            {
                let covers = binding.0 <= request.0
                    && match (&request.1, &binding.1) {
                        (_, None) => true,
                        (None, Some(_)) => false,
                        (Some(h), Some(bh)) => h <= bh,
                    };
                allowed |= covers;
            }
            Permission::Allow => {}
        }
    }
    allowed
}

/// The first key after `key`.
fn after(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        t: ResourceType,
        name: &str,
        p: PatternType,
        who: &str,
        op: Operation,
        perm: Permission,
    ) -> Acl {
        Acl {
            resource_type: t,
            resource_name: name.into(),
            pattern_type: p,
            principal: who.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn deny_wins_implications_and_prefixes() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::*;
        let alice = Requester {
            principal: "User:alice",
            host: "127.0.0.1",
        };
        let acls = vec![
            acl(Topic, "orders", Literal, "User:alice", Write, Allow),
            acl(Topic, "logs-", Prefixed, "User:*", Read, Allow),
            acl(Topic, "logs-secret", Literal, "User:alice", All, Deny),
            acl(Group, "*", Literal, "User:alice", Read, Allow),
        ];
        assert!(decide(&acls, &alice, Write, Topic, "orders"));
        assert!(
            decide(&acls, &alice, Describe, Topic, "orders"),
            "WRITE implies DESCRIBE"
        );
        assert!(!decide(&acls, &alice, Read, Topic, "orders"));
        assert!(decide(&acls, &alice, Read, Topic, "logs-app"));
        assert!(
            !decide(&acls, &alice, Read, Topic, "logs-secret"),
            "DENY wins"
        );
        assert!(!decide(&acls, &alice, Describe, Topic, "logs-secret"));
        assert!(decide(&acls, &alice, Read, Group, "anything"));
        assert!(
            !decide(&acls, &alice, Read, Topic, "other"),
            "no ACL: denied"
        );
        let far = Requester {
            principal: "User:alice",
            host: "10.0.0.1",
        };
        let mut hosted = acls[0].clone();
        hosted.host = "127.0.0.1".into();
        assert!(!decide([&hosted], &far, Write, Topic, "orders"));
    }

    #[test]
    fn key_ranges() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        let carol = Requester {
            principal: "User:carol",
            host: "127.0.0.1",
        };
        let key =
            |name: &str, p, op, perm| acl(ResourceType::EtcdKey, name, p, "User:carol", op, perm);
        let acls = vec![
            key("/app/", Prefixed, Write, Allow),
            key("/app/secret", Literal, All, Deny),
            key("/ro/", Prefixed, Read, Allow),
        ];
        let may = |op, start: &str, end: &[u8]| {
            decide_range(
                &acls,
                &carol,
                op,
                ResourceType::EtcdKey,
                start.as_bytes(),
                end,
            )
        };
        assert!(may(Write, "/app/x", b""));
        assert!(may(Read, "/ro/a", b""));
        assert!(!may(Write, "/ro/a", b""), "Read does not imply Write");
        assert!(may(Read, "/ro/", b"/ro0"), "the whole prefix");
        assert!(!may(Read, "/ro/", b"/rp"), "beyond the prefix");
        assert!(!may(Read, "/ro/", &[0]), "every key from /ro/");
        assert!(!may(Write, "/app/secret", b""), "DENY on the key");
        assert!(
            !may(Write, "/app/", b"/app0"),
            "the range holds a denied key"
        );
        assert!(may(Write, "/app/t", b"/app0"), "after the denied key");
        assert!(!may(Read, "/other", b""));
        assert_eq!(prefix_end(b"/app/"), b"/app0");
        assert_eq!(prefix_end(&[0x61, 0xff]), b"b");
        assert!(prefix_end(&[0xff]).is_empty());
    }

    #[test]
    fn codes_round_trip_and_filters() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_code(op.code()), Some(op));
            assert_eq!(Operation::from_name(op.name()), Some(op));
        }
        assert_eq!(Operation::Read.code(), 3);
        assert_eq!(Operation::IdempotentWrite.code(), 12);
        assert_eq!(
            Operation::from_name("IDEMPOTENT_WRITE"),
            Some(Operation::IdempotentWrite)
        );
        let a = acl(
            ResourceType::Topic,
            "logs-",
            PatternType::Prefixed,
            "User:bob",
            Operation::Read,
            Permission::Allow,
        );
        let filter = |pattern, name: Option<&str>| AclFilter {
            resource_type: Some(ResourceType::Topic),
            resource_name: name.map(String::from),
            pattern,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        };
        assert!(filter(PatternFilter::Match, Some("logs-x")).matches(&a));
        assert!(!filter(PatternFilter::Any, Some("logs-x")).matches(&a));
        assert!(filter(PatternFilter::Exactly(PatternType::Prefixed), Some("logs-")).matches(&a));
        assert!(!filter(PatternFilter::Exactly(PatternType::Literal), None).matches(&a));
    }
}
