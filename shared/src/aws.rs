//! AWS configuration: one [`SdkConfig`] loaded once in `main`, and clients for any Region
//! built from it on demand and cached.
//!
//! Endpoints come only from the standard variables (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_<SERVICE>`), which the SDK reads itself; that is how the local
//! harness points everything at moto. There is no "is local" switch.
//!
//! Every call has a deadline. `aws-config`'s defaults set only a 3.1 s connect timeout
//! (no read, attempt or operation timeout), so a Region that accepts connections and
//! then hangs — the usual way a Region is in trouble — would hold a call until the
//! Lambda's own timeout. [`load`] sets an attempt and an operation timeout for every
//! client built from the shared configuration.
//!
//! Calls that go outside the surviving Region during a failover — to the Region being
//! failed away from, best effort — use [`best_effort`] instead: a 2 s attempt, a 4 s
//! operation and one retry, so a hanging Region costs seconds, not the 12 s and more of
//! the shared deadlines times the steps that call it. Attempt and operation timeouts
//! bound each try and the whole call, retries included (SDK for Rust Developer Guide,
//! "Configuring timeouts": https://docs.aws.amazon.com/sdk-for-rust/latest/dg/timeouts.html).
//!
//! Every call also names its caller: the SDK's user agent carries `app/<function name>`
//! (`AWS_LAMBDA_FUNCTION_NAME`, set by Lambda), which CloudTrail records as the call's
//! `userAgent` and the local twin's call log reads.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_types::SdkConfig;
use aws_types::app_name::AppName;
use aws_types::region::Region;

/// The variable Lambda sets to the function's name.
pub const ENV_FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";

/// One HTTP attempt's deadline, from sending the request to the response's headers.
/// A healthy control-plane call answers in tens of milliseconds; 5 s leaves room for
/// a slow but working Region and cuts a hanging one.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// One operation's deadline, all retries included (standard mode: 3 attempts).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(12);

/// The timeouts [`load`] sets.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(3100))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// One attempt's deadline for a best-effort call into another Region ([`best_effort`]).
pub const BEST_EFFORT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// One best-effort operation's deadline, its retry included.
pub const BEST_EFFORT_OPERATION_TIMEOUT: Duration = Duration::from_secs(4);

/// Attempts of a best-effort operation: the first and one retry.
pub const BEST_EFFORT_MAX_ATTEMPTS: u32 = 2;

/// The timeouts of [`best_effort`]: the connection is part of the attempt's 2 s.
pub fn best_effort_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(BEST_EFFORT_ATTEMPT_TIMEOUT)
        .operation_attempt_timeout(BEST_EFFORT_ATTEMPT_TIMEOUT)
        .operation_timeout(BEST_EFFORT_OPERATION_TIMEOUT)
        .build()
}

/// The retries of [`best_effort`]: standard mode (throttling and transient errors,
/// timeouts included), one retry.
pub fn best_effort_retries() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(BEST_EFFORT_MAX_ATTEMPTS)
}

/// The shared configuration for calls whose answer the caller can do without: into
/// a Region that is not the one surviving a failover (the Region failed away from),
/// where a hang is the likely answer. Same credentials, endpoints and user agent as
/// `base`; short deadlines ([`best_effort_timeouts`]) and one retry
/// ([`best_effort_retries`]). Build per-Region clients from it with
/// [`RegionalClients::new`]: [`for_region`] keeps both.
pub fn best_effort(base: &SdkConfig) -> SdkConfig {
    base.to_builder()
        .timeout_config(best_effort_timeouts())
        .retry_config(best_effort_retries())
        .build()
}

/// The app name the SDK's user agent carries for `function` (`None` when Lambda's
/// name is not a valid app name, which a function name always is).
pub fn app_name(function: Option<&str>) -> Option<AppName> {
    function.and_then(|f| AppName::new(f.to_owned()).ok())
}

/// Loads the one shared configuration (credentials, home Region, endpoints, retries),
/// with [`timeouts`] and the function's name in the user agent.
pub async fn load() -> SdkConfig {
    let function = std::env::var(ENV_FUNCTION_NAME).ok();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts());
    if let Some(app) = app_name(function.as_deref()) {
        loader = loader.app_name(app);
    }
    loader.load().await
}

/// The same configuration pointed at another Region.
pub fn for_region(base: &SdkConfig, region: &str) -> SdkConfig {
    base.to_builder()
        .region(Region::new(region.to_owned()))
        .build()
}

/// Clients of one service, one per Region, built from the shared configuration the
/// first time a Region is asked for and reused after (clients are cheap handles over
/// one connection pool per Region).
pub struct RegionalClients<C> {
    base: SdkConfig,
    make: Box<dyn Fn(&SdkConfig) -> C + Send + Sync>,
    cache: Mutex<HashMap<String, C>>,
}

