//! # lifeboat-cli
//!
//! The `lifeboat` operator CLI over the same code the functions run: specs are parsed
//! and validated by the shared model ([`lifeboat::model`]), read and written through its
//! store ([`lifeboat::store`]), plans come from failover-executor's own dry run, and
//! runs are the state machines' executions, started with their documented input and
//! followed from their history.
//!
//! [`run`] is the whole program with its environment passed in (the binary's `main`
//! reads the environment once), so tests drive it against the emulators.
//!
//! - [`exit`]: the exit codes and how every error maps to one;
//! - [`spec`]: `spec validate|apply|show` (validation paths, the diff);
//! - [`status`]: `status` (pure over the table's items);
//! - [`follow`]: following an execution live, its timeline;
//! - [`commands`]: the commands' I/O.

pub mod commands;
pub mod exit;
pub mod follow;
pub mod spec;
pub mod status;
pub mod text;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use aws_types::SdkConfig;
use clap::{Args, Parser, Subcommand, ValueEnum};

pub use exit::{Exit, Failure};

const EXIT_STATUS: &str = "\
EXIT STATUS
  0  done; a followed run succeeded
  1  a followed run ended without succeeding (failed, timed out, aborted)
  2  bad usage or input: arguments, a spec that does not parse or validate
  3  not found: workload, run, state machine or AWS resource
  4  conflict: the spec's version moved, or a lease is held
  5  AWS failed or could not be reached (throttling, 5xx, timeout, denied)
  6  refused by policy: target unhealthy, lag over the RPO, cooldown, ...

ENVIRONMENT
  AWS_REGION, AWS_PROFILE, AWS_ACCESS_KEY_ID, ...  the standard credential and Region chain
  AWS_ENDPOINT_URL   send every call to an emulator (the local twin, moto)
  LIFEBOAT_TABLE     the table's name (default `lifeboat`)
  USER               who you are, for the audit trail (or --requested-by)

REGIONS
  The table is a global table: reads go to the Region you run in (--region, else
  AWS_REGION); the lease, switches and runs are read where lifeboat::store::lease_region
  says (the first Region of the spec that is not the primary), never in a failed
  primary. A failover runs from --region, or from a surviving Region when the one you
  are in is the one failing; never from the failed Region.";

