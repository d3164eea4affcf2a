//! The lease outlives the run, in the twin (issue 14, item 1): a failover with a short
//! lease (`timing.lease_ttl_seconds`) and a slow RDS promotion (twin setting
//! `rds.promote_seconds`) renews its lease while it waits; a second failover started
//! after the first's lease would have lapsed unrenewed is refused (`LeaseHeld`), and the
//! first finishes.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use harness::drill::{DrillOptions, FAILED, SURVIVOR, WORKLOAD, World};
use harness::machines;
use lifeboat::model::Role;
use lifeboat::store::Verdict;
use lifeboat::{Store, UnixMillis};
use serde_json::json;

/// The lease's TTL: many 1-s polls (each renewing) and a task's cold start, and well
/// under the promotion.
const TTL_SECONDS: u64 = 10;
/// How long the twin's RDS takes to promote the replica: longer than the TTL and the
/// second failover's refusal after it.
const PROMOTE_SECONDS: f64 = 24.0;

async fn history(sfn: &aws_sdk_sfn::Client, arn: &str) -> Vec<aws_sdk_sfn::types::HistoryEvent> {
    let mut events = Vec::new();
    let mut token = None;
    loop {
        let out = sfn
            .get_execution_history()
            .execution_arn(arn)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        events.extend(out.events().iter().cloned());
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            return events;
        }
    }
}

/// The states an execution went through, ms after `from`, for a failure's message.
async fn timeline(sfn: &aws_sdk_sfn::Client, arn: &str, from: UnixMillis) -> String {
    harness::drill::states(&history(sfn, arn).await)
        .into_iter()
        .map(|(name, at, _)| format!("{name} +{} ms", at.0 as i64 - from.0 as i64))
        .collect::<Vec<_>>()
        .join("\n")
}

fn input(reason: &str) -> String {
    json!({
        "workload": WORKLOAD,
        "failed_region": FAILED,
        "target_region": SURVIVOR,
        "mode": "unplanned",
        "accept_data_loss": true,
        "reason": reason,
        "requested_by": "lifeboat-tests",
        "timing": { "poll_seconds": 1, "verify_max_polls": 10, "lease_ttl_seconds": TTL_SECONDS }
    })
    .to_string()
}

#[tokio::test]
async fn a_short_lease_is_renewed_through_a_slow_promotion_and_a_second_failover_is_refused() {
    let began = Instant::now();
    let w = World::start(&DrillOptions {
        promote_seconds: PROMOTE_SECONDS,
        ..DrillOptions::default()
    })
    .await
    .unwrap();
    println!("world started in {:.1} s", began.elapsed().as_secs_f64());
    // Every Region healthy, as the probes will find them: an operator's failover needs
    // only a healthy target, and a primary seen healthy keeps its health alarm quiet, so
    // no alarm-started failover joins in (one did, with a lapsed lease, when this said
    // the primary was down).
    let now = UnixMillis::now();
    for region in [FAILED, SURVIVOR, "ap-southeast-1"] {
        let h = harness::world::settled_health(region, Verdict::Healthy, Some(1.0), now);
        w.store.put_health(WORKLOAD, &h).await.unwrap();
    }

    let sfn = aws_sdk_sfn::Client::new(&w.config);
    let first = sfn
        .start_execution()
        .state_machine_arn(&w.failover_machine)
        .name("slow-promotion-1")
        .input(input("us-east-1 is down"))
        .send()
        .await
        .unwrap();
    // Wait for its lease, then until it would have lapsed had nobody renewed it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let acquired = loop {
        if let Some(l) = w.store.get_lease(WORKLOAD).await.unwrap()
            && l.holder == first.execution_arn()
        {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "the first failover never took the lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lapsed = acquired.expires_at.plus(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(
        lapsed.0.saturating_sub(UnixMillis::now().0),
    ))
    .await;
    let held = w.store.get_lease(WORKLOAD).await.unwrap().unwrap();
    assert_eq!(held.epoch, acquired.epoch, "{held:?}");
    assert!(
        held.expires_at > acquired.expires_at && !held.is_expired(UnixMillis::now()),
        "renewed: {held:?} (acquired {acquired:?}); the first's states:\n{}",
        timeline(&sfn, first.execution_arn(), acquired.acquired_at).await
    );

    let second = sfn
        .start_execution()
        .state_machine_arn(&w.failover_machine)
        .name("while-promoting-2")
        .input(input("a second operator, same outage"))
        .send()
        .await
        .unwrap();
    let refused = machines::wait(&sfn, second.execution_arn(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(refused.status, ExecutionStatus::Failed, "{refused:?}");
    assert_eq!(
        refused.error.as_ref().map(|e| e.0.as_str()),
        Some("FailoverRefused"),
        "{refused:?}"
    );
    // Refused by the lease, not by anything else the decision checks.
    let why = harness::drill::last_task_error(&history(&sfn, second.execution_arn()).await);
    assert!(
        why.as_deref().is_some_and(|e| e.starts_with("LeaseHeld")),
        "{why:?}"
    );
    let still = w.store.get_lease(WORKLOAD).await.unwrap().unwrap();
    assert_eq!(
        (still.holder.as_str(), still.epoch),
        (first.execution_arn(), acquired.epoch)
    );

    let done = machines::wait(&sfn, first.execution_arn(), Duration::from_secs(90))
        .await
        .unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let spec = w.store.get_spec(WORKLOAD).await.unwrap();
    assert_eq!(spec.primary().unwrap().region, SURVIVOR);
    assert_eq!(spec.region(FAILED).unwrap().role, Role::Secondary);
    let runs = w.store.list_runs(WORKLOAD).await.unwrap();
    assert_eq!(runs.len(), 1, "one failover ran: {runs:#?}");
    // Released at the epoch it took, never taken over.
    let lease = w.store.get_lease(WORKLOAD).await.unwrap();
    assert!(
        lease.as_ref().is_none_or(|l| l.epoch == acquired.epoch),
        "{lease:?}"
    );
    println!("done in {:.1} s", began.elapsed().as_secs_f64());
}
