//! Kafka Connect's REST API with curl, as the connector tests drive it.

use std::time::Duration;

use serde_json::{json, Value};

use super::{curl, wait_until};

pub fn url(http: u16, path: &str) -> String {
    format!("http://127.0.0.1:{http}{path}")
}

pub fn call(method: &str, http: u16, path: &str, body: Option<&Value>) -> (u16, Value) {
    let target = url(http, path);
    let mut args = vec!["-X", method, target.as_str()];
    let text;
    if let Some(b) = body {
        text = b.to_string();
        args.extend([
            "-H",
            "content-type: application/json",
            "--data-binary",
            text.as_str(),
        ]);
    }
    let (code, body) = curl(&args);
    (code, serde_json::from_str(&body).unwrap_or(Value::Null))
}

pub fn status_of(http: u16, name: &str) -> Value {
    call("GET", http, &format!("/connectors/{name}/status"), None).1
}

pub fn wait_state(http: u16, name: &str, want: &str, timeout: Duration) -> Value {
    let mut last = Value::Null;
    wait_until(&format!("connector {name} {want}"), timeout, || {
        last = status_of(http, name);
        (
            last["connector"]["state"] == want
                && (want == "STOPPED" || last["tasks"][0]["state"] == want),
            last.to_string(),
        )
    });
    last
}

pub fn create(http: u16, name: &str, config: &Value) {
    let (code, body) = call(
        "POST",
        http,
        "/connectors",
        Some(&json!({"name": name, "config": config})),
    );
    assert_eq!(code, 201, "{body}");
}
