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
//! Every call also names its caller: the SDK's user agent carries `app/<function name>`
//! (`AWS_LAMBDA_FUNCTION_NAME`, set by Lambda), which CloudTrail records as the call's
//! `userAgent` and the local twin's call log reads.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::BehaviorVersion;
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