/// `lifeboat`: operate Lifeboat workloads across AWS Regions.
#[derive(Debug, Parser)]
#[command(
    name = "lifeboat",
    version,
    about = "Operate Lifeboat: specs, status, plans, failovers, failbacks, drills, deploys",
    long_about = "Operate Lifeboat, which keeps a workload serving across AWS Regions.\n\n\
        Reads and writes the deployment model in the Lifeboat table, shows each Region's\n\
        role, health, replication and routing, prints the plan of a failover, failback or\n\
        drill without changing anything, and starts the state machines with their\n\
        documented input, following the execution live to its end.",
    after_long_help = EXIT_STATUS,
    after_help = "Exit status: 0 ok, 1 run not succeeded, 2 usage, 3 not found, 4 conflict, 5 AWS, 6 refused (--help for more)."
)]
pub struct Cli {
    /// The Region to read from and run in (default: AWS_REGION).
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// The Lifeboat table (default: LIFEBOAT_TABLE, else `lifeboat`).
    #[arg(long, global = true, value_name = "NAME")]
    pub table: Option<String>,
    /// Print JSON instead of text (every read command; the end of a run).
    #[arg(long, global = true)]
    pub json: bool,
    /// Who you are, for the audit trail (default: USER).
    #[arg(long, global = true, value_name = "WHO")]
    pub requested_by: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate, apply or show a workload's spec.
    #[command(subcommand)]
    Spec(SpecCommand),
    /// Each Region's role, weight, health, lag, switch and DNS; the lease; the last runs.
    ///
    /// DNS is asked as a client asks it: the workload's record name, `--dns-queries`
    /// times at once (a weighted record answers one record per query), of the resolver
    /// in LIFEBOAT_DNS_RESOLVER (ip:port), else the first nameserver of
    /// /etc/resolv.conf; each query is bounded to 1 s. The DNS column counts the answers
    /// naming each Region. What Route 53 should answer, from the weights and switches,
    /// is printed beside it; a cache answers what it cached for up to the record's TTL.
    Status {
        /// The workload (default: every workload in the table).
        workload: Option<String>,
        /// How many DNS queries per workload (0: do not ask DNS).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=200))]
        dns_queries: u32,
    },
    /// Print what a failover, failback or drill would do, changing nothing.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Start a failover (the `failover` state machine) and follow it.
    #[command(subcommand)]
    Failover(FailoverCommand),
    /// Start a failback (the `failback` state machine) and follow it.
    #[command(subcommand)]
    Failback(FailbackCommand),
    /// Start a DR drill (the `drill` state machine) and follow it.
    #[command(subcommand)]
    Drill(DrillCommand),
    /// Start a Region-by-Region deploy (the `deploy-waves` state machine) and follow it.
    #[command(subcommand)]
    Deploy(DeployCommand),
    /// List runs or show one, with its timeline.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Write a run's self-contained HTML report (summary, RTO/RPO against the spec's
    /// objectives, the timeline as a chart, what moved, the plan against what ran) to a
    /// local file, rendered from its run record as the executor renders it.
    Report {
        /// The workload.
        workload: String,
        /// The run id (its execution name).
        run: String,
        /// Where to write it (default: `<run>.html` in the current directory).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Break the glass on a workload's lease.
    #[command(subcommand)]
    Lease(LeaseCommand),
}

/// `spec ...`.
#[derive(Debug, Subcommand)]
pub enum SpecCommand {
    /// Check a spec file and print every problem at once, each with its JSON path.
    Validate {
        /// The spec (JSON).
        file: PathBuf,
    },
    /// Create or replace a workload's spec: validate, show the diff, write it only if
    /// the table still holds the file's `version` (0 or absent: a new workload), record
    /// an audit event (who, why).
    Apply {
        /// The spec (JSON), e.g. as `spec show` printed it, edited.
        file: PathBuf,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: String,
        /// Apply without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Print the stored spec (JSON, with its `version`: edit it and `spec apply` it).
    Show {
        /// The workload.
        workload: String,
    },
}

/// Planned or unplanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Both Regions up: the data tier switches over without loss.
    Planned,
    /// The primary is failing: promote what is there.
    Unplanned,
}

/// What a failover is asked to do.
#[derive(Debug, Clone, Args)]
pub struct FailoverArgs {
    /// The workload. A failover moves away from its current primary.
    ///
    /// An operator names the target; only alarms name a failed Region.
    pub workload: String,
    /// The Region to take over (default: the decision's best candidate).
    #[arg(long, value_name = "REGION")]
    pub target: Option<String>,
    /// Planned or unplanned.
    #[arg(long, value_enum, default_value = "unplanned")]
    pub mode: ModeArg,
    /// Unplanned only: go ahead even if the target's lag is over the RPO.
    #[arg(long)]
    pub accept_data_loss: bool,
}

/// `plan ...`.
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// The failover's dry run: the decision and every step and AWS call.
    Failover {
        /// What to fail over.
        #[command(flatten)]
        args: FailoverArgs,
    },
    /// The failback's dry run.
    Failback {
        /// What to fail back.
        #[command(flatten)]
        args: FailbackArgs,
    },
    /// The drill's dry run (nested failover and failback).
    Drill {
        /// What to drill.
        #[command(flatten)]
        args: DrillArgs,
    },
}

/// How a started run is followed.
#[derive(Debug, Clone, Args)]
pub struct FollowArgs {
    /// Print the execution ARN and return at once.
    #[arg(long)]
    pub no_follow: bool,
    /// An idempotency key: the same key names the same execution (a retry joins it).
    #[arg(long, value_name = "KEY")]
    pub request_id: Option<String>,
    /// Milliseconds between polls of the execution's history while following.
    #[arg(long, value_name = "MS", default_value_t = 1000, hide = true)]
    pub poll_ms: u64,
}

/// `failover start`.
#[derive(Debug, Subcommand)]
pub enum FailoverCommand {
    /// Start a failover and follow it to its end.
    Start {
        /// What to fail over.
        #[command(flatten)]
        args: FailoverArgs,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: String,
        /// Break the glass: take the lease over from whatever run holds it.
        #[arg(long)]
        force: bool,
        /// The machine's waits: `<poll_seconds>,<verify_max_polls>` (default 15,40).
        #[arg(long, value_name = "POLL,VERIFY")]
        timing: Option<String>,
        /// Following.
        #[command(flatten)]
        follow: FollowArgs,
    },
}

/// What a failback is asked to do.
#[derive(Debug, Clone, Args)]
pub struct FailbackArgs {
    /// The workload.
    pub workload: String,
    /// The Region to return to (must be the one the failover left).
    #[arg(long, value_name = "REGION")]
    pub home_region: Option<String>,
    /// The failover run to undo (default: the latest into the current primary).
    #[arg(long, value_name = "RUN")]
    pub from_run: Option<String>,
    /// Traffic stages, percent of the way back, e.g. `10,25,50,100`.
    #[arg(long, value_name = "P,P,...", value_delimiter = ',')]
    pub schedule: Option<Vec<u32>>,
}

