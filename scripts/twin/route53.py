"""Route 53 health checks that really check, as the Route 53 Developer Guide and API
reference describe them. moto 5.2.5 stores health checks but GetHealthCheckStatus always
answers one made-up success, and it drops `AlarmIdentifier` and
`InsufficientDataHealthStatus`.

- CreateHealthCheck / UpdateHealthCheck keep the whole `HealthCheckConfig` as sent (AWS
  names) and GetHealthCheck returns it, with `CloudWatchAlarmConfiguration` for alarm
  checks.
- Endpoint checks (HTTP, HTTPS, *_STR_MATCH, TCP): one checker per `Regions` entry probes
  the endpoint every `RequestInterval` (times the local setting
  `route53.request_interval_scale`, default 1.0); each checker flips after
  `FailureThreshold` consecutive opposite results; the check is healthy when more than
  18 % of the checkers say so.
- CLOUDWATCH_METRIC checks follow the alarm's *data stream* (its metric in moto's
  CloudWatch backend), not its StateValue: the Developer Guide says SetAlarmState cannot
  force a health check.
- CALCULATED checks count their healthy children against `HealthThreshold`.
- `Inverted` and `Disabled` apply to every type.

Controls: `GET /_twin/route53/health` -> {id: {"healthy", "type", "reason"}};
`POST /_twin/route53/checkers {"blocked": [checker Region, ...]}` makes those health
checker locations unable to reach any endpoint (a named local fault: the network between
some checker locations and an endpoint is down). Timeline: `route53.health` on every
status change of a health check.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Callable

from .core import ACCOUNT, Twin

# API reference, HealthCheckConfig `Regions` / HealthCheckObservation `Region` (valid values)
# https://docs.aws.amazon.com/Route53/latest/APIReference/API_HealthCheckConfig.html
# "If you don't specify any regions, Route 53 health checkers in all of the regions listed
# under Valid Values check the endpoint."
CHECKER_REGIONS = [
    "us-east-1", "us-west-1", "us-west-2", "eu-west-1",
    "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "sa-east-1",
]
ENDPOINT_TYPES = ("HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP")
# AlarmIdentifier, API reference: "Statistics: Average, Minimum, Maximum, Sum, and
# SampleCount. Extended statistics aren't supported."
# https://docs.aws.amazon.com/Route53/latest/APIReference/API_AlarmIdentifier.html
ALARM_STATISTICS = ("Average", "Minimum", "Maximum", "Sum", "SampleCount")
# How Amazon Route 53 determines whether a health check is healthy
# https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-determining-health-of-endpoints.html
HEALTHY_PERCENT = 18
CONNECT_TIMEOUT = 4.0  # HTTP(S): "establish a TCP connection with the endpoint within four seconds"
RESPONSE_TIMEOUT = 2.0  # "respond with an HTTP status code of 2xx or 3xx within two seconds"
TCP_TIMEOUT = 10.0  # TCP: "establish a TCP connection with the endpoint within ten seconds"
SEARCH_BYTES = 5120  # "The string must appear entirely in the first 5,120 bytes of the response body"


# ------------------------------------------------------------------ pure rules
def endpoint_healthy(healthy_checkers: int, checkers: int) -> bool:
    """An endpoint is healthy when more than 18 % of its health checkers report it healthy
    (Developer Guide, "How Amazon Route 53 determines whether a health check is healthy")."""
    return checkers > 0 and healthy_checkers * 100 > checkers * HEALTHY_PERCENT


def checker_step(healthy: bool, streak: int, ok: bool, failure_threshold: int) -> tuple[bool, int]:
    """One checker's status after one more result: it changes only after
    `FailureThreshold` consecutive results that disagree with it (Developer Guide, "Values
    that you specify when you create or update health checks", Failure threshold: "The
    number of consecutive health checks that an endpoint must pass or fail for Route 53 to
    change the current status of the endpoint from unhealthy to healthy or vice versa").
    Returns (status, consecutive disagreeing results)."""
    if ok == healthy:
        return healthy, 0
    streak += 1
    if streak >= failure_threshold:
        return ok, 0
    return healthy, streak


def calculated_healthy(children_healthy: list[bool], threshold: int | None) -> bool:
    """CALCULATED: healthy when at least `HealthThreshold` children are healthy; a threshold
    above the number of children is always unhealthy, 0 always healthy (API reference,
    HealthCheckConfig `HealthThreshold`). Without a threshold we require every child (not
    documented; CreateHealthCheck callers always send one)."""
    need = len(children_healthy) if threshold is None else int(threshold)
    return sum(1 for h in children_healthy if h) >= need


def alarm_healthy(state: str, insufficient: str | None, last_known: bool | None) -> bool:
    """CLOUDWATCH_METRIC: OK -> healthy, ALARM -> unhealthy, no data -> per
    `InsufficientDataHealthStatus`: Healthy, Unhealthy, or LastKnownStatus ("For new health
    checks that have no last known status, the default status for the health check is
    healthy"). Absent, it behaves as LastKnownStatus (the API reference calls that the
    default). API reference, HealthCheckConfig `InsufficientDataHealthStatus`; Developer
    Guide, "How Route 53 determines the status of health checks that monitor CloudWatch
    alarms"."""
    if state == "OK":
        return True
    if state == "ALARM":
        return False
    if insufficient == "Healthy":
        return True
    if insufficient == "Unhealthy":
        return False
    return True if last_known is None else last_known


def final_healthy(raw: bool, inverted: bool, disabled: bool) -> bool:
    """`Inverted` flips the status; a `Disabled` check "Route 53 considers ... to always be
    healthy" (API reference, UpdateHealthCheck `Disabled` / `Inverted`)."""
    if disabled:
        return True
    return (not raw) if inverted else raw


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


def statistic(values: list[tuple[float, float, float, float]], stat: str) -> float | None:
    """One period's statistic from (sum, min, max, count) samples."""
    if not values:
        return None
    total = sum(v[0] for v in values)
    count = sum(v[3] for v in values)
    if stat == "Sum":
        return total
    if stat == "SampleCount":
        return count
    if stat == "Minimum":
        return min(v[1] for v in values)
    if stat == "Maximum":
        return max(v[2] for v in values)
    return total / count if count else None


def data_stream_state(config: dict, samples: list[tuple[float, tuple[float, float, float, float]]], now: float, period_seconds: float) -> str:
    """The alarm state the metric's data stream shows, from the alarm configuration
    Route 53 copied (`CloudWatchAlarmConfiguration`: EvaluationPeriods, Threshold,
    ComparisonOperator, Period, Statistic) and samples (unix time, (sum, min, max, count)).

    Developer Guide, "How Amazon Route 53 determines whether a health check is healthy":
    "Route 53 monitors the data stream for the corresponding alarm instead of monitoring the
    alarm state". ALARM when at least DatapointsToAlarm (default EvaluationPeriods) of the
    last EvaluationPeriods periods breach; INSUFFICIENT_DATA when none of those periods has
    a datapoint; OK otherwise. (Route 53's copy has no TreatMissingData; reading missing
    periods as "not enough information" is ours.)"""
    periods = int(config.get("EvaluationPeriods") or 1)
    need = int(config.get("DatapointsToAlarm") or periods)
    compare = _COMPARE.get(config.get("ComparisonOperator", ""), _COMPARE["GreaterThanOrEqualToThreshold"])
    threshold = float(config.get("Threshold") or 0)
    present = breaching = 0
    for i in range(periods):
        end, start = now - i * period_seconds, now - (i + 1) * period_seconds
        bucket = [s for t, s in samples if start <= t < end]
        value = statistic(bucket, config.get("Statistic", "Average"))
        if value is None:
            continue
        present += 1
        breaching += 1 if compare(value, threshold) else 0
    if breaching >= need:
        return "ALARM"
    return "OK" if present else "INSUFFICIENT_DATA"


def unsupported_alarm(alarm: Any) -> str | None:
    """Why Route 53 cannot use this alarm, or None. API reference, `AlarmIdentifier`:
    "Standard-resolution metrics. High-resolution metrics aren't supported." and only the
    statistics Average, Minimum, Maximum, Sum, SampleCount. moto does not keep a metric's
    StorageResolution, so high resolution is read from the alarm: a Period under 60 s
    (CloudWatch allows 10 and 30 s periods only on high-resolution metrics). Alarms on
    metric math (`Metrics`) have no single metric stream to copy."""
    if getattr(alarm, "metric_data_queries", None):
        return "alarms on metric math expressions are not supported"
    if getattr(alarm, "extended_statistic", None) or alarm.statistic not in ALARM_STATISTICS:
        return f"statistic {alarm.extended_statistic or alarm.statistic} is not supported; use one of {', '.join(ALARM_STATISTICS)}"
    if alarm.period is not None and int(alarm.period) < 60:
        return f"high-resolution metrics are not supported (alarm period {alarm.period} s)"
    return None


# ------------------------------------------------------------------ probes
def probe(config: dict, resolve: Callable[[str], str | None]) -> tuple[bool, str]:
    """One health checker request, as the Developer Guide's "How Route 53 determines the
    status of health checks that monitor an endpoint" describes it: 4 s to connect and 2 s
    for a 2xx/3xx status (HTTP/HTTPS), the search string within the first 5,120 bytes of
    the body, received within 2 more seconds (*_STR_MATCH), 10 s to connect (TCP). HTTPS
    does not verify certificates ("HTTPS health checks don't validate SSL/TLS
    certificates"). Returns (success, StatusReport.Status text)."""
    kind = config["Type"]
    fqdn = config.get("FullyQualifiedDomainName")
    ip = config.get("IPAddress")
    port = int(config.get("Port") or (443 if kind.startswith("HTTPS") else 80))
    if not ip:
        ip = resolve(fqdn) if fqdn else None
        if not ip:
            return False, "Failure: DNS resolution failed."
    if kind == "TCP":
        try:
            socket.create_connection((ip, port), timeout=TCP_TIMEOUT).close()
        except socket.timeout:
            return False, "Failure: Connection timed out. The endpoint or the internet connection is down, or requests are being blocked by your firewall."
        except OSError as error:
            return False, f"Failure: Connection refused or reset ({error.strerror or error})."
        return True, "Success: TCP connection established."
    https = kind.startswith("HTTPS")
    path = config.get("ResourcePath") or "/"
    if not path.startswith("/"):
        path = "/" + path  # "If you don't include a leading slash (/) character, Route 53 automatically adds one"
    host = fqdn or ip
    if port not in (80, 443):
        host = f"{host}:{port}"
    try:
        sock = socket.create_connection((ip, port), timeout=CONNECT_TIMEOUT)
    except socket.timeout:
        return False, "Failure: Connection timed out. The endpoint or the internet connection is down, or requests are being blocked by your firewall."
    except OSError as error:
        return False, f"Failure: Connection refused ({error.strerror or error})."
    try:
        sock.settimeout(RESPONSE_TIMEOUT)
        if https:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sni = fqdn if config.get("EnableSNI") and fqdn else None
            sock = context.wrap_socket(sock, server_hostname=sni)
        conn = http.client.HTTPConnection(ip, port, timeout=RESPONSE_TIMEOUT)
        conn.sock = sock
        conn.request("GET", path, headers={"Host": host, "User-Agent": "Amazon-Route53-Health-Check-Service"})
        response = conn.getresponse()
        code, reason = response.status, response.reason
        if not 200 <= code < 400:
            return False, f"Failure: HTTP Status Code {code}, {reason}"
        if kind.endswith("STR_MATCH"):
            body = response.read(SEARCH_BYTES)
            needle = (config.get("SearchString") or "").encode()
            if needle not in body:
                return False, f"Failure: HTTP Status Code {code}, {reason}. Response body did not contain the search string."
        return True, f"Success: HTTP Status Code {code}, {reason}"
    except socket.timeout:
        return False, "Failure: The endpoint did not respond in time (2 seconds after connecting)."
    except (OSError, http.client.HTTPException) as error:
        return False, f"Failure: {error.__class__.__name__}: {error}"
    finally:
        sock.close()


# ------------------------------------------------------------------ state
class Checker:
    """One health checker location's view of one endpoint."""

    def __init__(self, region: str) -> None:
        self.region = region
        # "Route 53 considers a new health check to be healthy until there's enough data
        # to determine the actual status" (Developer Guide, How Route 53 determines ...).
        self.healthy = True
        self.streak = 0
        self.report = "Success: Health check is new; no result yet."
        self.checked: datetime = datetime.now(timezone.utc)
        self.due = 0.0
        self.busy = False


class Health:
    """Every health check's current status, kept by background loops."""

    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        self.lock = threading.Lock()
        self.status: dict[str, dict] = {}  # id -> {"healthy", "type", "reason"}
        self.last_known: dict[str, bool] = {}  # CLOUDWATCH_METRIC: status when data last sufficed
        self.checkers: dict[str, dict[str, Checker]] = {}
        self.blocked: set[str] = set()
        self.pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="r53-checker")
        self.resolve_hook: Callable[[str], str | None] | None = None  # set by the dns module

    def healthy(self, health_check_id: str) -> bool | None:
        """Route 53's current view of a health check; None when it does not exist."""
        with self.lock:
            row = self.status.get(health_check_id)
            return None if row is None else row["healthy"]

    def _set(self, hc_id: str, kind: str, healthy: bool, reason: str) -> None:
        with self.lock:
            before = self.status.get(hc_id)
            self.status[hc_id] = {"healthy": healthy, "type": kind, "reason": reason}
        if before is None or before["healthy"] != healthy:
            self.twin.timeline.record(
                "route53.health",
                f"health check {hc_id} ({kind}) is {'healthy' if healthy else 'unhealthy'}: {reason}",
                health_check_id=hc_id, healthy=healthy, type=kind,
            )

    def _resolve(self, name: str) -> str | None:
        if self.resolve_hook is not None:
            found = self.resolve_hook(name)
            if found:
                return found
        try:
            return socket.getaddrinfo(name, None, socket.AF_INET)[0][4][0]
        except OSError:
            return None

    # -------------------------------------------------------------- the loop
    def tick(self) -> None:
        """Re-evaluates every health check: starts due endpoint probes, reads alarm data
        streams, recomputes calculated checks (children first)."""
        from moto.route53.models import route53_backends

        with self.twin.locked():
            checks = {hc.id: dict(config_of(hc)) for hc in route53_backends[ACCOUNT]["aws"].health_checks.values()}
            samples = {hc_id: alarm_samples(c) for hc_id, c in checks.items() if c.get("Type") == "CLOUDWATCH_METRIC"}
        now = time.time()
        with self.lock:
            for gone in set(self.status) - set(checks):
                self.status.pop(gone, None)
                self.checkers.pop(gone, None)
        scale = float(self.twin.setting("route53.request_interval_scale", 1.0))
        for hc_id, c in checks.items():
            kind = c.get("Type")
            if kind in ENDPOINT_TYPES:
                self._endpoint(hc_id, c, now, scale)
            elif kind == "CLOUDWATCH_METRIC":
                self._alarm(hc_id, c, samples.get(hc_id) or [], now)
        for hc_id, c in checks.items():
            if c.get("Type") == "CALCULATED":
                children = c.get("ChildHealthChecks") or []
                states = [bool(self.healthy(child)) for child in children]
                raw = calculated_healthy(states, c.get("HealthThreshold"))
                reason = f"{sum(states)} of {len(states)} child health checks healthy, {c.get('HealthThreshold')} required"
                self._finish(hc_id, c, raw, reason)

    def _finish(self, hc_id: str, c: dict, raw: bool, reason: str) -> None:
        inverted, disabled = bool(c.get("Inverted")), bool(c.get("Disabled"))
        if disabled:
            reason = "disabled: Route 53 considers a disabled health check healthy"
        elif inverted:
            reason = f"inverted ({reason})"
        self._set(hc_id, c.get("Type", ""), final_healthy(raw, inverted, disabled), reason)

    def _endpoint(self, hc_id: str, c: dict, now: float, scale: float) -> None:
        regions = c.get("Regions") or CHECKER_REGIONS
        interval = float(c.get("RequestInterval") or 30) * scale
        threshold = int(c.get("FailureThreshold") or 3)
        with self.lock:
            mine = self.checkers.setdefault(hc_id, {})
            for r in list(mine):
                if r not in regions:
                    del mine[r]
            for r in regions:
                mine.setdefault(r, Checker(r))
            due = [ch for ch in mine.values() if not ch.busy and ch.due <= now] if not c.get("Disabled") else []
            for ch in due:
                ch.busy = True
            healthy_n = sum(1 for ch in mine.values() if ch.healthy)
            total = len(mine)
        for ch in due:
            self.pool.submit(self._probe, ch, c, interval, threshold)
        self._finish(hc_id, c, endpoint_healthy(healthy_n, total), f"{healthy_n} of {total} health checkers report healthy")

    def _probe(self, ch: Checker, c: dict, interval: float, threshold: int) -> None:
        try:
            if ch.region in self.blocked:
                ok, text = False, "Failure: Connection timed out. The endpoint or the internet connection is down, or requests are being blocked by your firewall."
            else:
                ok, text = probe(c, self._resolve)
        except Exception as error:  # a probe bug must show, not silently keep the checker busy
            ok, text = False, f"Failure: {error!r}"
            self.twin.timeline.record("twin.error", f"route53 probe: {error!r}")
        with self.lock:
            ch.healthy, ch.streak = checker_step(ch.healthy, ch.streak, ok, threshold)
            ch.report, ch.checked = text, datetime.now(timezone.utc)
            # RequestInterval: "The number of seconds between the time that each Route 53
            # health checker gets a response from your endpoint and the time that it sends
            # the next health check request".
            ch.due = time.time() + interval
            ch.busy = False

    def _alarm(self, hc_id: str, c: dict, samples: list, now: float) -> None:
        cfg = c.get("_AlarmConfig") or {}
        period = float(cfg.get("Period") or 60) * self.twin.minute() / 60.0
        state = data_stream_state(cfg, samples, now, period)
        with self.lock:
            last = self.last_known.get(hc_id)
        raw = alarm_healthy(state, c.get("InsufficientDataHealthStatus"), last)
        if state != "INSUFFICIENT_DATA":
            with self.lock:
                self.last_known[hc_id] = raw
        name = (c.get("AlarmIdentifier") or {}).get("Name")
        self._finish(hc_id, c, raw, f"alarm {name} data stream is {state}")

    # -------------------------------------------------------------- answers
    def observations(self, hc_id: str, c: dict) -> list[dict]:
        """GetHealthCheckStatus: one HealthCheckObservation per health checker Region."""
        kind = c.get("Type")
        if kind == "CALCULATED":
            # API reference, GetHealthCheckStatus: "You can't use GetHealthCheckStatus to get
            # the status of a calculated health check." (we answer with no observations)
            return []
        with self.lock:
            if kind in ENDPOINT_TYPES:
                rows = [(ch.region, ch.healthy, ch.report, ch.checked) for ch in self.checkers.get(hc_id, {}).values()]
            else:
                row = self.status.get(hc_id) or {"healthy": True, "reason": "no data yet"}
                ok = row["healthy"]
                text = ("Success: " if ok else "Failure: ") + row["reason"]
                rows = [(r, ok, text, datetime.now(timezone.utc)) for r in CHECKER_REGIONS]
        inverted, disabled = bool(c.get("Inverted")), bool(c.get("Disabled"))
        out = []
        for i, (region, ok, text, checked) in enumerate(rows):
            if kind in ENDPOINT_TYPES and (inverted or disabled):
                # A checker's report says what it saw; Route 53's status of an inverted or
                # disabled check is that report transformed. The observation follows the
                # status so that a reader counting "Success" agrees with Route 53.
                final = final_healthy(ok, inverted, disabled)
                if final != ok:
                    text = ("Success: " if final else "Failure: ") + f"({'disabled' if disabled else 'inverted'}) " + text
            out.append({
                "Region": region,
                "IPAddress": f"15.177.{2 + i}.{10 + i}",  # a health checker address (Route 53's ranges); not the endpoint's
                "StatusReport": {"Status": text, "CheckedTime": checked},
            })
        return out


