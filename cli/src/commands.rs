//! The commands' I/O: which Region each read or write goes to, and the calls.

use std::io::Write;
use std::time::Duration;

use failover_executor::Executor;
use failover_executor::request::{DrillRequest, FailbackRequest, FailoverRequest, Timing};
use lifeboat::store::{AuditEvent, LeaseRequest, RunRecord};
use lifeboat::{DynamoStore, Error, ErrorName, Store, UnixMillis, WorkloadSpec};
use serde::Serialize;
use serde_json::{Value, json};

use crate::exit::{Exit, Failure};
use crate::follow::{follow, render_ended};
use crate::text::{cut, duration, table};
use crate::{
    Cli, Command, DeployCommand, DrillArgs, DrillCommand, Env, FailbackArgs, FailbackCommand,
    FailoverArgs, FailoverCommand, FollowArgs, Io, LeaseCommand, PlanCommand, RunsCommand,
    SpecCommand,
};

type Res<T> = Result<T, Failure>;

/// How long a break-glass take-over holds the lease before it is released (it is
/// released at once; this only bounds a CLI that dies between the two writes).
const BREAK_GLASS_TTL: Duration = Duration::from_secs(60);

struct Ctx<'a> {
    cli: &'a Cli,
    env: &'a Env,
}

impl Ctx<'_> {
    fn table(&self) -> &str {
        self.cli.table.as_deref().unwrap_or(&self.env.table)
    }

    /// The caller's Region: `--region`, else the configuration's.
    fn home(&self) -> Res<String> {
        let r = self
            .cli
            .region
            .clone()
            .or_else(|| self.env.config.region().map(|r| r.as_ref().to_owned()))
            .ok_or_else(|| Failure::usage("no Region: pass --region or set AWS_REGION"))?;
        known(&r, "--region")?;
        Ok(r)
    }

    fn config(&self, region: &str) -> aws_types::SdkConfig {
        lifeboat::aws::for_region(&self.env.config, region)
    }

    fn store(&self, region: &str) -> DynamoStore {
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&self.config(region)),
            self.table(),
        )
    }

    /// A store over `region` with [`lifeboat::aws::best_effort`]'s short deadlines.
    fn best_effort_store(&self, region: &str) -> DynamoStore {
        let config = lifeboat::aws::best_effort(&self.config(region));
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), self.table())
    }

    fn who(&self) -> Res<String> {
        self.cli
            .requested_by
            .clone()
            .or_else(|| self.env.user.clone())
            .filter(|w| !w.trim().is_empty())
            .ok_or_else(|| Failure::usage("who are you? pass --requested-by (or set USER)"))
    }

    fn print_json<T: Serialize>(&self, out: &mut dyn Write, v: &T) -> Res<()> {
        let text = serde_json::to_string_pretty(v)
            .map_err(|e| Failure::usage(format!("cannot encode JSON: {e}")))?;
        writeln!(out, "{text}")?;
        Ok(())
    }
}

fn known(region: &str, what: &str) -> Res<()> {
    if lifeboat::regions::is_known(region) {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "{what}: `{region}` is not an AWS Region code"
        )))
    }
}

fn reason(text: &str) -> Res<String> {
    if text.trim().is_empty() {
        Err(Failure::usage("--reason must not be empty"))
    } else {
        Ok(text.to_owned())
    }
}

