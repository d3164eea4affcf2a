//! Run reports people read: one self-contained HTML page per failover, failback and
//! drill, written beside the run's JSON in the report bucket ([`report_keys`]).
//!
//! Inline CSS and SVG only: no script, no external resource, so the page opens from S3,
//! an e-mail attachment or a laptop alike. Sections: the summary; RTO and RPO against
//! the spec's objectives; the timeline drawn as a chart (each step a bar on one time
//! axis); what moved; the plan against what ran. Pure: [`html`] renders a
//! [`RunRecord`] and what the caller knows of the plan and objectives.

use std::fmt::Write as _;

use serde_json::Value;

use crate::store::{RunKind, RunOutcome, RunRecord, TimelineEntry};

/// Where a run's report objects go: `(json_key, html_key)`. Failovers and failbacks
/// under `runs/<workload>/`, drills under `drills/<workload>/` (beside their Markdown).
pub fn report_keys(kind: RunKind, workload: &str, run_id: &str) -> (String, String) {
    let base = match kind {
        RunKind::Drill => format!("drills/{workload}/{run_id}"),
        _ => format!("runs/{workload}/{run_id}"),
    };
    (format!("{base}.json"), format!("{base}.html"))
}

/// The spec's recovery objectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Objectives {
    /// Recovery time objective.
    pub rto_seconds: u64,
    /// Recovery point objective.
    pub rpo_seconds: u64,
}

/// One planned step (the decision's plan): its state-machine name and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanLine {
    /// Step name, as the state machine and the timeline name it.
    pub step: String,
    /// What it does.
    pub summary: String,
}

/// What a report shows beside the run record.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The spec's objectives, when known.
    pub objectives: Option<Objectives>,
    /// The decided plan, when known.
    pub plan: Vec<PlanLine>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn secs(ms: u64) -> String {
    format!("{}.{:01} s", ms / 1000, (ms % 1000) / 100)
}

fn kind_str(kind: RunKind) -> &'static str {
    match kind {
        RunKind::Failover => "Failover",
        RunKind::Failback => "Failback",
        RunKind::Drill => "Drill",
        RunKind::Deploy => "Deploy",
    }
}

fn outcome_str(o: RunOutcome) -> (&'static str, &'static str) {
    match o {
        RunOutcome::Running => ("running", "#6b7280"),
        RunOutcome::Succeeded => ("succeeded", "#15803d"),
        RunOutcome::Failed => ("failed", "#b91c1c"),
        RunOutcome::RolledBack => ("rolled back", "#b45309"),
        RunOutcome::Partial => ("partial", "#b45309"),
        RunOutcome::Superseded => ("superseded", "#b45309"),
    }
}

/// One bar of the timeline: a step from `start` for `len` milliseconds after the run's
/// first entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    /// Step name.
    pub step: String,
    /// Offset from the first entry.
    pub start_ms: u64,
    /// Length: the entry's own duration, else until the next entry starts, else until
    /// the run finished (zero for an instant at the end).
    pub len_ms: u64,
    /// What it did.
    pub detail: Option<String>,
}

/// The timeline as bars on one axis, in time order. Pure.
pub fn bars(timeline: &[TimelineEntry], finished: Option<crate::UnixMillis>) -> Vec<Bar> {
    let mut t: Vec<&TimelineEntry> = timeline.iter().collect();
    t.sort_by_key(|e| e.at);
    let Some(first) = t.first().map(|e| e.at) else {
        return Vec::new();
    };
    t.iter()
        .enumerate()
        .map(|(i, e)| {
            let end = e
                .duration_ms
                .map(|d| e.at.0.saturating_add(d))
                .or_else(|| t.get(i + 1).map(|n| n.at.0))
                .or(finished.map(|f| f.0))
                .unwrap_or(e.at.0);
            Bar {
                step: e.step.clone(),
                start_ms: e.at.0.saturating_sub(first.0),
                len_ms: end.saturating_sub(e.at.0),
                detail: e.detail.clone(),
            }
        })
        .collect()
}

