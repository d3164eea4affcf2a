//! Compute scaling decisions (issue #15), pure: what the target Region's compute must
//! reach before traffic moves, what to ask Auto Scaling / ECS for, and when the wait is
//! over. [`crate::scale`] does the I/O.
//!
//! The rule follows ARC Region switch's EC2 Auto Scaling execution block ("Amazon EC2
//! Auto Scaling group execution block", ARC Developer Guide,
//! https://docs.aws.amazon.com/r53recovery/latest/dg/ec2-auto-scaling-block.html): the
//! target's new desired capacity is `ceil(percent × source capacity)`; when the target
//! already wants at least that much nothing is changed ("Region switch doesn't scale
//! down"); the capacity that counts is the instances `InService`; an ungraceful
//! (unplanned) run may go on at a minimum percentage of the target.
//!
//! Where "what the Region being left ran" comes from: metrics live in the Region that
//! publishes them, so an unplanned failover cannot sample the failed Region's CloudWatch.
//! Lifeboat reads the left Region's `full_capacity` from the spec (the global table,
//! readable from any surviving Region) when the move is unplanned, and the left Region's
//! live desired capacity when it is planned (both Regions up; a best-effort client, the
//! declared value when that Region does not answer).

use lifeboat::Error;
use lifeboat::model::{
    ComputePolicy, ComputeRef, RegionSpec, ScaleTarget, StandbySize, WorkloadSpec,
};

use crate::request::Mode;

/// What one resource must reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned<'a> {
    /// The target Region's resource.
    pub compute: &'a ComputeRef,
    /// Instances or tasks that must be in service.
    pub wanted: u32,
    /// Where `wanted` came from, for the outcome and the audit log.
    pub basis: String,
}

/// `ceil(percent × capacity / 100)`, in integers.
pub fn percent_of(percent: u32, capacity: u32) -> u32 {
    let n = u64::from(percent) * u64::from(capacity);
    u32::try_from(n.div_ceil(100)).unwrap_or(u32::MAX)
}

/// The Region a move into `target` leaves: the spec's primary when it is not the target
/// (the spec names the old primary until finalize).
pub fn left_region<'a>(spec: &'a WorkloadSpec, target: &str) -> Option<&'a RegionSpec> {
    spec.primary().filter(|p| p.region != target)
}

/// What every compute resource of `target` must reach. `left_capacity(tier)` is what the
/// left Region's resource of that tier ran (planned: read there; `None` when it could not
/// be read or there is no left Region); the declared `full_capacity` of the left Region's
/// tier (or, with no left Region, the target's own) stands in when it is `None`.
pub fn scale_plan<'a>(
    spec: &'a WorkloadSpec,
    target: &'a RegionSpec,
    left_capacity: &dyn Fn(&str) -> Option<u32>,
) -> Result<Vec<Planned<'a>>, Error> {
    let policy = &spec.policy.compute;
    let left = left_region(spec, &target.region);
    let mut out = Vec::new();
    for c in &target.compute {
        let (wanted, basis) = match policy.failover_to {
            ScaleTarget::Fixed { capacity } => (capacity, format!("fixed {capacity}")),
            ScaleTarget::LeftRegion { percent } => {
                let declared_in = left.unwrap_or(target);
                let declared = declared_in
                    .compute
                    .iter()
                    .find(|l| l.tier == c.tier)
                    .and_then(|l| l.full_capacity);
                let (source, how) = match (left_capacity(&c.tier), declared) {
                    (Some(n), _) => (n, format!("{} ran {n}", declared_in.region)),
                    (None, Some(n)) => (n, format!("{} full_capacity {n}", declared_in.region)),
                    (None, None) => {
                        return Err(Error::InvalidInput(format!(
                            "compute tier `{}`: region {} declares no full_capacity and what it ran could not be read",
                            c.tier, declared_in.region
                        )));
                    }
                };
                (percent_of(percent, source), format!("{percent} % of {how}"))
            }
        };
        out.push(Planned {
            compute: c,
            wanted,
            basis,
        });
    }
    Ok(out)
}