/// Runs the parsed command.
pub(crate) async fn dispatch(cli: &Cli, env: &Env, io: &mut Io<'_>) -> Res<Exit> {
    let ctx = Ctx { cli, env };
    match &cli.command {
        Command::Spec(SpecCommand::Validate { file }) => spec_validate(&ctx, file, io),
        Command::Spec(SpecCommand::Apply { file, reason, yes }) => {
            spec_apply(&ctx, file, reason, *yes, io).await
        }
        Command::Spec(SpecCommand::Show { workload }) => {
            let spec = ctx.store(&ctx.home()?).get_spec(workload).await?;
            ctx.print_json(io.out, &spec)?;
            Ok(Exit::Ok)
        }
        Command::Status {
            workload,
            dns_queries,
        } => status(&ctx, workload.as_deref(), *dns_queries, io).await,
        Command::Plan(p) => plan(&ctx, p, io).await,
        Command::Failover(FailoverCommand::Start {
            args,
            reason,
            force,
            timing,
            follow,
        }) => failover_start(&ctx, args, reason, *force, timing.as_deref(), follow, io).await,
        Command::Failback(FailbackCommand::Start {
            args,
            reason,
            timing,
            follow,
        }) => {
            let mut req = failback_request(&ctx, args, reason)?;
            req.timing = match timing.as_deref() {
                None => None,
                Some([p, v, l]) => Some(failover_executor::failback::FailbackTiming {
                    poll_seconds: *p,
                    verify_max_polls: *v,
                    lag_max_polls: *l,
                    soak_seconds: None,
                }),
                Some([p, v, l, s]) => Some(failover_executor::failback::FailbackTiming {
                    poll_seconds: *p,
                    verify_max_polls: *v,
                    lag_max_polls: *l,
                    soak_seconds: Some(*s),
                }),
                Some(_) => {
                    return Err(Failure::usage(
                        "--timing: `<poll>,<verify_polls>,<lag_polls>[,<soak_seconds>]`",
                    ));
                }
            };
            req.check()?;
            let home = ctx.home()?;
            // The workload must exist: a clear error that starts nothing.
            ctx.store(&home).get_spec(&req.workload).await?;
            let input = to_json(&req)?;
            start_machine(&ctx, "failback", &home, &req.workload, &input, follow, io).await
        }
        Command::Drill(DrillCommand::Start {
            args,
            reason,
            timing,
            follow,
        }) => {
            let mut req = drill_request(&ctx, args, reason, false)?;
            req.timing = match timing.as_deref() {
                None => None,
                Some([p, v, l, c, rest @ ..]) if rest.len() <= 1 => {
                    Some(failover_executor::drill::DrillTiming {
                        poll_seconds: *p,
                        verify_max_polls: *v,
                        lag_max_polls: *l,
                        canary_max_polls: *c,
                        soak_seconds: rest.first().copied(),
                    })
                }
                Some(_) => {
                    return Err(Failure::usage(
                        "--timing: `<poll>,<verify_polls>,<lag_polls>,<canary_polls>[,<soak_seconds>]`",
                    ));
                }
            };
            let home = ctx.home()?;
            let spec = ctx.store(&home).get_spec(&req.workload).await?;
            // The drill's own check of its request, before anything starts.
            failover_executor::drill::prepare(&spec, &req, "lifeboat-cli")?;
            let input = to_json(&req)?;
            start_machine(&ctx, "drill", &home, &req.workload, &input, follow, io).await
        }
        Command::Deploy(DeployCommand::Start {
            workload,
            version,
            reason,
            bake_seconds,
            canary_steps,
            follow,
        }) => {
            let req = deploy_wave::request::DeployRequest {
                workload: workload.clone(),
                version: version.clone(),
                waves: None,
                canary_steps: canary_steps.clone(),
                bake_seconds: *bake_seconds,
                gates: None,
                rollback_scope: None,
                allow_preexisting_alarms: None,
                requested_by: Some(ctx.who()?),
                reason: Some(self::reason(reason)?),
            };
            deploy_wave::decide::check_request(&req)?;
            let home = ctx.home()?;
            ctx.store(&home).get_spec(workload).await?;
            let input = to_json(&req)?;
            start_machine(&ctx, "deploy-waves", &home, workload, &input, follow, io).await
        }
        Command::Runs(RunsCommand::List { workload, limit }) => {
            let runs = runs(&ctx, workload).await?;
            let runs: Vec<_> = runs.into_iter().take(*limit).collect();
            if ctx.cli.json {
                ctx.print_json(io.out, &runs)?;
            } else {
                let lines: Vec<_> = runs.iter().map(crate::status::RunLine::of).collect();
                let rows: Vec<Vec<String>> = lines
                    .iter()
                    .map(|r| {
                        vec![
                            cut(&r.id, 48),
                            snake(&r.kind),
                            snake(&r.outcome),
                            r.started_at.to_string(),
                            r.duration_ms.map(duration).unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                write!(
                    io.out,
                    "{}",
                    table(&["RUN", "KIND", "OUTCOME", "STARTED", "TOOK"], &rows)
                )?;
            }
            Ok(Exit::Ok)
        }
        Command::Runs(RunsCommand::Show { workload, run }) => {
            let r = find_run(&ctx, workload, run).await?;
            if ctx.cli.json {
                ctx.print_json(io.out, &r)?;
            } else {
                write!(io.out, "{}", render_run(&r))?;
            }
            Ok(Exit::Ok)
        }
        Command::Report { workload, run, out } => {
            let r = find_run(&ctx, workload, run).await?;
            let spec = ctx.store(&ctx.home()?).get_spec(workload).await?;
            let html = report_html(&spec, &r);
            let path = out
                .clone()
                .unwrap_or_else(|| std::path::PathBuf::from(format!("{run}.html")));
            std::fs::write(&path, html)
                .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
            if ctx.cli.json {
                ctx.print_json(io.out, &serde_json::json!({"run": run, "path": path}))?;
            } else {
                writeln!(io.out, "wrote {}", path.display())?;
            }
            Ok(Exit::Ok)
        }
        Command::Lease(LeaseCommand::Release {
            workload,
            force,
            reason,
        }) => lease_release(&ctx, workload, *force, reason, io).await,
    }
}

fn snake<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn to_json<T: Serialize>(v: &T) -> Res<String> {
    serde_json::to_string(v).map_err(|e| Failure::usage(format!("cannot encode the input: {e}")))
}

fn spec_validate(ctx: &Ctx<'_>, file: &std::path::Path, io: &mut Io<'_>) -> Res<Exit> {
    let text = read_file(file)?;
    let c = crate::spec::check(&text);
    if ctx.cli.json {
        ctx.print_json(io.out, &c)?;
    } else {
        write!(
            io.out,
            "{}",
            crate::spec::render_checked(&file.display().to_string(), &c)
        )?;
    }
    Ok(if c.is_valid() { Exit::Ok } else { Exit::Usage })
}

fn read_file(file: &std::path::Path) -> Res<String> {
    std::fs::read_to_string(file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))
}

async fn spec_apply(
    ctx: &Ctx<'_>,
    file: &std::path::Path,
    why: &str,
    yes: bool,
    io: &mut Io<'_>,
) -> Res<Exit> {
    let why = reason(why)?;
    let who = ctx.who()?;
    let text = read_file(file)?;
    let c = crate::spec::check(&text);
    let name = file.display().to_string();
    let Some(spec) = c.spec.clone().filter(|_| c.is_valid()) else {
        write!(io.err, "{}", crate::spec::render_checked(&name, &c))?;
        return Err(Failure::usage(format!(
            "{name}: not applied: {} problem(s)",
            c.problems.len()
        )));
    };
    let home = ctx.home()?;
    let current = match ctx.store(&home).get_spec(&spec.workload).await {
        Ok(s) => Some(s),
        Err(e) if e.name() == ErrorName::WorkloadNotFound => None,
        Err(e) => return Err(e.into()),
    };
    // Writes go where every mover writes: the lease Region of the spec as it is now.
    let region = match &current {
        Some(s) => lifeboat::store::lease_region(s, &home),
        None => home.clone(),
    };
    let store = ctx.store(&region);
    let current = match &current {
        Some(_) => match store.get_spec(&spec.workload).await {
            Ok(s) => Some(s),
            Err(e) if e.name() == ErrorName::WorkloadNotFound => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let found = current.as_ref().map_or(0, |s| s.version);
    if spec.version != found {
        return Err(Error::ConcurrentModification {
            workload: spec.workload.clone(),
            expected: spec.version,
            found,
        }
        .into());
    }
    let now = UnixMillis::now();
    if let Some(l) = store.get_lease(&spec.workload).await?
        && !l.is_expired(now)
    {
        return Err(l.held().into());
    }
    let changes = crate::spec::diff(current.as_ref(), &spec);
    writeln!(
        io.out,
        "{} workload `{}` in {region} (version {found} -> {}):",
        if current.is_some() {
            "replacing"
        } else {
            "creating"
        },
        spec.workload,
        found + 1
    )?;
    write!(io.out, "{}", crate::spec::render_diff(&changes))?;
    for w in &c.warnings {
        writeln!(io.out, "warning: {}: {}", w.path, w.message)?;
    }
    if changes.is_empty() && current.is_some() {
        writeln!(io.out, "nothing to apply")?;
        return Ok(Exit::Ok);
    }
    if !yes {
        write!(io.out, "apply? [y/N] ")?;
        io.out.flush()?;
        let mut answer = String::new();
        io.input
            .read_line(&mut answer)
            .map_err(|e| Failure::usage(format!("reading the answer: {e}")))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            writeln!(io.out, "not applied")?;
            return Ok(Exit::Ok);
        }
    }
    let written = match &current {
        None => store.create_spec(&spec).await?,
        Some(_) => store.put_spec(&spec, None).await?,
    };
    let id = format!("spec-applied-v{}", written.version);
    store
        .append_event(
            &spec.workload,
            &AuditEvent {
                at: now,
                id,
                actor: who,
                action: "spec_applied".into(),
                reason: why,
                before: current.as_ref().and_then(|s| serde_json::to_value(s).ok()),
                after: serde_json::to_value(&written).ok(),
            },
        )
        .await?;
    writeln!(
        io.out,
        "applied: workload `{}` is at version {}",
        written.workload, written.version
    )?;
    Ok(Exit::Ok)
}

/// What DNS answers for the workload's record, asked as a client asks it, or why it was
/// not asked. Bounded: each query 1 s, all at once.
async fn ask_dns(
    env: &Env,
    spec: &WorkloadSpec,
    queries: u32,
) -> std::result::Result<traffic_shifter::resolve::Resolved, String> {
    use traffic_shifter::resolve;
    if queries == 0 {
        return Err("--dns-queries 0".into());
    }
    let server = env.resolver.clone()?;
    let name = resolve::record_name(spec).map_err(|e| e.to_string())?;
    let regions = resolve::region_addresses(server, &resolve::endpoint_hosts(spec)).await;
    let answers = resolve::ask(server, &name, queries).await;
    Ok(resolve::tally(&name, server, &answers, &regions))
}

async fn status(
    ctx: &Ctx<'_>,
    workload: Option<&str>,
    dns_queries: u32,
    io: &mut Io<'_>,
) -> Res<Exit> {
    let home = ctx.home()?;
    let store = ctx.store(&home);
    let ids = match workload {
        Some(w) => vec![w.to_owned()],
        None => store.list_workloads().await?,
    };
    if ids.is_empty() {
        writeln!(io.out, "no workloads in table `{}` ({home})", ctx.table())?;
        return Ok(Exit::Ok);
    }
    let mut all = Vec::new();
    for id in &ids {
        let spec = store.get_spec(id).await?;
        let health = store.get_health(id).await?;
        let lease_region = lifeboat::store::lease_region(&spec, &home);
        // The lease Region can be the Region in trouble (the old primary after a
        // failover, until the failback): read it best effort (2 s attempts, one retry)
        // and say what could not be read, from the caller's replica instead.
        let (switches, lease, mut runs, unread) = if lease_region == home {
            (
                store.get_switches(id).await?,
                store.get_lease(id).await?,
                store.list_runs(id).await?,
                None,
            )
        } else {
            let arbiter = ctx.best_effort_store(&lease_region);
            let read = async {
                Ok::<_, Error>((
                    arbiter.get_switches(id).await?,
                    arbiter.get_lease(id).await?,
                    arbiter.list_runs(id).await?,
                ))
            };
            match read.await {
                Ok((sw, l, r)) => (sw, l, r, None),
                Err(e) if e.name() == ErrorName::TransientDependency => {
                    let why = format!(
                        "{lease_region} did not answer ({}); switches and runs from {home}'s replica",
                        e.chain()
                    );
                    (store.get_switches(id).await?, None, Vec::new(), Some(why))
                }
                Err(e) => return Err(e.into()),
            }
        };
        if lease_region != home {
            runs.extend(store.list_runs(id).await?);
        }
        let dns = ask_dns(ctx.env, &spec, dns_queries).await;
        let mut s = crate::status::build(
            crate::status::Read {
                spec: &spec,
                health: &health,
                switches: &switches,
                lease,
                runs,
                read_in: &home,
                lease_region: &lease_region,
                dns,
            },
            UnixMillis::now(),
        );
        s.lease_unread = unread;
        all.push(s);
    }
    if ctx.cli.json {
        if workload.is_some() {
            ctx.print_json(io.out, &all[0])?;
        } else {
            ctx.print_json(io.out, &all)?;
        }
    } else {
        for (i, s) in all.iter().enumerate() {
            if i > 0 {
                writeln!(io.out)?;
            }
            write!(io.out, "{}", crate::status::render(s))?;
        }
    }
    Ok(Exit::Ok)
}

/// One run of the workload by id; `NotFound` (exit 3) when there is none.
async fn find_run(ctx: &Ctx<'_>, workload: &str, run: &str) -> Res<RunRecord> {
    runs(ctx, workload)
        .await?
        .into_iter()
        .find(|r| r.id == run)
        .ok_or_else(|| {
            Failure::not_found(format!("run `{run}` of workload `{workload}` not found"))
        })
}

/// The run's HTML report, as the executor writes it beside the run's JSON: the spec's
/// objectives, and the plan when the run record carries it.
fn report_html(spec: &lifeboat::WorkloadSpec, run: &RunRecord) -> String {
    let plan = run.details["plan"]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            Some(lifeboat::report::PlanLine {
                step: s["step"].as_str()?.to_owned(),
                summary: s["summary"].as_str().unwrap_or_default().to_owned(),
            })
        })
        .collect();
    let ctx = lifeboat::report::Context {
        objectives: Some(lifeboat::report::Objectives {
            rto_seconds: spec.policy.rto_seconds,
            rpo_seconds: spec.policy.rpo_seconds,
        }),
        plan,
    };
    lifeboat::report::html(&spec.workload, run, &ctx)
}

/// Runs, from the lease Region (where movers record them) and the caller's Region
/// (where drill reports are written), one per id, newest first.
async fn runs(ctx: &Ctx<'_>, workload: &str) -> Res<Vec<RunRecord>> {
    let home = ctx.home()?;
    let store = ctx.store(&home);
    let spec = store.get_spec(workload).await?;
    let lease_region = lifeboat::store::lease_region(&spec, &home);
    let mut runs = ctx.store(&lease_region).list_runs(workload).await?;
    if lease_region != home {
        runs.extend(store.list_runs(workload).await?);
    }
    let mut runs = crate::status::dedupe(runs);
    runs.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
    Ok(runs)
}

fn render_run(r: &RunRecord) -> String {
    let mut out = format!(
        "run {}\nkind {}  outcome {}  started {}  finished {}\n",
        r.id,
        snake(&r.kind),
        snake(&r.outcome),
        r.started_at,
        r.finished_at
            .map(|f| f.to_string())
            .unwrap_or_else(|| "-".into())
    );
    if let Some(rto) = r.measured_rto_ms {
        out.push_str(&format!("measured RTO {}\n", duration(rto)));
    }
    if let Some(rpo) = r.measured_rpo_ms {
        out.push_str(&format!(
            "{} RPO {}\n",
            if r.rpo_simulated {
                "simulated"
            } else {
                "measured"
            },
            duration(rpo)
        ));
    }
    let rows: Vec<Vec<String>> = r
        .timeline
        .iter()
        .map(|t| {
            vec![
                t.step.clone(),
                format!("+{}", duration(t.at.since(r.started_at))),
                t.duration_ms.map(duration).unwrap_or_else(|| "-".into()),
                cut(t.detail.as_deref().unwrap_or(""), 56),
            ]
        })
        .collect();
    out.push_str("\ntimeline:\n");
    out.push_str(&table(&["STEP", "AT", "TOOK", "DETAIL"], &rows));
    out
}

/// The Region a failover runs from: `--region` (never the failed Region), else the
/// caller's Region unless it is the one failing, else the first other Region of the
/// spec (a survivor).
pub fn failover_region(
    explicit: Option<&str>,
    caller: &str,
    spec: &WorkloadSpec,
    failed: Option<&str>,
) -> Result<String, Failure> {
    let failed = failed
        .map(str::to_owned)
        .or_else(|| spec.primary().map(|p| p.region.clone()))
        .unwrap_or_default();
    if let Some(r) = explicit {
        if r == failed {
            return Err(Failure::usage(format!(
                "--region {r}: a failover away from {failed} never runs in {failed}; pass a surviving Region"
            )));
        }
        return Ok(r.to_owned());
    }
    if caller != failed {
        return Ok(caller.to_owned());
    }
    spec.regions
        .iter()
        .map(|r| r.region.clone())
        .find(|r| *r != failed)
        .ok_or_else(|| Failure::usage("the workload has no Region to fail over from"))
}

fn failover_request(
    ctx: &Ctx<'_>,
    a: &FailoverArgs,
    why: &str,
    dry_run: bool,
) -> Res<FailoverRequest> {
    if let Some(r) = &a.target {
        known(r, "--target")?;
    }
    let req = FailoverRequest {
        workload: a.workload.clone(),
        // failover-executor's operator request: away from the current primary.
        failed_region: None,
        target_region: a.target.clone(),
        mode: mode(a.mode),
        dry_run,
        accept_data_loss: a.accept_data_loss,
        reason: reason(why)?,
        requested_by: ctx.who()?,
        request_id: None,
        trigger: None,
        timing: None,
        drill: false,
        force: false,
    };
    req.check()?;
    Ok(req)
}

fn mode(m: crate::ModeArg) -> failover_executor::request::Mode {
    match m {
        crate::ModeArg::Planned => failover_executor::request::Mode::Planned,
        crate::ModeArg::Unplanned => failover_executor::request::Mode::Unplanned,
    }
}

fn failback_request(ctx: &Ctx<'_>, a: &FailbackArgs, why: &str) -> Res<FailbackRequest> {
    if let Some(r) = &a.home_region {
        known(r, "--home-region")?;
    }
    let req = FailbackRequest {
        workload: a.workload.clone(),
        home_region: a.home_region.clone(),
        from_run: a.from_run.clone(),
        schedule: a.schedule.clone(),
        drill: false,
        dry_run: false,
        reason: reason(why)?,
        requested_by: ctx.who()?,
        request_id: None,
        timing: None,
    };
    req.check()?;
    Ok(req)
}

fn drill_request(ctx: &Ctx<'_>, a: &DrillArgs, why: &str, dry_run: bool) -> Res<DrillRequest> {
    if let Some(r) = &a.target {
        known(r, "--target")?;
    }
    Ok(DrillRequest {
        workload: a.workload.clone(),
        target_region: a.target.clone(),
        mode: mode(a.mode),
        replication: Default::default(),
        schedule: None,
        reason: reason(why)?,
        requested_by: ctx.who()?,
        timing: None,
        dry_run,
    })
}

/// An executor in `region` (its home): the planning and the operator request are its
/// own code.
fn executor(ctx: &Ctx<'_>, region: &str, machine: &str) -> Res<Executor> {
    Ok(Executor::new(&ctx.config(region), ctx.table(), machine)?)
}

async fn plan(ctx: &Ctx<'_>, p: &PlanCommand, io: &mut Io<'_>) -> Res<Exit> {
    let now = UnixMillis::now();
    let caller = ctx.home()?;
    let (region, out) = match p {
        PlanCommand::Failover { args } => {
            let req = failover_request(ctx, args, "lifeboat plan failover", true)?;
            let spec = ctx.store(&caller).get_spec(&req.workload).await?;
            let region = failover_region(ctx.cli.region.as_deref(), &caller, &spec, None)?;
            let input = serde_json::to_value(&req)
                .map_err(|e| Failure::usage(format!("cannot encode the request: {e}")))?;
            let out = executor(ctx, &region, "")?
                .handle_at(input, "lifeboat-cli-plan", now)
                .await?;
            (region, out["decision"]["plan"].clone())
        }
        PlanCommand::Failback { args } => {
            let mut req = failback_request(ctx, args, "lifeboat plan failback")?;
            req.dry_run = true;
            ctx.store(&caller).get_spec(&req.workload).await?;
            let out = executor(ctx, &caller, "")?
                .handle_at(
                    json!({"step": "decide_failback", "request": req}),
                    "lifeboat-cli-plan",
                    now,
                )
                .await?;
            (caller.clone(), out["plan"].clone())
        }
        PlanCommand::Drill { args } => {
            let req = drill_request(ctx, args, "lifeboat plan drill", true)?;
            ctx.store(&caller).get_spec(&req.workload).await?;
            let out = executor(ctx, &caller, "")?
                .handle_at(
                    json!({"step": "prepare_drill", "request": req, "holder": "lifeboat-cli-plan"}),
                    "lifeboat-cli-plan",
                    now,
                )
                .await?;
            (caller.clone(), out["plan"].clone())
        }
    };
    let plan: failover_executor::decide::Plan = serde_json::from_value(out)
        .map_err(|e| Failure::aws(format!("the executor's plan does not parse: {e}")))?;
    if ctx.cli.json {
        ctx.print_json(io.out, &plan)?;
    } else {
        write!(io.out, "{}", render_plan(&region, &plan))?;
    }
    Ok(Exit::Ok)
}

/// The plan as a table: step, call, Region, plane and flags.
pub fn render_plan(region: &str, plan: &failover_executor::decide::Plan) -> String {
    let mut rows = Vec::new();
    for s in &plan.steps {
        if s.calls.is_empty() {
            rows.push(vec![
                cut(&s.step, 28),
                "-".into(),
                "-".into(),
                "-".into(),
                String::new(),
            ]);
        }
        for c in &s.calls {
            let mut flags = Vec::new();
            if c.outside_surviving_region {
                flags.push("outside-survivor".to_owned());
            }
            if let Some(r) = &c.needs_answer_from {
                flags.push(format!("best-effort({r})"));
            }
            rows.push(vec![
                cut(&s.step, 28),
                cut(&format!("{}.{}", c.service, c.operation), 34),
                c.region.clone(),
                if c.control_plane { "control" } else { "data" }.into(),
                flags.join(","),
            ]);
        }
    }
    let mut out = format!("plan (run from {region}), nothing changed:\n");
    out.push_str(&table(&["STEP", "CALL", "REGION", "PLANE", "FLAGS"], &rows));
    out.push_str(&format!(
        "touches the failed Region: {}; control plane outside the survivor: {}\n",
        if plan.touches_failed_region {
            "yes"
        } else {
            "no"
        },
        if plan.touches_control_plane_outside_surviving_region {
            "yes"
        } else {
            "no"
        }
    ));
    out
}

/// The ARN of machine `lifeboat-<name>-<region>`, found by name in `region`.
async fn machine_arn(ctx: &Ctx<'_>, name: &str, region: &str) -> Res<String> {
    let want = format!("lifeboat-{name}-{region}");
    let sfn = aws_sdk_sfn::Client::new(&ctx.config(region));
    let mut token = None;
    loop {
        let out = sfn
            .list_state_machines()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| Error::from_sdk("sfn", "ListStateMachines", e))?;
        if let Some(m) = out.state_machines().iter().find(|m| m.name() == want) {
            return Ok(m.state_machine_arn().to_owned());
        }
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            return Err(Failure::not_found(format!(
                "state machine `{want}` not found in {region} (is the stack deployed there?)"
            )));
        }
    }
}