const CSS: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#111827;max-width:1100px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}\
table{border-collapse:collapse;font-size:13px;width:100%}td,th{border-bottom:1px solid #f3f4f6;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#f9fafb}.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600}\
.muted{color:#6b7280}.ok{color:#15803d;font-weight:600}.bad{color:#b91c1c;font-weight:600}code{font-size:12px}";

fn svg_timeline(bars: &[Bar]) -> String {
    const LABEL: u64 = 170;
    const WIDTH: u64 = 900;
    const ROW: u64 = 22;
    let total = bars
        .iter()
        .map(|b| b.start_ms + b.len_ms)
        .max()
        .unwrap_or(0)
        .max(1);
    let span = WIDTH - LABEL - 20;
    let x = |ms: u64| LABEL + ms.saturating_mul(span) / total;
    let height = ROW * bars.len() as u64 + 30;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"timeline\" font-size=\"11\">"
    );
    for i in 0..=4u64 {
        let ms = total * i / 4;
        let px = x(ms);
        let _ = write!(
            s,
            "<line x1=\"{px}\" y1=\"0\" x2=\"{px}\" y2=\"{}\" stroke=\"#e5e7eb\"/><text x=\"{px}\" y=\"{}\" text-anchor=\"middle\" fill=\"#6b7280\">{}</text>",
            height - 18,
            height - 4,
            secs(ms)
        );
    }
    let palette = [
        "#2563eb", "#7c3aed", "#0891b2", "#059669", "#d97706", "#db2777",
    ];
    for (i, b) in bars.iter().enumerate() {
        let y = ROW * i as u64 + 4;
        let (x0, x1) = (x(b.start_ms), x(b.start_ms + b.len_ms));
        let w = (x1 - x0).max(3);
        let color = palette[i % palette.len()];
        let title = match &b.detail {
            Some(d) => format!("{}: {} ({})", b.step, secs(b.len_ms), d),
            None => format!("{}: {}", b.step, secs(b.len_ms)),
        };
        // The length after the bar, or before it when the bar reaches the right edge.
        let (lx, anchor) = if x0 + w + 50 > WIDTH {
            (x0.saturating_sub(4), "end")
        } else {
            (x0 + w + 4, "start")
        };
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{x0}\" y=\"{y}\" width=\"{w}\" height=\"{}\" rx=\"3\" fill=\"{color}\"><title>{}</title></rect><text x=\"{lx}\" y=\"{}\" text-anchor=\"{anchor}\" fill=\"#374151\">{}</text>",
            LABEL - 6,
            y + 12,
            esc(&b.step),
            ROW - 8,
            esc(&title),
            y + 12,
            secs(b.len_ms)
        );
    }
    s.push_str("</svg>");
    s
}

fn objective_row(
    name: &str,
    measured: Option<u64>,
    objective_s: Option<u64>,
    note: &str,
) -> String {
    let measured_txt = measured.map_or_else(|| "not measured".to_owned(), secs);
    let (verdict, bar) = match (measured, objective_s) {
        (Some(m), Some(o)) => {
            let o_ms = o.saturating_mul(1000);
            let max = m.max(o_ms).max(1);
            let wm = m.saturating_mul(300) / max;
            let wo = o_ms.saturating_mul(300) / max;
            let ok = m <= o_ms;
            let color = if ok { "#15803d" } else { "#b91c1c" };
            (
                if ok {
                    "<span class=\"ok\">met</span>".to_owned()
                } else {
                    "<span class=\"bad\">missed</span>".to_owned()
                },
                format!(
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"320\" height=\"26\"><rect x=\"0\" y=\"3\" width=\"{wm}\" height=\"10\" fill=\"{color}\"/><rect x=\"0\" y=\"16\" width=\"{wo}\" height=\"6\" fill=\"#9ca3af\"/></svg>"
                ),
            )
        }
        _ => ("<span class=\"muted\">—</span>".to_owned(), String::new()),
    };
    format!(
        "<tr><th>{name}</th><td>{measured_txt}{note}</td><td>{}</td><td>{verdict}</td><td>{bar}</td></tr>",
        objective_s.map_or_else(|| "unknown".to_owned(), |o| format!("{o} s"))
    )
}

fn moved_rows(details: &Value) -> String {
    let mut rows = String::new();
    if let Some(changes) = details.get("changes").and_then(Value::as_array) {
        for c in changes {
            let g = |k: &str| {
                c.get(k).map_or_else(String::new, |v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => "—".into(),
                    other => other.to_string(),
                })
            };
            let _ = write!(
                rows,
                "<tr><td>{}</td><td>role {} → {}</td><td>weight {} → {}</td></tr>",
                esc(&g("region")),
                esc(&g("role_before")),
                esc(&g("role_after")),
                esc(&g("weight_before")),
                esc(&g("weight_after"))
            );
        }
    }
    let moved = details
        .get("outcome")
        .and_then(|o| o.get("moved"))
        .and_then(Value::as_object);
    for (k, v) in moved.into_iter().flatten() {
        if v.is_null() || v.as_array().is_some_and(Vec::is_empty) {
            continue;
        }
        let _ = write!(
            rows,
            "<tr><td>{}</td><td colspan=\"2\"><code>{}</code></td></tr>",
            esc(k),
            esc(&v.to_string())
        );
    }
    rows
}

