//! What one execution asked of AWS, from the twin's call log, reduced to what a plan
//! says: the set of `(service, operation, Region, plane)` (issue #13, item 6: "the plan
//! is the execution").
//!
//! - **Whose calls.** The calls signed by our functions (the call log's `caller`, the
//!   SDK's `app/<function>` user agent: [`FUNCTIONS`]) between the execution's start and
//!   its end. Calls by the twin itself (`aws`), by moto's Step Functions executor
//!   (`states`: service integrations such as the drill's nested `startExecution`) and by
//!   the harness are not the run's own.
//! - **A set.** Polls and retries repeat calls; a plan lists each call once per step.
//!   Calls a hanging Region never answered count: what is attempted is what is planned.
//! - **The background, kept out by turning it off.** On AWS, as in the twin's world
//!   from `template.yaml`, health-probe also runs on its EventBridge schedule, and alarm
//!   transitions invoke failover-executor (alarm actions and the "CloudWatch Alarm State
//!   Change" rule). The call log cannot tell those invocations from the machine's own
//!   (it records no request id, and health-probe is the same function either way), so
//!   before the run [`Quiet::apply`] disables the world's EventBridge rules and alarm
//!   actions, and [`settle`] waits until the last background invocation has stopped
//!   calling. [`background`] then shows, from the twin's timeline, that nothing fired
//!   during the window: every call our functions made in it is the execution's.
//! - **Names.** The call log names services by their SigV4 signing name; a plan by the
//!   service's name ([`signing_name`]: CloudWatch signs as `monitoring`). The log knows
//!   the plane of Route 53 (its API is the control plane, served from us-east-1; DNS
//!   answers and health checkers are its data plane); for the other services the plane
//!   is AWS's split ([`is_data_plane`]). Route 53's API calls are counted in us-east-1,
//!   where they go, whatever Region a client pointed at the twin signs them for
//!   ([`ROUTE53_REGION`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_sfn::primitives::DateTime;
use aws_sdk_sfn::types::ExecutionStatus;
use aws_types::SdkConfig;
use serde_json::{Value, json};

use crate::moto::MotoServer;
use crate::twin::{ApiCall, Twin, TwinRow};

/// The functions whose calls are a run's: the machines' Lambda tasks (deploy-wave: the
/// failback's soak between traffic stages).
pub const FUNCTIONS: [&str; 5] = [
    "failover-executor",
    "replica-promoter",
    "traffic-shifter",
    "health-probe",
    "deploy-wave",
];

/// One AWS call as a plan and the call log both can say it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Call {
    /// SigV4 signing name (`dynamodb`, `monitoring`, `rds`, `s3`, `route53`, ...).
    pub service: String,
    /// Operation (`GetItem`, `PromoteReadReplica`, ...).
    pub operation: String,
    /// The Region it is signed for.
    pub region: String,
    /// Control plane (true) or data plane.
    pub control_plane: bool,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<10} {:<30} {:<15} {}",
            self.service,
            self.operation,
            self.region,
            if self.control_plane {
                "control"
            } else {
                "data"
            }
        )
    }
}

/// Where Route 53's API is served: "route53.amazonaws.com, us-east-1" (AWS General
/// Reference, "Amazon Route 53 endpoints and quotas",
/// https://docs.aws.amazon.com/general/latest/gr/r53.html). On AWS the SDK signs its
/// calls for us-east-1; pointed at the twin through `AWS_ENDPOINT_URL` it signs them for
/// the client's configured Region, which is what the call log sees. [`of_log`] puts
/// them back where they go.
pub const ROUTE53_REGION: &str = "us-east-1";

/// The SigV4 signing name of a service as a plan names it (the call log's `service`).
pub fn signing_name(service: &str) -> &str {
    match service {
        "cloudwatch" => "monitoring",
        "sfn" | "stepfunctions" => "states",
        other => other,
    }
}

