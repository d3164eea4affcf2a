//! The state machines of `statemachines/` created in moto as the template deploys them:
//! `${XxxFunctionArn}` placeholders substituted with the ARNs of our functions, which the
//! moto router sends to `cargo lambda watch` (see [`crate::lambda`]), and
//! `${XxxStateMachineArn}` placeholders with the ARN of machine `xxx` (kebab case) as
//! [`create`] names it: `lifeboat-<name>-<region>`, the name `template.yaml` gives it.
//! A machine that starts another (the drill) needs that one created too.

use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_sfn::Client;
use aws_sdk_sfn::types::ExecutionStatus;

use crate::moto::repo_root;

/// Account id moto uses.
pub const ACCOUNT: &str = "123456789012";

/// The Lambda ARN of one of our functions in `region`.
pub fn function_arn(region: &str, function: &str) -> String {
    format!("arn:aws:lambda:{region}:{ACCOUNT}:function:{function}")
}

/// The name [`create`] (and `template.yaml`) gives machine `name` in `region`.
pub fn machine_name(name: &str, region: &str) -> String {
    format!("lifeboat-{name}-{region}")
}

/// The ARN of machine `name` (e.g. `failover`) created by [`create`] in `region`.
pub fn machine_arn(name: &str, region: &str) -> String {
    format!(
        "arn:aws:states:{region}:{ACCOUNT}:stateMachine:{}",
        machine_name(name, region)
    )
}

/// `health-probe` → `HealthProbe`.
fn pascal(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The machines of `statemachines/` (file stems, e.g. `failover`).
pub fn machine_names() -> anyhow::Result<Vec<String>> {
    let dir = repo_root().join("statemachines");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".asl.json") {
            names.push(stem.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The definition of `statemachines/<name>.asl.json` with its placeholders substituted as
/// `template.yaml` does (`HealthProbeFunctionArn` → the health-probe function,
/// `FailoverStateMachineArn` → the `failover` machine in `region`, ...).
pub fn definition(name: &str, region: &str) -> anyhow::Result<String> {
    let path = repo_root()
        .join("statemachines")
        .join(format!("{name}.asl.json"));
    let mut text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    for function in crate::lambda::FUNCTIONS {
        let placeholder = format!("${{{}FunctionArn}}", pascal(function));
        text = text.replace(&placeholder, &function_arn(region, function));
    }
    for machine in machine_names()? {
        let placeholder = format!("${{{}StateMachineArn}}", pascal(&machine));
        text = text.replace(&placeholder, &machine_arn(&machine, region));
    }
    if let Some(at) = text.find("${") {
        bail!("{name}: placeholder left unsubstituted at byte {at}");
    }
    Ok(text)
}

/// Creates machine `name` (from `statemachines/<name>.asl.json`) and returns its ARN.
pub async fn create(sfn: &Client, name: &str, region: &str) -> anyhow::Result<String> {
    let out = sfn
        .create_state_machine()
        .name(machine_name(name, region))
        .definition(definition(name, region)?)
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/lifeboat-states"))
        .send()
        .await
        .with_context(|| format!("creating state machine {name}"))?;
    Ok(out.state_machine_arn().to_owned())
}

/// The end of an execution.
#[derive(Debug)]
pub struct Finished {
    /// Final status.
    pub status: ExecutionStatus,
    /// Output (succeeded) as JSON text.
    pub output: Option<String>,
    /// Error and cause (failed).
    pub error: Option<(String, String)>,
}

/// Polls an execution until it is no longer running (bounded by `limit`).
pub async fn wait(sfn: &Client, execution_arn: &str, limit: Duration) -> anyhow::Result<Finished> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let d = sfn
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .context("DescribeExecution")?;
        if *d.status() != ExecutionStatus::Running {
            return Ok(Finished {
                status: d.status().clone(),
                output: d.output().map(str::to_owned),
                error: d
                    .error()
                    .map(|e| (e.to_owned(), d.cause().unwrap_or_default().to_owned())),
            });
        }
        if tokio::time::Instant::now() > deadline {
            bail!("execution {execution_arn} still running after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