/// A resource as Auto Scaling or ECS describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// Desired capacity (ASG `DesiredCapacity`, ECS `desiredCount`).
    pub desired: u32,
    /// In service (ASG instances `InService`, ECS `runningCount`).
    pub in_service: u32,
    /// ASG `MaxSize` (ECS has none).
    pub max: Option<u32>,
    /// ASG `MinSize` (ECS has none: 0 tasks).
    pub min: Option<u32>,
}

/// The size a standby resource returns to once traffic has left its Region
/// (`policy.compute.standby`): its minimum (pilot light), or `ceil(percent ×
/// full_capacity)` (warm standby; what it wants now when no `full_capacity` is
/// declared), never below the group's `MinSize` (Auto Scaling refuses a desired capacity
/// under it). `None` when it already wants no more: a standby is never scaled up.
pub fn standby_target(standby: StandbySize, c: &ComputeRef, now: Observed) -> Option<u32> {
    let floor = now.min.unwrap_or(0);
    let size = match standby {
        StandbySize::Minimum => floor,
        StandbySize::Percent(p) => percent_of(p, c.full_capacity.unwrap_or(now.desired)).max(floor),
    };
    (now.desired > size).then_some(size)
}

/// What to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleAction {
    /// The resource already wants at least `wanted`: nothing is changed (never scales
    /// down, so a retry, or a target already bigger, is left alone).
    AlreadyScaled,
    /// Set the desired capacity; `raise_max` when the ASG's `MaxSize` is below it (a
    /// desired capacity above the maximum is refused: "Set scaling limits for your Auto
    /// Scaling group", https://docs.aws.amazon.com/autoscaling/ec2/userguide/asg-capacity-limits.html).
    SetDesired {
        /// The new desired capacity.
        desired: u32,
        /// The new `MaxSize`, when it must grow.
        raise_max: Option<u32>,
    },
}

/// The call for one resource.
pub fn scale_action(wanted: u32, now: Observed) -> ScaleAction {
    if now.desired >= wanted {
        return ScaleAction::AlreadyScaled;
    }
    ScaleAction::SetDesired {
        desired: wanted,
        raise_max: now.max.filter(|&m| m < wanted).map(|_| wanted),
    }
}

/// Where the wait for capacity stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Every resource has its target in service.
    Scaled,
    /// Not yet, and the wait is not over.
    Waiting,
    /// Unplanned, the wait is over, and every resource has at least the minimum success
    /// percentage: the run goes on, recorded and warned. `short` lists `(id, in service,
    /// wanted)` of those below target.
    BelowTarget {
        /// Resources below target.
        short: Vec<(String, u32, u32)>,
    },
    /// The wait is over and capacity is not enough: the run must not move traffic.
    Insufficient {
        /// Why, naming every resource below what it needed.
        reason: String,
    },
}

