//! The names of the metrics Lifeboat publishes, in one place: the functions that publish
//! them (health-probe, cost-reporter, failover-executor's drill report), the failover
//! alarms that watch them, and the generated dashboard that draws them.

/// The CloudWatch namespace of every Lifeboat metric.
pub const NAMESPACE: &str = "Lifeboat";
/// health-probe: 1 while a Region is healthy, 0 otherwise (dimensions `Workload`,
/// `Region`); the failover alarms watch it.
pub const REGION_HEALTHY: &str = "RegionHealthy";
/// health-probe: the database replication lag into a Region, seconds.
pub const REPLICATION_LAG_SECONDS: &str = "ReplicationLagSeconds";
/// cost-reporter: the month's cost of a Region's share of the workload.
pub const MONTHLY_COST: &str = "MonthlyCost";
/// The drill report: the measured recovery time, seconds (dimension `Workload`).
pub const DRILL_RTO_SECONDS: &str = "DrillRtoSeconds";
/// The drill report: the measured recovery point, seconds (dimension `Workload`).
pub const DRILL_RPO_SECONDS: &str = "DrillRpoSeconds";
