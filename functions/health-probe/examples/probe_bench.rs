//! The probe benchmark (run by `scripts/bench-probe`, release mode):
//!
//! - `probe-bench serve`: a loopback HTTP server ([`health_probe::loopback`]); prints
//!   `PORT=<port>` and serves until its standard input closes.
//! - `probe-bench client <url> <concurrency> <seconds> keepalive|new`: `concurrency`
//!   tasks probe `url` back to back with the function's own [`HttpProber`] for
//!   `seconds` (after a one-second warm-up) and print one JSON line: probes/s, p50, p99,
//!   failures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use health_probe::HttpProber;
use health_probe::loopback::LoopbackServer;
use lifeboat::model::Endpoint;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: probe-bench serve | client <url> <concurrency> <seconds> keepalive|new";

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    // The server gets one thread, so the client (the thing measured) has the rest.
    let runtime = if args.get(1).map(String::as_str) == Some("serve") {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()?;
    match args.get(1).map(String::as_str) {
        Some("serve") => runtime.block_on(serve()),
        Some("client") => runtime.block_on(client(&args[2..])),
        _ => Err(USAGE.into()),
    }
}

async fn serve() -> Result<(), BoxError> {
    let server = LoopbackServer::start().await?;
    println!("PORT={}", server.addr().port());
    // Serve until our standard input closes (the bench script holds it open).
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink)
    })
    .await;
    Ok(())
}

async fn client(args: &[String]) -> Result<(), BoxError> {
    let [url, concurrency, seconds, mode] = args else {
        return Err(USAGE.into());
    };
    let url = url.clone();
    let concurrency: usize = concurrency
        .parse()
        .map_err(|e| format!("concurrency: {e}"))?;
    let seconds: u64 = seconds.parse().map_err(|e| format!("seconds: {e}"))?;
    let keep_alive = match mode.as_str() {
        "keepalive" => true,
        "new" => false,
        other => return Err(format!("mode {other}: keepalive or new").into()),
    };
    let prober = Arc::new(HttpProber::with_keep_alive(keep_alive)?);
    let endpoint = Arc::new(Endpoint {
        url,
        expected_status: 200,
        body_contains: Some(r#""status":"ok""#.to_owned()),
        timeout_ms: 2_000,
    });
    // Warm-up: connections opened, code paths hot.
    run(&prober, &endpoint, concurrency, Duration::from_secs(1)).await?;
    let started = Instant::now();
    let (mut latencies, failures) = run(
        &prober,
        &endpoint,
        concurrency,
        Duration::from_secs(seconds),
    )
    .await?;
    let elapsed = started.elapsed().as_secs_f64();
    if latencies.is_empty() {
        return Err("no probe succeeded".into());
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i] as f64 / 1000.0
    };
    println!(
        "{{\"client\":\"rust-reqwest\",\"mode\":\"{}\",\"concurrency\":{concurrency},\"probes\":{},\"failures\":{failures},\"probes_per_s\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        mode,
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
    );
    Ok(())
}

/// Runs `concurrency` probe loops for `duration`; returns latencies in µs and failures.
async fn run(
    prober: &Arc<HttpProber>,
    endpoint: &Arc<Endpoint>,
    concurrency: usize,
    duration: Duration,
) -> Result<(Vec<u32>, u64), BoxError> {
    let until = Instant::now() + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let prober = prober.clone();
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(100_000);
                let mut failures = 0u64;
                while Instant::now() < until {
                    let outcome = prober.probe(&endpoint).await;
                    if outcome.ok {
                        lat.push(u32::try_from(outcome.latency.as_micros()).unwrap_or(u32::MAX));
                    } else {
                        failures += 1;
                    }
                }
                (lat, failures)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut failures = 0;
    for t in tasks {
        let (lat, f) = t.await?;
        all.extend(lat);
        failures += f;
    }
    Ok((all, failures))
}