fn execution_name(kind: &str, workload: &str, key: &str) -> String {
    let hash = failover_executor::alarm::fnv1a(&[workload, kind, key]);
    format!(
        "{}-{kind}-{hash:016x}",
        failover_executor::alarm::sanitize(workload, 40)
    )
}

fn key(f: &FollowArgs, who: &str) -> String {
    f.request_id
        .clone()
        .unwrap_or_else(|| format!("cli-{}-{who}", UnixMillis::now().0))
}

async fn failover_start(
    ctx: &Ctx<'_>,
    a: &FailoverArgs,
    why: &str,
    force: bool,
    timing: Option<&str>,
    f: &FollowArgs,
    io: &mut Io<'_>,
) -> Res<Exit> {
    let mut req = failover_request(ctx, a, why, false)?;
    req.force = force;
    req.timing = timing.map(Timing::parse).transpose()?;
    req.request_id = f.request_id.clone();
    req.check()?;
    let caller = ctx.home()?;
    let spec = ctx.store(&caller).get_spec(&req.workload).await?;
    let region = failover_region(ctx.cli.region.as_deref(), &caller, &spec, None)?;
    let encode = |r: &FailoverRequest| {
        serde_json::to_value(r)
            .map_err(|e| Failure::usage(format!("cannot encode the request: {e}")))
    };
    // The dry run first: what the decision, the lease or the cooldown refuses is said
    // before anything is looked up or started.
    let mut dry = req.clone();
    dry.dry_run = true;
    executor(ctx, &region, "")?
        .handle_at(encode(&dry)?, "lifeboat-cli-check", UnixMillis::now())
        .await?;
    let machine = machine_arn(ctx, "failover", &region).await?;
    let input = encode(&req)?;
    // failover-executor's operator request: it decides (refusing now what the machine
    // would refuse), then starts the execution under a name derived from the key.
    let who = req.requested_by.clone();
    let out = executor(ctx, &region, &machine)?
        .handle_at(input, &key(f, &who), UnixMillis::now())
        .await?;
    let arn = out["execution_arn"].as_str().unwrap_or_default().to_owned();
    if arn.is_empty() {
        return Err(Failure::aws(format!(
            "failover-executor started nothing: {out}"
        )));
    }
    followed(ctx, &region, &arn, out["outcome"].as_str(), f, io).await
}

