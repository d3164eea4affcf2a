//! Notifications in the emulator: an SQS queue subscribed to the stack's SNS topic and
//! an EventBridge rule (`{"source": ["lifeboat"]}`) with an SQS target on the default
//! bus, both in the executor's Region; failover-executor refuses a request, then runs a
//! failover's acquire and finalize, and the test reads what arrived in each queue, and
//! the run's report (JSON and HTML) in the report bucket.
//!
//! moto answers SNS Publish → SQS subscription and PutEvents → rule → SQS target by
//! itself (delivered before the call returns). The queues are created and read over
//! SQS's JSON protocol with the harness's HTTP client rather than with another SDK crate
//! (one more cold-built crate for two calls in one test).

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use failover_executor::Executor;
use harness::moto::MotoServer;
use harness::world::{self, HOME_REGION};
use lifeboat::aws::for_region;
use lifeboat::notify::Notifier;
use lifeboat::store::{HealthRecord, Lease, Verdict};
use lifeboat::{DynamoStore, ErrorName, Store, UnixMillis};
use serde_json::{Value, json};

/// SQS over its JSON protocol (AWS JSON 1.0), unsigned: moto reads the Region from the
/// credential scope of the Authorization header.
async fn sqs(moto: &MotoServer, action: &str, body: Value) -> Value {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/{HOME_REGION}/sqs/aws4_request, SignedHeaders=host, Signature=0"
    );
    let text = reqwest::Client::new()
        .post(moto.endpoint())
        .header("X-Amz-Target", format!("AmazonSQS.{action}"))
        .header("Content-Type", "application/x-amz-json-1.0")
        .header("Authorization", auth)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("{action}: {text}"))
}

async fn queue(moto: &MotoServer, name: &str) -> (String, String) {
    let url = sqs(moto, "CreateQueue", json!({"QueueName": name})).await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let attrs = sqs(
        moto,
        "GetQueueAttributes",
        json!({"QueueUrl": url, "AttributeNames": ["QueueArn"]}),
    )
    .await;
    let arn = attrs["Attributes"]["QueueArn"].as_str().unwrap().to_owned();
    (url, arn)
}

/// Every message in the queue until `want` have arrived (bounded: 20 receives).
async fn drain(moto: &MotoServer, url: &str, want: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..20 {
        let got = sqs(
            moto,
            "ReceiveMessage",
            json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1}),
        )
        .await;
        for m in got["Messages"].as_array().into_iter().flatten() {
            out.push(serde_json::from_str(m["Body"].as_str().unwrap()).unwrap());
        }
        if out.len() >= want {
            break;
        }
    }
    out
}

/// A settled health record observed a second ago.
fn health(region: &str, verdict: Verdict, lag: Option<f64>) -> HealthRecord {
    harness::world::settled_health(
        region,
        verdict,
        lag,
        UnixMillis(UnixMillis::now().0 - 1_000),
    )
}

