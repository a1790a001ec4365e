//! The security APIs at every advertised version, on a SASL_PLAINTEXT listener with the
//! authorizer on: a SCRAM login per SaslAuthenticate version (re-authentication on the same
//! connection after the first), then the ACL, SCRAM-user and quota APIs as the bootstrap super
//! user, each answering without error.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_auth::scram::ClientExchange;
use strom_auth::Mechanism;

use crate::common::wire::Conn;

pub const ORDER: [ApiKey; 9] = [
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
    ApiKey::CreateAcls,
    ApiKey::DescribeAcls,
    ApiKey::DeleteAcls,
    ApiKey::AlterUserScramCredentials,
    ApiKey::DescribeUserScramCredentials,
    ApiKey::AlterClientQuotas,
    ApiKey::DescribeClientQuotas,
];

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn handshake(conn: &mut Conn, v: i16) -> i16 {
    match conn.request(
        ApiKey::SaslHandshake,
        v,
        &SaslHandshakeRequest::default().with_mechanism(s("SCRAM-SHA-256")),
    ) {
        ResponseKind::SaslHandshake(r) => r.error_code,
        r => panic!("{r:?}"),
    }
}

/// A whole SCRAM-SHA-256 login as `user`, SaslAuthenticate at version `v`.
pub fn login(conn: &mut Conn, user: &str, password: &str, v: i16) -> Vec<i16> {
    let mut codes = vec![handshake(conn, 1)];
    let (mut exchange, first) = ClientExchange::start(Mechanism::Sha256, user, password);
    let mut authenticate = |bytes: Vec<u8>| match conn.request(
        ApiKey::SaslAuthenticate,
        v,
        &SaslAuthenticateRequest::default().with_auth_bytes(bytes.into()),
    ) {
        ResponseKind::SaslAuthenticate(r) => (r.error_code, r.auth_bytes.to_vec()),
        r => panic!("{r:?}"),
    };
    let (code, challenge) = authenticate(first);
    codes.push(code);
    if code != 0 {
        return codes;
    }
    let last = exchange.respond(&challenge).expect("server-first");
    let (code, verdict) = authenticate(last);
    codes.push(code);
    if code == 0 {
        exchange.finish(&verdict).expect("the broker's signature");
    }
    codes
}

pub fn exchange(conn: &mut Conn, api: ApiKey, v: i16, admin: (&str, &str)) -> Vec<i16> {
    let principal = "User:conformance";
    match api {
        // v0 would be followed by unframed tokens, which Strom refuses: it answers
        // ILLEGAL_SASL_STATE (34) and the connection stays usable.
        ApiKey::SaslHandshake if v == 0 => {
            assert_eq!(handshake(conn, 0), 34, "SaslHandshake v0");
            vec![0]
        }
        ApiKey::SaslHandshake => login(conn, admin.0, admin.1, 2),
        ApiKey::SaslAuthenticate => login(conn, admin.0, admin.1, v),
        ApiKey::CreateAcls => {
            let c = create_acls_request::AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(s(&format!("conf-v{v}")))
                .with_resource_pattern_type(3)
                .with_principal(s(principal))
                .with_host(s("*"))
                .with_operation(3)
                .with_permission_type(3);
            match conn.request(
                api,
                v,
                &CreateAclsRequest::default().with_creations(vec![c]),
            ) {
                ResponseKind::CreateAcls(r) => r.results.iter().map(|r| r.error_code).collect(),
                r => panic!("{r:?}"),
            }
        }
        ApiKey::DescribeAcls => {
            // kafka-protocol's defaults for the nullable filters are empty strings, not null.
            let req = DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_resource_name_filter(None)
                .with_pattern_type_filter(1)
                .with_principal_filter(Some(s(principal)))
                .with_host_filter(None)
                .with_operation(1)
                .with_permission_type(1);
            match conn.request(api, v, &req) {
                ResponseKind::DescribeAcls(r) => {
                    assert_eq!(r.resources.len(), 3, "one ACL per CreateAcls version");
                    vec![r.error_code]
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::DeleteAcls => {
            let f = delete_acls_request::DeleteAclsFilter::default()
                .with_resource_type_filter(2)
                .with_resource_name_filter(Some(s(&format!("conf-v{v}"))))
                .with_pattern_type_filter(3)
                .with_principal_filter(Some(s(principal)))
                .with_host_filter(None)
                .with_operation(1)
                .with_permission_type(1);
            match conn.request(api, v, &DeleteAclsRequest::default().with_filters(vec![f])) {
                ResponseKind::DeleteAcls(r) => {
                    assert_eq!(r.filter_results[0].matching_acls.len(), 1);
                    r.filter_results.iter().map(|f| f.error_code).collect()
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::AlterUserScramCredentials => {
            let u = alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                .with_name(s("conformance"))
                .with_mechanism(1)
                .with_iterations(4096)
                .with_salt(vec![7u8; 16].into())
                .with_salted_password(vec![9u8; 32].into());
            let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![u]);
            match conn.request(api, v, &req) {
                ResponseKind::AlterUserScramCredentials(r) => {
                    r.results.iter().map(|r| r.error_code).collect()
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::DescribeUserScramCredentials => {
            match conn.request(api, v, &DescribeUserScramCredentialsRequest::default()) {
                ResponseKind::DescribeUserScramCredentials(r) => {
                    assert!(r.results.iter().any(|u| u.user.as_str() == "conformance"));
                    let mut codes = vec![r.error_code];
                    codes.extend(r.results.iter().map(|u| u.error_code));
                    codes
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::AlterClientQuotas => {
            let e = alter_client_quotas_request::EntryData::default()
                .with_entity(vec![alter_client_quotas_request::EntityData::default()
                    .with_entity_type(s("client-id"))
                    .with_entity_name(Some(s(&format!("conf-v{v}"))))])
                .with_ops(vec![alter_client_quotas_request::OpData::default()
                    .with_key(s("producer_byte_rate"))
                    .with_value(1e9)]);
            let req = AlterClientQuotasRequest::default().with_entries(vec![e]);
            match conn.request(api, v, &req) {
                ResponseKind::AlterClientQuotas(r) => {
                    r.entries.iter().map(|e| e.error_code).collect()
                }
                r => panic!("{r:?}"),
            }
        }
        ApiKey::DescribeClientQuotas => {
            match conn.request(api, v, &DescribeClientQuotasRequest::default()) {
                ResponseKind::DescribeClientQuotas(r) => {
                    assert_eq!(
                        r.entries.map_or(0, |e| e.len()),
                        2,
                        "one per AlterClientQuotas version"
                    );
                    vec![r.error_code]
                }
                r => panic!("{r:?}"),
            }
        }
        other => panic!("not a security API: {other:?}"),
    }
}