async fn start_machine(
    ctx: &Ctx<'_>,
    name: &str,
    region: &str,
    workload: &str,
    input: &str,
    f: &FollowArgs,
    io: &mut Io<'_>,
) -> Res<Exit> {
    let machine = machine_arn(ctx, name, region).await?;
    let exec = execution_name(name, workload, &key(f, &ctx.who()?));
    let sfn = aws_sdk_sfn::Client::new(&ctx.config(region));
    let res = sfn
        .start_execution()
        .state_machine_arn(&machine)
        .name(&exec)
        .input(input)
        .send()
        .await;
    let (arn, outcome) = match res {
        Ok(o) => (o.execution_arn().to_owned(), "started"),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_execution_already_exists()) =>
        {
            (
                failover_executor::alarm::execution_arn(&machine, &exec),
                "already_exists",
            )
        }
        Err(e) => return Err(Error::from_sdk("sfn", "StartExecution", e).into()),
    };
    followed(ctx, region, &arn, Some(outcome), f, io).await
}

async fn followed(
    ctx: &Ctx<'_>,
    region: &str,
    arn: &str,
    outcome: Option<&str>,
    f: &FollowArgs,
    io: &mut Io<'_>,
) -> Res<Exit> {
    if f.no_follow {
        if ctx.cli.json {
            ctx.print_json(io.out, &json!({"execution_arn": arn, "outcome": outcome}))?;
        } else {
            writeln!(io.out, "{arn}")?;
        }
        return Ok(Exit::Ok);
    }
    if !ctx.cli.json {
        writeln!(
            io.out,
            "{}: {arn} (in {region})",
            outcome.unwrap_or("started")
        )?;
    }
    let sfn = aws_sdk_sfn::Client::new(&ctx.config(region));
    let ended = follow(&sfn, arn, crate::poll(f), ctx.cli.json, io.out).await?;
    if ctx.cli.json {
        ctx.print_json(io.out, &ended)?;
    } else {
        write!(io.out, "{}", render_ended(&ended))?;
    }
    if ended.succeeded() {
        Ok(Exit::Ok)
    } else {
        Err(Failure::run(format!(
            "the run ended {}: {}",
            ended.status,
            ended
                .task_error
                .clone()
                .or(ended.error.clone())
                .unwrap_or_default()
        )))
    }
}

