//! Wiring only: the environment read once, then [`lifeboat_cli::run`].

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let env = lifeboat_cli::Env {
        config: lifeboat::aws::load().await,
        table: std::env::var("LIFEBOAT_TABLE").unwrap_or_else(|_| "lifeboat".to_owned()),
        user: std::env::var("USER").ok(),
        resolver: traffic_shifter::resolve::resolver(
            std::env::var(traffic_shifter::resolve::ENV_RESOLVER)
                .ok()
                .as_deref(),
            std::fs::read_to_string("/etc/resolv.conf").ok().as_deref(),
        )
        .map_err(|e| e.to_string()),
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let stdin = std::io::stdin();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let mut input = stdin.lock();
    let exit = lifeboat_cli::run(
        std::env::args_os(),
        &env,
        &mut lifeboat_cli::Io {
            out: &mut out,
            err: &mut err,
            input: &mut input,
        },
    )
    .await;
    ExitCode::from(exit.code())
}