/// `failback start`.
#[derive(Debug, Subcommand)]
pub enum FailbackCommand {
    /// Start a failback and follow it to its end.
    Start {
        /// What to fail back.
        #[command(flatten)]
        args: FailbackArgs,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: String,
        /// The machine's waits: `<poll>,<verify_polls>,<lag_polls>[,<soak_seconds>]`.
        #[arg(long, value_name = "P,V,L[,S]", value_delimiter = ',')]
        timing: Option<Vec<u32>>,
        /// Following.
        #[command(flatten)]
        follow: FollowArgs,
    },
}

/// What a drill is asked to do.
#[derive(Debug, Clone, Args)]
pub struct DrillArgs {
    /// The workload.
    pub workload: String,
    /// Where to fail over to (default: the decision's best candidate).
    #[arg(long, value_name = "REGION")]
    pub target: Option<String>,
    /// Planned (default) or unplanned.
    #[arg(long, value_enum, default_value = "planned")]
    pub mode: ModeArg,
}

/// `drill start`.
#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    /// Start a drill and follow it to its end.
    Start {
        /// What to drill.
        #[command(flatten)]
        args: DrillArgs,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: String,
        /// The waits: `<poll>,<verify_polls>,<lag_polls>,<canary_polls>[,<soak_seconds>]`.
        #[arg(long, value_name = "P,V,L,C[,S]", value_delimiter = ',')]
        timing: Option<Vec<u32>>,
        /// Following.
        #[command(flatten)]
        follow: FollowArgs,
    },
}

/// `deploy start`.
#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Start a deploy of a version, wave by wave, and follow it to its end.
    Start {
        /// The workload.
        workload: String,
        /// The version to roll out (already in each Region's idle slot).
        #[arg(long)]
        version: String,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: String,
        /// Bake time after each traffic step, in seconds.
        #[arg(long, default_value_t = 900)]
        bake_seconds: u64,
        /// Percent of traffic on the new version at each step, e.g. `10,50,100`.
        #[arg(long, value_name = "P,P,...", value_delimiter = ',')]
        canary_steps: Option<Vec<u32>>,
        /// Following.
        #[command(flatten)]
        follow: FollowArgs,
    },
}

/// `runs ...`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The workload's runs, newest first.
    List {
        /// The workload.
        workload: String,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One run: outcome, RTO/RPO and timeline.
    Show {
        /// The workload.
        workload: String,
        /// The run id (its execution name).
        run: String,
    },
}

/// `lease ...`.
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Break-glass release: take the lease over with a new epoch (every step of the
    /// holder is fenced out from then on) and release it, recording who and why.
    Release {
        /// The workload.
        workload: String,
        /// Required: you mean it.
        #[arg(long)]
        force: bool,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: String,
    },
}

/// What the program gets from its environment, read once by `main`.
#[derive(Debug, Clone)]
pub struct Env {
    /// The SDK configuration from the standard chain (credentials, Region, endpoints).
    pub config: SdkConfig,
    /// `LIFEBOAT_TABLE`, else `lifeboat`.
    pub table: String,
    /// `USER`, for the audit trail.
    pub user: Option<String>,
    /// The DNS resolver `status` asks (`LIFEBOAT_DNS_RESOLVER`, else the first
    /// nameserver of `/etc/resolv.conf`), or why there is none.
    pub resolver: std::result::Result<std::net::SocketAddr, String>,
}

/// The program's streams.
pub struct Io<'a> {
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Standard error.
    pub err: &'a mut dyn Write,
    /// Standard input (the answer to `spec apply`'s question).
    pub input: &'a mut dyn BufRead,
}

/// Runs the program with `args` (the first is the program's name).
pub async fn run<I, T>(args: I, env: &Env, io: &mut Io<'_>) -> Exit
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let text = e.render().to_string();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = write!(io.out, "{text}");
                    Exit::Ok
                }
                _ => {
                    let _ = write!(io.err, "{text}");
                    Exit::Usage
                }
            };
        }
    };
    match commands::dispatch(&cli, env, io).await {
        Ok(exit) => exit,
        Err(f) => {
            let _ = writeln!(io.err, "lifeboat: {}", f.message);
            f.exit
        }
    }
}

/// The poll interval of a follow.
pub(crate) fn poll(f: &FollowArgs) -> Duration {
    Duration::from_millis(f.poll_ms.clamp(50, 60_000))
}