/// What the run prepared in its target before traffic moved (`details.prepared`: one
/// `{pattern, steps}` for a failover or failback, a list of them with their `phase` and
/// `region` for a drill): a row per step with its status, how long it took and its
/// resources.
fn prepared_rows(details: &Value) -> String {
    let one = |p: &Value| -> Vec<(String, Value)> {
        let phase = p.get("phase").and_then(Value::as_str).map_or_else(
            || {
                details
                    .get("to_region")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            },
            |ph| {
                format!(
                    "{ph} {}",
                    p.get("region").and_then(Value::as_str).unwrap_or("")
                )
            },
        );
        let pattern = p.get("pattern").and_then(Value::as_str).unwrap_or("");
        p.get("steps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|st| (format!("{phase} ({pattern})"), st.clone()))
            .collect()
    };
    let steps: Vec<(String, Value)> = match details.get("prepared") {
        Some(Value::Array(list)) => list.iter().flat_map(one).collect(),
        Some(p @ Value::Object(_)) => one(p),
        _ => Vec::new(),
    };
    let mut rows = String::new();
    for (where_, st) in steps {
        let f = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let took = st
            .get("took_ms")
            .and_then(Value::as_u64)
            .map_or_else(|| "—".to_owned(), secs);
        let resources: Vec<String> = st
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| {
                let detail = f(r, "detail");
                let base = format!("{} {}: {}", f(r, "kind"), f(r, "id"), f(r, "status"));
                if detail.is_empty() {
                    base
                } else {
                    format!("{base} ({detail})")
                }
            })
            .collect();
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{took}</td><td>{}</td></tr>",
            esc(&where_),
            esc(&f(&st, "step")),
            esc(&f(&st, "status")),
            esc(&resources.join("; "))
        );
    }
    rows
}

