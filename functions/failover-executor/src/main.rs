//! Wiring only: see the library for the handler.

use failover_executor::request::Timing;
use failover_executor::{
    ENV_ALARM_TIMING, ENV_DEPLOYED, ENV_REPORT_BUCKET, ENV_STATE_MACHINE, ENV_TABLE, Executor,
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let table = std::env::var(ENV_TABLE).map_err(|_| format!("{ENV_TABLE} is not set"))?;
    let machine =
        std::env::var(ENV_STATE_MACHINE).map_err(|_| format!("{ENV_STATE_MACHINE} is not set"))?;
    let report_bucket = std::env::var(ENV_REPORT_BUCKET).ok();
    let alarm_timing = match std::env::var(ENV_ALARM_TIMING) {
        Ok(text) => Some(Timing::parse(&text)?),
        Err(_) => None,
    };
    let deployed = match std::env::var(ENV_DEPLOYED) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{ENV_DEPLOYED}: {e}"))?,
        Err(_) => lifeboat::rto::Deployed::default(),
    };
    let config = lifeboat::aws::load().await;
    let executor: &'static Executor = Box::leak(Box::new(
        Executor::new(&config, table, machine)?
            .with_report_bucket(report_bucket)
            .with_alarm_timing(alarm_timing)
            .with_deployed(deployed)
            .with_notifier(lifeboat::notify::Notifier::new(
                &config,
                std::env::var(lifeboat::notify::ENV_TOPIC).ok(),
            )),
    ));
    // Boxed: the handler's future is deep enough to overflow the layout query limit of
    // `main`'s own future; one allocation per invocation is nothing.
    lifeboat::serve(move |event| Box::pin(executor.handle(event))).await
}