/// Whether an operation is on its service's data plane. AWS's split ("AWS Fault
/// Isolation Boundaries", Control planes and data planes,
/// https://docs.aws.amazon.com/whitepapers/latest/aws-fault-isolation-boundaries/control-planes-and-data-planes.html):
/// the control plane creates, reads, updates, deletes and lists resources; the data
/// plane is what the service does with them. Here: DynamoDB's item API, CloudWatch's
/// metrics and alarm states (its evaluation's output, read and set: what a routing
/// switch is, as traffic-shifter classifies it), S3's objects, starting and reading
/// executions, invoking functions, putting events on a bus and publishing to a topic.
/// Every RDS call, DynamoDB's table API, S3 bucket
/// configuration (replication rules) and Route 53's API are control-plane calls.
pub fn is_data_plane(service: &str, operation: &str) -> bool {
    match service {
        "dynamodb" => matches!(
            operation,
            "GetItem"
                | "PutItem"
                | "UpdateItem"
                | "DeleteItem"
                | "Query"
                | "Scan"
                | "BatchGetItem"
                | "BatchWriteItem"
                | "TransactGetItems"
                | "TransactWriteItems"
        ),
        "monitoring" => matches!(
            operation,
            "PutMetricData"
                | "GetMetricData"
                | "GetMetricStatistics"
                | "ListMetrics"
                | "DescribeAlarms"
                | "SetAlarmState"
        ),
        "s3" => matches!(
            operation,
            "GetObject"
                | "PutObject"
                | "HeadObject"
                | "DeleteObject"
                | "CopyObject"
                | "ListObjects"
                | "ListObjectsV2"
        ),
        "states" => matches!(
            operation,
            "StartExecution" | "DescribeExecution" | "StopExecution" | "GetExecutionHistory"
        ),
        "lambda" => operation == "Invoke",
        // Sending an event or a message is what the bus and the topic are for.
        "events" => operation == "PutEvents",
        "sns" => operation == "Publish",
        _ => false,
    }
}

/// A logged call as a [`Call`]; `None` when the log could not name it.
pub fn of_log(c: &ApiCall) -> Option<Call> {
    let service = c.service.clone()?;
    let operation = c.operation.clone()?;
    let control_plane = match c.plane.as_deref() {
        Some(plane) => plane == "control",
        None => !is_data_plane(&service, &operation),
    };
    let region = if service == "route53" && control_plane {
        ROUTE53_REGION.to_owned()
    } else {
        c.region.clone()?
    };
    Some(Call {
        service,
        operation,
        region,
        control_plane,
    })
}

/// What a plan lists, as a set.
#[derive(Debug, Clone, Default)]
pub struct Planned {
    /// Every call.
    pub calls: BTreeSet<Call>,
    /// The calls a run makes only once an earlier call into a Region was answered
    /// (`needs_answer_from` on every occurrence): call → that Region.
    pub after_answer: BTreeMap<Call, String>,
    /// The calls a run makes only when something happens (`only_when` on every
    /// occurrence: a probe round's notification of a verdict change): call → what.
    pub only_when: BTreeMap<Call, String>,
    /// `(function, call)` pairs that function makes only when something happens (every
    /// occurrence under it has `only_when`), whatever other functions make the call.
    pub only_when_by_function: BTreeSet<(String, Call)>,
    /// Every call with the function its step names (a plan step is one function's).
    pub by_function: BTreeSet<(String, Call)>,
}

/// Every call of a plan (the `Plan` JSON a dry run returns: `{steps: [{calls: [...]}]}`).
pub fn planned(plan: &Value) -> anyhow::Result<Planned> {
    let steps = plan["steps"]
        .as_array()
        .with_context(|| format!("not a plan (no steps): {plan}"))?;
    let mut out = Planned::default();
    let mut unconditional = BTreeSet::new();
    let mut unconditional_by_function = BTreeSet::new();
    for step in steps {
        let function = step["function"].as_str().unwrap_or_default().to_owned();
        for c in step["calls"].as_array().into_iter().flatten() {
            let field = |name: &str| {
                c[name]
                    .as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("a planned call without `{name}`: {c}"))
            };
            let call = Call {
                service: signing_name(&field("service")?).to_owned(),
                operation: field("operation")?,
                region: field("region")?,
                control_plane: c["control_plane"].as_bool().unwrap_or(false),
            };
            match (c["needs_answer_from"].as_str(), c["only_when"].as_str()) {
                (Some(region), _) => {
                    out.after_answer
                        .entry(call.clone())
                        .or_insert_with(|| region.to_owned());
                }
                (None, Some(when)) => {
                    out.only_when
                        .entry(call.clone())
                        .or_insert_with(|| when.to_owned());
                    out.only_when_by_function
                        .insert((function.clone(), call.clone()));
                }
                (None, None) => {
                    unconditional.insert(call.clone());
                    unconditional_by_function.insert((function.clone(), call.clone()));
                }
            }
            out.by_function.insert((function.clone(), call.clone()));
            out.calls.insert(call);
        }
    }
    out.after_answer.retain(|c, _| !unconditional.contains(c));
    out.only_when.retain(|c, _| !unconditional.contains(c));
    out.only_when_by_function
        .retain(|fc| !unconditional_by_function.contains(fc));
    Ok(out)
}

