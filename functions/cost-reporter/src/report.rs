//! The report: aggregates plus the resilience view and recommendations. Pure: built from
//! the [`Aggregates`], the spec and the run records, no I/O, exact decimals throughout.

use std::collections::BTreeMap;

use lifeboat::WorkloadSpec;
use lifeboat::model::{DrPattern, Role};
use lifeboat::store::{RunKind, RunRecord};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::cur::{Aggregates, BadRow, Category, Cell, FileStats, GLOBAL, Transfer};
use crate::request::Period;

/// A standby whose compute, database and cache cost reach this share of the primary's
/// (percent) while it takes no traffic is called over-provisioned.
pub const OVER_PROVISIONED_PERCENT: Decimal = Decimal::from_parts(50, 0, 0, false, 0);
/// Replication transfer at or above this share of the premium (percent) dominates it.
pub const TRANSFER_DOMINATES_PERCENT: Decimal = Decimal::from_parts(30, 0, 0, false, 0);

/// What the ROI assumes about outages; the request may override both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assumptions {
    /// Regional outages expected per year.
    #[serde(default = "one")]
    pub outages_per_year: Decimal,
    /// How long one lasts for the workload without its DR Regions (hours).
    #[serde(default = "twenty_four")]
    pub outage_hours_without_dr: Decimal,
}

fn one() -> Decimal {
    Decimal::ONE
}
fn twenty_four() -> Decimal {
    Decimal::from(24)
}

impl Default for Assumptions {
    fn default() -> Self {
        Assumptions {
            outages_per_year: one(),
            outage_hours_without_dr: twenty_four(),
        }
    }
}

/// One Region's cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionCost {
    /// Region code or `global`.
    pub region: String,
    /// Its role in the workload, if it is one of its Regions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Total.
    pub total: Decimal,
    /// Per category (every category present, zero included).
    pub by_category: BTreeMap<Category, Decimal>,
}

/// A drill's cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrillCost {
    /// Run id.
    pub id: String,
    /// Start, RFC 3339.
    pub started_at: String,
    /// End, RFC 3339.
    pub finished_at: String,
    /// Measured RTO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_rto_ms: Option<u64>,
    /// Cost of its resources in its window.
    pub cost: Decimal,
}

/// The previous month, from its stored report (for month over month).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousMonth {
    /// Its period.
    pub period: Period,
    /// Its total.
    pub total: Decimal,
    /// Its Regions' totals.
    pub regions: BTreeMap<String, Decimal>,
}

/// Where the RTO used by the ROI comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RtoSource {
    /// The worst measured RTO of the drills up to the period's end.
    MeasuredByDrills,
    /// No drill measured one: the policy's objective.
    PolicyObjective,
}

/// One Region in the resilience view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionView {
    /// Region.
    pub region: String,
    /// Role.
    pub role: Role,
    /// Traffic share, percent.
    pub weight: u32,
    /// Its cost.
    pub cost: Decimal,
    /// Compute + database + cache, as a percentage of the primary's (none without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_vs_primary_percent: Option<Decimal>,
}

/// The cost of resilience against the downtime it avoids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resilience {
    /// DR pattern.
    pub pattern: DrPattern,
    /// Each Region against its role.
    pub regions: Vec<RegionView>,
    /// Cost of the Regions other than the primary.
    pub non_primary_cost: Decimal,
    /// Inter-Region transfer from the primary into the workload's other Regions
    /// (replication), billed in the primary.
    pub replication_transfer_from_primary: Decimal,
    /// Inter-Region transfer between any two of the workload's Regions.
    pub replication_transfer_total: Decimal,
    /// The monthly premium: `non_primary_cost + replication_transfer_from_primary`,
    /// what the workload would not pay in its primary alone.
    pub monthly_premium: Decimal,
    /// From the spec.
    pub downtime_cost_per_hour: Decimal,
    /// Outage assumptions.
    pub assumptions: Assumptions,
    /// RTO used, hours.
    pub rto_hours: Decimal,
    /// Where it comes from.
    pub rto_source: RtoSource,
    /// Drills with a measured RTO considered.
    pub drills_measured: usize,
    /// `outages_per_year / 12 × max(0, outage_hours_without_dr − rto_hours)`.
    pub expected_downtime_hours_avoided: Decimal,
    /// `hours avoided × downtime_cost_per_hour`.
    pub downtime_cost_avoided: Decimal,
    /// `downtime_cost_avoided − monthly_premium`.
    pub roi: Decimal,
}