/// The report page. Pure; every text from the record is escaped.
pub fn html(workload: &str, run: &RunRecord, ctx: &Context) -> String {
    let d = &run.details;
    let text = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("");
    let from = [text("from_region"), text("primary_region")]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or("?");
    let to = [text("to_region"), text("target_region")]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or("?");
    let (outcome, color) = outcome_str(run.outcome);
    let kind = kind_str(run.kind);
    let mut s = String::with_capacity(16 * 1024);
    let _ = write!(
        s,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{kind} {} — {}</title><style>{CSS}</style></head><body>",
        esc(&run.id),
        esc(workload)
    );
    let _ = write!(
        s,
        "<h1>{kind} of {} <span class=\"badge\" style=\"background:{color}\">{outcome}</span></h1><p class=\"muted\">run <code>{}</code></p>",
        esc(workload),
        esc(&run.id)
    );
    // Summary.
    let duration = run
        .finished_at
        .map(|f| secs(f.since(run.started_at)))
        .unwrap_or_else(|| "—".into());
    let _ = write!(
        s,
        "<h2>Summary</h2><table><tr><th>From</th><td>{}</td><th>To</th><td>{}</td></tr><tr><th>Started</th><td>{}</td><th>Finished</th><td>{}</td></tr><tr><th>Took</th><td>{duration}</td><th>Requested by</th><td>{}</td></tr><tr><th>Reason</th><td colspan=\"3\">{}</td></tr>",
        esc(from),
        esc(to),
        run.started_at.rfc3339(),
        run.finished_at.map_or_else(|| "—".into(), |f| f.rfc3339()),
        esc(text("requested_by")),
        esc(text("reason"))
    );
    let error = d
        .get("outcome")
        .and_then(|o| o.get("error"))
        .or_else(|| d.get("error"))
        .filter(|e| !e.is_null());
    if let Some(e) = error {
        let _ = write!(
            s,
            "<tr><th>Error</th><td colspan=\"3\" class=\"bad\"><code>{}</code></td></tr>",
            esc(&e.to_string())
        );
    }
    s.push_str("</table>");
    // Objectives.
    let rpo_note = if run.rpo_simulated {
        " <span class=\"muted\">(simulated: the harness copied the data)</span>"
    } else {
        ""
    };
    let _ = write!(
        s,
        "<h2>RTO and RPO against objectives</h2><table><tr><th></th><th>measured</th><th>objective</th><th></th><th>measured (bar) / objective (grey)</th></tr>{}{}</table>",
        objective_row(
            "RTO",
            run.measured_rto_ms,
            ctx.objectives.map(|o| o.rto_seconds),
            ""
        ),
        objective_row(
            "RPO",
            run.measured_rpo_ms,
            ctx.objectives.map(|o| o.rpo_seconds),
            rpo_note
        )
    );
    // Timeline.
    let bars = bars(&run.timeline, run.finished_at);
    s.push_str("<h2>Timeline</h2>");
    if bars.is_empty() {
        s.push_str("<p class=\"muted\">No steps recorded.</p>");
    } else {
        s.push_str(&svg_timeline(&bars));
        s.push_str("<table><tr><th>step</th><th>at</th><th>took</th><th>detail</th></tr>");
        for b in &bars {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>+{}</td><td>{}</td><td>{}</td></tr>",
                esc(&b.step),
                secs(b.start_ms),
                secs(b.len_ms),
                esc(b.detail.as_deref().unwrap_or(""))
            );
        }
        s.push_str("</table>");
    }
    // What moved.
    let moved = moved_rows(d);
    s.push_str("<h2>What moved</h2>");
    if moved.is_empty() {
        s.push_str("<p class=\"muted\">Nothing recorded as moved.</p>");
    } else {
        let _ = write!(s, "<table>{moved}</table>");
    }
    // What was prepared in the target (compute scaled, data tier promoted).
    let prepared = prepared_rows(d);
    if !prepared.is_empty() {
        s.push_str("<h2>Prepared before traffic moved</h2><table><tr><th>target</th><th>step</th><th>status</th><th>took</th><th>resources</th></tr>");
        let _ = write!(s, "{prepared}</table>");
    }
    // Plan against what ran.
    s.push_str("<h2>Plan against what ran</h2>");
    if ctx.plan.is_empty() {
        s.push_str("<p class=\"muted\">No plan recorded with this run.</p>");
    } else {
        s.push_str("<table><tr><th>planned step</th><th>what it does</th><th>ran</th></tr>");
        for p in &ctx.plan {
            let ran = bars.iter().find(|b| b.step == p.step).map_or_else(
                || "<span class=\"bad\">not run</span>".to_owned(),
                |b| format!("<span class=\"ok\">ran</span> at +{}", secs(b.start_ms)),
            );
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{ran}</td></tr>",
                esc(&p.step),
                esc(&p.summary)
            );
        }
        let unplanned: Vec<&Bar> = bars
            .iter()
            .filter(|b| !ctx.plan.iter().any(|p| p.step == b.step))
            .collect();
        for b in unplanned {
            let _ = write!(
                s,
                "<tr><td>{}</td><td class=\"muted\">bookkeeping (not a planned move)</td><td>ran at +{}</td></tr>",
                esc(&b.step),
                secs(b.start_ms)
            );
        }
        s.push_str("</table>");
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::UnixMillis;
    use serde_json::json;

    fn entry(step: &str, at: u64, duration: Option<u64>) -> TimelineEntry {
        TimelineEntry {
            at: UnixMillis(at),
            step: step.into(),
            duration_ms: duration,
            detail: Some(format!("<{step}>")),
        }
    }

    fn run() -> RunRecord {
        RunRecord {
            id: "checkout-run-1".into(),
            kind: RunKind::Failover,
            started_at: UnixMillis(1_000),
            finished_at: Some(UnixMillis(61_000)),
            outcome: RunOutcome::Partial,
            timeline: vec![
                entry("verify", 31_000, None),
                entry("decide", 1_000, None),
                entry("promote_data", 2_000, Some(20_000)),
            ],
            measured_rto_ms: Some(400_000),
            measured_rpo_ms: Some(1_000),
            rpo_simulated: true,
            details: json!({
                "from_region": "us-east-1", "to_region": "eu-west-1", "reason": "<script>x</script>",
                "changes": [{"region": "eu-west-1", "role_before": "secondary", "role_after": "primary", "weight_before": 0, "weight_after": 100}],
                "outcome": {"error": {"Error": "StaleEpoch"}, "moved": {"databases": ["checkout-db-euw1"], "buckets": []}},
            }),
        }
    }

    #[test]
    fn each_step_is_a_bar_until_the_next_or_for_its_duration() {
        let b = bars(&run().timeline, Some(UnixMillis(61_000)));
        let got: Vec<(&str, u64, u64)> = b
            .iter()
            .map(|b| (b.step.as_str(), b.start_ms, b.len_ms))
            .collect();
        assert_eq!(
            got,
            [
                ("decide", 0, 1_000),
                ("promote_data", 1_000, 20_000),
                ("verify", 30_000, 30_000)
            ]
        );
        assert!(bars(&[], None).is_empty());
    }

    #[test]
    fn the_page_is_self_contained_escaped_and_says_what_matters() {
        let ctx = Context {
            objectives: Some(Objectives {
                rto_seconds: 300,
                rpo_seconds: 5,
            }),
            plan: vec![
                PlanLine {
                    step: "promote_data".into(),
                    summary: "promote the replica".into(),
                },
                PlanLine {
                    step: "shift_traffic".into(),
                    summary: "flip the switch".into(),
                },
            ],
        };
        let page = html("checkout", &run(), &ctx);
        assert!(page.starts_with("<!DOCTYPE html>"));
        for banned in ["<script", "src=", "href=", "@import", "url("] {
            assert!(!page.contains(banned), "{banned}");
        }
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(page.contains(">partial</span>"));
        // RTO 400 s against 300 s: missed; RPO 1 s against 5 s: met, and simulated.
        assert!(
            page.contains(
                "<th>RTO</th><td>400.0 s</td><td>300 s</td><td><span class=\"bad\">missed"
            )
        );
        assert!(page.contains("<th>RPO</th><td>1.0 s <span class=\"muted\">(simulated"));
        assert_eq!(
            page.matches("<rect").count(),
            3 + 2 * 2,
            "a bar per step, two per objective"
        );
        assert!(page.contains("checkout-db-euw1"));
        assert!(page.contains("role secondary → primary"));
        assert!(page.contains(
            "<td>shift_traffic</td><td>flip the switch</td><td><span class=\"bad\">not run"
        ));
        assert!(page.contains("<td>promote_data</td><td>promote the replica</td><td><span class=\"ok\">ran</span> at +1.0 s"));
        assert!(page.contains("StaleEpoch"));
    }

    #[test]
    fn what_was_prepared_is_shown_for_a_run_and_for_each_phase_of_a_drill() {
        let step = json!({"step": "compute_status", "status": "scaled", "took_ms": 95_250, "resources": [
            {"kind": "auto_scaling_group", "id": "<web>", "status": "in_service", "detail": "4/4 in service"}]});
        let mut r = run();
        let page = html("checkout", &r, &Context::default());
        assert!(!page.contains("Prepared before traffic moved"));
        r.details["prepared"] = json!({"pattern": "pilot_light", "steps": [step.clone()]});
        let page = html("checkout", &r, &Context::default());
        assert!(
            page.contains("<h2>Prepared before traffic moved</h2>"),
            "{page}"
        );
        assert!(page.contains("<td>eu-west-1 (pilot_light)</td><td>compute_status</td><td>scaled</td><td>95.2 s</td><td>auto_scaling_group &lt;web&gt;: in_service (4/4 in service)</td>"), "{page}");
        // A drill's record lists both nested runs' preparations.
        r.details["prepared"] = json!([
            {"phase": "failover", "region": "eu-west-1", "pattern": "warm_standby", "steps": [step.clone()]},
            {"phase": "failback", "region": "us-east-1", "pattern": "warm_standby", "steps": [step]},
        ]);
        let page = html("checkout", &r, &Context::default());
        assert!(
            page.contains("<td>failover eu-west-1 (warm_standby)</td>"),
            "{page}"
        );
        assert!(
            page.contains("<td>failback us-east-1 (warm_standby)</td>"),
            "{page}"
        );
    }

    #[test]
    fn reports_sit_beside_their_json() {
        assert_eq!(
            report_keys(RunKind::Failover, "w", "r"),
            ("runs/w/r.json".into(), "runs/w/r.html".into())
        );
        assert_eq!(report_keys(RunKind::Drill, "w", "r").1, "drills/w/r.html");
    }
}