/// A span of time, epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Start.
    pub from: f64,
    /// End.
    pub to: f64,
}

impl Window {
    /// Whether `at` is inside.
    pub fn contains(&self, at: f64) -> bool {
        at >= self.from && at <= self.to
    }
}

/// An execution that ran: its window and how it ended.
#[derive(Debug, Clone)]
pub struct Execution {
    /// ARN.
    pub arn: String,
    /// Final status.
    pub status: ExecutionStatus,
    /// Output (JSON), when it succeeded.
    pub output: Value,
    /// Error and cause, when it failed.
    pub error: Option<(String, String)>,
    /// Start to stop, as Step Functions records them.
    pub window: Window,
}

/// Starts `machine` with `input` as execution `name`, waits for it (bounded by
/// `limit`) and describes it.
pub async fn run(
    sfn: &aws_sdk_sfn::Client,
    machine: &str,
    name: &str,
    input: &Value,
    limit: Duration,
) -> anyhow::Result<Execution> {
    let started = sfn
        .start_execution()
        .state_machine_arn(machine)
        .name(name)
        .input(input.to_string())
        .send()
        .await
        .with_context(|| format!("StartExecution {name}"))?;
    let arn = started.execution_arn().to_owned();
    crate::machines::wait(sfn, &arn, limit).await?;
    let d = sfn
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
        .context("DescribeExecution")?;
    let secs = |t: &DateTime| t.as_secs_f64();
    let from = secs(d.start_date());
    let to = d.stop_date().map_or_else(now, secs);
    Ok(Execution {
        arn,
        status: d.status().clone(),
        output: d
            .output()
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or(Value::Null),
        error: d
            .error()
            .map(|e| (e.to_owned(), d.cause().unwrap_or_default().to_owned())),
        window: Window { from, to },
    })
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The calls our functions made inside `window` (answered or still pending).
pub async fn made_in(twin: &Twin, window: Window) -> anyhow::Result<Vec<ApiCall>> {
    Ok(twin
        .calls(0)
        .await?
        .into_iter()
        .filter(|c| window.contains(c.at))
        .filter(|c| c.caller.as_deref().is_some_and(|f| FUNCTIONS.contains(&f)))
        .collect())
}

/// The set of what `calls` asked, and the calls the log could not name.
pub fn reduce(calls: &[ApiCall]) -> (BTreeSet<Call>, Vec<ApiCall>) {
    let mut set = BTreeSet::new();
    let mut unnamed = Vec::new();
    for c in calls {
        match of_log(c) {
            Some(call) => {
                set.insert(call);
            }
            None => unnamed.push(c.clone()),
        }
    }
    (set, unnamed)
}

/// Whether a logged call got no answer: still pending (a hanging Region), a server
/// error, or a fault the twin applied.
pub fn unanswered(c: &ApiCall) -> bool {
    c.status.is_none_or(|s| s >= 500) || c.fault.is_some()
}

/// A plan beside what the run did.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// What the plan lists.
    pub planned: BTreeSet<Call>,
    /// What the run made.
    pub made: BTreeSet<Call>,
    /// Planned calls the run was right not to make: each needs an answer from a Region
    /// that the run's calls got none from (the plan says so: `needs_answer_from`).
    pub skipped: BTreeSet<Call>,
    /// The Regions some call of the run got no answer from.
    pub unanswered: BTreeSet<String>,
    /// Who made each call the plan does not list (`caller: call`).
    pub unplanned_by: Vec<String>,
    /// `(function, call)` the plan lists and that function never made (not skipped).
    pub misattributed_planned: Vec<(String, Call)>,
    /// `(function, call)` made and not listed under that function.
    pub misattributed_made: Vec<(String, Call)>,
}

