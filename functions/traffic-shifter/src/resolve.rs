//! What DNS answers now, as a client asks it: the `resolve` step. The run's check that
//! traffic really moved, through the data plane only (a DNS resolver, never Route 53's
//! API, whose control plane may be the Region that failed).
//!
//! The workload's record name is asked `queries` times (a weighted record answers one
//! record per query, chosen at random by weight: "Route 53 ... chooses a record based on
//! the weight", <https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/routing-policy-weighted.html>);
//! each address answered is mapped to the Region whose endpoint has it. The check holds
//! when the target is answered and the failed Region is not. A resolver caches for the
//! record's TTL, so the machine polls this step (`timing.verify_max_polls`): what it
//! sees is what clients see.
//!
//! Resolver: `LIFEBOAT_DNS_RESOLVER` (`ip:port`; the twin's DNS server locally), else the
//! first `nameserver` of `/etc/resolv.conf` (on Lambda, the Amazon-provided resolver).
//! Messages are built and parsed by hickory, never by hand.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use lifeboat::model::WorkloadSpec;
use lifeboat::{Error, Result};
use serde::{Deserialize, Serialize};

/// Environment variable with the resolver's `ip:port`.
pub const ENV_RESOLVER: &str = "LIFEBOAT_DNS_RESOLVER";
/// Queries per check unless the request says (`queries`).
pub const DEFAULT_QUERIES: u32 = 20;
/// At most this many queries per check.
pub const MAX_QUERIES: u32 = 200;
/// Each query's bound.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// What the check saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    /// The name asked.
    pub record_name: String,
    /// The resolver asked.
    pub resolver: String,
    /// Queries sent.
    pub queries: u32,
    /// Queries answered (with at least one address).
    pub answered: u32,
    /// Region → how many answers named it.
    pub by_region: BTreeMap<String, u32>,
    /// Addresses answered that are no Region's endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
    /// Why the check does not hold, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The resolver in a `resolv.conf` text: its first `nameserver`, port 53.
pub fn resolv_conf(text: &str) -> Option<SocketAddr> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
        })
        .map(|ip| SocketAddr::new(ip, 53))
}

/// The resolver from `LIFEBOAT_DNS_RESOLVER`'s value, else from `/etc/resolv.conf`'s
/// text. `InvalidInput` names a bad variable; none at all is `ResourceNotFound`.
pub fn resolver(env: Option<&str>, resolv: Option<&str>) -> Result<SocketAddr> {
    if let Some(v) = env.filter(|v| !v.trim().is_empty()) {
        return v
            .trim()
            .parse()
            .map_err(|_| Error::InvalidInput(format!("{ENV_RESOLVER}: `{v}` is not an ip:port")));
    }
    resolv
        .and_then(resolv_conf)
        .ok_or_else(|| Error::ResourceNotFound {
            kind: "DNS resolver",
            id: format!("{ENV_RESOLVER} or a nameserver in /etc/resolv.conf"),
            region: "this function's environment".into(),
        })
}

/// The record name clients resolve: the first record the spec routes through.
pub fn record_name(spec: &WorkloadSpec) -> Result<String> {
    spec.regions
        .iter()
        .flat_map(|r| r.dns.iter())
        .map(|d| d.record_name.trim_end_matches('.').to_owned())
        .next()
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "workload `{}` has no DNS record (regions[].dns) to resolve",
                spec.workload
            ))
        })
}

/// Each Region's endpoint hosts: an address as is, or a name to resolve.
pub fn endpoint_hosts(spec: &WorkloadSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in &spec.regions {
        for e in &r.endpoints {
            if let Some(host) = url::Url::parse(&e.url)
                .ok()
                .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()))
            {
                out.push((r.region.clone(), host));
            }
        }
    }
    out
}

