//! Kafka Connect's REST API, as its clients and tools call it:
//! `GET/POST /connectors`, `GET/PUT/DELETE /connectors/{name}`, `GET/PUT
//! /connectors/{name}/config`, `GET /connectors/{name}/status`, `PUT
//! /connectors/{name}/pause|resume|stop`, `POST /connectors/{name}/restart`, `GET
//! /connectors/{name}/tasks`, `GET/PATCH/DELETE /connectors/{name}/offsets` (KIP-875), `GET
//! /connector-plugins`, `PUT /connector-plugins/{class}/config/validate`. Errors are
//! `{"error_code", "message"}` with Connect's status codes.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use strom_http::ApiError;

use crate::plugin::{Config, Record};
use crate::store::{self, Target};
use crate::worker::{self, connector_key, task_key};
use crate::{find_plugin, Connect, Runtime};

type Reply = Result<(StatusCode, Json<Value>), ApiError>;

pub fn routes(connect: Arc<Connect>) -> Router {
    Router::new()
        .route("/connectors", get(list).post(create))
        .route(
            "/connectors/{name}",
            get(info).put(put_config).delete(delete),
        )
        .route("/connectors/{name}/config", get(config).put(put_config))
        .route("/connectors/{name}/status", get(status))
        .route("/connectors/{name}/tasks", get(tasks))
        .route("/connectors/{name}/pause", put(pause))
        .route("/connectors/{name}/resume", put(resume))
        .route("/connectors/{name}/stop", put(stop))
        .route("/connectors/{name}/restart", post(restart))
        .route("/connectors/{name}/tasks/{task}/restart", post(restart))
        .route(
            "/connectors/{name}/offsets",
            get(offsets).patch(alter_offsets).delete(reset_offsets),
        )
        .route("/connector-plugins", get(plugins))
        .route("/connector-plugins/{class}/config/validate", put(validate))
        .with_state(connect)
}

/// The runtime for a read: none yet means no connector exists (the first write creates its
/// topics).
fn runtime(connect: &Connect) -> Result<&Arc<Runtime>, ApiError> {
    connect
        .runtime()
        .ok_or_else(|| ApiError::not_found("Connector not found: no connector has been created"))
}

/// The runtime for a write, creating its topics on the first one.
async fn runtime_for_write(connect: &Connect) -> Result<&Arc<Runtime>, ApiError> {
    connect.open(true).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The connector runtime cannot start: {e}"),
        )
    })
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// A JSON request body, or Connect's error for a missing or malformed one.
fn json_body(body: Result<Json<Value>, JsonRejection>) -> Result<Value, ApiError> {
    body.map(|Json(v)| v).map_err(|e| {
        ApiError::bad_request(format!("Request body is not valid JSON: {}", e.body_text()))
    })
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Connector {name} not found"))
}

fn connector(rt: &Runtime, name: &str) -> Result<store::Connector, ApiError> {
    rt.store
        .view(|v| v.connectors.get(name).cloned())
        .ok_or_else(|| not_found(name))
}

fn ok(v: Value) -> Reply {
    Ok((StatusCode::OK, Json(v)))
}

fn info_json(name: &str, c: &store::Connector) -> Value {
    let tasks = if c.target == Target::Stopped {
        json!([])
    } else {
        json!([{"connector": name, "task": 0}])
    };
    json!({"name": name, "config": c.config, "tasks": tasks, "type": "source"})
}

fn status_json(rt: &Runtime, name: &str, c: &store::Connector) -> Value {
    rt.store.view(|v| {
        let entry = |s: Option<&store::Status>| match s {
            Some(s) => {
                let mut m = json!({"state": s.state, "worker_id": s.worker_id});
                if let Some(t) = &s.trace {
                    m["trace"] = json!(t);
                }
                if let Some(p) = &s.progress {
                    m["progress"] = p.clone();
                }
                m
            }
            None => json!({"state": "UNASSIGNED", "worker_id": ""}),
        };
        let connector = entry(v.statuses.get(&connector_key(name)));
        let tasks = if c.target == Target::Stopped {
            json!([])
        } else {
            let mut t = entry(v.statuses.get(&task_key(name)));
            t["id"] = json!(0);
            json!([t])
        };
        json!({"name": name, "connector": connector, "tasks": tasks, "type": "source"})
    })
}

