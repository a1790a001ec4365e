//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka uses them, and PLAIN
//! checked against the same stored credentials.
//!
//! A credential is what Kafka stores: salt, iteration count, StoredKey and ServerKey. The
//! password never reaches the state; `AlterUserScramCredentials` even sends only the salted
//! password. Both sides of the exchange live here: the broker's [`ServerExchange`] and the
//! CLI's [`ClientExchange`].

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Mac, SimpleHmac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Kafka refuses fewer iterations than this for both mechanisms.
pub const MIN_ITERATIONS: u32 = 4096;
/// Kafka's upper bound; it also bounds what one login can cost the broker.
pub const MAX_ITERATIONS: u32 = 16384;
const NONCE_BYTES: usize = 24;
/// Names and messages are small; a larger one is hostile.
const MAX_MESSAGE_BYTES: usize = 4096;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha256, Mechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's `ScramMechanism` codes (DescribeUserScramCredentials, AlterUserScramCredentials).
    pub fn code(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.code() == code)
    }

    /// Bytes of the mechanism's hash (and of a salted password).
    pub fn hash_len(self) -> usize {
        match self {
            Mechanism::Sha256 => 32,
            Mechanism::Sha512 => 64,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            // HMAC takes keys of any length.
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Mechanism::Sha256 => run::<SimpleHmac<Sha256>>(key, data),
            Mechanism::Sha512 => run::<SimpleHmac<Sha512>>(key, data),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// RFC 5802's Hi(): PBKDF2 with the mechanism's HMAC, one block.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            Mechanism::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// What the broker keeps of a password, per mechanism (base64 in the state's JSON).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    pub iterations: u32,
    #[serde(with = "b64")]
    pub stored_key: Vec<u8>,
    #[serde(with = "b64")]
    pub server_key: Vec<u8>,
}

impl Credential {
    /// From the salted password, as `AlterUserScramCredentials` carries it.
    pub fn from_salted(
        mechanism: Mechanism,
        salt: Vec<u8>,
        iterations: u32,
        salted_password: &[u8],
    ) -> Credential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        Credential {
            salt,
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        }
    }

    /// A new credential with a random salt (the CLI and the bootstrap user).
    pub fn new(mechanism: Mechanism, password: &str, iterations: u32) -> Credential {
        let salt: [u8; 32] = rand::random();
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        Credential::from_salted(mechanism, salt.to_vec(), iterations, &salted)
    }

    /// Whether `password` is the one this credential was made from (PLAIN logins).
    pub fn verify_password(&self, mechanism: Mechanism, password: &str) -> bool {
        let salted = mechanism.salted_password(password.as_bytes(), &self.salt, self.iterations);
        let stored = mechanism.hash(&mechanism.hmac(&salted, b"Client Key"));
        bool::from(stored.ct_eq(&self.stored_key))
    }
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::B64.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        super::B64.decode(s).map_err(serde::de::Error::custom)
    }
}

/// Why a login failed. The message goes to the client as Kafka words it; it never says
/// whether the user exists.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("Authentication failed during authentication due to invalid credentials with SASL mechanism {0}")]
    InvalidCredentials(String),
    #[error("malformed SASL message: {0}")]
    Malformed(&'static str),
    #[error("SASL message of {0} bytes is too large")]
    TooLarge(usize),
    #[error("unsupported SCRAM feature: {0}")]
    Unsupported(&'static str),
}

/// The broker's side of one SCRAM exchange: client-first, then client-final.
pub struct ServerExchange {
    mechanism: Mechanism,
    state: ServerState,
}

enum ServerState {
    Initial,
    /// Sent server-first; waiting for the client's proof.
    Challenged {
        user: String,
        /// `None` for an unknown user: the exchange runs on with a made-up salt and fails at
        /// the proof, so a client cannot probe which users exist.
        credential: Option<Credential>,
        nonce: String,
        /// The client's part at the start of `nonce`.
        client_nonce_len: usize,
        client_first_bare: String,
        server_first: String,
    },
    Done,
}

/// What one step of an exchange produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this and wait for the client's next message.
    Continue(Vec<u8>),
    /// Authenticated as this user; send the final message.
    Success { user: String, message: Vec<u8> },
}

impl ServerExchange {
    pub fn new(mechanism: Mechanism) -> ServerExchange {
        ServerExchange {
            mechanism,
            state: ServerState::Initial,
        }
    }