/// The answers (one list of addresses per query) tallied by the Region whose endpoint
/// has each address: `record` asked `answers.len()` times of `resolver`, no judgement.
pub fn tally(
    record: &str,
    resolver: SocketAddr,
    answers: &[Vec<IpAddr>],
    regions: &BTreeMap<IpAddr, String>,
) -> Resolved {
    let mut by_region: BTreeMap<String, u32> = BTreeMap::new();
    let mut unknown: Vec<String> = Vec::new();
    let mut answered = 0u32;
    for a in answers {
        if !a.is_empty() {
            answered += 1;
        }
        for ip in a {
            match regions.get(ip) {
                Some(r) => *by_region.entry(r.clone()).or_default() += 1,
                None => {
                    let s = ip.to_string();
                    if !unknown.contains(&s) {
                        unknown.push(s);
                    }
                }
            }
        }
    }
    Resolved {
        record_name: record.to_owned(),
        resolver: resolver.to_string(),
        queries: u32::try_from(answers.len()).unwrap_or(u32::MAX),
        answered,
        by_region,
        unknown,
        reason: None,
    }
}

/// Tallies the answers ([`tally`]) and judges: the target answered, the failed Region
/// (if any) not.
pub fn judge(
    record: &str,
    resolver: SocketAddr,
    answers: &[Vec<IpAddr>],
    regions: &BTreeMap<IpAddr, String>,
    target: &str,
    failed: Option<&str>,
) -> (bool, Resolved) {
    let mut resolved = tally(record, resolver, answers, regions);
    let (answered, by_region) = (resolved.answered, &resolved.by_region);
    let reason = if answered == 0 {
        Some(format!("no answer for {record} from {resolver}"))
    } else if let Some(f) = failed.filter(|f| by_region.contains_key(*f)) {
        Some(format!(
            "DNS still answers the failed Region {f} ({} of {} answers)",
            by_region.get(f).copied().unwrap_or(0),
            answered
        ))
    } else if !by_region.contains_key(target) {
        Some(format!("DNS does not answer the target Region {target}"))
    } else {
        None
    };
    resolved.reason.clone_from(&reason);
    (reason.is_none(), resolved)
}

/// Asks `server` for `name` `queries` times at once, each query bounded by
/// [`QUERY_TIMEOUT`] (so the whole ask is too); a query that fails or times out
/// answers nothing.
pub async fn ask(server: SocketAddr, name: &str, queries: u32) -> Vec<Vec<IpAddr>> {
    futures_util::future::join_all(
        (0..queries).map(|_| async move { query_a(server, name).await.unwrap_or_default() }),
    )
    .await
}

/// One A query to `server` over UDP, bounded by [`QUERY_TIMEOUT`]: the addresses.
pub async fn query_a(server: SocketAddr, name: &str) -> Result<Vec<IpAddr>> {
    let transient = |what: String| Error::TransientDependency {
        service: "dns",
        operation: "Query A",
        source: what.into(),
    };
    let mut query = Message::new(query_id(), MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    let name_ = Name::from_ascii(name)
        .map_err(|e| Error::InvalidInput(format!("record name `{name}`: {e}")))?;
    query.add_query(Query::query(name_, RecordType::A));
    let bytes = query
        .to_vec()
        .map_err(|e| transient(format!("encoding: {e}")))?;
    let bind: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| transient(format!("binding: {e}")))?;
    socket
        .send_to(&bytes, server)
        .await
        .map_err(|e| transient(format!("sending to {server}: {e}")))?;
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(QUERY_TIMEOUT, socket.recv_from(&mut buf))
        .await
        .map_err(|_| transient(format!("no answer from {server} within {QUERY_TIMEOUT:?}")))?
        .map_err(|e| transient(format!("reading from {server}: {e}")))?;
    let answer = Message::from_vec(buf.get(..n).unwrap_or_default())
        .map_err(|e| transient(format!("decoding: {e}")))?;
    Ok(answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect())
}

fn query_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u16::try_from(nanos & 0xffff).unwrap_or(0)
}

