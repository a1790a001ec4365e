//! Who an HTTP request comes from, once the HTTP listener has checked its Basic credentials
//! against the SCRAM credentials. Handlers that act for the caller (the HTTP proxy logs in to
//! Kafka as them, the console checks key ACLs) read it from the request's extensions; a
//! request without one came through a listener that does not authenticate.

use std::fmt;
use std::net::IpAddr;

use crate::Mechanism;

#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    /// Kept so the proxy can log in to the Kafka listener as this user: Kafka has no
    /// impersonation, and logging in as the user makes the Kafka ACLs the only place access to
    /// topics and groups is decided.
    pub password: String,
    /// The SCRAM mechanism whose credential the password matched, to log in with.
    pub mechanism: Mechanism,
    pub ip: IpAddr,
}

impl Caller {
    pub fn principal(&self) -> String {
        format!("User:{}", self.user)
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("user", &self.user)
            .field("mechanism", &self.mechanism)
            .field("ip", &self.ip)
            .finish_non_exhaustive()
    }
}