async fn list(State(connect): State<Arc<Connect>>, RawQuery(query): RawQuery) -> Reply {
    let Some(rt) = connect.runtime() else {
        return ok(if query.unwrap_or_default().contains("expand=") {
            json!({})
        } else {
            json!([])
        });
    };
    let expand: Vec<String> = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.strip_prefix("expand="))
        .map(str::to_string)
        .collect();
    let all = rt.store.view(|v| v.connectors.clone());
    if expand.is_empty() {
        return ok(json!(all.keys().collect::<Vec<_>>()));
    }
    let mut out = Map::new();
    for (name, c) in &all {
        let mut e = Map::new();
        if expand.iter().any(|x| x == "status") {
            e.insert("status".into(), status_json(rt, name, c));
        }
        if expand.iter().any(|x| x == "info") {
            e.insert("info".into(), info_json(name, c));
        }
        out.insert(name.clone(), Value::Object(e));
    }
    ok(Value::Object(out))
}

/// A config from a JSON object of strings (numbers and booleans are accepted as Connect does).
fn parse_config(v: &Value) -> Result<Config, ApiError> {
    let Some(obj) = v.as_object() else {
        return Err(ApiError::bad_request(
            "Connector config must be a JSON object",
        ));
    };
    obj.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
            _ => Err(ApiError::bad_request(format!(
                "Config value of '{k}' must be a string"
            ))),
        })
        .collect()
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty()
        || name.len() > 249
        || name.chars().any(|c| c.is_control() || c == '/')
    {
        return Err(ApiError::bad_request(format!(
            "Connector name '{name}' is invalid: it must be 1 to 249 characters without '/' or control characters"
        )));
    }
    Ok(())
}

/// Checks a config the way Connect does before storing it: a known class, no missing or
/// malformed property.
fn check_config(connect: &Connect, config: &Config) -> Result<(), ApiError> {
    let plugin = find_plugin(&connect.settings.plugins, config).map_err(ApiError::bad_request)?;
    let issues = plugin.validate(config);
    if issues.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = issues
        .iter()
        .map(|i| format!("{}: {}", i.name, i.message))
        .collect();
    Err(ApiError::bad_request(format!(
        "Connector configuration is invalid and contains the following {} error(s):\n{}\nYou can also find the above list of errors at the endpoint `/connector-plugins/{{connectorType}}/config/validate`",
        issues.len(),
        list.join("\n")
    )))
}

async fn create(
    State(connect): State<Arc<Connect>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Reply {
    let body = json_body(body)?;
    let name = body["name"]
        .as_str()
        .or_else(|| body["config"]["name"].as_str())
        .ok_or_else(|| ApiError::bad_request("Connector name must be given as \"name\""))?
        .to_string();
    check_name(&name)?;
    let mut config = parse_config(&body["config"])?;
    config.insert("name".into(), name.clone());
    check_config(&connect, &config)?;
    let rt = runtime_for_write(&connect).await?;
    if rt.store.view(|v| v.connectors.contains_key(&name)) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Connector {name} already exists"),
        ));
    }
    rt.store
        .put_connector(&name, &config)
        .await
        .map_err(internal)?;
    let c = connector(rt, &name)?;
    Ok((StatusCode::CREATED, Json(info_json(&name, &c))))
}

async fn info(State(connect): State<Arc<Connect>>, Path(name): Path<String>) -> Reply {
    let rt = runtime(&connect)?;
    let c = connector(rt, &name)?;
    ok(info_json(&name, &c))
}