def config_of(hc: Any) -> dict:
    """The health check's configuration in AWS names, as the caller sent it."""
    return getattr(hc, "_twin_config", None) or {k: v for k, v in hc.health_check_config.items() if v is not None}


def alarm_samples(c: dict) -> list:
    """The metric samples of a CLOUDWATCH_METRIC check's copied alarm configuration, read
    from moto's CloudWatch backend in the alarm's Region (call under twin.locked())."""
    from moto.cloudwatch.models import MetricAggregatedDatum, cloudwatch_backends

    cfg = c.get("_AlarmConfig") or {}
    region = (c.get("AlarmIdentifier") or {}).get("Region")
    if not cfg or not region:
        return []
    dims = {(d["Name"], d["Value"]) for d in cfg.get("Dimensions") or []}
    out = []
    for md in cloudwatch_backends[ACCOUNT][region].metric_data:
        if md.namespace != cfg.get("Namespace") or md.name != cfg.get("MetricName"):
            continue
        if {(d.name, d.value) for d in md.dimensions} != dims:
            continue
        ts = md.timestamp.replace(tzinfo=md.timestamp.tzinfo or timezone.utc).timestamp()
        if isinstance(md, MetricAggregatedDatum):
            out.append((ts, (md.sum, md.min, md.max, md.sample_count)))
        else:
            out.append((ts, (md.value, md.value, md.value, 1.0)))
    return out