/// A recommendation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recommendation {
    /// Stable kind: `standby_over_provisioned`, `replication_transfer_dominates`,
    /// `premium_exceeds_avoided_downtime`.
    pub kind: &'static str,
    /// Region concerned, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// What and why, for people.
    pub detail: String,
}

/// The whole report (report.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Workload, or none for the whole bill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Billing month.
    pub period: Period,
    /// Currency of every amount.
    pub currency: String,
    /// The export read: manifest, execution, table and format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<ExportSource>,
    /// Files read.
    pub files: Vec<FileStats>,
    /// Rows read.
    pub rows: u64,
    /// Rows of the workload.
    pub matched_rows: u64,
    /// Rows skipped as bad (`skip_bad_rows`).
    pub bad_rows: u64,
    /// The first of them.
    pub bad_row_samples: Vec<BadRow>,
    /// Total cost (net unblended where present).
    pub total: Decimal,
    /// Total unblended.
    pub total_unblended: Decimal,
    /// Cost of the rest of the bill.
    pub out_of_scope: Decimal,
    /// Per Region, by category, largest first (`global` last).
    pub regions: Vec<RegionCost>,
    /// Region × service × category.
    pub cells: Vec<Cell>,
    /// Inter-Region transfer per pair.
    pub transfers: Vec<Transfer>,
    /// Services billed without a Region.
    pub global_services: BTreeMap<String, Decimal>,
    /// Per line item type.
    pub line_item_types: BTreeMap<String, Decimal>,
    /// Drills of the period.
    pub drills: Vec<DrillCost>,
    /// The month before, when its report exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousMonth>,
    /// The resilience view (with a workload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resilience: Option<Resilience>,
    /// Recommendations.
    pub recommendations: Vec<Recommendation>,
}

/// Which export, table, format and assembly a report read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSource {
    /// `s3://bucket/key` of the manifest.
    pub manifest: String,
    /// Its `exportArn`.
    pub export_arn: String,
    /// Its `executionId` (the assembly).
    pub execution_id: String,
    /// The table its columns describe.
    pub table: crate::cur::Table,
    /// The formats of its parts (one, normally).
    pub formats: Vec<String>,
    /// Parts listed and read.
    pub parts: usize,
    /// Parts read at once.
    pub workers: usize,
}

/// The drill runs of the period (started inside it and finished), oldest first.
pub fn drills_in(runs: &[RunRecord], period: Period) -> Vec<&RunRecord> {
    runs.iter()
        .filter(|r| r.kind == RunKind::Drill)
        .filter(|r| r.started_at.0 >= period.start_ms() && r.started_at.0 < period.end_ms())
        .filter(|r| r.finished_at.is_some())
        .collect()
}

/// Resources a drill names in `details.resources` (strings); empty means the workload's.
pub fn drill_resources(run: &RunRecord) -> Vec<String> {
    run.details
        .get("resources")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Everything the report needs besides the aggregates.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Billing month.
    pub period: Period,
    /// The workload's spec, when reporting on one.
    pub spec: Option<&'a WorkloadSpec>,
    /// All its run records.
    pub runs: &'a [RunRecord],
    /// Outage assumptions.
    pub assumptions: Assumptions,
    /// Last month's summary.
    pub previous: Option<&'a PreviousMonth>,
}