    /// Feeds one client message. `lookup` finds a user's credential for this mechanism.
    pub fn step(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<Credential>,
    ) -> Result<Step, AuthError> {
        if message.len() > MAX_MESSAGE_BYTES {
            return Err(AuthError::TooLarge(message.len()));
        }
        let text = std::str::from_utf8(message).map_err(|_| AuthError::Malformed("not UTF-8"))?;
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::Initial => {
                let first = parse_client_first(text)?;
                let credential = lookup(&first.user).filter(|c| c.iterations > 0);
                let (salt, iterations) = match &credential {
                    Some(c) => (c.salt.clone(), c.iterations),
                    // Deterministic per user, so repeated probes see the same salt.
                    None => (
                        self.mechanism.hash(first.user.as_bytes())[..16].to_vec(),
                        MIN_ITERATIONS,
                    ),
                };
                let server_nonce: [u8; NONCE_BYTES] = rand::random();
                let nonce = format!("{}{}", first.nonce, B64.encode(server_nonce));
                let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(&salt));
                self.state = ServerState::Challenged {
                    user: first.user,
                    credential,
                    client_nonce_len: first.nonce.len(),
                    nonce,
                    client_first_bare: first.bare,
                    server_first: server_first.clone(),
                };
                Ok(Step::Continue(server_first.into_bytes()))
            }
            ServerState::Challenged {
                user,
                credential,
                nonce,
                client_nonce_len,
                client_first_bare,
                server_first,
            } => {
                let fail = || AuthError::InvalidCredentials(self.mechanism.name().into());
                let (without_proof, proof) = text
                    .rsplit_once(",p=")
                    .ok_or(AuthError::Malformed("client-final without proof"))?;
                let mut attrs = without_proof.split(',');
                let binding = attrs
                    .next()
                    .and_then(|a| a.strip_prefix("c="))
                    .ok_or(AuthError::Malformed("client-final without channel binding"))?;
                // Only the gs2 header "n,," (or with an authzid) is valid without binding.
                let binding = B64
                    .decode(binding)
                    .map_err(|_| AuthError::Malformed("channel binding not base64"))?;
                if !binding.starts_with(b"n,") {
                    return Err(AuthError::Unsupported("channel binding"));
                }
                let echoed = attrs
                    .next()
                    .and_then(|a| a.strip_prefix("r="))
                    .ok_or(AuthError::Malformed("client-final without nonce"))?;
                // A replayed or altered nonce: the proof below would not verify anyway, but
                // this says what went wrong. librdkafka before 2.6.1 echoes its own nonce in
                // front of the combined one (librdkafka#4895); Kafka 3.x accepted that, and it
                // still carries this exchange's server nonce, so a replay cannot pass it.
                let legacy = echoed.len() == nonce.len() + client_nonce_len
                    && echoed.ends_with(nonce.as_str())
                    && echoed.as_bytes()[..client_nonce_len]
                        == nonce.as_bytes()[..client_nonce_len];
                if echoed != nonce && !legacy {
                    return Err(fail());
                }
                let proof = B64
                    .decode(proof)
                    .map_err(|_| AuthError::Malformed("proof not base64"))?;
                let Some(credential) = credential else {
                    return Err(fail());
                };
                let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
                let m = self.mechanism;
                let signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
                if proof.len() != signature.len() {
                    return Err(fail());
                }
                let client_key: Vec<u8> =
                    proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
                if !bool::from(m.hash(&client_key).ct_eq(&credential.stored_key)) {
                    return Err(fail());
                }
                let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
                Ok(Step::Success {
                    user,
                    message: format!("v={}", B64.encode(server_signature)).into_bytes(),
                })
            }
            ServerState::Done => Err(AuthError::Malformed("exchange already finished")),
        }
    }
}

struct ClientFirst {
    user: String,
    nonce: String,
    bare: String,
}

fn parse_client_first(text: &str) -> Result<ClientFirst, AuthError> {
    // gs2-header: "n," (no channel binding) or "y,"; then an optional "a=authzid", then ",".
    let (flag, rest) = text
        .split_once(',')
        .ok_or(AuthError::Malformed("no gs2 header"))?;
    match flag {
        "n" | "y" => {}
        _ if flag.starts_with("p=") => return Err(AuthError::Unsupported("channel binding")),
        _ => return Err(AuthError::Malformed("bad gs2 header")),
    }
    let (_authzid, bare) = rest
        .split_once(',')
        .ok_or(AuthError::Malformed("no gs2 header"))?;
    let mut user = None;
    let mut nonce = None;
    for attr in bare.split(',') {
        if let Some(v) = attr.strip_prefix("n=") {
            user = Some(decode_saslname(v)?);
        } else if let Some(v) = attr.strip_prefix("r=") {
            nonce = Some(v.to_string());
        } else if attr.starts_with("m=") {
            return Err(AuthError::Unsupported("mandatory extension"));
        } else if attr.starts_with("tokenauth=") {
            return Err(AuthError::Unsupported("delegation tokens"));
        }
    }
    let user = user.ok_or(AuthError::Malformed("no user name"))?;
    let nonce = nonce
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic() && b != b','))
        .ok_or(AuthError::Malformed("no client nonce"))?;
    Ok(ClientFirst {
        user,
        nonce,
        bare: bare.to_string(),
    })
}

