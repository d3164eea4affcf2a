//! The harness's side of the twin (`scripts/twin/`): typed calls to the `/_twin/<name>`
//! controls of the moto server, and a DNS client for the twin's Route 53 resolver.
//!
//! The twin is AWS's behaviour where moto lacks it — alarms that evaluate themselves and
//! fire their actions, EventBridge delivery, Route 53 health checks and DNS answers, RDS
//! that takes time and breaks, Regions that hang — built from `template.yaml` through
//! [`Twin::deploy_stack`]. Everything it does is on its timeline ([`Twin::timeline`]);
//! every AWS call anyone makes is in its call log ([`Twin::calls`]).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::moto::MotoServer;

/// A handle on the twin of one moto server.
#[derive(Debug, Clone)]
pub struct Twin {
    base: String,
    http: reqwest::Client,
}

/// One row of the twin's timeline.
#[derive(Debug, Clone, Deserialize)]
pub struct TwinRow {
    /// Sequence number (pass the last one + 1 as `since`).
    pub seq: u64,
    /// Epoch seconds.
    pub at: f64,
    /// What kind of thing happened (`cloudwatch.alarm`, `events.delivery`, `fault.set`, ...).
    pub kind: String,
    /// What happened.
    pub detail: String,
}

/// One AWS API call the twin saw.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiCall {
    /// Sequence number (0 for a call not answered yet: it gets one when answered).
    #[serde(default)]
    pub seq: u64,
    /// Epoch seconds.
    pub at: f64,
    /// Service signing name (`dynamodb`, `monitoring`, `route53`, ...).
    #[serde(default)]
    pub service: Option<String>,
    /// Operation (`PutItem`, `GetHealthCheckStatus`, ...).
    #[serde(default)]
    pub operation: Option<String>,
    /// The Region the call was signed for.
    #[serde(default)]
    pub region: Option<String>,
    /// Who called: a function's name, `states`, `aws` (the twin itself) or `harness`.
    #[serde(default)]
    pub caller: Option<String>,
    /// HTTP status answered (none when it hung).
    #[serde(default)]
    pub status: Option<u16>,
    /// The fault applied, if any.
    #[serde(default)]
    pub fault: Option<String>,
    /// `control` or `data` for Route 53.
    #[serde(default)]
    pub plane: Option<String>,
}

/// A workload endpoint the twin serves for one Region.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkloadEndpoint {
    /// The Region.
    pub region: String,
    /// Its loopback address (the value of its DNS record).
    pub address: String,
    /// The port every Region's endpoint shares.
    pub port: u16,
    /// Its health URL.
    pub url: String,
}

/// What the twin's resolver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// Response code (`NoError`, `NXDomain`, ...).
    pub rcode: String,
    /// The A records' addresses.
    pub addresses: Vec<IpAddr>,
    /// Their TTL (the first answer's).
    pub ttl: Option<u32>,
}

impl Twin {
    /// The twin of `moto`.
    pub fn new(moto: &MotoServer) -> Twin {
        Twin {
            base: format!("{}/_twin", moto.endpoint()),
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        name: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}/{name}", self.base))
            .timeout(Duration::from_secs(120));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} /_twin/{name}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            bail!("{method} /_twin/{name} answered {status}: {value}");
        }
        Ok(value)
    }

    /// `GET /_twin/<name>`.
    pub async fn get(&self, name: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, name, None).await
    }

    /// `POST /_twin/<name>` with `body`.
    pub async fn post(&self, name: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, name, Some(body)).await
    }

    /// `DELETE /_twin/<name>`.
    pub async fn delete(&self, name: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::DELETE, name, None).await
    }

    /// Sets named local settings (each is printed in the twin's timeline).
    pub async fn settings(&self, settings: Value) -> anyhow::Result<()> {
        self.post("settings", settings).await.map(drop)
    }

    /// Deploys `template.yaml` as the stack of `region` with `parameters` and named
    /// local `overrides` (`{"<LogicalId>": {"<Property>": value}}`); what was created.
    pub async fn deploy_stack(
        &self,
        region: &str,
        parameters: &Value,
        overrides: &Value,
    ) -> anyhow::Result<Value> {
        self.post(
            "stack",
            json!({"region": region, "parameters": parameters, "overrides": overrides}),
        )
        .await
        .with_context(|| format!("deploying template.yaml in {region}"))
    }

    /// Where the live resources of `region`'s stack differ from the template.
    pub async fn drift(&self, region: &str) -> anyhow::Result<Vec<Value>> {
        let out = self.get(&format!("stack/drift?region={region}")).await?;
        Ok(out["drift"].as_array().cloned().unwrap_or_default())
    }

    /// The twin's timeline from `since`.
    pub async fn timeline(&self, since: u64) -> anyhow::Result<Vec<TwinRow>> {
        let out = self.get(&format!("timeline?since={since}")).await?;
        serde_json::from_value(out["rows"].clone()).context("reading the twin's timeline")
    }

    /// The call log from `since`: the calls answered, then those still unanswered
    /// (held by a hanging Region; their `status` is `None`).
    pub async fn calls(&self, since: u64) -> anyhow::Result<Vec<ApiCall>> {
        let out = self.get(&format!("calls?since={since}")).await?;
        let mut calls: Vec<ApiCall> =
            serde_json::from_value(out["calls"].clone()).context("reading the call log")?;
        let pending: Vec<ApiCall> = serde_json::from_value(out["pending"].clone())
            .context("reading the call log's pending calls")?;
        calls.extend(pending);
        Ok(calls)
    }

    /// The next call-log sequence number (to read only what comes after).
    pub async fn calls_mark(&self) -> anyhow::Result<u64> {
        Ok(self
            .calls(0)
            .await?
            .iter()
            .map(|c| c.seq + 1)
            .max()
            .unwrap_or(0))
    }

    /// Sets a fault (`{"region", "mode", ...}`: see `scripts/twin/faults.py`).
    pub async fn fault(&self, fault: Value) -> anyhow::Result<()> {
        self.post("faults", fault).await.map(drop)
    }

    /// Clears every fault.
    pub async fn clear_faults(&self) -> anyhow::Result<()> {
        self.delete("faults").await.map(drop)
    }

    /// Starts (or returns) the workload endpoint of `region`.
    pub async fn workload(&self, region: &str) -> anyhow::Result<WorkloadEndpoint> {
        let out = self.post("workload", json!({"region": region})).await?;
        serde_json::from_value(out).context("reading a workload endpoint")
    }

    /// The twin's DNS server.
    pub async fn dns_addr(&self) -> anyhow::Result<SocketAddr> {
        let out = self.get("dns").await?;
        let host: IpAddr = out["host"]
            .as_str()
            .unwrap_or("127.0.0.1")
            .parse()
            .context("the twin's DNS host")?;
        let port = out["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .context("the twin's DNS port")?;
        Ok(SocketAddr::new(host, port))
    }
}