async fn config(State(connect): State<Arc<Connect>>, Path(name): Path<String>) -> Reply {
    let rt = runtime(&connect)?;
    ok(json!(connector(rt, &name)?.config))
}

async fn put_config(
    State(connect): State<Arc<Connect>>,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Reply {
    check_name(&name)?;
    let body = json_body(body)?;
    let mut config = parse_config(&body)?;
    if let Some(other) = config.get("name").filter(|n| **n != name) {
        return Err(ApiError::bad_request(format!("Connector name configuration ({other}) doesn't match connector name in the URL ({name})")));
    }
    config.insert("name".into(), name.clone());
    check_config(&connect, &config)?;
    let rt = runtime_for_write(&connect).await?;
    let existed = rt.store.view(|v| v.connectors.contains_key(&name));
    rt.store
        .put_connector(&name, &config)
        .await
        .map_err(internal)?;
    let c = connector(rt, &name)?;
    let code = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((code, Json(info_json(&name, &c))))
}

async fn delete(State(connect): State<Arc<Connect>>, Path(name): Path<String>) -> Reply {
    let rt = runtime(&connect)?;
    connector(rt, &name)?;
    rt.store.delete_connector(&name).await.map_err(internal)?;
    Ok((StatusCode::NO_CONTENT, Json(Value::Null)))
}

async fn status(State(connect): State<Arc<Connect>>, Path(name): Path<String>) -> Reply {
    let rt = runtime(&connect)?;
    let c = connector(rt, &name)?;
    ok(status_json(rt, &name, &c))
}

async fn tasks(State(connect): State<Arc<Connect>>, Path(name): Path<String>) -> Reply {
    let rt = runtime(&connect)?;
    let c = connector(rt, &name)?;
    if c.target == Target::Stopped {
        return ok(json!([]));
    }
    ok(json!([{"id": {"connector": name, "task": 0}, "config": c.config}]))
}

async fn set_target(connect: &Connect, name: &str, target: Target) -> Reply {
    let rt = runtime(connect)?;
    connector(rt, name)?;
    rt.store.set_target(name, target).await.map_err(internal)?;
    Ok((StatusCode::ACCEPTED, Json(Value::Null)))
}

async fn pause(State(connect): State<Arc<Connect>>, Path(name): Path<String>) -> Reply {
    set_target(&connect, &name, Target::Paused).await
}

async fn resume(State(connect): State<Arc<Connect>>, Path(name): Path<String>) -> Reply {
    set_target(&connect, &name, Target::Started).await
}

async fn stop(State(connect): State<Arc<Connect>>, Path(name): Path<String>) -> Reply {
    set_target(&connect, &name, Target::Stopped).await
}

async fn restart(
    State(connect): State<Arc<Connect>>,
    Path(params): Path<Vec<(String, String)>>,
) -> Reply {
    let rt = runtime(&connect)?;
    let name = params
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    connector(rt, &name)?;
    rt.store.request_restart(&name).await.map_err(internal)?;
    Ok((StatusCode::NO_CONTENT, Json(Value::Null)))
}

async fn plugins(State(connect): State<Arc<Connect>>) -> Reply {
    let list: Vec<Value> = connect
        .settings
        .plugins
        .iter()
        .map(|p| json!({"class": p.class(), "type": "source", "version": p.version()}))
        .collect();
    ok(json!(list))
}

async fn validate(
    State(connect): State<Arc<Connect>>,
    Path(class): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Reply {
    let body = json_body(body)?;
    let mut config = parse_config(&body)?;
    config
        .entry("connector.class".into())
        .or_insert_with(|| class.clone());
    let plugin = find_plugin(&connect.settings.plugins, &config).map_err(ApiError::bad_request)?;
    let issues = plugin.validate(&config);
    let configs: Vec<Value> = plugin
        .config_defs()
        .iter()
        .map(|d| {
            let errors: Vec<&str> = issues.iter().filter(|i| i.name == d.name).map(|i| i.message.as_str()).collect();
            json!({
                "definition": {"name": d.name, "type": "STRING", "required": d.required, "default_value": d.default,
                               "importance": if d.required { "HIGH" } else { "MEDIUM" }, "documentation": d.documentation,
                               "group": "Connector", "dependents": []},
                "value": {"name": d.name, "value": config.get(d.name), "recommended_values": [], "errors": errors, "visible": true},
            })
        })
        .collect();
    ok(
        json!({"name": plugin.class(), "error_count": issues.len(), "groups": ["Connector"], "configs": configs}),
    )
}

async fn offsets(State(connect): State<Arc<Connect>>, Path(name): Path<String>) -> Reply {
    let rt = runtime(&connect)?;
    connector(rt, &name)?;
    let committed = rt.store.committed(&name).await.map_err(internal)?;
    let list: Vec<Value> = committed
        .offsets
        .into_iter()
        .map(|(k, v)| json!({"partition": k.get(1).cloned().unwrap_or(Value::Null), "offset": v}))
        .collect();
    ok(json!({"offsets": list}))
}

/// Offsets may change only while the connector is stopped (KIP-875), so no task races them.
fn require_stopped(rt: &Runtime, name: &str) -> Result<(), ApiError> {
    let c = connector(rt, name)?;
    let stopped = c.target == Target::Stopped
        && rt.store.view(|v| {
            v.statuses
                .get(&connector_key(name))
                .is_some_and(|s| s.state == "STOPPED")
        });
    if stopped {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
        )))
    }
}

