//! AWS configuration: one [`SdkConfig`] loaded once in `main`, and clients for any Region
//! built from it on demand and cached.
//!
//! Endpoints come only from the standard variables (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_<SERVICE>`), which the SDK reads itself; that is how the local
//! harness points everything at moto. There is no "is local" switch.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::BehaviorVersion;
use aws_types::SdkConfig;
use aws_types::region::Region;

/// Loads the one shared configuration (credentials, home Region, endpoints, retries).
pub async fn load() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
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