fn decode_saslname(v: &str) -> Result<String, AuthError> {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let code = rest.get(i..i + 3);
        match code {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(AuthError::Malformed("bad escape in user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn encode_saslname(v: &str) -> String {
    v.replace('=', "=3D").replace(',', "=2C")
}

/// Checks a PLAIN message (`authzid NUL user NUL password`) against `lookup`'s credentials
/// (any SCRAM mechanism the user has); returns the user.
pub fn verify_plain(
    message: &[u8],
    lookup: impl Fn(&str, Mechanism) -> Option<Credential>,
) -> Result<String, AuthError> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(AuthError::TooLarge(message.len()));
    }
    let text = std::str::from_utf8(message).map_err(|_| AuthError::Malformed("not UTF-8"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(
            "PLAIN message is not authzid NUL user NUL password",
        ));
    };
    let fail = || AuthError::InvalidCredentials("PLAIN".into());
    if !authzid.is_empty() && authzid != user {
        return Err(fail());
    }
    for m in Mechanism::ALL {
        if let Some(c) = lookup(user, m) {
            return if c.verify_password(m, password) {
                Ok(user.to_string())
            } else {
                Err(fail())
            };
        }
    }
    Err(fail())
}

/// The client's side (the CLI logging in).
pub struct ClientExchange {
    mechanism: Mechanism,
    password: String,
    client_first_bare: String,
    nonce: String,
    server_signature: Option<Vec<u8>>,
}

impl ClientExchange {
    /// Returns the exchange and the client-first message.
    pub fn start(mechanism: Mechanism, user: &str, password: &str) -> (ClientExchange, Vec<u8>) {
        let nonce = B64.encode(rand::random::<[u8; NONCE_BYTES]>());
        let bare = format!("n={},r={nonce}", encode_saslname(user));
        let first = format!("n,,{bare}").into_bytes();
        (
            ClientExchange {
                mechanism,
                password: password.to_string(),
                client_first_bare: bare,
                nonce,
                server_signature: None,
            },
            first,
        )
    }

    /// From server-first to client-final.
    pub fn respond(&mut self, server_first: &[u8]) -> Result<Vec<u8>, AuthError> {
        let text =
            std::str::from_utf8(server_first).map_err(|_| AuthError::Malformed("not UTF-8"))?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in text.split(',') {
            if let Some(v) = attr.strip_prefix("r=") {
                nonce = Some(v);
            } else if let Some(v) = attr.strip_prefix("s=") {
                salt = B64.decode(v).ok();
            } else if let Some(v) = attr.strip_prefix("i=") {
                iterations = v.parse::<u32>().ok();
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(AuthError::Malformed("server-first lacks r, s or i"));
        };
        if !nonce.starts_with(&self.nonce) || !(1..=MAX_ITERATIONS * 4).contains(&iterations) {
            return Err(AuthError::Malformed("server-first nonce or iterations"));
        }
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c={},r={nonce}", B64.encode("n,,"));
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.server_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server's final message: the server, too, knew the credential.
    pub fn finish(&self, server_final: &[u8]) -> Result<(), AuthError> {
        let text =
            std::str::from_utf8(server_final).map_err(|_| AuthError::Malformed("not UTF-8"))?;
        let signature = text
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v).ok())
            .ok_or(AuthError::Malformed("server-final without signature"))?;
        match &self.server_signature {
            Some(expected) if bool::from(expected.ct_eq(&signature)) => Ok(()),
            _ => Err(AuthError::InvalidCredentials(self.mechanism.name().into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(
        m: Mechanism,
        stored: &Credential,
        user: &str,
        password: &str,
    ) -> Result<String, AuthError> {
        let mut server = ServerExchange::new(m);
        let (mut client, first) = ClientExchange::start(m, user, password);
        let lookup_user = user.to_string();
        let challenge = match server.step(&first, |u| {
            (u == lookup_user && u == "alice").then(|| stored.clone())
        })? {
            Step::Continue(c) => c,
            Step::Success { .. } => panic!("success before proof"),
        };
        let last = client.respond(&challenge)?;
        match server.step(&last, |_| None)? {
            Step::Success { user, message } => {
                client.finish(&message)?;
                Ok(user)
            }
            Step::Continue(_) => panic!("more than two steps"),
        }
    }

    #[test]
    fn scram_round_trips_and_rejects() {
        for m in Mechanism::ALL {
            let stored = Credential::new(m, "s3cret", MIN_ITERATIONS);
            assert_eq!(login(m, &stored, "alice", "s3cret").unwrap(), "alice");
            assert_eq!(
                login(m, &stored, "alice", "wrong"),
                Err(AuthError::InvalidCredentials(m.name().into()))
            );
            assert_eq!(
                login(m, &stored, "mallory", "s3cret"),
                Err(AuthError::InvalidCredentials(m.name().into()))
            );
        }
    }

    /// RFC 7677's test vector: user "user", password "pencil".
    #[test]
    fn rfc7677_vector() {
        let m = Mechanism::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = m.salted_password(b"pencil", &salt, 4096);
        let cred = Credential::from_salted(m, salt, 4096, &salted);
        let bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth = format!("{bare},{server_first},{without_proof}");
        let client_key = m.hmac(&salted, b"Client Key");
        let sig = m.hmac(&cred.stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        assert_eq!(
            B64.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let server_sig = m.hmac(&cred.server_key, auth.as_bytes());
        assert_eq!(
            B64.encode(server_sig),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn replayed_final_message_fails() {
        let m = Mechanism::Sha512;
        let stored = Credential::new(m, "pw", MIN_ITERATIONS);
        let mut server = ServerExchange::new(m);
        let (mut client, first) = ClientExchange::start(m, "alice", "pw");
        let Step::Continue(c) = server.step(&first, |_| Some(stored.clone())).unwrap() else {
            panic!()
        };
        let last = client.respond(&c).unwrap();
        assert!(matches!(
            server.step(&last, |_| None),
            Ok(Step::Success { .. })
        ));
        // The same final message against a fresh exchange (a new server nonce) fails.
        let mut again = ServerExchange::new(m);
        again.step(&first, |_| Some(stored.clone())).unwrap();
        assert_eq!(
            again.step(&last, |_| None),
            Err(AuthError::InvalidCredentials(m.name().into()))
        );
    }

    /// librdkafka before 2.6.1 puts its nonce in front of the combined nonce again.
    #[test]
    fn librdkafka_legacy_nonce_is_accepted_but_not_a_foreign_one() {
        let m = Mechanism::Sha256;
        let stored = Credential::new(m, "pw", MIN_ITERATIONS);
        let final_with = |echo: &dyn Fn(&str, &str) -> String| {
            let mut server = ServerExchange::new(m);
            let cnonce = "abc}{def<ghi";
            let bare = format!("n=alice,r={cnonce}");
            let Step::Continue(first) = server
                .step(format!("n,,{bare}").as_bytes(), |_| Some(stored.clone()))
                .unwrap()
            else {
                panic!()
            };
            let first = String::from_utf8(first).unwrap();
            let nonce = first.split(',').next().unwrap().strip_prefix("r=").unwrap();
            let without_proof = format!("c=biws,r={}", echo(cnonce, nonce));
            let salted = m.salted_password(b"pw", &stored.salt, stored.iterations);
            let client_key = m.hmac(&salted, b"Client Key");
            let auth = format!("{bare},{first},{without_proof}");
            let sig = m.hmac(&stored.stored_key, auth.as_bytes());
            let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
            server.step(
                format!("{without_proof},p={}", B64.encode(proof)).as_bytes(),
                |_| None,
            )
        };
        assert!(matches!(
            final_with(&|c, n| format!("{c}{n}")),
            Ok(Step::Success { .. })
        ));
        assert!(matches!(
            final_with(&|_, n| n.to_string()),
            Ok(Step::Success { .. })
        ));
        assert!(final_with(&|_, n| format!("XXXXXXXXXXXX{n}")).is_err());
        assert!(final_with(&|c, _| c.to_string()).is_err());
    }

    #[test]
    fn plain_and_names() {
        let m = Mechanism::Sha256;
        let stored = Credential::new(m, "pw", MIN_ITERATIONS);
        let lookup = |u: &str, mech: Mechanism| (u == "a,b=c" && mech == m).then(|| stored.clone());
        assert_eq!(verify_plain(b"\0a,b=c\0pw", lookup).unwrap(), "a,b=c");
        assert!(verify_plain(b"\0a,b=c\0nope", lookup).is_err());
        assert!(verify_plain(b"a,b=c\0pw", lookup).is_err());
        assert_eq!(decode_saslname(&encode_saslname("a,b=c")).unwrap(), "a,b=c");
        assert!(decode_saslname("a=2").is_err());
        assert!(parse_client_first("p=tls-unique,,n=a,r=x").is_err());
        assert!(parse_client_first("n,,n=a,r=x,tokenauth=true").is_err());
    }
}