/// Resolves every endpoint host to its addresses (an address as is): address → Region.
pub async fn region_addresses(
    server: SocketAddr,
    hosts: &[(String, String)],
) -> BTreeMap<IpAddr, String> {
    let mut out = BTreeMap::new();
    for (region, host) in hosts {
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                out.insert(ip, region.clone());
            }
            Err(_) => {
                // A host that does not resolve maps nothing: its Region's answers
                // count as unknown, and the check says so.
                if let Ok(ips) = query_a(server, host).await {
                    for ip in ips {
                        out.insert(ip, region.clone());
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> SocketAddr {
        "127.0.0.1:5353".parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn regions() -> BTreeMap<IpAddr, String> {
        BTreeMap::from([
            (ip("10.0.0.1"), "us-east-1".to_owned()),
            (ip("10.0.0.2"), "eu-west-1".to_owned()),
            (ip("10.0.0.3"), "ap-southeast-1".to_owned()),
        ])
    }

    #[test]
    fn the_check_holds_when_the_target_is_answered_and_the_failed_region_is_not() {
        let answers = vec![
            vec![ip("10.0.0.2")],
            vec![ip("10.0.0.3")],
            vec![ip("10.0.0.2")],
        ];
        let (ok, r) = judge(
            "api.x",
            server(),
            &answers,
            &regions(),
            "eu-west-1",
            Some("us-east-1"),
        );
        assert!(ok, "{r:?}");
        assert_eq!(
            r.by_region,
            BTreeMap::from([("ap-southeast-1".into(), 1), ("eu-west-1".into(), 2)])
        );
        assert_eq!((r.queries, r.answered), (3, 3));
    }

    #[test]
    fn the_failed_region_still_answered_or_the_target_missing_fails_it() {
        let answers = vec![vec![ip("10.0.0.1")], vec![ip("10.0.0.2")]];
        let (ok, r) = judge(
            "api.x",
            server(),
            &answers,
            &regions(),
            "eu-west-1",
            Some("us-east-1"),
        );
        assert!(!ok);
        assert!(
            r.reason
                .unwrap()
                .contains("still answers the failed Region us-east-1")
        );
        let answers = vec![vec![ip("10.0.0.3")]];
        let (ok, r) = judge("api.x", server(), &answers, &regions(), "eu-west-1", None);
        assert!(!ok);
        assert!(
            r.reason
                .unwrap()
                .contains("does not answer the target Region eu-west-1")
        );
        let (ok, r) = judge(
            "api.x",
            server(),
            &[vec![], vec![]],
            &regions(),
            "eu-west-1",
            None,
        );
        assert!(!ok);
        assert!(r.reason.unwrap().contains("no answer"));
        // An address nobody's endpoint has is reported, and is not the target.
        let (ok, r) = judge(
            "api.x",
            server(),
            &[vec![ip("192.0.2.9")]],
            &regions(),
            "eu-west-1",
            None,
        );
        assert!(!ok);
        assert_eq!(r.unknown, ["192.0.2.9"]);
    }

    #[test]
    fn the_resolver_comes_from_the_variable_else_resolv_conf() {
        assert_eq!(resolver(Some("127.0.0.1:5353"), None).unwrap(), server());
        let conf =
            "# generated\nsearch ec2.internal\nnameserver 169.254.78.1\nnameserver 10.0.0.2\n";
        assert_eq!(
            resolver(None, Some(conf)).unwrap(),
            "169.254.78.1:53".parse().unwrap()
        );
        assert_eq!(
            resolver(Some(" "), Some(conf)).unwrap(),
            "169.254.78.1:53".parse().unwrap()
        );
        let e = resolver(Some("nope"), Some(conf)).unwrap_err();
        assert_eq!(e.name(), lifeboat::ErrorName::InvalidInput);
        let e = resolver(None, Some("search x\n")).unwrap_err();
        assert_eq!(e.name(), lifeboat::ErrorName::ResourceNotFound);
    }

    #[test]
    fn the_name_and_hosts_come_from_the_spec() {
        let spec: WorkloadSpec =
            serde_json::from_str(include_str!("../../../events/model/example-spec.json")).unwrap();
        let name = record_name(&spec).unwrap();
        assert!(!name.ends_with('.') && name.contains("checkout"), "{name}");
        let hosts = endpoint_hosts(&spec);
        assert_eq!(
            hosts.len(),
            spec.regions
                .iter()
                .map(|r| r.endpoints.len())
                .sum::<usize>()
        );
        let mut empty = spec.clone();
        for r in &mut empty.regions {
            r.dns.clear();
        }
        assert_eq!(
            record_name(&empty).unwrap_err().name(),
            lifeboat::ErrorName::InvalidInput
        );
    }
}
