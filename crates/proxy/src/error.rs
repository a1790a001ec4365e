//! Errors as Confluent's REST Proxy answers them: `{"error_code": 40401, "message": ...}`,
//! the HTTP status being the code's first three digits (or the code itself).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProxyError {
    pub code: u32,
    pub message: String,
}

impl ProxyError {
    pub fn new(code: u32, message: impl Into<String>) -> ProxyError {
        ProxyError {
            code,
            message: message.into(),
        }
    }

    pub fn topic_not_found(topic: &str) -> ProxyError {
        ProxyError::new(40401, format!("Topic {topic} not found."))
    }

    pub fn partition_not_found(topic: &str, partition: i32) -> ProxyError {
        ProxyError::new(
            40402,
            format!("Partition {partition} of topic {topic} not found."),
        )
    }

    pub fn instance_not_found() -> ProxyError {
        ProxyError::new(40403, "Consumer instance not found.")
    }

    pub fn bad_request(message: impl Into<String>) -> ProxyError {
        ProxyError::new(400, message)
    }

    /// Confluent's answer when the caller's ACLs refuse them (the proxy acts as the caller).
    pub fn forbidden(message: impl Into<String>) -> ProxyError {
        ProxyError::new(40301, message)
    }

    pub fn kafka(message: impl Into<String>) -> ProxyError {
        ProxyError::new(50002, message)
    }

    /// A failed Kafka call: 40301 when the caller's ACLs refused it, 50002 otherwise.
    pub fn of_kafka(what: &str, e: &rdkafka::error::KafkaError) -> ProxyError {
        use rdkafka::types::RDKafkaErrorCode as Code;
        match e.rdkafka_error_code() {
            Some(
                Code::TopicAuthorizationFailed
                | Code::GroupAuthorizationFailed
                | Code::ClusterAuthorizationFailed,
            ) => ProxyError::forbidden(format!("{what}: {e}")),
            _ => ProxyError::kafka(format!("{what}: {e}")),
        }
    }

    fn status(&self) -> StatusCode {
        let status = if self.code >= 10_000 {
            self.code / 100
        } else {
            self.code
        };
        u16::try_from(status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error_code": self.code, "message": self.message});
        let mut response = (self.status(), Json(body)).into_response();
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static(crate::V2_JSON),
        );
        response
    }
}
