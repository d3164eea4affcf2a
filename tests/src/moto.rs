//! A moto server on a free loopback port, started by the test (or drill) that needs it.
//!
//! The server is `scripts/moto_server.py` run from the repository's `.venv` (installed by
//! `scripts/bootstrap` when missing). It exits when our end of its standard input closes,
//! so a test process that dies never leaves a server behind.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_config::BehaviorVersion;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::config::Region;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs `scripts/bootstrap` (a no-op when the venv is current).
pub fn bootstrap() -> anyhow::Result<()> {
    let root = repo_root();
    let status = Command::new(root.join("scripts/bootstrap"))
        .status()
        .context("running scripts/bootstrap")?;
    if !status.success() {
        bail!("scripts/bootstrap failed ({status})");
    }
    Ok(())
}

/// A running moto server; stopped when dropped.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
}

/// How to start a server beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct MotoOptions {
    /// Route Lambda Invoke calls (moto's Step Functions tasks among them) to this
    /// `cargo lambda watch` endpoint instead of moto's Lambda backend.
    pub lambda_endpoint: Option<String>,
    /// Make Step Functions really execute ASL.
    pub execute_state_machines: bool,
    /// Named local settings of the twin (`scripts/twin/core.py`), printed in its
    /// timeline; `twin.minute_seconds` defaults to [`TEST_MINUTE_SECONDS`].
    pub settings: Vec<(String, serde_json::Value)>,
}

/// How long a CloudWatch (and EventBridge `rate`) minute lasts in the tests' twin unless
/// a test says otherwise: alarms evaluate every 2 s, so a test sees them move in seconds.
pub const TEST_MINUTE_SECONDS: f64 = 2.0;

impl MotoServer {
    /// Starts a plain server on a free loopback port and waits until it answers.
    pub fn start() -> anyhow::Result<MotoServer> {
        MotoServer::start_with(&MotoOptions::default())
    }

    /// Starts a server with `options`.
    pub fn start_with(options: &MotoOptions) -> anyhow::Result<MotoServer> {
        bootstrap()?;
        let root = repo_root();
        let log_dir = root.join("target").join("moto-logs");
        std::fs::create_dir_all(&log_dir).context("creating target/moto-logs")?;
        let log = std::fs::File::create(log_dir.join(format!("moto-{}.log", std::process::id())))
            .context("creating moto log")?;
        let mut cmd = Command::new(root.join(".venv/bin/python"));
        cmd.arg(root.join("scripts/moto_server.py")).args([
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--exit-on-stdin-eof",
        ]);
        if let Some(endpoint) = &options.lambda_endpoint {
            cmd.args(["--lambda-endpoint", endpoint]);
        }
        if options.execute_state_machines {
            cmd.arg("--execute-state-machines");
        }
        let mut settings = options.settings.clone();
        if !settings.iter().any(|(k, _)| k == "twin.minute_seconds") {
            settings.push(("twin.minute_seconds".into(), TEST_MINUTE_SECONDS.into()));
        }
        for (name, value) in &settings {
            cmd.arg("--setting").arg(format!("{name}={value}"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting moto_server.py")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("moto stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("MOTO_PORT=") {
                    let _ = tx.send(port.trim().parse::<u16>());
                    return;
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(port)) => port,
            Ok(Err(e)) => {
                let _ = child.kill();
                bail!("moto printed a bad port: {e}");
            }
            Err(_) => {
                let _ = child.kill();
                bail!("moto did not start within 60 s; see target/moto-logs/");
            }
        };
        Ok(MotoServer { child, stdin, port })
    }

    /// One server for the whole test binary, started on first use. Tests isolate
    /// themselves by table (see [`crate::table::unique_name`]), so they can share it.
    pub fn shared() -> &'static MotoServer {
        static SHARED: OnceLock<MotoServer> = OnceLock::new();
        SHARED.get_or_init(|| match MotoServer::start() {
            Ok(server) => server,
            Err(e) => {
                // Test harness: there is nothing to test without the emulator.
                eprintln!("cannot start moto: {e:#}");
                std::process::exit(2);
            }
        })
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its base URL, the value for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An SDK configuration for `region` pointed at this server, with test credentials.
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