/// Builds the report.
pub fn build(agg: Aggregates, ctx: Context<'_>) -> Report {
    let role_of = |region: &str| {
        ctx.spec
            .and_then(|s| s.regions.iter().find(|r| r.region == region))
            .map(|r| r.role)
    };
    let mut by_region: BTreeMap<&str, BTreeMap<Category, Decimal>> = BTreeMap::new();
    let mut global_services: BTreeMap<String, Decimal> = BTreeMap::new();
    for cell in &agg.cells {
        let cats = by_region
            .entry(cell.region.as_str())
            .or_insert_with(|| Category::ALL.iter().map(|c| (*c, Decimal::ZERO)).collect());
        *cats.entry(cell.category).or_default() += cell.cost;
        if cell.region == GLOBAL {
            *global_services.entry(cell.service.clone()).or_default() += cell.cost;
        }
    }
    let mut regions: Vec<RegionCost> = by_region
        .into_iter()
        .map(|(region, by_category)| RegionCost {
            region: region.to_owned(),
            role: role_of(region),
            total: by_category.values().copied().sum(),
            by_category,
        })
        .collect();
    regions.sort_by(|a, b| {
        (a.region == GLOBAL)
            .cmp(&(b.region == GLOBAL))
            .then(b.total.cmp(&a.total))
            .then(a.region.cmp(&b.region))
    });

    let period_drills = drills_in(ctx.runs, ctx.period);
    let drills: Vec<DrillCost> = period_drills
        .iter()
        .map(|run| DrillCost {
            id: run.id.clone(),
            started_at: run.started_at.rfc3339(),
            finished_at: run.finished_at.unwrap_or(run.started_at).rfc3339(),
            measured_rto_ms: run.measured_rto_ms,
            cost: agg
                .drills
                .iter()
                .find(|(id, _)| *id == run.id)
                .map_or(Decimal::ZERO, |(_, c)| *c),
        })
        .collect();

    let resilience = ctx
        .spec
        .map(|spec| resilience(spec, &regions, &agg.transfers, ctx));
    let recommendations = resilience.as_ref().map(recommend).unwrap_or_default();

    Report {
        workload: ctx.spec.map(|s| s.workload.clone()),
        period: ctx.period,
        currency: ctx
            .spec
            .map_or_else(|| "USD".to_owned(), |s| s.policy.currency.clone()),
        source: None,
        files: agg.files,
        rows: agg.rows,
        matched_rows: agg.matched_rows,
        bad_rows: agg.bad_rows,
        bad_row_samples: agg.bad_row_samples,
        total: agg.total,
        total_unblended: agg.total_unblended,
        out_of_scope: agg.out_of_scope,
        regions,
        cells: agg.cells,
        transfers: agg.transfers,
        global_services,
        line_item_types: agg.line_item_types.into_iter().collect(),
        drills,
        previous: ctx.previous.cloned(),
        resilience,
        recommendations,
    }
}

fn capacity(r: &RegionCost) -> Decimal {
    [Category::Compute, Category::Database, Category::Cache]
        .iter()
        .filter_map(|c| r.by_category.get(c))
        .copied()
        .sum()
}

fn percent(part: Decimal, whole: Decimal) -> Option<Decimal> {
    if whole.is_zero() {
        return None;
    }
    part.checked_mul(Decimal::ONE_HUNDRED)?
        .checked_div(whole)
        .map(|p| p.round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero))
}