#[tokio::test]
async fn refusals_starts_and_successes_arrive_on_the_topic_and_the_default_bus_and_the_run_is_reported()
 {
    let moto = MotoServer::shared();
    let table = harness::table::unique_name("notify");
    let w = world::seed(moto, &table).await.unwrap();

    // The stack's topic, a queue subscribed to it, and a rule for Lifeboat's events.
    let sns = aws_sdk_sns::Client::new(&w.config);
    let topic = sns
        .create_topic()
        .name(harness::table::unique_name("lifeboat-topic"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let (topic_queue, topic_queue_arn) = queue(moto, &harness::table::unique_name("topic-q")).await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&topic_queue_arn)
        .send()
        .await
        .unwrap();
    let events = aws_sdk_eventbridge::Client::new(&w.config);
    let rule = harness::table::unique_name("lifeboat-events");
    let (bus_queue, bus_queue_arn) = queue(moto, &harness::table::unique_name("bus-q")).await;
    events
        .put_rule()
        .name(&rule)
        .event_pattern(
            json!({"source": ["lifeboat"], "detail": {"workload": ["checkout"]}}).to_string(),
        )
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(&rule)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(&bus_queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let sfn = aws_sdk_sfn::Client::new(&w.config);
    let machine = sfn
        .create_state_machine()
        .name(harness::table::unique_name("failover"))
        .definition(r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/lifeboat-failover")
        .send()
        .await
        .unwrap()
        .state_machine_arn;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&w.config)
            .force_path_style(true)
            .build(),
    );
    let bucket = harness::table::unique_name("reports");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let ex = Executor::new(&w.config, &table, &machine)
        .unwrap()
        .with_report_bucket(Some(bucket.clone()))
        .with_notifier(Notifier::new(&w.config, Some(topic.clone())));
    // The spec in the arbiter's (eu-west-1) table: the replication moto lacks.
    let arbiter = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&for_region(&w.config, "eu-west-1")),
        &table,
    );
    arbiter
        .create_spec(&world::example_spec().unwrap())
        .await
        .unwrap();

    // 1. Refused: the operator's target is unhealthy. Nothing moved.
    w.store
        .put_health("checkout", &health("us-east-1", Verdict::Unhealthy, None))
        .await
        .unwrap();
    w.store
        .put_health(
            "checkout",
            &health("eu-west-1", Verdict::Unhealthy, Some(0.0)),
        )
        .await
        .unwrap();
    w.store
        .put_health(
            "checkout",
            &health("ap-southeast-1", Verdict::Healthy, Some(4.0)),
        )
        .await
        .unwrap();
    let request: Value = serde_json::from_str(
        &std::fs::read_to_string(
            harness::moto::repo_root().join("events/failover-executor/operator-request.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let err = ex
        .handle_at(request.clone(), "req-1", UnixMillis::now())
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::TargetUnhealthy, "{err}");

    // 2. Started and succeeded: the target is healthy now.
    w.store
        .put_health(
            "checkout",
            &health("eu-west-1", Verdict::Healthy, Some(0.0)),
        )
        .await
        .unwrap();
    let step_request = json!({
        "workload": "checkout", "failed_region": "us-east-1", "target_region": "eu-west-1",
        "mode": "planned", "reason": "notification test", "requested_by": "ops",
    });
    let decision = ex
        .handle_at(
            json!({"step": "decide", "request": step_request}),
            "",
            UnixMillis::now(),
        )
        .await
        .unwrap();
    let holder = "arn:aws:states:us-east-1:123456789012:execution:failover:notify-run";
    let lease: Lease = serde_json::from_value(
        ex.handle_at(
            json!({"step": "acquire", "decision": decision, "holder": holder}),
            "",
            UnixMillis::now(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    ex.handle_at(
        json!({"step": "finalize", "decision": decision, "lease": lease, "timeline": []}),
        "",
        UnixMillis::now(),
    )
    .await
    .unwrap();

    let want = [
        "Lifeboat Run Refused",
        "Lifeboat Run Started",
        "Lifeboat Run Succeeded",
    ];
    // EventBridge: the events themselves.
    let on_bus = drain(moto, &bus_queue, want.len()).await;
    let types: Vec<&str> = on_bus
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap())
        .collect();
    assert_eq!(types, want, "{on_bus:#?}");
    for e in &on_bus {
        assert_eq!(e["source"], "lifeboat");
        assert_eq!(e["region"], HOME_REGION);
        assert_eq!(e["detail"]["schema_version"], 1);
        assert_eq!(e["detail"]["workload"], "checkout");
    }
    assert_eq!(on_bus[0]["detail"]["error"], "TargetUnhealthy");
    assert_eq!(
        on_bus[0]["detail"]["id"],
        "CHG-4711-refused-TargetUnhealthy"
    );
    assert_eq!(on_bus[1]["resources"][0], holder);
    assert_eq!(on_bus[1]["detail"]["epoch"], lease.epoch);
    assert_eq!(on_bus[2]["detail"]["outcome"], "succeeded");
    assert_eq!(on_bus[2]["detail"]["to_region"], "eu-west-1");

    // SNS: the same events as the message of each notification, with a subject.
    let on_topic = drain(moto, &topic_queue, want.len()).await;
    let messages: Vec<Value> = on_topic
        .iter()
        .map(|n| serde_json::from_str(n["Message"].as_str().unwrap()).unwrap())
        .collect();
    let types: Vec<&str> = messages
        .iter()
        .map(|m| m["detail-type"].as_str().unwrap())
        .collect();
    assert_eq!(types, want, "{on_topic:#?}");
    assert_eq!(
        on_topic[0]["Subject"],
        "Lifeboat Run Refused: failover of checkout refused: TargetUnhealthy"
    );
    for (m, e) in messages.iter().zip(&on_bus) {
        assert_eq!(m["detail"], e["detail"]);
    }
}
