//! Following an execution live from its history: each state as it is entered and left,
//! with its duration, then the timeline and the outcome.

use std::io::Write;
use std::time::Duration;

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use lifeboat::UnixMillis;
use serde::Serialize;

use crate::exit::Failure;
use crate::text::{duration, table};

/// One state of an execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateSpan {
    /// State name.
    pub name: String,
    /// When it was entered.
    pub entered: UnixMillis,
    /// When it was left (absent: still in it, or the execution stopped there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exited: Option<UnixMillis>,
}

fn millis(e: &HistoryEvent) -> UnixMillis {
    e.timestamp()
        .to_millis()
        .ok()
        .and_then(|t| u64::try_from(t).ok())
        .map_or(UnixMillis(0), UnixMillis)
}

/// Every state entered, in order, with when it was left (a state a loop enters again is
/// a new span).
pub fn spans(history: &[HistoryEvent]) -> Vec<StateSpan> {
    let mut out: Vec<StateSpan> = Vec::new();
    for e in history {
        if let Some(d) = e.state_entered_event_details() {
            out.push(StateSpan {
                name: d.name().to_owned(),
                entered: millis(e),
                exited: None,
            });
        } else if let Some(d) = e.state_exited_event_details()
            && let Some(span) = out
                .iter_mut()
                .rev()
                .find(|s| s.name == d.name() && s.exited.is_none())
        {
            span.exited = Some(millis(e));
        }
    }
    out
}

/// The timeline table: each state, when it began after the start, how long it took.
pub fn render_timeline(start: UnixMillis, spans: &[StateSpan]) -> String {
    let rows: Vec<Vec<String>> = spans
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                format!("+{}", duration(s.entered.since(start))),
                s.exited
                    .map(|x| duration(x.since(s.entered)))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(&["STATE", "AT", "TOOK"], &rows)
}

/// The last task error of a history (`Error: cause`), what a Catch turned into the
/// machine's own failure.
pub fn last_error(history: &[HistoryEvent]) -> Option<String> {
    history.iter().rev().find_map(|e| {
        if let Some(d) = e.lambda_function_failed_event_details() {
            return Some(format!(
                "{}: {}",
                d.error().unwrap_or("?"),
                d.cause().unwrap_or_default()
            ));
        }
        e.task_failed_event_details().map(|d| {
            format!(
                "{}: {}",
                d.error().unwrap_or("?"),
                d.cause().unwrap_or_default()
            )
        })
    })
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ended {
    /// The execution ARN.
    pub execution_arn: String,
    /// `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`.
    pub status: String,
    /// Output (succeeded), parsed when JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// The machine's error and cause (failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The last task error behind it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_error: Option<String>,
    /// Every state.
    pub states: Vec<StateSpan>,
    /// Start.
    pub started: UnixMillis,
}

impl Ended {
    /// Whether it succeeded.
    pub fn succeeded(&self) -> bool {
        self.status == ExecutionStatus::Succeeded.as_str()
    }
}

async fn history(sfn: &aws_sdk_sfn::Client, arn: &str) -> Result<Vec<HistoryEvent>, Failure> {
    let mut events = Vec::new();
    let mut token = None;
    loop {
        let out = sfn
            .get_execution_history()
            .execution_arn(arn)
            .set_next_token(token)
            .max_results(1000)
            .send()
            .await
            .map_err(|e| lifeboat::Error::from_sdk("sfn", "GetExecutionHistory", e))?;
        events.extend(out.events().iter().cloned());
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(events);
        }
    }
}