impl Comparison {
    /// Compares a plan with the logged calls of a run.
    pub fn new(planned: Planned, calls: &[ApiCall]) -> Comparison {
        let (made, _) = reduce(calls);
        let unanswered: BTreeSet<String> = calls
            .iter()
            .filter(|c| unanswered(c))
            .filter_map(of_log)
            .map(|c| c.region)
            .collect();
        let skipped: BTreeSet<Call> = planned
            .after_answer
            .iter()
            .filter(|(c, region)| !made.contains(*c) && unanswered.contains(*region))
            .map(|(c, _)| c.clone())
            .chain(
                planned
                    .only_when
                    .keys()
                    .filter(|c| !made.contains(*c))
                    .cloned(),
            )
            .collect();
        let mut unplanned_by: BTreeSet<String> = BTreeSet::new();
        for c in calls {
            if let Some(call) = of_log(c)
                && !planned.calls.contains(&call)
            {
                unplanned_by.insert(format!("{:<18} {call}", c.caller.as_deref().unwrap_or("?")));
            }
        }
        let made_by: BTreeSet<(String, Call)> = calls
            .iter()
            .filter_map(|c| Some((c.caller.clone()?, of_log(c)?)))
            .collect();
        let misattributed_planned = planned
            .by_function
            .difference(&made_by)
            .filter(|fc| !skipped.contains(&fc.1) && !planned.only_when_by_function.contains(*fc))
            .cloned()
            .collect();
        let misattributed_made = made_by.difference(&planned.by_function).cloned().collect();
        Comparison {
            planned: planned.calls,
            made,
            skipped,
            unanswered,
            unplanned_by: unplanned_by.into_iter().collect(),
            misattributed_planned,
            misattributed_made,
        }
    }

    /// Whether, besides [`Comparison::equal`], every function made exactly the calls
    /// the plan's steps of that function list.
    pub fn attributed(&self) -> bool {
        self.misattributed_planned.is_empty() && self.misattributed_made.is_empty()
    }

    /// Planned, not made, and not rightly skipped.
    pub fn only_planned(&self) -> Vec<&Call> {
        self.planned
            .difference(&self.made)
            .filter(|c| !self.skipped.contains(*c))
            .collect()
    }

    /// Made and not planned.
    pub fn only_made(&self) -> Vec<&Call> {
        self.made.difference(&self.planned).collect()
    }

    /// Whether the run made exactly what the plan lists (less what it was right to
    /// skip).
    pub fn equal(&self) -> bool {
        self.only_planned().is_empty() && self.only_made().is_empty()
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "planned ({}):", self.planned.len())?;
        for c in &self.planned {
            writeln!(f, "  {c}")?;
        }
        writeln!(f, "made ({}):", self.made.len())?;
        for c in &self.made {
            writeln!(f, "  {c}")?;
        }
        writeln!(
            f,
            "planned, skipped: no answer from {:?} (best effort, needs_answer_from), or made only when something happens (only_when):",
            self.unanswered
        )?;
        for c in &self.skipped {
            writeln!(f, "  {c}")?;
        }
        writeln!(f, "planned, never made:")?;
        for c in self.only_planned() {
            writeln!(f, "  {c}")?;
        }
        writeln!(f, "made, not planned (by):")?;
        for c in &self.unplanned_by {
            writeln!(f, "  {c}")?;
        }
        writeln!(f, "planned under a function that never made it:")?;
        for (function, c) in &self.misattributed_planned {
            writeln!(f, "  {function:<18} {c}")?;
        }
        writeln!(f, "made by a function whose steps do not list it:")?;
        for (function, c) in &self.misattributed_made {
            writeln!(f, "  {function:<18} {c}")?;
        }
        Ok(())
    }
}

/// What [`Quiet::apply`] turns off in a world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quiet {
    /// Scheduled rules (health-probe's probe schedule, the drill and cost schedules).
    pub schedules: bool,
    /// What alarm transitions invoke: the "CloudWatch Alarm State Change" rules and the
    /// alarms' actions.
    pub alarms: bool,
}