def alarm_config(alarm: Any) -> dict:
    """`CloudWatchAlarmConfiguration` as GetHealthCheck returns it: Route 53's copy of the
    alarm's settings (Developer Guide: "If you change settings for the CloudWatch alarm
    after you create a health check, you must update the health check")."""
    return {
        "EvaluationPeriods": int(alarm.evaluation_periods),
        "Threshold": float(alarm.threshold),
        "ComparisonOperator": alarm.comparison_operator,
        "Period": int(alarm.period),
        "MetricName": alarm.metric_name,
        "Namespace": alarm.namespace,
        "Statistic": alarm.statistic,
        "Dimensions": [{"Name": d.name, "Value": d.value} for d in alarm.dimensions],
        "DatapointsToAlarm": int(alarm.datapoints_to_alarm) if alarm.datapoints_to_alarm else None,
    }


# ------------------------------------------------------------------ moto patches
def _validated(config: dict, existing: dict | None = None) -> dict:
    """Checks a HealthCheckConfig as Route 53 does and returns it with the alarm's copied
    configuration (`_AlarmConfig`, kept internal). Raises InvalidInput."""
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.route53.exceptions import InvalidInput

    c = dict(existing or {})
    c.update({k: v for k, v in config.items() if v is not None})
    kind = c.get("Type")
    alarm_id = c.get("AlarmIdentifier")
    if kind != "CLOUDWATCH_METRIC":
        if alarm_id:
            # The message AWS answers with (seen in hashicorp/terraform-provider-aws#22993).
            raise InvalidInput("Invalid parameter : Basic health checks must not have an metric region specified.")
        return c
    if not alarm_id or not alarm_id.get("Name") or not alarm_id.get("Region"):
        raise InvalidInput("Invalid parameter : CLOUDWATCH_METRIC health checks need an AlarmIdentifier with Region and Name.")
    alarm = cloudwatch_backends[ACCOUNT][alarm_id["Region"]].alarms.get(alarm_id["Name"])
    if alarm is None:
        raise InvalidInput(f"Invalid parameter : no CloudWatch alarm {alarm_id['Name']} in {alarm_id['Region']}.")
    why = unsupported_alarm(alarm)
    if why:
        # API reference, AlarmIdentifier: these alarms "aren't supported"; CreateHealthCheck's
        # only error for a bad configuration is InvalidInput.
        raise InvalidInput(f"Invalid parameter : CloudWatch alarm {alarm.name}: {why}.")
    c["_AlarmConfig"] = alarm_config(alarm)
    return c