/// Follows `arn` until it ends, printing each state as it is entered and left (unless
/// `quiet`), polling every `poll`.
pub async fn follow(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    poll: Duration,
    quiet: bool,
    out: &mut dyn Write,
) -> Result<Ended, Failure> {
    let mut seen = 0usize;
    let mut started: Option<UnixMillis> = None;
    loop {
        let d = sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| lifeboat::Error::from_sdk("sfn", "DescribeExecution", e))?;
        let start = *started.get_or_insert_with(|| {
            d.start_date()
                .to_millis()
                .ok()
                .and_then(|t| u64::try_from(t).ok())
                .map_or(UnixMillis(0), UnixMillis)
        });
        let events = history(sfn, arn).await?;
        for e in events.iter().skip(seen) {
            if quiet {
                break;
            }
            let at = format!("+{}", duration(millis(e).since(start)));
            if let Some(s) = e.state_entered_event_details() {
                writeln!(out, "  {at:>9}  > {}", s.name())?;
            } else if let Some(s) = e.state_exited_event_details() {
                let began = spans(&events[..])
                    .into_iter()
                    .rev()
                    .find(|x| x.name == s.name() && x.exited.is_some_and(|t| t == millis(e)));
                let took = began
                    .map(|b| duration(millis(e).since(b.entered)))
                    .unwrap_or_default();
                writeln!(out, "  {at:>9}  < {}  {took}", s.name())?;
            } else if let Some(f) = e.lambda_function_failed_event_details() {
                writeln!(
                    out,
                    "  {at:>9}  ! {}: {}",
                    f.error().unwrap_or("?"),
                    crate::text::cut(f.cause().unwrap_or_default(), 160)
                )?;
            }
        }
        seen = events.len();
        if *d.status() != ExecutionStatus::Running {
            let status = d.status().as_str().to_owned();
            return Ok(Ended {
                execution_arn: arn.to_owned(),
                status,
                output: d.output().map(|o| {
                    serde_json::from_str(o).unwrap_or(serde_json::Value::String(o.into()))
                }),
                error: d
                    .error()
                    .map(|e| format!("{e}: {}", d.cause().unwrap_or_default())),
                task_error: last_error(&events),
                states: spans(&events),
                started: start,
            });
        }
        tokio::time::sleep(poll).await;
    }
}

/// Renders the end of a followed run.
pub fn render_ended(e: &Ended) -> String {
    let mut out = String::from("\ntimeline:\n");
    out.push_str(&render_timeline(e.started, &e.states));
    out.push_str(&format!("\noutcome: {}  ({})\n", e.status, e.execution_arn));
    if let Some(err) = &e.error {
        out.push_str(&format!("error: {err}\n"));
    }
    if let Some(err) = &e.task_error
        && !e.succeeded()
    {
        out.push_str(&format!("last task error: {err}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sfn::types::{HistoryEventType, StateEnteredEventDetails, StateExitedEventDetails};
    use aws_smithy_types::DateTime;

    fn event(id: i64, at_ms: i64, entered: Option<&str>, exited: Option<&str>) -> HistoryEvent {
        let mut b = HistoryEvent::builder()
            .id(id)
            .timestamp(DateTime::from_millis(at_ms))
            .r#type(if entered.is_some() {
                HistoryEventType::TaskStateEntered
            } else {
                HistoryEventType::TaskStateExited
            });
        if let Some(n) = entered {
            b = b.state_entered_event_details(
                StateEnteredEventDetails::builder().name(n).build().unwrap(),
            );
        }
        if let Some(n) = exited {
            b = b.state_exited_event_details(
                StateExitedEventDetails::builder().name(n).build().unwrap(),
            );
        }
        b.build().unwrap()
    }

    #[test]
    fn a_loop_entering_a_state_again_is_a_new_span() {
        let h = vec![
            event(1, 1000, Some("Decide"), None),
            event(2, 1200, None, Some("Decide")),
            event(3, 1200, Some("Poll"), None),
            event(4, 2200, None, Some("Poll")),
            event(5, 2200, Some("Poll"), None),
            event(6, 2700, None, Some("Poll")),
            event(7, 2700, Some("Finalize"), None),
        ];
        let s = spans(&h);
        assert_eq!(s.len(), 4);
        assert_eq!(s[2].name, "Poll");
        assert_eq!(s[2].exited, Some(UnixMillis(2700)));
        assert_eq!(s[3].exited, None);
        let t = render_timeline(UnixMillis(1000), &s);
        assert!(t.contains("Poll      +1.2 s   500 ms"), "{t}");
        assert!(t.contains("Finalize  +1.7 s   -"), "{t}");
    }
}
