//! SDK-level faults on the store, injected with aws-smithy-mocks: moto cannot throttle
//! or fail on demand, so retry and classification are checked here against the real SDK
//! retry loop with canned responses.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ErrorMetadata;
use aws_sdk_dynamodb::operation::get_item::{GetItemError, GetItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use lifeboat::{DynamoStore, ErrorName, Store, WorkloadSpec};

fn spec_item() -> HashMap<String, AttributeValue> {
    let mut spec: WorkloadSpec =
        serde_json::from_str(include_str!("../../events/model/example-spec.json")).unwrap();
    spec.version = 3;
    let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(&spec).unwrap();
    item.insert("pk".into(), AttributeValue::S("WORKLOAD#checkout".into()));
    item.insert("sk".into(), AttributeValue::S("SPEC".into()));
    item
}

fn coded(code: &'static str) -> impl Fn() -> GetItemError + Send + Sync + 'static {
    move || {
        GetItemError::generic(
            ErrorMetadata::builder()
                .code(code)
                .message("injected")
                .build(),
        )
    }
}

#[tokio::test]
async fn throttled_twice_then_served_succeeds_after_retries() {
    let rule = mock!(Client::get_item)
        .sequence()
        .error(coded("ThrottlingException"))
        .times(2)
        .output(|| GetItemOutput::builder().set_item(Some(spec_item())).build())
        .build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);
    let store = DynamoStore::new(client, "t");
    let spec = store.get_spec("checkout").await.unwrap();
    assert_eq!(spec.version, 3);
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test]
async fn persistent_5xx_is_bounded_then_transient_dependency() {
    let rule = mock!(Client::get_item)
        .sequence()
        .http_status(503, None)
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);
    let err = DynamoStore::new(client, "t")
        .get_spec("checkout")
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::TransientDependency, "{err:?}");
    assert_eq!(lifeboat::Retry::Transient, err.retry());
    // The SDK's standard retry strategy: three attempts, then the error is ours.
    assert_eq!(rule.num_calls(), 3);
    assert!(
        err.chain()
            .starts_with("dynamodb.GetItem failed transiently"),
        "{}",
        err.chain()
    );
}

#[tokio::test]
async fn a_permanent_refusal_is_not_retried() {
    let rule = mock!(Client::get_item)
        .sequence()
        .error(coded("AccessDeniedException"))
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);
    let err = DynamoStore::new(client, "t")
        .get_spec("checkout")
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::DependencyFailure, "{err:?}");
    assert_eq!(rule.num_calls(), 1);
}