async fn lease_release(
    ctx: &Ctx<'_>,
    workload: &str,
    force: bool,
    why: &str,
    io: &mut Io<'_>,
) -> Res<Exit> {
    let why = reason(why)?;
    if !force {
        return Err(Failure::usage(
            "lease release is the break-glass: it fences out the holder's every later step; pass --force to mean it",
        ));
    }
    let who = ctx.who()?;
    let home = ctx.home()?;
    let spec = ctx.store(&home).get_spec(workload).await?;
    let region = lifeboat::store::lease_region(&spec, &home);
    let store = ctx.store(&region);
    let Some(held) = store.get_lease(workload).await? else {
        writeln!(
            io.out,
            "lease of `{workload}` is not held: nothing released"
        )?;
        return Ok(Exit::Ok);
    };
    let now = UnixMillis::now();
    let holder = format!("operator:{who}:break-glass:{}", now.0);
    let taken = store
        .take_over_lease(
            &LeaseRequest {
                workload: workload.to_owned(),
                holder: holder.clone(),
                purpose: held.purpose,
                ttl: BREAK_GLASS_TTL,
            },
            &held,
            now,
        )
        .await?;
    store
        .append_event(
            workload,
            &AuditEvent {
                at: now,
                id: format!("lease-broken-{}", taken.epoch),
                actor: who,
                action: "lease_released_by_operator".into(),
                reason: why,
                before: serde_json::to_value(&held).ok(),
                after: Some(json!({"epoch": taken.epoch, "forced": true, "released": true})),
            },
        )
        .await?;
    store
        .release_lease(workload, &holder, taken.epoch, now)
        .await?;
    let out: Value = json!({
        "workload": workload,
        "region": region,
        "released_epoch": taken.epoch,
        "was": held,
    });
    if ctx.cli.json {
        ctx.print_json(io.out, &out)?;
    } else {
        writeln!(
            io.out,
            "lease of `{workload}` released in {region} at epoch {} (was {} epoch {} held by {})",
            taken.epoch, held.purpose, held.epoch, held.holder
        )?;
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../events/model/example-spec.json");

    #[test]
    fn a_failover_never_runs_from_the_failed_region() {
        let spec: WorkloadSpec = serde_json::from_str(EXAMPLE).unwrap();
        let primary = spec.primary().unwrap().region.clone();
        let other = spec
            .regions
            .iter()
            .find(|r| r.region != primary)
            .unwrap()
            .region
            .clone();
        // Run from the caller's Region when it survives.
        assert_eq!(failover_region(None, &other, &spec, None).unwrap(), other);
        // The caller is in the failing primary: a survivor instead.
        let picked = failover_region(None, &primary, &spec, None).unwrap();
        assert_ne!(picked, primary);
        // Asked for explicitly: refused, nothing started.
        let err = failover_region(Some(&primary), &other, &spec, None).unwrap_err();
        assert_eq!(err.exit, Exit::Usage);
        // Failing away from a secondary: the primary may run it.
        assert_eq!(
            failover_region(None, &other, &spec, Some(&other)).unwrap(),
            primary
        );
    }

    #[test]
    fn execution_names_are_valid_and_stable_per_key() {
        let a = execution_name("drill", "checkout", "k1");
        assert_eq!(a, execution_name("drill", "checkout", "k1"));
        assert_ne!(a, execution_name("drill", "checkout", "k2"));
        assert!(a.len() <= 80);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