impl Quiet {
    /// Everything.
    pub const ALL: Quiet = Quiet {
        schedules: true,
        alarms: true,
    };

    /// Turns off what `self` names in every Region of `regions`, as an operator could
    /// (EventBridge `DisableRule`, CloudWatch `DisableAlarmActions`); what was disabled.
    pub async fn apply(
        self,
        moto: &MotoServer,
        config: &SdkConfig,
        regions: &[String],
    ) -> anyhow::Result<Vec<String>> {
        let mut disabled = Vec::new();
        for region in regions {
            let rules = events(moto, region, "ListRules", &json!({})).await?;
            for rule in rules["Rules"].as_array().into_iter().flatten() {
                let name = rule["Name"].as_str().unwrap_or_default();
                if rule["State"] != "ENABLED" || name.is_empty() {
                    continue;
                }
                let scheduled = rule["ScheduleExpression"].is_string();
                let on_alarms = rule["EventPattern"]
                    .as_str()
                    .is_some_and(|p| p.contains("aws.cloudwatch"));
                if (scheduled && self.schedules) || (on_alarms && self.alarms) {
                    events(moto, region, "DisableRule", &json!({"Name": name})).await?;
                    disabled.push(format!("rule {region}/{name}"));
                } else {
                    disabled.push(format!("rule {region}/{name} left enabled"));
                }
            }
            if self.alarms {
                let cw = aws_sdk_cloudwatch::Client::from_conf(
                    aws_sdk_cloudwatch::config::Builder::from(config)
                        .region(aws_types::region::Region::new(region.clone()))
                        .build(),
                );
                let alarms = cw
                    .describe_alarms()
                    .send()
                    .await
                    .with_context(|| format!("DescribeAlarms in {region}"))?;
                let names: Vec<String> = alarms
                    .metric_alarms()
                    .iter()
                    .filter(|a| {
                        !(a.alarm_actions().is_empty()
                            && a.ok_actions().is_empty()
                            && a.insufficient_data_actions().is_empty())
                    })
                    .filter_map(|a| a.alarm_name().map(str::to_owned))
                    .collect();
                if !names.is_empty() {
                    cw.disable_alarm_actions()
                        .set_alarm_names(Some(names.clone()))
                        .send()
                        .await
                        .with_context(|| format!("DisableAlarmActions in {region}"))?;
                    disabled.extend(names.iter().map(|n| format!("alarm actions {region}/{n}")));
                }
            }
        }
        Ok(disabled)
    }
}

/// One EventBridge JSON-protocol call to moto, signed as the harness (the tests crate
/// has no EventBridge SDK; moto routes by the credential scope and `X-Amz-Target` and
/// does not check signatures).
async fn events(
    moto: &MotoServer,
    region: &str,
    operation: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let date = "20250101";
    let response = reqwest::Client::new()
        .post(moto.endpoint())
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("AWSEvents.{operation}"))
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=testing/{date}/{region}/events/aws4_request, SignedHeaders=content-type;host;x-amz-target, Signature=0"
            ),
        )
        .body(body.to_string())
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .with_context(|| format!("EventBridge {operation} in {region}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("EventBridge {operation} in {region} answered {status}: {text}");
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text)
        .with_context(|| format!("EventBridge {operation} in {region} answered {status}: {text}"))
}