/// Drives alarm `name` in `region` into `ALARM` (`firing`) or `OK` the way the world
/// would: datapoints on its metric that breach its threshold or do not, until the
/// twin's evaluator has moved it (bounded, 30 s). `SetAlarmState` would last one
/// evaluation, on AWS as in the twin.
pub async fn alarm_to(
    config: &aws_types::SdkConfig,
    region: &str,
    name: &str,
    firing: bool,
) -> anyhow::Result<()> {
    use aws_sdk_cloudwatch as cw;
    use cw::types::{ComparisonOperator as Op, StateValue};
    let client = cw::Client::new(&lifeboat::aws::for_region(config, region));
    let out = client
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .with_context(|| format!("DescribeAlarms {name}"))?;
    let alarm = out
        .metric_alarms()
        .first()
        .with_context(|| format!("no alarm {name} in {region}"))?
        .clone();
    let threshold = alarm.threshold().unwrap_or(0.0);
    let above = matches!(
        alarm.comparison_operator(),
        Some(Op::GreaterThanThreshold | Op::GreaterThanOrEqualToThreshold)
    );
    let margin = threshold.abs() + 1.0;
    let value = match (above, firing) {
        (true, true) | (false, false) => threshold + margin,
        // "Not above" a positive threshold: no errors at all.
        (true, false) if threshold > 0.0 => 0.0,
        _ => threshold - margin,
    };
    let want = if firing {
        StateValue::Alarm
    } else {
        StateValue::Ok
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = i64::try_from(lifeboat::UnixMillis::now().0).unwrap_or(i64::MAX);
        client
            .put_metric_data()
            .namespace(alarm.namespace().unwrap_or_default())
            .metric_data(
                cw::types::MetricDatum::builder()
                    .metric_name(alarm.metric_name().unwrap_or_default())
                    .set_dimensions(Some(alarm.dimensions().to_vec()))
                    .value(value)
                    .timestamp(cw::primitives::DateTime::from_millis(now))
                    .build(),
            )
            .send()
            .await
            .with_context(|| format!("PutMetricData for {name}"))?;
        let state = client
            .describe_alarms()
            .alarm_names(name)
            .send()
            .await
            .with_context(|| format!("DescribeAlarms {name}"))?
            .metric_alarms()
            .first()
            .and_then(|a| a.state_value().cloned());
        if state.as_ref() == Some(&want) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("{name} in {region} is {state:?}, not {want:?}, after 30 s of data");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How long one DNS try waits for its answer, and how many tries a query gets: a stub
/// resolver retransmits over UDP (glibc: `timeout:5 attempts:2`, resolv.conf(5)). The
/// twin's DNS server shares the moto process, which a busy drill on two cores can keep
/// from answering for a few seconds; one unanswered datagram is not a DNS failure.
const DNS_TRY: Duration = Duration::from_secs(2);
const DNS_TRIES: u32 = 3;

/// Asks the DNS server at `server` for the A records of `name`, over UDP, retransmitting
/// the query up to [`DNS_TRIES`] times [`DNS_TRY`] apart; the answer must carry the
/// query's id.
pub async fn resolve_a(server: SocketAddr, name: &str) -> anyhow::Result<DnsAnswer> {
    let id = rand_id();
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = false;
    query.add_query(Query::query(
        Name::from_ascii(name).with_context(|| format!("DNS name {name}"))?,
        RecordType::A,
    ));
    let bytes = query.to_vec().context("encoding the DNS query")?;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .context("binding a UDP socket")?;
    let mut buf = vec![0u8; 4096];
    let mut answer = None;
    for _ in 0..DNS_TRIES {
        socket
            .send_to(&bytes, server)
            .await
            .context("sending the DNS query")?;
        let deadline = tokio::time::Instant::now() + DNS_TRY;
        while let Ok(read) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
            let (n, _) = read.context("reading the DNS answer")?;
            let message = Message::from_vec(&buf[..n]).context("decoding the DNS answer")?;
            if message.metadata.id == id {
                answer = Some(message);
                break;
            }
        }
        if answer.is_some() {
            break;
        }
    }
    let Some(answer) = answer else {
        bail!(
            "no DNS answer from {server} for {name} in {DNS_TRIES} tries {} s apart",
            DNS_TRY.as_secs()
        );
    };
    let addresses = answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect();
    Ok(DnsAnswer {
        rcode: format!("{:?}", answer.metadata.response_code),
        addresses,
        ttl: answer.answers.first().map(|r| r.ttl),
    })
}

fn rand_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos & 0xffff) as u16
}
