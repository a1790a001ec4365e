//! ACLs (CreateAcls, DescribeAcls, DeleteAcls), SCRAM users (DescribeUserScramCredentials,
//! AlterUserScramCredentials) and client quotas (DescribeClientQuotas, AlterClientQuotas):
//! Kafka's admin APIs over the replicated security state. Who may call them is checked in
//! [`crate::authz`].

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_auth::scram::{self, Credential, Mechanism};
use strom_auth::state::{normalize_entity, QuotaEntity, QuotaValue, QUOTA_KEYS};
use strom_auth::{
    Acl, AclFilter, Command, Operation, PatternFilter, PatternType, Permission, ResourceType,
};

use super::{str_bytes, Reply};
use crate::errors::code;
use crate::Context;

fn later(fut: impl std::future::Future<Output = ResponseKind> + Send + 'static) -> Reply {
    Reply::Later(Box::pin(async move { Some(fut.await) }))
}

fn msg(s: impl Into<String>) -> Option<StrBytes> {
    Some(str_bytes(s))
}

/// Commits `cmds` in order, stopping at the first failure (as its Kafka code and message).
async fn propose_all(
    ctx: &Context,
    cmds: impl IntoIterator<Item = Command>,
) -> Result<(), (i16, String)> {
    for cmd in cmds {
        ctx.security
            .propose(cmd)
            .await
            .map_err(|e| (code(&e), e.to_string()))?;
    }
    Ok(())
}

const DISABLED: &str = "No Authorizer is configured on the broker (authorizer = false).";

// ---- ACLs ----

fn resource_type(code: i8) -> Result<ResourceType, String> {
    ResourceType::from_code(code).ok_or_else(|| format!("invalid resource type {code}"))
}

fn acl_of(c: &create_acls_request::AclCreation) -> Result<Acl, String> {
    let pattern_type = match c.resource_pattern_type {
        3 => PatternType::Literal,
        4 => PatternType::Prefixed,
        p => return Err(format!("invalid pattern type {p} (LITERAL or PREFIXED)")),
    };
    let acl = Acl {
        resource_type: resource_type(c.resource_type)?,
        resource_name: c.resource_name.to_string(),
        pattern_type,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: Operation::from_code(c.operation)
            .ok_or_else(|| format!("invalid operation {}", c.operation))?,
        permission: match c.permission_type {
            2 => Permission::Deny,
            3 => Permission::Allow,
            p => return Err(format!("invalid permission type {p}")),
        },
    };
    acl.validate()?;
    Ok(acl)
}