def patch_moto(health: Health) -> None:
    from moto.core.responses import ActionResult
    from moto.route53 import models, responses

    def health_check_config(self) -> dict:
        mine = getattr(self, "_twin_config", None)
        if mine is None:
            return original_config.fget(self)
        out = {k: v for k, v in mine.items() if not k.startswith("_")}
        if out.get("Type") in ENDPOINT_TYPES:
            out.setdefault("Port", 443 if out["Type"].startswith("HTTPS") else 80)
            out.setdefault("RequestInterval", 30)
            out.setdefault("FailureThreshold", 3)
        out.setdefault("Inverted", False)
        out.setdefault("Disabled", False)
        return out

    def cloud_watch_alarm_configuration(self) -> dict | None:
        cfg = (getattr(self, "_twin_config", None) or {}).get("_AlarmConfig")
        if not cfg:
            return None
        return {k: v for k, v in cfg.items() if k != "DatapointsToAlarm"}

    original_config = models.HealthCheck.health_check_config
    models.HealthCheck.health_check_config = property(health_check_config)
    models.HealthCheck.cloud_watch_alarm_configuration = property(cloud_watch_alarm_configuration)

    original_create = responses.Route53.create_health_check
    original_update = responses.Route53.update_health_check

    def create_health_check(self):
        config = _validated(dict(self._get_param("HealthCheckConfig") or {}))
        result = original_create(self)
        result.result["HealthCheck"]._twin_config = config
        return result

    # UpdateHealthCheck members (API reference); `ResetElements` resets to defaults.
    updatable = ("IPAddress", "Port", "ResourcePath", "FullyQualifiedDomainName", "SearchString",
                 "FailureThreshold", "Inverted", "Disabled", "HealthThreshold", "ChildHealthChecks",
                 "EnableSNI", "Regions", "AlarmIdentifier", "InsufficientDataHealthStatus")

    def update_health_check(self):
        hc_id = self._get_param("HealthCheckId")
        hc = self.backend.get_health_check(hc_id)
        existing = dict(config_of(hc))
        for element in self._get_param("ResetElements") or []:
            existing.pop(element, None)
        change = {k: self._get_param(k) for k in updatable}
        config = _validated(change, existing)
        result = original_update(self)
        # moto clears ChildHealthChecks and Regions when an update leaves them out.
        hc.set_children(config.get("ChildHealthChecks") or [])
        hc.set_regions(config.get("Regions") or [])
        hc._twin_config = config
        hc.health_check_version += 1
        return result

    def get_health_check_status(self):
        hc = self.backend.get_health_check(self._get_param("HealthCheckId"))
        return ActionResult({"HealthCheckObservations": health.observations(hc.id, config_of(hc))})

    responses.Route53.create_health_check = create_health_check
    responses.Route53.update_health_check = update_health_check
    responses.Route53.get_health_check_status = get_health_check_status


