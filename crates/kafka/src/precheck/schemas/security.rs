//! The security APIs' request schemas: SASL, ACLs, client quotas and SCRAM credentials (see the
//! parent module for what a table is).

use super::*;

/// `FLOAT64`: eight bytes on the wire, walked like an `INT64`.
const F64: Ty = I64;

// ---- 17 SaslHandshake (kafka-protocol 0.18 knows v0..=v1; Strom checks v0..=v1) ----
//
// v0 is v1 on the wire; a v0 client sends raw SASL tokens afterwards instead of SaslAuthenticate
// requests, which Strom refuses (the handshake answers ILLEGAL_SASL_STATE). No version is
// flexible.

pub(super) static SASL_HANDSHAKE_REQUEST: StructDef = StructDef {
    name: "SaslHandshakeRequest",
    fields: &[
        field("mechanism", STR, 0, MAX),
    ],
    tagged: &[],
};

// ---- 29 DescribeAcls (kafka-protocol 0.18 knows v1..=v3; Strom checks v1..=v3) ----

pub(super) static DESCRIBE_ACLS_REQUEST: StructDef = StructDef {
    name: "DescribeAclsRequest",
    fields: &[
        field("resource_type_filter", I8, 1, MAX),
        field("resource_name_filter", NSTR, 1, MAX),
        field("pattern_type_filter", I8, 1, MAX),
        field("principal_filter", NSTR, 1, MAX),
        field("host_filter", NSTR, 1, MAX),
        field("operation", I8, 1, MAX),
        field("permission_type", I8, 1, MAX),
    ],
    tagged: &[],
};

// ---- 30 CreateAcls (kafka-protocol 0.18 knows v1..=v3; Strom checks v1..=v3) ----

pub(super) static CREATE_ACLS_REQUEST: StructDef = StructDef {
    name: "CreateAclsRequest",
    fields: &[
        field("creations", structs(&ACL_CREATION), 1, MAX),
    ],
    tagged: &[],
};

pub(super) static ACL_CREATION: StructDef = StructDef {
    name: "AclCreation",
    fields: &[
        field("resource_type", I8, 1, MAX),
        field("resource_name", STR, 1, MAX),
        field("resource_pattern_type", I8, 1, MAX),
        field("principal", STR, 1, MAX),
        field("host", STR, 1, MAX),
        field("operation", I8, 1, MAX),
        field("permission_type", I8, 1, MAX),
    ],
    tagged: &[],
};

// ---- 31 DeleteAcls (kafka-protocol 0.18 knows v1..=v3; Strom checks v1..=v3) ----

pub(super) static DELETE_ACLS_REQUEST: StructDef = StructDef {
    name: "DeleteAclsRequest",
    fields: &[
        field("filters", structs(&DELETE_ACLS_FILTER), 1, MAX),
    ],
    tagged: &[],
};

pub(super) static DELETE_ACLS_FILTER: StructDef = StructDef {
    name: "DeleteAclsFilter",
    fields: &[
        field("resource_type_filter", I8, 1, MAX),
        field("resource_name_filter", NSTR, 1, MAX),
        field("pattern_type_filter", I8, 1, MAX),
        field("principal_filter", NSTR, 1, MAX),
        field("host_filter", NSTR, 1, MAX),
        field("operation", I8, 1, MAX),
        field("permission_type", I8, 1, MAX),
    ],
    tagged: &[],
};

// ---- 36 SaslAuthenticate (kafka-protocol 0.18 knows v0..=v2; Strom checks v0..=v2) ----

pub(super) static SASL_AUTHENTICATE_REQUEST: StructDef = StructDef {
    name: "SaslAuthenticateRequest",
    fields: &[
        field("auth_bytes", BYTES, 0, MAX),
    ],
    tagged: &[],
};

// ---- 48 DescribeClientQuotas (kafka-protocol 0.18 knows v0..=v1; Strom checks v0..=v1) ----

pub(super) static DESCRIBE_CLIENT_QUOTAS_REQUEST: StructDef = StructDef {
    name: "DescribeClientQuotasRequest",
    fields: &[
        field("components", structs(&COMPONENT_DATA), 0, MAX),
        field("strict", BOOL, 0, MAX),
    ],
    tagged: &[],
};

pub(super) static COMPONENT_DATA: StructDef = StructDef {
    name: "ComponentData",
    fields: &[
        field("entity_type", STR, 0, MAX),
        field("match_type", I8, 0, MAX),
        field("match", NSTR, 0, MAX),
    ],
    tagged: &[],
};

// ---- 49 AlterClientQuotas (kafka-protocol 0.18 knows v0..=v1; Strom checks v0..=v1) ----

pub(super) static ALTER_CLIENT_QUOTAS_REQUEST: StructDef = StructDef {
    name: "AlterClientQuotasRequest",
    fields: &[
        field("entries", structs(&ENTRY_DATA), 0, MAX),
        field("validate_only", BOOL, 0, MAX),
    ],
    tagged: &[],
};

pub(super) static ENTRY_DATA: StructDef = StructDef {
    name: "EntryData",
    fields: &[
        field("entity", structs(&ENTITY_DATA), 0, MAX),
        field("ops", structs(&OP_DATA), 0, MAX),
    ],
    tagged: &[],
};

pub(super) static ENTITY_DATA: StructDef = StructDef {
    name: "EntityData",
    fields: &[
        field("entity_type", STR, 0, MAX),
        field("entity_name", NSTR, 0, MAX),
    ],
    tagged: &[],
};

pub(super) static OP_DATA: StructDef = StructDef {
    name: "OpData",
    fields: &[
        field("key", STR, 0, MAX),
        field("value", F64, 0, MAX),
        field("remove", BOOL, 0, MAX),
    ],
    tagged: &[],
};

// ---- 50 DescribeUserScramCredentials (kafka-protocol 0.18 knows v0..=v0; Strom checks v0..=v0) ----

pub(super) static DESCRIBE_USER_SCRAM_CREDENTIALS_REQUEST: StructDef = StructDef {
    name: "DescribeUserScramCredentialsRequest",
    fields: &[
        field("users", nullable_structs(&USER_NAME), 0, MAX),
    ],
    tagged: &[],
};

pub(super) static USER_NAME: StructDef = StructDef {
    name: "UserName",
    fields: &[
        field("name", STR, 0, MAX),
    ],
    tagged: &[],
};

// ---- 51 AlterUserScramCredentials (kafka-protocol 0.18 knows v0..=v0; Strom checks v0..=v0) ----

pub(super) static ALTER_USER_SCRAM_CREDENTIALS_REQUEST: StructDef = StructDef {
    name: "AlterUserScramCredentialsRequest",
    fields: &[
        field("deletions", structs(&SCRAM_CREDENTIAL_DELETION), 0, MAX),
        field("upsertions", structs(&SCRAM_CREDENTIAL_UPSERTION), 0, MAX),
    ],
    tagged: &[],
};

pub(super) static SCRAM_CREDENTIAL_DELETION: StructDef = StructDef {
    name: "ScramCredentialDeletion",
    fields: &[
        field("name", STR, 0, MAX),
        field("mechanism", I8, 0, MAX),
    ],
    tagged: &[],
};

pub(super) static SCRAM_CREDENTIAL_UPSERTION: StructDef = StructDef {
    name: "ScramCredentialUpsertion",
    fields: &[
        field("name", STR, 0, MAX),
        field("mechanism", I8, 0, MAX),
        field("iterations", I32, 0, MAX),
        field("salt", BYTES, 0, MAX),
        field("salted_password", BYTES, 0, MAX),
    ],
    tagged: &[],
};