async fn alter_offsets(
    State(connect): State<Arc<Connect>>,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Reply {
    let rt = runtime(&connect)?;
    require_stopped(rt, &name)?;
    let body = json_body(body)?;
    let Some(list) = body["offsets"].as_array() else {
        return Err(ApiError::bad_request(
            "Request body must be {\"offsets\": [{\"partition\": {...}, \"offset\": {...}}]}",
        ));
    };
    let mut records = Vec::with_capacity(list.len());
    for entry in list {
        let partition = entry
            .get("partition")
            .filter(|p| p.is_object())
            .ok_or_else(|| ApiError::bad_request("Each entry needs a \"partition\" object"))?;
        let offset = entry.get("offset").filter(|o| o.is_object() || o.is_null());
        let offset = offset.ok_or_else(|| {
            ApiError::bad_request("Each entry needs an \"offset\" object or null")
        })?;
        records.push(offset_record(
            store::OFFSETS_TOPIC,
            json!([name, partition]),
            (!offset.is_null()).then(|| offset.clone()),
        ));
    }
    worker::write_as(rt, &name, records)
        .await
        .map_err(internal)?;
    ok(json!({"message": "The offsets for this connector have been altered successfully"}))
}

async fn reset_offsets(State(connect): State<Arc<Connect>>, Path(name): Path<String>) -> Reply {
    let rt = runtime(&connect)?;
    require_stopped(rt, &name)?;
    let committed = rt.store.committed(&name).await.map_err(internal)?;
    // The durable state (a schema history) belongs to the offsets: without them the
    // connector starts over and rebuilds it.
    let records = committed
        .offsets
        .into_iter()
        .map(|(k, _)| offset_record(store::OFFSETS_TOPIC, k, None))
        .chain(
            committed
                .state
                .into_iter()
                .map(|(k, _)| offset_record(store::STATE_TOPIC, k, None)),
        )
        .collect();
    worker::write_as(rt, &name, records)
        .await
        .map_err(internal)?;
    ok(json!({"message": "The offsets for this connector have been reset successfully"}))
}

fn offset_record(topic: &str, key: Value, value: Option<Value>) -> Record {
    Record {
        topic: topic.to_string(),
        key: Some(key.to_string().into_bytes()),
        value: value.map(|v| v.to_string().into_bytes()),
        ..Default::default()
    }
}