def install(twin: Twin) -> None:
    health = Health(twin)
    twin.route53_health = health
    patch_moto(health)
    # How often the twin re-reads health checks (its own cadence; endpoint checkers keep
    # their RequestInterval). The Developer Guide gives no figure for how soon an alarm
    # check follows its metric; we re-read every `route53.evaluate_seconds` (default 1 s).
    twin.every(lambda: float(twin.setting("route53.evaluate_seconds", 1.0)), health.tick, "route53-health")

    @twin.control("route53/health")
    def _health(method: str, body: Any, query: dict) -> tuple:
        with health.lock:
            return 200, dict(health.status)

    @twin.control("route53/checkers")
    def _checkers(method: str, body: Any, query: dict) -> tuple:
        if method == "POST":
            blocked = set(body.get("blocked") or [])
            unknown = blocked - set(CHECKER_REGIONS)
            if unknown:
                return 400, {"error": f"unknown health checker Regions {sorted(unknown)}", "regions": CHECKER_REGIONS}
            with health.lock:
                health.blocked = blocked
            twin.timeline.record("fault.set", f"Route 53 health checkers in {sorted(blocked) or 'no Region'} cannot reach endpoints", blocked=sorted(blocked))
        return 200, {"blocked": sorted(health.blocked), "regions": CHECKER_REGIONS}
