//! `cargo lambda watch` serving our real function binaries under the Lambda runtime API,
//! with the Invoke API on a loopback port. moto's Step Functions reaches it through the
//! router in `scripts/moto_server.py` (see [`crate::moto::MotoOptions::lambda_endpoint`]).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::moto::repo_root;

/// The six function packages (each has one binary of the same name).
pub const FUNCTIONS: [&str; 6] = [
    "health-probe",
    "failover-executor",
    "replica-promoter",
    "traffic-shifter",
    "deploy-wave",
    "cost-reporter",
];

/// Instances `cargo lambda watch` may run of each function at once. Lambda runs each
/// invocation in its own execution environment, scaling out; with one instance, a storm
/// of asynchronous alarm deliveries would queue a state machine's own task of the same
/// function behind it until that task timed out, which AWS would not do. Twelve: the
/// storm drill delivers every scheduled probe nine times, each copy probing for the
/// whole window, and Lambda would run all nine at once. (Instances start on demand; the
/// twin's router forwards at most this many invocations of a function at once, the
/// named local setting `lambda.instances`, synchronous ones first, so that none waits in
/// watch's queue with its timeout running: scripts/moto_server.py.)
pub const CONCURRENCY: u32 = 12;

/// Watches this process has started: each gets its own log.
static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A free loopback port (bound, read, released).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Builds function binaries (dev profile, like the tests), so the first invoke of each
/// does not compile it inside a state machine's task timeout, and returns the directory
/// cargo put them in (read from its artifact messages).
///
/// One `cargo build --workspace --bins`, and `--tests` when [`ENV_FUNCTIONS_BUILD`] is
/// `tests`: what `scripts/run_tests.py` sets, whose test binaries `cargo test
/// --workspace` built. Then the features it resolves are the ones that build resolved
/// (every member, with dev-dependencies), every dependency is already built and only
/// the functions' own `main`s compile; `scripts/test` builds them right after the
/// tests, so here they are fresh. `scripts/drill` builds with `--workspace --bins`, the
/// default. A `cargo build --bin <function>` per function resolved features for that
/// package alone and built the AWS SDK crates again inside the tests (about 4 min of
/// CI's two cores, the tests waiting on the build lock). Features only add: the binary
/// is the function's, and it starts as that binary under watch
/// (`scripts/lambda-instance`), never as `cargo run`.
pub fn build_functions(functions: &[&str]) -> anyhow::Result<Option<PathBuf>> {
    if functions.is_empty() {
        return Ok(None);
    }
    let mut args = vec![
        "build",
        "--quiet",
        "--locked",
        "--workspace",
        "--bins",
        "--message-format=json-render-diagnostics",
    ];
    if std::env::var(ENV_FUNCTIONS_BUILD).is_ok_and(|v| v == "tests") {
        args.push("--tests");
    }
    let output = Command::new(cargo())
        .current_dir(repo_root())
        .args(&args)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!("building the functions failed ({})", output.status);
    }
    let messages = String::from_utf8_lossy(&output.stdout);
    let mut dir = None;
    for f in functions {
        let built = executable(&messages, f)
            .with_context(|| format!("cargo {} named no executable {f}", args.join(" ")))?;
        dir = built.parent().map(Path::to_path_buf);
    }
    Ok(dir)
}

/// `tests` when the harness runs in test binaries that `cargo test --workspace` built
/// (`scripts/run_tests.py` sets it): [`build_functions`] then resolves features as that
/// build did.
pub const ENV_FUNCTIONS_BUILD: &str = "LIFEBOAT_FUNCTIONS_BUILD";