fn money(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn resilience(
    spec: &WorkloadSpec,
    regions: &[RegionCost],
    transfers: &[Transfer],
    ctx: Context<'_>,
) -> Resilience {
    let cost_of = |region: &str| regions.iter().find(|r| r.region == region);
    let primary = spec.regions.iter().find(|r| r.role == Role::Primary);
    let primary_capacity = primary.and_then(|p| cost_of(&p.region)).map(capacity);
    let views: Vec<RegionView> = spec
        .regions
        .iter()
        .map(|r| {
            let cost = cost_of(&r.region);
            RegionView {
                region: r.region.clone(),
                role: r.role,
                weight: r.weight,
                cost: cost.map_or(Decimal::ZERO, |c| c.total),
                capacity_vs_primary_percent: match (cost, primary_capacity) {
                    (Some(c), Some(p)) if r.role != Role::Primary => percent(capacity(c), p),
                    (None, Some(p)) if r.role != Role::Primary => percent(Decimal::ZERO, p),
                    _ => None,
                },
            }
        })
        .collect();
    let non_primary_cost: Decimal = views
        .iter()
        .filter(|v| v.role != Role::Primary)
        .map(|v| v.cost)
        .sum();
    let in_workload = |r: &str| spec.regions.iter().any(|s| s.region == r);
    let replication_transfer_total: Decimal = transfers
        .iter()
        .filter(|t| in_workload(&t.from_region) && in_workload(&t.to_region))
        .map(|t| t.cost)
        .sum();
    let replication_transfer_from_primary: Decimal = transfers
        .iter()
        .filter(|t| primary.is_some_and(|p| p.region == t.from_region))
        .filter(|t| in_workload(&t.to_region))
        .map(|t| t.cost)
        .sum();
    let monthly_premium = non_primary_cost + replication_transfer_from_primary;

    // The worst measured RTO of drills up to the period's end; else the objective.
    let measured: Vec<u64> = ctx
        .runs
        .iter()
        .filter(|r| r.kind == RunKind::Drill && r.started_at.0 < ctx.period.end_ms())
        .filter_map(|r| r.measured_rto_ms)
        .collect();
    let (rto_ms, rto_source) = match measured.iter().max() {
        Some(&worst) => (worst, RtoSource::MeasuredByDrills),
        None => (
            spec.policy.rto_seconds.saturating_mul(1000),
            RtoSource::PolicyObjective,
        ),
    };
    let rto_hours = (Decimal::from(rto_ms) / Decimal::from(3_600_000u64))
        .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero);
    let a = ctx.assumptions;
    let per_outage = (a.outage_hours_without_dr - rto_hours).max(Decimal::ZERO);
    let expected_downtime_hours_avoided = (a.outages_per_year * per_outage / Decimal::from(12))
        .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero);
    let downtime_cost_avoided =
        money(expected_downtime_hours_avoided * spec.policy.downtime_cost_per_hour);
    Resilience {
        pattern: spec.pattern,
        regions: views,
        non_primary_cost,
        replication_transfer_from_primary,
        replication_transfer_total,
        monthly_premium,
        downtime_cost_per_hour: spec.policy.downtime_cost_per_hour,
        assumptions: a,
        rto_hours,
        rto_source,
        drills_measured: measured.len(),
        expected_downtime_hours_avoided,
        downtime_cost_avoided,
        roi: downtime_cost_avoided - monthly_premium,
    }
}