impl<C: Clone> RegionalClients<C> {
    /// `make` is the service's constructor, e.g. `aws_sdk_rds::Client::new`.
    pub fn new(base: &SdkConfig, make: impl Fn(&SdkConfig) -> C + Send + Sync + 'static) -> Self {
        RegionalClients {
            base: base.clone(),
            make: Box::new(make),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `region`.
    pub fn get(&self, region: &str) -> C {
        // A poisoned lock only means another thread panicked while inserting; the map is
        // still a valid cache.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(region.to_owned())
            .or_insert_with(|| (self.make)(&for_region(&self.base, region)))
            .clone()
    }

    /// The client for the configuration's own Region (where the function runs).
    pub fn home(&self) -> Option<C> {
        let region = self.base.region()?.as_ref().to_owned();
        Some(self.get(&region))
    }
}

impl<C> std::fmt::Debug for RegionalClients<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("RegionalClients")
            .field("home", &self.base.region())
            .field("regions", &cache.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn base() -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:5999")
            .build()
    }

    #[test]
    fn every_call_has_an_attempt_and_an_operation_deadline() {
        let t = timeouts();
        assert_eq!(t.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(t.operation_timeout(), Some(OPERATION_TIMEOUT));
        assert!(ATTEMPT_TIMEOUT < OPERATION_TIMEOUT);
        assert_eq!(t.connect_timeout(), Some(Duration::from_millis(3100)));
    }

    #[test]
    fn best_effort_calls_have_short_deadlines_and_one_retry() {
        let t = best_effort_timeouts();
        assert_eq!(t.operation_attempt_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(t.operation_timeout(), Some(Duration::from_secs(4)));
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(2)));
        assert!(BEST_EFFORT_OPERATION_TIMEOUT < OPERATION_TIMEOUT);
        let cfg = for_region(&best_effort(&base()), "us-east-1");
        assert_eq!(cfg.retry_config().map(|r| r.max_attempts()), Some(2));
        assert_eq!(
            cfg.timeout_config().and_then(|t| t.operation_timeout()),
            Some(BEST_EFFORT_OPERATION_TIMEOUT)
        );
        // Everything else is the shared configuration's.
        assert_eq!(cfg.endpoint_url(), Some("http://127.0.0.1:5999"));
        assert_eq!(cfg.region().map(|r| r.as_ref()), Some("us-east-1"));
    }

    /// A Region that accepts connections and never answers: a best-effort call gives up
    /// within its operation deadline, after at most two attempts (two connections: a
    /// timed-out attempt's connection is not reused).
    #[tokio::test]
    async fn a_best_effort_call_into_a_hanging_region_gives_up_within_four_seconds() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = accepted.clone();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        let base = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .credentials_provider(aws_types::sdk_config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::new("AKID", "SECRET", None, None, "test"),
            ))
            .build();
        let client = aws_sdk_dynamodb::Client::new(&best_effort(&base));
        let began = std::time::Instant::now();
        let res = client.list_tables().send().await;
        let took = began.elapsed();
        server.abort();
        let err = res.unwrap_err();
        assert!(
            matches!(err, aws_sdk_dynamodb::error::SdkError::TimeoutError(_)),
            "{err:?}"
        );
        assert!(crate::error::is_transient(&err), "a timeout is transient");
        assert!(
            took >= Duration::from_millis(3_900) && took < Duration::from_millis(5_000),
            "{took:?}"
        );
        let n = accepted.load(Ordering::SeqCst);
        assert!((1..=2).contains(&n), "{n} attempts");
    }

    #[test]
    fn the_function_name_becomes_the_user_agent_app_name() {
        assert_eq!(
            app_name(Some("failover-executor")).map(|a| a.to_string()),
            Some("failover-executor".to_owned())
        );
        assert_eq!(app_name(None), None);
        assert_eq!(app_name(Some("not valid: spaces")), None);
    }

    #[test]
    fn builds_each_region_once_keeping_the_endpoint() {
        let built = Arc::new(AtomicUsize::new(0));
        let counter = built.clone();
        let clients = RegionalClients::new(&base(), move |c: &SdkConfig| {
            counter.fetch_add(1, Ordering::SeqCst);
            aws_sdk_dynamodb::Client::new(c)
        });
        let eu = clients.get("eu-west-1");
        let eu_again = clients.get("eu-west-1");
        let home = clients.home().unwrap();
        assert_eq!(built.load(Ordering::SeqCst), 2);
        assert_eq!(eu.config().region().unwrap().as_ref(), "eu-west-1");
        assert_eq!(eu_again.config().region().unwrap().as_ref(), "eu-west-1");
        assert_eq!(home.config().region().unwrap().as_ref(), "us-east-1");
        let cfg = for_region(&base(), "ap-southeast-1");
        assert_eq!(cfg.endpoint_url(), Some("http://127.0.0.1:5999"));
        assert_eq!(cfg.region().unwrap().as_ref(), "ap-southeast-1");
    }
}