/// Judges `(id, in service, wanted)` of every resource, `elapsed` seconds after the
/// scale request.
pub fn progress(
    items: &[(String, u32, u32)],
    elapsed_seconds: u64,
    policy: &ComputePolicy,
    mode: Mode,
) -> Progress {
    let short: Vec<(String, u32, u32)> = items
        .iter()
        .filter(|(_, have, want)| have < want)
        .cloned()
        .collect();
    if short.is_empty() {
        return Progress::Scaled;
    }
    if elapsed_seconds < policy.max_wait_seconds {
        return Progress::Waiting;
    }
    let floor = |want: u32| percent_of(policy.min_success_percent, want);
    let enough = short.iter().all(|(_, have, want)| *have >= floor(*want));
    if mode == Mode::Unplanned && enough {
        return Progress::BelowTarget { short };
    }
    let list: Vec<String> = short
        .iter()
        .map(|(id, have, want)| format!("{id} {have}/{want} in service"))
        .collect();
    let rule = match mode {
        Mode::Unplanned => format!(
            "below the minimum success of {} %",
            policy.min_success_percent
        ),
        Mode::Planned => "a planned move waits for 100 %".to_owned(),
    };
    Progress::Insufficient {
        reason: format!(
            "compute did not reach its target within {} s ({rule}): {}",
            policy.max_wait_seconds,
            list.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat::model::ComputeResource;

    fn spec() -> WorkloadSpec {
        serde_json::from_str(include_str!("../../../events/model/pilot-light-spec.json")).unwrap()
    }

    fn none(_: &str) -> Option<u32> {
        None
    }

    #[test]
    fn percent_rounds_up_like_arc() {
        assert_eq!(percent_of(100, 6), 6);
        assert_eq!(percent_of(50, 5), 3);
        assert_eq!(percent_of(80, 4), 4, "3.2 rounds up");
        assert_eq!(percent_of(1, 1), 1);
        assert_eq!(percent_of(100, 0), 0);
        assert_eq!(percent_of(100, u32::MAX), u32::MAX);
    }

    #[test]
    fn unplanned_scales_to_what_the_left_region_declares() {
        let spec = spec();
        let target = spec.region("us-west-2").unwrap();
        let plan = scale_plan(&spec, target, &none).unwrap();
        let got: Vec<(&str, u32)> = plan
            .iter()
            .map(|p| (p.compute.tier.as_str(), p.wanted))
            .collect();
        assert_eq!(got, [("web", 6), ("workers", 4)]);
        assert_eq!(plan[0].basis, "100 % of us-east-1 full_capacity 6");
        assert_eq!(
            plan[0].compute.resource,
            ComputeResource::AutoScalingGroup {
                name: "orders-web-usw2".into()
            }
        );
    }

    #[test]
    fn a_live_reading_of_the_left_region_wins_and_percent_applies() {
        let mut spec = spec();
        spec.policy.compute.failover_to = ScaleTarget::LeftRegion { percent: 50 };
        let target = spec.region("us-west-2").unwrap().clone();
        let live = |tier: &str| (tier == "web").then_some(9);
        let plan = scale_plan(&spec, &target, &live).unwrap();
        assert_eq!(plan[0].wanted, 5, "ceil(0.5 x 9)");
        assert_eq!(plan[0].basis, "50 % of us-east-1 ran 9");
        assert_eq!(plan[1].wanted, 2, "declared 4, halved");
    }

    #[test]
    fn fixed_ignores_the_left_region_and_no_capacity_is_bad_input() {
        let mut spec = spec();
        spec.policy.compute.failover_to = ScaleTarget::Fixed { capacity: 3 };
        spec.policy.compute.standby = StandbySize::Percent(10);
        let target = spec.region("us-west-2").unwrap().clone();
        let plan = scale_plan(&spec, &target, &none).unwrap();
        assert!(plan.iter().all(|p| p.wanted == 3));
        let mut spec = self::spec();
        spec.regions[0].compute[0].full_capacity = None;
        let target = spec.region("us-west-2").unwrap().clone();
        let err = scale_plan(&spec, &target, &none).unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
        assert!(err.to_string().contains("tier `web`"), "{err}");
        // Into the primary itself (no Region left): its own declared size.
        let spec = self::spec();
        let primary = spec.region("us-east-1").unwrap();
        let plan = scale_plan(&spec, primary, &none).unwrap();
        assert_eq!(plan[0].basis, "100 % of us-east-1 full_capacity 6");
    }

    /// Issue #15 item 2: after a failback the former standby returns to its standby
    /// size, never below the group's minimum and never up.
    #[test]
    fn a_standby_returns_to_its_minimum_or_its_share_and_is_never_scaled_up() {
        let c = |full| ComputeRef {
            tier: "web".into(),
            resource: ComputeResource::AutoScalingGroup { name: "web".into() },
            full_capacity: full,
        };
        let obs = |desired, min| Observed {
            desired,
            in_service: desired,
            max: Some(10),
            min,
        };
        // Pilot light: back to MinSize (0 tasks for ECS, which has none).
        assert_eq!(
            standby_target(StandbySize::Minimum, &c(Some(6)), obs(6, Some(1))),
            Some(1)
        );
        assert_eq!(
            standby_target(StandbySize::Minimum, &c(Some(6)), obs(6, None)),
            Some(0)
        );
        // Warm standby: ceil(25 % of 6) = 2; of what it runs when nothing is declared.
        assert_eq!(
            standby_target(StandbySize::Percent(25), &c(Some(6)), obs(6, Some(0))),
            Some(2)
        );
        assert_eq!(
            standby_target(StandbySize::Percent(50), &c(None), obs(8, Some(0))),
            Some(4)
        );
        // Never under MinSize, never up, nothing when already there.
        assert_eq!(
            standby_target(StandbySize::Percent(10), &c(Some(6)), obs(6, Some(3))),
            Some(3)
        );
        assert_eq!(
            standby_target(StandbySize::Percent(50), &c(Some(6)), obs(2, Some(0))),
            None
        );
        assert_eq!(
            standby_target(StandbySize::Minimum, &c(Some(6)), obs(0, Some(0))),
            None
        );
    }

    #[test]
    fn never_scales_down_and_raises_the_maximum_when_needed() {
        let obs = |desired, max| Observed {
            desired,
            in_service: desired,
            max,
            min: None,
        };
        assert_eq!(scale_action(6, obs(6, Some(6))), ScaleAction::AlreadyScaled);
        assert_eq!(
            scale_action(6, obs(8, Some(10))),
            ScaleAction::AlreadyScaled
        );
        assert_eq!(
            scale_action(6, obs(1, Some(10))),
            ScaleAction::SetDesired {
                desired: 6,
                raise_max: None
            }
        );
        assert_eq!(
            scale_action(6, obs(0, Some(2))),
            ScaleAction::SetDesired {
                desired: 6,
                raise_max: Some(6)
            }
        );
        assert_eq!(
            scale_action(4, obs(1, None)),
            ScaleAction::SetDesired {
                desired: 4,
                raise_max: None
            }
        );
    }

    #[test]
    fn the_wait_is_bounded_and_only_unplanned_may_go_on_below_target() {
        let policy = ComputePolicy::default();
        let items = |web: u32, workers: u32| {
            vec![
                ("orders-web-usw2".to_owned(), web, 6),
                ("orders/workers".to_owned(), workers, 4),
            ]
        };
        assert_eq!(
            progress(&items(6, 4), 0, &policy, Mode::Planned),
            Progress::Scaled
        );
        assert_eq!(
            progress(&items(7, 4), 10_000, &policy, Mode::Planned),
            Progress::Scaled
        );
        assert_eq!(
            progress(&items(2, 4), 899, &policy, Mode::Unplanned),
            Progress::Waiting
        );
        // 5/6 = 83 % and 4/4: at or above the 80 % floor (ceil(0.8 x 6) = 5).
        assert_eq!(
            progress(&items(5, 4), 900, &policy, Mode::Unplanned),
            Progress::BelowTarget {
                short: vec![("orders-web-usw2".to_owned(), 5, 6)]
            }
        );
        let Progress::Insufficient { reason } = progress(&items(5, 4), 900, &policy, Mode::Planned)
        else {
            panic!("a planned move never proceeds below target")
        };
        assert!(
            reason.contains("a planned move waits for 100 %"),
            "{reason}"
        );
        let Progress::Insufficient { reason } =
            progress(&items(4, 3), 900, &policy, Mode::Unplanned)
        else {
            panic!("4/6 is below 80 %")
        };
        assert!(
            reason.contains("below the minimum success of 80 %")
                && reason.contains("orders-web-usw2 4/6 in service")
                && reason.contains("orders/workers 3/4 in service"),
            "{reason}"
        );
    }
}