fn recommend(r: &Resilience) -> Vec<Recommendation> {
    let mut out = Vec::new();
    for v in &r.regions {
        let idle = v.role != Role::Primary && v.weight == 0;
        if let (true, Some(p)) = (idle, v.capacity_vs_primary_percent)
            && p >= OVER_PROVISIONED_PERCENT
        {
            out.push(Recommendation {
                kind: "standby_over_provisioned",
                region: Some(v.region.clone()),
                detail: format!(
                    "{} takes no traffic but its compute, database and cache cost {p}% of the primary's ({} this month): scale it down to what the RTO needs (pilot light or a smaller warm standby) and scale up on failover",
                    v.region, v.cost
                ),
            });
        }
    }
    if let Some(share) = percent(r.replication_transfer_total, r.monthly_premium)
        && share >= TRANSFER_DOMINATES_PERCENT
    {
        out.push(Recommendation {
            kind: "replication_transfer_dominates",
            region: None,
            detail: format!(
                "inter-Region replication transfer ({}) is {share}% of the DR premium ({}): replicate less (only what the RPO needs), compress, or batch replication",
                r.replication_transfer_total, r.monthly_premium
            ),
        });
    }
    if r.roi < Decimal::ZERO {
        out.push(Recommendation {
            kind: "premium_exceeds_avoided_downtime",
            region: None,
            detail: format!(
                "the DR premium ({}) exceeds the expected downtime cost it avoids ({}): a cheaper pattern may fit this workload's downtime cost",
                r.monthly_premium, r.downtime_cost_avoided
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn spec() -> WorkloadSpec {
        let mut spec: WorkloadSpec =
            serde_json::from_str(include_str!("../../../events/model/example-spec.json")).unwrap();
        // Make the third Region an idle standby.
        spec.pattern = DrPattern::WarmStandby;
        spec.regions[1].role = Role::Standby;
        spec.regions[1].weight = 0;
        spec.regions[0].weight = 80;
        spec
    }

    fn cell(region: &str, service: &str, category: Category, cost: &str) -> Cell {
        Cell {
            region: region.into(),
            service: service.into(),
            category,
            cost: d(cost),
            unblended_cost: d(cost),
        }
    }

    fn agg() -> Aggregates {
        Aggregates {
            files: vec![],
            rows: 5,
            matched_rows: 5,
            bad_rows: 0,
            bad_row_samples: vec![],
            total: d("2391"),
            total_unblended: d("2391"),
            out_of_scope: Decimal::ZERO,
            cells: vec![
                cell("us-east-1", "AmazonEC2", Category::Compute, "1000"),
                cell("us-east-1", "AWSDataTransfer", Category::Network, "300"),
                cell("eu-west-1", "AmazonEC2", Category::Compute, "600"),
                cell("ap-southeast-1", "AmazonEC2", Category::Compute, "400"),
                cell("global", "AmazonRoute53", Category::Network, "91"),
            ],
            transfers: vec![Transfer {
                from_region: "us-east-1".into(),
                to_region: "eu-west-1".into(),
                cost: d("300"),
            }],
            line_item_types: vec![("Usage".into(), d("2391"))],
            drills: vec![],
        }
    }

    #[test]
    fn premium_roi_and_recommendations() {
        let spec = spec();
        let run = RunRecord {
            id: "drill-1".into(),
            kind: RunKind::Drill,
            started_at: lifeboat::UnixMillis(
                "2026-10".parse::<Period>().unwrap().start_ms() + 1000,
            ),
            finished_at: Some(lifeboat::UnixMillis(
                "2026-10".parse::<Period>().unwrap().start_ms() + 900_000,
            )),
            outcome: lifeboat::store::RunOutcome::Succeeded,
            timeline: vec![],
            measured_rto_ms: Some(1_800_000),
            measured_rpo_ms: None,
            rpo_simulated: false,
            details: serde_json::Value::Null,
        };
        let runs = [run];
        let report = build(
            agg(),
            Context {
                period: "2026-10".parse().unwrap(),
                spec: Some(&spec),
                runs: &runs,
                assumptions: Assumptions::default(),
                previous: None,
            },
        );
        assert_eq!(report.regions[0].region, "us-east-1");
        assert_eq!(report.regions[0].total, d("1300"));
        assert_eq!(report.regions.last().unwrap().region, "global");
        assert_eq!(report.global_services["AmazonRoute53"], d("91"));
        let r = report.resilience.as_ref().unwrap();
        assert_eq!(r.non_primary_cost, d("1000"));
        assert_eq!(r.replication_transfer_from_primary, d("300"));
        assert_eq!(r.monthly_premium, d("1300"));
        assert_eq!(r.rto_hours, d("0.5"));
        assert_eq!(r.rto_source, RtoSource::MeasuredByDrills);
        // 1/12 × (24 − 0.5) = 1.958333… → 1.9583 h × 25000.00
        assert_eq!(r.expected_downtime_hours_avoided, d("1.9583"));
        assert_eq!(r.downtime_cost_avoided, d("48957.50"));
        assert_eq!(r.roi, d("47657.50"));
        assert_eq!(r.regions[1].capacity_vs_primary_percent, Some(d("60.0")));
        let kinds: Vec<_> = report.recommendations.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, ["standby_over_provisioned"]);
        assert_eq!(report.drills[0].id, "drill-1");
    }

    #[test]
    fn transfer_dominance_and_negative_roi_are_flagged() {
        let mut spec = spec();
        spec.policy.downtime_cost_per_hour = d("10");
        let mut a = agg();
        a.transfers[0].cost = d("900");
        let report = build(
            a,
            Context {
                period: "2026-10".parse().unwrap(),
                spec: Some(&spec),
                runs: &[],
                assumptions: Assumptions::default(),
                previous: None,
            },
        );
        let r = report.resilience.as_ref().unwrap();
        assert_eq!(r.rto_source, RtoSource::PolicyObjective);
        assert_eq!(r.rto_hours, d("0.0833"));
        let kinds: Vec<_> = report.recommendations.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                "standby_over_provisioned",
                "replication_transfer_dominates",
                "premium_exceeds_avoided_downtime"
            ]
        );
    }
}
