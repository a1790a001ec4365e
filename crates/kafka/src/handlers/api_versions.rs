use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::versions::SUPPORTED;

pub fn handle() -> ApiVersionsResponse {
    let keys = SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    // Kafka clients turn transaction version 2 on from the finalized feature (Java 4.x: once
    // its level is 2 and the features epoch is at least 0); every node answers the same.
    let tv2 = || StrBytes::from_static_str(TRANSACTION_VERSION);
    ApiVersionsResponse::default()
        .with_api_keys(keys)
        .with_supported_features(vec![SupportedFeatureKey::default()
            .with_name(tv2())
            .with_min_version(0)
            .with_max_version(2)])
        .with_finalized_features_epoch(0)
        .with_finalized_features(vec![FinalizedFeatureKey::default()
            .with_name(tv2())
            .with_min_version_level(2)
            .with_max_version_level(2)])
}

/// Kafka's feature flag for the transaction protocol; level 2 is KIP-890 part 2.
const TRANSACTION_VERSION: &str = "transaction.version";

/// The answer to an ApiVersions request newer than we know (KIP-511).
pub fn unsupported() -> ApiVersionsResponse {
    handle().with_error_code(ResponseError::UnsupportedVersion.code())
}
