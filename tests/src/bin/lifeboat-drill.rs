//! The local failover drill (the README's first command): the whole chain of
//! [`harness::drill`] against the emulators — probes detect, the alarm fires, the
//! failover machine promotes, switches, verifies and finalizes, a client sees DNS move —
//! then its timeline, the checks and both RTOs. Exits non-zero when any check failed.
//!
//! ```text
//! lifeboat-drill [--poll-seconds N] [--verify-max-polls N] [--minute-seconds S] [--quiet]
//! ```
//!
//! `--poll-seconds` and `--verify-max-polls` become the failover's `timing` (the
//! documented input that shortens the machine's waits; default 1 s and 20 polls);
//! `--minute-seconds` is how long a CloudWatch minute lasts in the twin (default 4).

use std::process::ExitCode;

use anyhow::{Context, bail};
use harness::drill::{self, DrillOptions};

fn options() -> anyhow::Result<DrillOptions> {
    let mut opts = DrillOptions {
        verbose: true,
        ..DrillOptions::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> anyhow::Result<u32> {
            let v = args
                .next()
                .with_context(|| format!("{name} needs a value"))?;
            v.parse()
                .with_context(|| format!("{name}: `{v}` is not a whole number"))
        };
        match arg.as_str() {
            "--poll-seconds" => opts.poll_seconds = number("--poll-seconds")?,
            "--verify-max-polls" => opts.verify_max_polls = number("--verify-max-polls")?,
            "--minute-seconds" => {
                // The probe rounds keep the twin's pace: 10 s of a minute, 55 s of window.
                let minute = number("--minute-seconds")?;
                if minute == 0 || minute % 6 != 0 {
                    bail!(
                        "--minute-seconds: {minute} is not a multiple of 6 (10-s periods must be whole seconds)"
                    );
                }
                opts.minute_seconds = f64::from(minute);
                opts.probe_interval_seconds = minute / 6;
                opts.probe_window_seconds = minute * 55 / 60;
            }
            "--quiet" => opts.verbose = false,
            "-h" | "--help" => {
                println!(
                    "lifeboat-drill [--poll-seconds N] [--verify-max-polls N] [--minute-seconds S] [--quiet]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    Ok(opts)
}

#[tokio::main]
async fn main() -> ExitCode {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("lifeboat-drill: {e:#}");
            return ExitCode::from(2);
        }
    };
    match drill::run(&opts).await {
        Ok(report) => {
            println!("{}", report.render());
            if report.ok() {
                println!("Drill passed: every step happened.");
                ExitCode::SUCCESS
            } else {
                println!(
                    "Drill FAILED: {} check(s) did not hold.",
                    report.failures().len()
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("drill could not run: {e:#}");
            ExitCode::FAILURE
        }
    }
}
