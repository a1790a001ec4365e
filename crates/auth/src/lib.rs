//! Strom's security state machine: SCRAM credentials, Kafka-model ACLs and client quotas,
//! applied deterministically from a journal (the controller in a cluster, a journal of one on a
//! single node), plus the pure parts of logging in and authorizing. No wire format: the Kafka
//! front end maps its requests onto these types.

pub mod acl;
pub mod caller;
pub mod failures;
pub mod scram;
pub mod state;

pub use acl::{
    Acl, AclFilter, Operation, PatternFilter, PatternType, Permission, Requester, ResourceType,
};
pub use caller::Caller;
pub use failures::LoginFailures;
pub use scram::{Credential, Mechanism};
pub use state::{Command, SecurityState};

/// The principal of a connection that did not authenticate (Kafka's name).
pub const ANONYMOUS: &str = "User:ANONYMOUS";
