//! The two inputs: the EventBridge scheduled event (report the last complete month, CUR
//! location from the environment) and the explicit request.

use std::fmt;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Datelike, Utc};
use lifeboat::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cur::days_from_civil;
use crate::report::Assumptions;

/// A calendar month, `YYYY-MM`, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    /// Year.
    pub year: i32,
    /// Month, 1–12.
    pub month: u32,
}

impl Period {
    /// The last month that has ended at `now`.
    pub fn last_complete(now: DateTime<Utc>) -> Period {
        Period {
            year: now.year(),
            month: now.month(),
        }
        .previous()
    }

    /// The month before.
    pub fn previous(self) -> Period {
        if self.month == 1 {
            Period {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Period {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// The month after.
    pub fn next(self) -> Period {
        if self.month == 12 {
            Period {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Period {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// First instant, Unix ms.
    pub fn start_ms(self) -> u64 {
        let days = days_from_civil(i64::from(self.year), self.month, 1);
        u64::try_from(days * 86_400_000).unwrap_or(0)
    }

    /// First instant of the next month, Unix ms.
    pub fn end_ms(self) -> u64 {
        self.next().start_ms()
    }

    /// Hours in the month.
    pub fn hours(self) -> u64 {
        (self.end_ms() - self.start_ms()) / 3_600_000
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl std::str::FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a month as YYYY-MM");
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) || year < 1970 {
            return Err(bad());
        }
        Ok(Period { year, month })
    }
}

impl Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where the CUR 2.0 export is: objects under
/// `<prefix>/data/BILLING_PERIOD=<YYYY-MM>/` (the Data Exports layout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurLocation {
    /// Bucket of the export.
    pub bucket: String,
    /// The export's prefix (`<s3 prefix>/<export name>`).
    pub prefix: String,
}

impl CurLocation {
    /// The key prefix of one billing period's manifest(s).
    pub fn metadata_prefix(&self, period: Period) -> String {
        let base = self.prefix.trim_matches('/');
        if base.is_empty() {
            format!("metadata/BILLING_PERIOD={period}/")
        } else {
            format!("{base}/metadata/BILLING_PERIOD={period}/")
        }
    }

    /// The key prefix of one billing period's files.
    pub fn period_prefix(&self, period: Period) -> String {
        let base = self.prefix.trim_matches('/');
        if base.is_empty() {
            format!("data/BILLING_PERIOD={period}/")
        } else {
            format!("{base}/data/BILLING_PERIOD={period}/")
        }
    }
}

/// Where reports go: `<prefix>/<workload or _account>/<YYYY-MM>/report.{json,csv,html}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputLocation {
    /// Bucket.
    pub bucket: String,
    /// Key prefix (may be empty).
    #[serde(default)]
    pub prefix: String,
}

impl OutputLocation {
    /// The key of one output file.
    pub fn key(&self, workload: Option<&str>, period: Period, file: &str) -> String {
        let who = workload.unwrap_or("_account");
        let base = self.prefix.trim_matches('/');
        if base.is_empty() {
            format!("{who}/{period}/{file}")
        } else {
            format!("{base}/{who}/{period}/{file}")
        }
    }
}

/// The explicit request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The workload to report on (its tag and its spec's resources). Without it, the
    /// whole bill is reported and there is no resilience view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// The export.
    pub cur: CurLocation,
    /// The billing month.
    pub period: Period,
    /// Count and skip bad rows instead of failing.
    #[serde(default)]
    pub skip_bad_rows: bool,
    /// Where to write; defaults to the function's `REPORT_BUCKET` / `REPORT_PREFIX`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputLocation>,
    /// Outage assumptions of the ROI (defaults: 1 outage a year, 24 h without DR).
    #[serde(default)]
    pub assumptions: Assumptions,
}

/// Defaults from the environment, for the scheduled event (which carries no request).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults {
    /// `CUR_BUCKET` + `CUR_PREFIX`.
    pub cur: Option<CurLocation>,
    /// `REPORT_BUCKET` + `REPORT_PREFIX`.
    pub output: Option<OutputLocation>,
    /// `WORKLOAD`.
    pub workload: Option<String>,
    /// `SKIP_BAD_ROWS=true`.
    pub skip_bad_rows: bool,
}

/// Turns either input into a [`Request`] with its output location; bad input is
/// `InvalidInput` naming the field.
pub fn resolve(event: Value, defaults: &Defaults) -> Result<(Request, OutputLocation), Error> {
    let scheduled = event
        .get("detail-type")
        .and_then(Value::as_str)
        .is_some_and(|t| t == "Scheduled Event");
    let request = if scheduled {
        let ev: EventBridgeEvent<Value> = lifeboat::input::parse(event)?;
        let time = ev
            .time
            .ok_or_else(|| Error::InvalidInput("time: missing in the scheduled event".into()))?;
        let cur = defaults.cur.clone().ok_or_else(|| {
            Error::InvalidInput(
                "scheduled event: no CUR location configured (CUR_BUCKET / CUR_PREFIX)".into(),
            )
        })?;
        Request {
            workload: defaults.workload.clone(),
            cur,
            period: Period::last_complete(time),
            skip_bad_rows: defaults.skip_bad_rows,
            output: None,
            assumptions: Assumptions::default(),
        }
    } else {
        lifeboat::input::parse::<Request>(event)?
    };
    if request.cur.bucket.is_empty() {
        return Err(Error::InvalidInput("cur.bucket: must not be empty".into()));
    }
    if let Some(w) = &request.workload
        && w.is_empty()
    {
        return Err(Error::InvalidInput("workload: must not be empty".into()));
    }
    let output = request
        .output
        .clone()
        .or_else(|| defaults.output.clone())
        .ok_or_else(|| {
            Error::InvalidInput("output: none given and no REPORT_BUCKET configured".into())
        })?;
    if output.bucket.is_empty() {
        return Err(Error::InvalidInput(
            "output.bucket: must not be empty".into(),
        ));
    }
    Ok((request, output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaults() -> Defaults {
        Defaults {
            cur: Some(CurLocation {
                bucket: "cur".into(),
                prefix: "exports/lifeboat".into(),
            }),
            output: Some(OutputLocation {
                bucket: "reports".into(),
                prefix: "cost".into(),
            }),
            workload: Some("checkout".into()),
            skip_bad_rows: false,
        }
    }

    #[test]
    fn periods() {
        let p: Period = "2026-01".parse().unwrap();
        assert_eq!(p.previous().to_string(), "2025-12");
        assert_eq!(p.hours(), 31 * 24);
        assert_eq!("2024-02".parse::<Period>().unwrap().hours(), 29 * 24);
        assert_eq!(p.start_ms(), 1_767_225_600_000);
        for bad in ["2026-13", "2026-1", "26-01", "2026/01", "x"] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
        let now: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
        assert_eq!(Period::last_complete(now).to_string(), "2026-02");
    }

    #[test]
    fn scheduled_event_reports_the_last_complete_month() {
        let ev = json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-02T06:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/r"], "detail": {}
        });
        let (req, out) = resolve(ev, &defaults()).unwrap();
        assert_eq!(req.period.to_string(), "2026-10");
        assert_eq!(req.workload.as_deref(), Some("checkout"));
        assert_eq!(
            out.key(Some("checkout"), req.period, "report.json"),
            "cost/checkout/2026-10/report.json"
        );
        assert_eq!(
            req.cur.period_prefix(req.period),
            "exports/lifeboat/data/BILLING_PERIOD=2026-10/"
        );
    }

    #[test]
    fn bad_requests_name_the_field() {
        let err = resolve(
            json!({"cur": {"bucket": "b", "prefix": "p"}, "period": "2026-13"}),
            &defaults(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid input: period: `2026-13` is not a month as YYYY-MM"
        );
        let err = resolve(
            json!({"cur": {"bucket": "b"}, "period": "2026-10"}),
            &defaults(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid input: cur: missing field `prefix`"
        );
        let err = resolve(
            json!({"cur": {"bucket": "b", "prefix": ""}, "period": "2026-10"}),
            &Defaults::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("REPORT_BUCKET"), "{err}");
        let ev = json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-02T06:00:00Z", "detail": {}});
        let err = resolve(ev, &Defaults::default()).unwrap_err();
        assert!(err.to_string().contains("CUR_BUCKET"), "{err}");
    }
}

#[cfg(test)]
mod fixtures {
    use super::*;

    /// Every fixture in `events/cost-reporter/` parses into this function's input.
    #[test]
    fn every_fixture_parses_into_a_request() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/cost-reporter");
        let defaults = Defaults {
            cur: Some(CurLocation {
                bucket: "cur".into(),
                prefix: "p".into(),
            }),
            output: Some(OutputLocation {
                bucket: "out".into(),
                prefix: String::new(),
            }),
            workload: None,
            skip_bad_rows: false,
        };
        let mut parsed = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let value: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let (req, _) =
                resolve(value, &defaults).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(req.period.to_string(), "2026-10", "{}", path.display());
            parsed += 1;
        }
        assert_eq!(parsed, 2);
    }
}