/// The cargo that runs this process (`CARGO`, set by `cargo test`), else `cargo`.
fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The executable of binary `name` in cargo's JSON messages (`compiler-artifact`): the
/// binary itself, not the test harness `--tests` builds from the same `main.rs`.
fn executable(messages: &str, name: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| {
            m["reason"] == "compiler-artifact"
                && m["target"]["name"] == name
                && m["profile"]["test"] != true
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

/// A running `cargo lambda watch`; stopped with all its functions when dropped, or when
/// this process dies (its standard input closes).
#[derive(Debug)]
pub struct LambdaWatch {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
}

impl LambdaWatch {
    /// Starts `cargo lambda watch` on `port` with `env` for the functions (endpoint,
    /// Region, credentials, table name...), after building the `functions` the caller
    /// will invoke (others still build on their first invoke).
    pub fn start(
        port: u16,
        env: &[(&str, String)],
        functions: &[&str],
    ) -> anyhow::Result<LambdaWatch> {
        // cargo-lambda 1.9.2 on a taken port exits at once with status 0, and whatever
        // holds the port answers the readiness check below for it.
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            bail!("port {port} is taken: cargo lambda watch cannot listen there");
        }
        crate::moto::bootstrap()?;
        let built = build_functions(functions)?;
        let root = repo_root();
        let log_dir = root.join("target").join("lambda-logs");
        std::fs::create_dir_all(&log_dir)?;
        // One log per watch started: a watch restarted on its port must not truncate the
        // log its predecessor is still writing while it shuts down.
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = std::fs::File::create(
            log_dir.join(format!("watch-{}-{port}-{n}.log", std::process::id())),
        )?;
        let watch = root.join(".venv/bin/cargo-lambda");
        // bash leads a process group; when our end of its stdin closes (drop, or this
        // process dies), `cat` returns and the EXIT trap kills the whole group: watch,
        // cargo and every function process.
        let script = format!(
            "trap 'kill 0' EXIT; '{}' lambda watch --invoke-address 127.0.0.1 --invoke-port {port} --concurrency {CONCURRENCY} --ignore-changes --quiet --locked 1>&2 & cat >/dev/null",
            watch.display()
        );
        let mut cmd = Command::new("bash");
        cmd.args(["-c", &script])
            .current_dir(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        // Instances of the functions just built start as those binaries, not through a
        // `cargo run` each (scripts/lambda-instance says why); the rest through cargo.
        cmd.env("CARGO", root.join("scripts/lambda-instance"))
            .env("LIFEBOAT_CARGO", cargo())
            .env("LIFEBOAT_PREBUILT", functions.join(","));
        if let Some(dir) = built {
            cmd.env("LIFEBOAT_PREBUILT_DIR", dir);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().context("starting cargo lambda watch")?;
        let stdin = child.stdin.take();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("cargo lambda watch is not answering on {addr}; see target/lambda-logs/");
            }
            if let Some(status) = child.try_wait()? {
                bail!("cargo lambda watch exited ({status}); see target/lambda-logs/");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // What answered must be this watch, not one still shutting down on the port.
        if let Some(status) = child.try_wait()? {
            bail!("cargo lambda watch exited ({status}); see target/lambda-logs/");
        }
        Ok(LambdaWatch { child, stdin, port })
    }

    /// Starts `cargo lambda watch` on `port` for a stack in `region` against `moto`,
    /// with the environment every function of a deployed stack has: the endpoint, the
    /// Region, test credentials, `LIFEBOAT_TABLE = table`, the `failover` machine's ARN
    /// (as the template builds it) and fast INSYNC polls; then `extra` (later entries
    /// win), after building `functions`.
    pub fn start_stack(
        port: u16,
        moto: &crate::moto::MotoServer,
        region: &str,
        table: &str,
        extra: &[(&str, String)],
        functions: &[&str],
    ) -> anyhow::Result<LambdaWatch> {
        let mut env: Vec<(&str, String)> = vec![
            ("AWS_ENDPOINT_URL", moto.endpoint()),
            ("AWS_REGION", region.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("LIFEBOAT_TABLE", table.to_owned()),
            (
                "FAILOVER_STATE_MACHINE_ARN",
                crate::machines::machine_arn("failover", region),
            ),
            ("INSYNC_POLL_INTERVAL_MS", "20".into()),
        ];
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k, v.clone()));
        }
        LambdaWatch::start(port, &env, functions)
    }

    /// Stops the watch and waits (bounded) until nothing listens on its port any more.
    /// Dropping it ends the process group, but cargo-lambda shuts down gracefully and
    /// keeps answering on the port meanwhile: a watch started on the same port at once
    /// would find it taken and exit, while the old one, still answering, looked like it.
    pub fn stop(self) -> anyhow::Result<()> {
        let port = self.port;
        drop(self);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpListener::bind(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("port {port} is still taken 30 s after its cargo lambda watch stopped");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Base URL of the Invoke API.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for LambdaWatch {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_is_not_started_on_a_port_something_else_answers_on() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = LambdaWatch::start(port, &[], &[]).err().unwrap();
        assert!(err.to_string().contains("is taken"), "{err:#}");
    }

    #[test]
    fn the_executable_is_the_named_binary_not_its_test_harness() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"lifeboat"},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"health-probe"},"profile":{"test":true},"executable":"/t/debug/deps/health_probe-0a1b"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"health-probe"},"profile":{"test":false},"executable":"/t/debug/health-probe"}"#,
            "\n",
            "not json\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            executable(messages, "health-probe"),
            Some(PathBuf::from("/t/debug/health-probe"))
        );
        assert_eq!(executable(messages, "lifeboat"), None);
        assert_eq!(executable(messages, "traffic-shifter"), None);
    }
}