/// Waits (bounded by `limit`) until none of our functions has called AWS for `quiet`:
/// the background invocations running when [`Quiet::apply`] turned their triggers off
/// have ended. When the log went quiet.
pub async fn settle(twin: &Twin, quiet: Duration, limit: Duration) -> anyhow::Result<f64> {
    let deadline = Instant::now() + limit;
    loop {
        let calls = twin.calls(0).await?;
        let last = calls
            .iter()
            .filter(|c| c.caller.as_deref().is_some_and(|f| FUNCTIONS.contains(&f)))
            .map(|c| c.at)
            .fold(0.0_f64, f64::max);
        if now() - last >= quiet.as_secs_f64() {
            return Ok(now());
        }
        if Instant::now() > deadline {
            bail!(
                "our functions were still calling AWS {:?} after the background was turned off",
                limit
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Why an execution did not succeed, for a test's failure message: each task failure in
/// its history (`state: error: cause`, a Lambda task's own error or a timeout) and each
/// Lambda invocation the twin did not answer with success during the run (its timeline's
/// `lambda.*` rows: timeouts, faults, a watch that did not answer).
pub async fn why_it_failed(sfn: &aws_sdk_sfn::Client, twin: &Twin, e: &Execution) -> String {
    let mut out = Vec::new();
    match crate::drill::history(sfn, &e.arn).await {
        Ok(events) => {
            let mut state = String::new();
            for ev in &events {
                if let Some(d) = ev.state_entered_event_details() {
                    d.name().clone_into(&mut state);
                }
                let failed = ev
                    .lambda_function_failed_event_details()
                    .map(|d| (d.error(), d.cause()))
                    .or_else(|| {
                        ev.lambda_function_timed_out_event_details()
                            .map(|d| (d.error(), d.cause()))
                    })
                    .or_else(|| {
                        ev.task_failed_event_details()
                            .map(|d| (d.error(), d.cause()))
                    })
                    .or_else(|| {
                        ev.lambda_function_schedule_failed_event_details()
                            .map(|d| (d.error(), d.cause()))
                    });
                if let Some((error, cause)) = failed {
                    out.push(format!(
                        "{state}: {}: {}",
                        error.unwrap_or("?"),
                        cause.unwrap_or_default()
                    ));
                }
            }
        }
        Err(err) => out.push(format!("no history: {err:#}")),
    }
    match twin.timeline(0).await {
        Ok(rows) => out.extend(
            rows.into_iter()
                .filter(|r| e.window.contains(r.at) && r.kind.starts_with("lambda."))
                .filter(|r| !(r.kind == "lambda.invoke" && r.detail.contains(": 200 OK in")))
                .map(|r| format!("twin {}: {}", r.kind, r.detail)),
        ),
        Err(err) => out.push(format!("no timeline: {err:#}")),
    }
    if out.is_empty() {
        "no task failed and every invocation succeeded".into()
    } else {
        out.join("\n")
    }
}

/// What the twin did on its own during `window` that could have invoked one of our
/// functions: scheduled rules firing, alarm actions, EventBridge deliveries (its
/// timeline's `events.schedule`, `cloudwatch.action` and `events.delivery` rows).
pub async fn background(twin: &Twin, window: Window) -> anyhow::Result<Vec<TwinRow>> {
    Ok(twin
        .timeline(0)
        .await?
        .into_iter()
        .filter(|r| window.contains(r.at))
        .filter(|r| {
            matches!(
                r.kind.as_str(),
                "events.schedule" | "cloudwatch.action" | "events.delivery"
            )
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn logged(service: &str, operation: &str, region: &str, plane: Option<&str>) -> ApiCall {
        serde_json::from_value(json!({
            "seq": 1, "at": 10.0, "service": service, "operation": operation,
            "region": region, "caller": "traffic-shifter", "status": 200, "plane": plane
        }))
        .unwrap()
    }

    #[test]
    fn a_plan_and_a_log_meet_on_signing_names_and_planes() {
        let plan = json!({"steps": [
            {"step": "shift", "function": "traffic-shifter", "calls": [
                {"service": "cloudwatch", "operation": "PutMetricData", "region": "eu-west-1",
                 "resource": "x", "control_plane": false, "outside_surviving_region": false},
                {"service": "route53", "operation": "GetChange", "region": "us-east-1",
                 "resource": "x", "control_plane": true, "outside_surviving_region": true}
            ]},
            {"step": "again", "function": "traffic-shifter", "calls": [
                {"service": "cloudwatch", "operation": "PutMetricData", "region": "eu-west-1",
                 "resource": "y", "control_plane": false, "outside_surviving_region": false}
            ]}
        ]});
        let planned = planned(&plan).unwrap();
        assert_eq!(planned.calls.len(), 2, "{planned:?}");
        // Route 53's API counts where it is served, whatever Region signed the call.
        let calls = [
            logged("monitoring", "PutMetricData", "eu-west-1", None),
            logged("monitoring", "PutMetricData", "eu-west-1", None),
            logged("route53", "GetChange", "eu-west-1", Some("control")),
        ];
        let cmp = Comparison::new(planned.clone(), &calls);
        assert!(cmp.equal() && cmp.attributed(), "{cmp}");
        // The same calls by another function: the sets agree, the attribution not.
        let mut by_other = calls.to_vec();
        by_other[2].caller = Some("health-probe".into());
        let cmp = Comparison::new(planned.clone(), &by_other);
        assert!(cmp.equal() && !cmp.attributed(), "{cmp}");
        assert_eq!(cmp.misattributed_made[0].0, "health-probe");
        // A call the plan does not list is named with its caller.
        let mut more = calls.to_vec();
        more.push(logged("rds", "DescribeDBInstances", "eu-west-1", None));
        let cmp = Comparison::new(planned, &more);
        assert!(!cmp.equal());
        assert_eq!(cmp.only_made().len(), 1);
        assert!(cmp.unplanned_by[0].starts_with("traffic-shifter"), "{cmp}");
        assert!(cmp.unplanned_by[0].contains("control"), "{cmp}");
    }

    #[test]
    fn a_call_that_needs_an_answer_is_skipped_only_when_none_came() {
        let call = |op: &str, region: &str, needs: Option<&str>| {
            json!({"service": "s3", "operation": op, "region": region, "resource": "b",
                   "control_plane": true, "outside_surviving_region": true,
                   "needs_answer_from": needs})
        };
        let plan = json!({"steps": [{"step": "suspend_old_rules", "function": "replica-promoter", "calls": [
            call("GetBucketReplication", "us-east-1", None),
            call("PutBucketReplication", "us-east-1", Some("us-east-1")),
        ]}]});
        let planned = planned(&plan).unwrap();
        assert_eq!(planned.after_answer.len(), 1, "{planned:?}");
        let mut read = logged("s3", "GetBucketReplication", "us-east-1", None);
        // Answered, and the put never came: the plan is not what ran.
        let cmp = Comparison::new(planned.clone(), std::slice::from_ref(&read));
        assert!(!cmp.equal(), "{cmp}");
        assert_eq!(cmp.only_planned().len(), 1);
        // The read hung (no status): the put was rightly skipped.
        read.status = None;
        let cmp = Comparison::new(planned, &[read]);
        assert!(cmp.equal(), "{cmp}");
        assert_eq!(cmp.skipped.len(), 1);
    }

    /// A probe round notifies only on a verdict change: planned `only_when`, its absence
    /// is no mismatch, its presence neither; an unconditional call under the same
    /// function still has to be made.
    #[test]
    fn a_call_made_only_when_something_happens_may_be_absent() {
        let call = |only_when: Option<&str>| {
            json!({"service": "events", "operation": "PutEvents", "region": "eu-west-1",
                   "resource": "bus", "control_plane": false, "outside_surviving_region": false,
                   "only_when": only_when})
        };
        let plan = |probe: Option<&str>| {
            json!({"steps": [
                {"step": "decide", "function": "failover-executor", "calls": [call(None)]},
                {"step": "verify", "function": "health-probe", "calls": [call(probe)]},
            ]})
        };
        let by = |caller: &str| {
            let mut c = logged("events", "PutEvents", "eu-west-1", Some("data"));
            c.caller = Some(caller.into());
            c
        };
        let conditional = planned(&plan(Some("a verdict changes"))).unwrap();
        assert_eq!(
            conditional.only_when_by_function.len(),
            1,
            "{conditional:?}"
        );
        // Nothing changed: only failover-executor notified.
        let cmp = Comparison::new(conditional.clone(), &[by("failover-executor")]);
        assert!(cmp.equal() && cmp.attributed(), "{cmp}");
        // A verdict changed: health-probe notified too.
        let cmp = Comparison::new(conditional, &[by("failover-executor"), by("health-probe")]);
        assert!(cmp.equal() && cmp.attributed(), "{cmp}");
        // Listed unconditionally, the probe's notification must be made.
        let cmp = Comparison::new(planned(&plan(None)).unwrap(), &[by("failover-executor")]);
        assert!(!cmp.attributed(), "{cmp}");
    }
}