/// A DescribeAcls or DeleteAcls filter (the two requests share its fields).
#[allow(clippy::too_many_arguments)]
fn filter_of(
    resource_type: i8,
    name: &Option<StrBytes>,
    pattern: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, String> {
    Ok(AclFilter {
        resource_type: match resource_type {
            1 => None,
            t => Some(self::resource_type(t)?),
        },
        resource_name: name.as_ref().map(|n| n.to_string()),
        pattern: match pattern {
            1 => PatternFilter::Any,
            2 => PatternFilter::Match,
            3 => PatternFilter::Exactly(PatternType::Literal),
            4 => PatternFilter::Exactly(PatternType::Prefixed),
            p => return Err(format!("invalid pattern type filter {p}")),
        },
        principal: principal.as_ref().map(|p| p.to_string()),
        host: host.as_ref().map(|h| h.to_string()),
        operation: match operation {
            1 => None,
            o => Some(Operation::from_code(o).ok_or_else(|| format!("invalid operation {o}"))?),
        },
        permission: match permission {
            1 => None,
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            p => return Err(format!("invalid permission type {p}")),
        },
    })
}

pub fn create_acls(ctx: &Arc<Context>, r: CreateAclsRequest) -> Reply {
    let result = |error: i16, message: Option<String>| {
        create_acls_response::AclCreationResult::default()
            .with_error_code(error)
            .with_error_message(message.map(str_bytes))
    };
    if !ctx.security_config.authorizer {
        let disabled = ResponseError::SecurityDisabled.code();
        return Reply::Now(Box::new(
            CreateAclsResponse::default()
                .with_results(
                    r.creations
                        .iter()
                        .map(|_| result(disabled, Some(DISABLED.into())))
                        .collect(),
                )
                .into(),
        ));
    }
    let parsed: Vec<Result<Acl, String>> = r.creations.iter().map(acl_of).collect();
    let acls: Vec<Acl> = parsed
        .iter()
        .filter_map(|a| a.as_ref().ok().cloned())
        .collect();
    let ctx = Arc::clone(ctx);
    later(async move {
        let cmds = (!acls.is_empty()).then_some(Command::CreateAcls(acls));
        let stored = propose_all(&ctx, cmds).await;
        let results = parsed
            .into_iter()
            .map(|a| match (a, &stored) {
                (Err(e), _) => result(ResponseError::InvalidRequest.code(), Some(e)),
                (Ok(_), Err((c, m))) => result(*c, Some(m.clone())),
                (Ok(_), Ok(())) => result(0, None),
            })
            .collect();
        CreateAclsResponse::default().with_results(results).into()
    })
}

pub fn describe_acls(ctx: &Arc<Context>, r: DescribeAclsRequest) -> ResponseKind {
    let error = |code: i16, message: String| {
        DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(msg(message))
            .into()
    };
    if !ctx.security_config.authorizer {
        return error(ResponseError::SecurityDisabled.code(), DISABLED.into());
    }
    let filter = match filter_of(
        r.resource_type_filter,
        &r.resource_name_filter,
        r.pattern_type_filter,
        &r.principal_filter,
        &r.host_filter,
        r.operation,
        r.permission_type,
    ) {
        Ok(f) => f,
        Err(e) => return error(ResponseError::InvalidRequest.code(), e),
    };
    let mut resources: BTreeMap<(ResourceType, String, PatternType), Vec<Acl>> = BTreeMap::new();
    ctx.security.read(|s| {
        for acl in s.matching_acls(&filter) {
            resources
                .entry((
                    acl.resource_type,
                    acl.resource_name.clone(),
                    acl.pattern_type,
                ))
                .or_default()
                .push(acl.clone());
        }
    });
    DescribeAclsResponse::default()
        .with_resources(
            resources
                .into_iter()
                .map(|((t, name, p), acls)| {
                    describe_acls_response::DescribeAclsResource::default()
                        .with_resource_type(t.code())
                        .with_resource_name(str_bytes(name))
                        .with_pattern_type(p.code())
                        .with_acls(
                            acls.into_iter()
                                .map(|a| {
                                    describe_acls_response::AclDescription::default()
                                        .with_principal(str_bytes(a.principal))
                                        .with_host(str_bytes(a.host))
                                        .with_operation(a.operation.code())
                                        .with_permission_type(a.permission.code())
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
        .into()
}

pub fn delete_acls(ctx: &Arc<Context>, r: DeleteAclsRequest) -> Reply {
    use delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
    let failed = |code: i16, message: &str| {
        DeleteAclsFilterResult::default()
            .with_error_code(code)
            .with_error_message(msg(message))
    };
    if !ctx.security_config.authorizer {
        let disabled = ResponseError::SecurityDisabled.code();
        return Reply::Now(Box::new(
            DeleteAclsResponse::default()
                .with_filter_results(
                    r.filters
                        .iter()
                        .map(|_| failed(disabled, DISABLED))
                        .collect(),
                )
                .into(),
        ));
    }
    // Each filter's matches, resolved now; the log records exactly the bindings removed.
    let matches: Vec<Result<Vec<Acl>, String>> = r
        .filters
        .iter()
        .map(|f| {
            let filter = filter_of(
                f.resource_type_filter,
                &f.resource_name_filter,
                f.pattern_type_filter,
                &f.principal_filter,
                &f.host_filter,
                f.operation,
                f.permission_type,
            )?;
            Ok(ctx
                .security
                .read(|s| s.matching_acls(&filter).cloned().collect()))
        })
        .collect();
    let mut all: Vec<Acl> = matches.iter().flatten().flatten().cloned().collect();
    all.sort();
    all.dedup();
    let ctx = Arc::clone(ctx);
    later(async move {
        let cmds = (!all.is_empty()).then_some(Command::DeleteAcls(all));
        let stored = propose_all(&ctx, cmds).await;
        let results = matches
            .into_iter()
            .map(|m| match (m, &stored) {
                (Err(e), _) => failed(ResponseError::InvalidRequest.code(), &e),
                (Ok(_), Err((c, m))) => failed(*c, m),
                (Ok(acls), Ok(())) => DeleteAclsFilterResult::default().with_matching_acls(
                    acls.into_iter()
                        .map(|a| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(a.resource_type.code())
                                .with_resource_name(str_bytes(a.resource_name))
                                .with_pattern_type(a.pattern_type.code())
                                .with_principal(str_bytes(a.principal))
                                .with_host(str_bytes(a.host))
                                .with_operation(a.operation.code())
                                .with_permission_type(a.permission.code())
                        })
                        .collect(),
                ),
            })
            .collect();
        DeleteAclsResponse::default()
            .with_filter_results(results)
            .into()
    })
}

// ---- SCRAM users ----

pub fn describe_users(ctx: &Arc<Context>, r: DescribeUserScramCredentialsRequest) -> ResponseKind {
    use describe_user_scram_credentials_response::{
        CredentialInfo, DescribeUserScramCredentialsResult as Res,
    };
    let info = |creds: &BTreeMap<Mechanism, Credential>| -> Vec<CredentialInfo> {
        creds
            .iter()
            .map(|(m, c)| {
                CredentialInfo::default()
                    .with_mechanism(m.code())
                    .with_iterations(i32::try_from(c.iterations).unwrap_or(i32::MAX))
            })
            .collect()
    };
    // Null or empty: every user.
    let results = ctx
        .security
        .read(|s| match r.users.as_ref().filter(|u| !u.is_empty()) {
            None => s
                .users
                .iter()
                .map(|(u, c)| {
                    Res::default()
                        .with_user(str_bytes(u.clone()))
                        .with_credential_infos(info(c))
                })
                .collect::<Vec<_>>(),
            Some(users) => {
                let mut seen = std::collections::BTreeSet::new();
                users
                    .iter()
                    .map(|u| {
                        let name = u.name.to_string();
                        let res = Res::default().with_user(u.name.clone());
                        if !seen.insert(name.clone()) {
                            return res
                                .with_error_code(ResponseError::DuplicateResource.code())
                                .with_error_message(msg(format!(
                                    "Cannot describe user {name} twice"
                                )));
                        }
                        match s.users.get(&name) {
                            Some(c) => res.with_credential_infos(info(c)),
                            None => res
                                .with_error_code(ResponseError::ResourceNotFound.code())
                                .with_error_message(msg(format!(
                                "Attempt to describe a user credential that does not exist: {name}"
                            ))),
                        }
                    })
                    .collect()
            }
        });
    DescribeUserScramCredentialsResponse::default()
        .with_results(results)
        .into()
}

pub fn alter_users(ctx: &Arc<Context>, r: AlterUserScramCredentialsRequest) -> Reply {
    use alter_user_scram_credentials_response::AlterUserScramCredentialsResult as Res;
    // Per user: the commands, or why the user's alterations are all refused (Kafka's rules).
    let mut per_user: BTreeMap<String, Result<Vec<Command>, (i16, String)>> = BTreeMap::new();
    let mut seen: std::collections::BTreeSet<(String, i8)> = Default::default();
    let unacceptable = ResponseError::UnacceptableCredential.code();
    let mut add = |user: String, mechanism: i8, cmd: Result<Command, (i16, String)>| {
        let entry = per_user.entry(user.clone()).or_insert(Ok(Vec::new()));
        if !seen.insert((user.clone(), mechanism)) {
            *entry = Err((
                ResponseError::DuplicateResource.code(),
                format!("A user credential cannot be altered twice in the same request: {user}"),
            ));
            return;
        }
        match (entry.as_mut(), cmd) {
            (Ok(cmds), Ok(cmd)) => cmds.push(cmd),
            (Ok(_), Err(e)) => *entry = Err(e),
            (Err(_), _) => {}
        }
    };
    let mechanism = |code: i8| {
        Mechanism::from_code(code).ok_or((
            ResponseError::UnsupportedSaslMechanism.code(),
            format!("Unknown SCRAM mechanism {code}"),
        ))
    };
    for d in &r.deletions {
        let user = d.name.to_string();
        let cmd = mechanism(d.mechanism).and_then(|m| {
            if user.is_empty() {
                return Err((unacceptable, "Username must not be empty".into()));
            }
            if ctx.security.read(|s| s.credential(&user, m).is_none()) {
                return Err((
                    ResponseError::ResourceNotFound.code(),
                    format!("Attempt to delete a user credential that does not exist: {user}"),
                ));
            }
            Ok(Command::DeleteCredential {
                user: user.clone(),
                mechanism: m,
            })
        });
        add(user, d.mechanism, cmd);
    }
    for u in &r.upsertions {
        let user = u.name.to_string();
        let cmd = mechanism(u.mechanism).and_then(|m| {
            if user.is_empty() {
                return Err((unacceptable, "Username must not be empty".into()));
            }
            let iterations = u32::try_from(u.iterations).unwrap_or(0);
            if !(scram::MIN_ITERATIONS..=scram::MAX_ITERATIONS).contains(&iterations) {
                return Err((
                    unacceptable,
                    format!(
                        "Iterations must be between {} and {}",
                        scram::MIN_ITERATIONS,
                        scram::MAX_ITERATIONS
                    ),
                ));
            }
            if u.salt.is_empty() || u.salt.len() > 1024 || u.salted_password.len() != m.hash_len() {
                return Err((
                    unacceptable,
                    "Salt or salted password has an invalid length".into(),
                ));
            }
            Ok(Command::UpsertCredential {
                user: user.clone(),
                mechanism: m,
                credential: Credential::from_salted(
                    m,
                    u.salt.to_vec(),
                    iterations,
                    &u.salted_password,
                ),
            })
        });
        add(user, u.mechanism, cmd);
    }
    let ctx = Arc::clone(ctx);
    later(async move {
        let mut results = Vec::with_capacity(per_user.len());
        for (user, cmds) in per_user {
            let outcome = match cmds {
                Err(e) => Err(e),
                Ok(cmds) => propose_all(&ctx, cmds).await,
            };
            let res = Res::default().with_user(str_bytes(user));
            results.push(match outcome {
                Ok(()) => res,
                Err((c, m)) => res.with_error_code(c).with_error_message(msg(m)),
            });
        }
        AlterUserScramCredentialsResponse::default()
            .with_results(results)
            .into()
    })
}

// ---- client quotas ----

const ENTITY_TYPES: [&str; 2] = ["user", "client-id"];

pub fn describe_quotas(ctx: &Arc<Context>, r: DescribeClientQuotasRequest) -> ResponseKind {
    use describe_client_quotas_response::{EntityData, EntryData, ValueData};
    let error = |m: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(msg(m))
            .into()
    };
    for c in &r.components {
        if !ENTITY_TYPES.contains(&c.entity_type.as_str()) {
            return error(format!(
                "unsupported quota entity type {}",
                c.entity_type.as_str()
            ));
        }
    }
    let matches = |entity: &QuotaEntity| {
        let component_ok = r.components.iter().all(|c| {
            let part = entity.iter().find(|(t, _)| t == c.entity_type.as_str());
            match (c.match_type, part) {
                // 0: exactly this name (null: the default entity).
                (0, Some((_, name))) => name.as_deref() == c._match.as_ref().map(|m| m.as_str()),
                (1, Some((_, None))) => true,
                (2, Some(_)) => true,
                _ => false,
            }
        });
        let strict_ok = !r.strict
            || entity
                .iter()
                .all(|(t, _)| r.components.iter().any(|c| c.entity_type.as_str() == t));
        component_ok && strict_ok
    };
    let entries = ctx.security.read(|s| {
        s.quotas
            .iter()
            .filter(|(e, _)| matches(e))
            .map(|(e, values)| {
                EntryData::default()
                    .with_entity(
                        e.iter()
                            .map(|(t, n)| {
                                EntityData::default()
                                    .with_entity_type(str_bytes(t.clone()))
                                    .with_entity_name(n.clone().map(str_bytes))
                            })
                            .collect(),
                    )
                    .with_values(
                        values
                            .iter()
                            .map(|(k, v)| {
                                ValueData::default()
                                    .with_key(str_bytes(k.clone()))
                                    .with_value(v.0)
                            })
                            .collect(),
                    )
            })
            .collect()
    });
    DescribeClientQuotasResponse::default()
        .with_entries(Some(entries))
        .into()
}

pub fn alter_quotas(ctx: &Arc<Context>, r: AlterClientQuotasRequest) -> Reply {
    use alter_client_quotas_response::{EntityData, EntryData};
    let mut planned = Vec::with_capacity(r.entries.len());
    for e in r.entries {
        let response_entity: Vec<EntityData> = e
            .entity
            .iter()
            .map(|x| {
                EntityData::default()
                    .with_entity_type(x.entity_type.clone())
                    .with_entity_name(x.entity_name.clone())
            })
            .collect();
        let entity: QuotaEntity = normalize_entity(
            e.entity
                .iter()
                .map(|x| {
                    (
                        x.entity_type.to_string(),
                        x.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect(),
        );
        let check = || -> Result<Vec<Command>, String> {
            if entity.is_empty()
                || entity
                    .iter()
                    .any(|(t, _)| !ENTITY_TYPES.contains(&t.as_str()))
            {
                return Err("a quota entity is user and/or client-id".into());
            }
            if entity.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err("an entity type appears twice".into());
            }
            e.ops
                .iter()
                .map(|op| {
                    let key = op.key.to_string();
                    if !QUOTA_KEYS.contains(&key.as_str()) {
                        return Err(format!(
                            "unknown quota {key} (one of {})",
                            QUOTA_KEYS.join(", ")
                        ));
                    }
                    let valid = op.value.is_finite() && op.value > 0.0;
                    if !op.remove && !valid {
                        return Err(format!("quota {key} must be a positive number"));
                    }
                    Ok(Command::SetQuota {
                        entity: entity.clone(),
                        key,
                        value: (!op.remove).then_some(QuotaValue(op.value)),
                    })
                })
                .collect()
        };
        planned.push((response_entity, check()));
    }
    let ctx = Arc::clone(ctx);
    let validate_only = r.validate_only;
    later(async move {
        let mut entries = Vec::with_capacity(planned.len());
        for (entity, cmds) in planned {
            let outcome = match cmds {
                Err(m) => Err((ResponseError::InvalidRequest.code(), m)),
                Ok(_) if validate_only => Ok(()),
                Ok(cmds) => propose_all(&ctx, cmds).await,
            };
            let entry = EntryData::default().with_entity(entity);
            entries.push(match outcome {
                Ok(()) => entry,
                Err((c, m)) => entry.with_error_code(c).with_error_message(msg(m)),
            });
        }
        AlterClientQuotasResponse::default()
            .with_entries(entries)
            .into()
    })
}
