"""Route 53 health checks as AWS documents them: the rules as pure functions, then the
real server (CreateHealthCheck validation, GetHealthCheck config, alarm data streams,
HTTP checkers with their failure threshold and the 18 % rule)."""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from datetime import datetime, timezone
from types import SimpleNamespace

import botocore.exceptions
import pytest

import conftest
from twin import route53 as r

# ------------------------------------------------------------------ pure rules


def test_endpoint_is_healthy_when_more_than_18_percent_of_checkers_say_so():
    assert r.endpoint_healthy(1, 5)  # 20 %
    assert not r.endpoint_healthy(1, 6)  # 16.7 %
    assert not r.endpoint_healthy(1, 8)  # 12.5 %
    assert r.endpoint_healthy(2, 8)  # 25 %
    assert not r.endpoint_healthy(0, 8)
    assert not r.endpoint_healthy(0, 0)


def test_checker_changes_status_after_failure_threshold_consecutive_results():
    healthy, streak = True, 0
    for _ in range(2):
        healthy, streak = r.checker_step(healthy, streak, False, 3)
        assert healthy
    healthy, streak = r.checker_step(healthy, streak, True, 3)  # a success resets the count
    assert (healthy, streak) == (True, 0)
    for _ in range(3):
        healthy, streak = r.checker_step(healthy, streak, False, 3)
    assert not healthy
    healthy, streak = r.checker_step(healthy, streak, True, 1)  # threshold 1 flips at once
    assert healthy


@pytest.mark.parametrize(
    "state, mode, last, want",
    [
        ("OK", "Unhealthy", None, True),
        ("ALARM", "Healthy", None, False),
        ("INSUFFICIENT_DATA", "Healthy", False, True),
        ("INSUFFICIENT_DATA", "Unhealthy", True, False),
        ("INSUFFICIENT_DATA", "LastKnownStatus", False, False),
        ("INSUFFICIENT_DATA", "LastKnownStatus", True, True),
        # "For new health checks that have no last known status, the default status ... is healthy"
        ("INSUFFICIENT_DATA", "LastKnownStatus", None, True),
        ("INSUFFICIENT_DATA", None, None, True),
    ],
)
def test_alarm_state_to_health_with_insufficient_data_health_status(state, mode, last, want):
    assert r.alarm_healthy(state, mode, last) is want


def test_calculated_health_threshold():
    children = [True, False, True]
    assert r.calculated_healthy(children, 2)
    assert not r.calculated_healthy(children, 3)
    assert r.calculated_healthy(children, 0)  # "If you specify 0, Route 53 always considers this health check to be healthy"
    assert not r.calculated_healthy(children, 4)  # greater than the number of children: always unhealthy


def test_inverted_flips_and_disabled_is_always_healthy():
    assert r.final_healthy(True, inverted=True, disabled=False) is False
    assert r.final_healthy(False, inverted=True, disabled=False) is True
    assert r.final_healthy(False, inverted=False, disabled=True) is True
    assert r.final_healthy(True, inverted=True, disabled=True) is True


def test_data_stream_state_m_of_n_and_no_data():
    cfg = {"EvaluationPeriods": 3, "DatapointsToAlarm": 2, "Threshold": 10, "ComparisonOperator": "GreaterThanThreshold", "Statistic": "Maximum"}
    now = 1000.0

    def at(age, v):
        return (now - age, (v, v, v, 1.0))

    assert r.data_stream_state(cfg, [], now, 60) == "INSUFFICIENT_DATA"
    assert r.data_stream_state(cfg, [at(10, 11)], now, 60) == "OK"  # 1 of 3 breaching < 2
    assert r.data_stream_state(cfg, [at(10, 11), at(130, 12)], now, 60) == "ALARM"
    assert r.data_stream_state(cfg, [at(10, 11), at(200, 12)], now, 60) == "OK"  # second one is outside 3 periods
    avg = dict(cfg, Statistic="Average", EvaluationPeriods=1, DatapointsToAlarm=None)
    assert r.data_stream_state(avg, [at(1, 15), at(2, 4)], now, 60) == "OK"  # average 9.5


def test_high_resolution_and_extended_statistic_alarms_are_not_supported():
    def alarm(**kw):
        base = dict(metric_data_queries=[], extended_statistic=None, statistic="Average", period=60)
        base.update(kw)
        return SimpleNamespace(**base)

    assert r.unsupported_alarm(alarm()) is None
    assert "high-resolution" in r.unsupported_alarm(alarm(period=10))
    assert "high-resolution" in r.unsupported_alarm(alarm(period=30))
    assert "p99" in r.unsupported_alarm(alarm(statistic=None, extended_statistic="p99"))
    assert "metric math" in r.unsupported_alarm(alarm(metric_data_queries=[{"Id": "m1"}]))


# ------------------------------------------------------------------ through the server


def wait_for(fn, timeout: float = 8.0):
    """`conftest.wait_for` with this module's longer default wait (8 s, not 5)."""
    return conftest.wait_for(fn, timeout)


@pytest.fixture(scope="module")
def twin(server):
    status, _ = server.control("settings", {
        "route53.evaluate_seconds": 0.05,
        "route53.request_interval_scale": 0.02,  # 10 s interval -> 0.2 s
        "twin.minute_seconds": 3,  # a 60 s alarm period lasts 3 s
        "cloudwatch.evaluate": False,
    })
    assert status == 200
    return server


def health(server, hc_id):
    """The twin's current status of a health check, once it has one."""
    return wait_for(lambda: server.control("route53/health")[1].get(hc_id), timeout=3)


def make_alarm(cw, name, **kw):
    args = dict(AlarmName=name, MetricName=name, Namespace="Lifeboat/Test", Statistic="Minimum", Period=60,
                EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
    args.update(kw)
    cw.put_metric_alarm(**args)


def alarm_check(r53, name, region="us-west-2", **kw):
    config = {"Type": "CLOUDWATCH_METRIC", "AlarmIdentifier": {"Region": region, "Name": name}, **kw}
    return r53.create_health_check(CallerReference=str(uuid.uuid4()), HealthCheckConfig=config)["HealthCheck"]["Id"]


def test_create_health_check_refuses_unsupported_alarms(twin):
    r53, cw = twin.client("route53"), twin.client("cloudwatch", "us-west-2")
    make_alarm(cw, "hires", Period=10)
    cw.put_metric_alarm(AlarmName="p99", MetricName="m", Namespace="N", ExtendedStatistic="p99", Period=60,
                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    for name in ("hires", "p99", "no-such-alarm"):
        with pytest.raises(botocore.exceptions.ClientError) as info:
            alarm_check(r53, name)
        assert info.value.response["Error"]["Code"] == "InvalidInput", name
    with pytest.raises(botocore.exceptions.ClientError) as info:
        r53.create_health_check(CallerReference="basic-with-alarm", HealthCheckConfig={
            "Type": "HTTP", "IPAddress": "127.0.0.1", "Port": 80,
            "AlarmIdentifier": {"Region": "us-west-2", "Name": "hires"}})
    assert "Basic health checks must not have an metric region specified" in str(info.value)


def test_get_health_check_returns_what_moto_drops(twin):
    r53, cw = twin.client("route53"), twin.client("cloudwatch", "us-west-2")
    make_alarm(cw, "kept", Dimensions=[{"Name": "Region", "Value": "us-west-2"}])
    hc_id = alarm_check(r53, "kept", InsufficientDataHealthStatus="LastKnownStatus", Inverted=True)
    hc = r53.get_health_check(HealthCheckId=hc_id)["HealthCheck"]
    config = hc["HealthCheckConfig"]
    assert config["AlarmIdentifier"] == {"Region": "us-west-2", "Name": "kept"}
    assert config["InsufficientDataHealthStatus"] == "LastKnownStatus"
    assert config["Inverted"] is True
    assert hc["CloudWatchAlarmConfiguration"]["Period"] == 60
    assert hc["CloudWatchAlarmConfiguration"]["Dimensions"] == [{"Name": "Region", "Value": "us-west-2"}]
    child = r53.create_health_check(CallerReference="c1", HealthCheckConfig={"Type": "CALCULATED", "HealthThreshold": 0})["HealthCheck"]["Id"]
    parent = r53.create_health_check(CallerReference="p1", HealthCheckConfig={"Type": "CALCULATED", "HealthThreshold": 1, "ChildHealthChecks": [child]})["HealthCheck"]["Id"]
    r53.update_health_check(HealthCheckId=parent, Inverted=True)  # an update that leaves the children alone
    config = r53.get_health_check(HealthCheckId=parent)["HealthCheck"]["HealthCheckConfig"]
    assert config["ChildHealthChecks"] == [child] and config["HealthThreshold"] == 1 and config["Inverted"] is True


def test_alarm_check_follows_the_data_stream_not_set_alarm_state(twin):
    r53, cw = twin.client("route53"), twin.client("cloudwatch", "us-west-2")
    make_alarm(cw, "stream")
    last_known = alarm_check(r53, "stream", InsufficientDataHealthStatus="LastKnownStatus")
    healthy_mode = alarm_check(r53, "stream", InsufficientDataHealthStatus="Healthy")
    unhealthy_mode = alarm_check(r53, "stream", InsufficientDataHealthStatus="Unhealthy")
    # No data yet: a new check with no last known status is healthy.
    assert wait_for(lambda: health(twin, last_known) and health(twin, unhealthy_mode))
    assert health(twin, last_known)["healthy"] and health(twin, healthy_mode)["healthy"]
    assert not health(twin, unhealthy_mode)["healthy"]
    # SetAlarmState cannot force a health check (Developer Guide note).
    cw.set_alarm_state(AlarmName="stream", StateValue="ALARM", StateReason="test")
    time.sleep(0.3)
    assert health(twin, last_known)["healthy"]
    # A breaching datapoint: ALARM -> unhealthy whatever the insufficient-data mode.
    cw.put_metric_data(Namespace="Lifeboat/Test", MetricData=[{"MetricName": "stream", "Value": 5}])
    assert wait_for(lambda: not health(twin, healthy_mode)["healthy"])
    assert not health(twin, last_known)["healthy"]
    obs = r53.get_health_check_status(HealthCheckId=last_known)["HealthCheckObservations"]
    assert obs and all(o["StatusReport"]["Status"].startswith("Failure") for o in obs)
    # The datapoint ages out of the period (3 s here): insufficient data again.
    assert wait_for(lambda: health(twin, healthy_mode)["healthy"], timeout=10)
    assert not health(twin, last_known)["healthy"]  # LastKnownStatus keeps unhealthy
    assert not health(twin, unhealthy_mode)["healthy"]
    cw.put_metric_data(Namespace="Lifeboat/Test", MetricData=[{"MetricName": "stream", "Value": 0}])
    assert wait_for(lambda: health(twin, unhealthy_mode)["healthy"])  # OK -> healthy
    assert health(twin, last_known)["healthy"]
    rows = [row for row in twin.timeline() if row["kind"] == "route53.health" and row["health_check_id"] == last_known]
    assert [row["healthy"] for row in rows] == [True, False, True]


def test_calculated_check_counts_children_and_inverts(twin):
    r53 = twin.client("route53")

    def calc(threshold, children=(), **kw):
        config = {"Type": "CALCULATED", "HealthThreshold": threshold, "ChildHealthChecks": list(children), **kw}
        return r53.create_health_check(CallerReference=str(uuid.uuid4()), HealthCheckConfig=config)["HealthCheck"]["Id"]

    up, down = calc(0), calc(1)  # no children: 0 -> always healthy, 1 -> always unhealthy
    two_of = calc(2, [up, down, up])
    three_of = calc(3, [up, down, up])
    inverted = calc(3, [up, down, up], Inverted=True)
    disabled = calc(3, [up, down, up], Disabled=True)
    assert wait_for(lambda: all(health(twin, i) for i in (two_of, three_of, inverted, disabled)))
    time.sleep(0.2)
    assert health(twin, two_of)["healthy"]
    assert not health(twin, three_of)["healthy"]
    assert health(twin, inverted)["healthy"]
    assert health(twin, disabled)["healthy"]
    assert r53.get_health_check_status(HealthCheckId=two_of)["HealthCheckObservations"] == []


class Endpoint:
    """A local HTTP endpoint whose status code a test sets."""

    def __init__(self) -> None:
        self.code = 200
        self.body = b"ok"
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(endpoint.code)
                self.send_header("Content-Length", str(len(endpoint.body)))
                self.end_headers()
                self.wfile.write(endpoint.body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture()
def endpoint():
    e = Endpoint()
    yield e
    e.close()


def test_http_checkers_flip_after_failure_threshold(twin, endpoint):
    r53 = twin.client("route53")
    regions = ["us-east-1", "eu-west-1", "ap-southeast-2"]
    hc_id = r53.create_health_check(CallerReference=str(uuid.uuid4()), HealthCheckConfig={
        "Type": "HTTP", "IPAddress": "127.0.0.1", "Port": endpoint.port, "ResourcePath": "health",
        "RequestInterval": 10, "FailureThreshold": 3, "Regions": regions})["HealthCheck"]["Id"]

    def statuses():
        return [o["StatusReport"]["Status"] for o in r53.get_health_check_status(HealthCheckId=hc_id)["HealthCheckObservations"]]

    assert wait_for(lambda: statuses() and all(s == "Success: HTTP Status Code 200, OK" for s in statuses()))
    assert sorted(o["Region"] for o in r53.get_health_check_status(HealthCheckId=hc_id)["HealthCheckObservations"]) == sorted(regions)
    endpoint.code = 503
    start = time.time()
    assert wait_for(lambda: not health(twin, hc_id)["healthy"])
    # Three consecutive failures at a 0.2 s interval: not before ~0.4 s.
    assert time.time() - start >= 0.35
    assert all(s.startswith("Failure: HTTP Status Code 503") for s in statuses())
    endpoint.code = 302  # 3xx is success
    assert wait_for(lambda: health(twin, hc_id)["healthy"])


def test_endpoint_healthy_only_when_more_than_18_percent_of_checkers_reach_it(twin, endpoint):
    r53 = twin.client("route53")
    five = ["us-east-1", "us-west-1", "us-west-2", "eu-west-1", "sa-east-1"]
    hc_five = r53.create_health_check(CallerReference=str(uuid.uuid4()), HealthCheckConfig={
        "Type": "TCP", "IPAddress": "127.0.0.1", "Port": endpoint.port, "RequestInterval": 10,
        "FailureThreshold": 1, "Regions": five})["HealthCheck"]["Id"]
    hc_all = r53.create_health_check(CallerReference=str(uuid.uuid4()), HealthCheckConfig={
        "Type": "TCP", "IPAddress": "127.0.0.1", "Port": endpoint.port, "RequestInterval": 10,
        "FailureThreshold": 1})["HealthCheck"]["Id"]
    assert len(r53.get_health_check_status(HealthCheckId=hc_all)["HealthCheckObservations"]) in (0, 8)
    try:
        # 4 of 5 blocked: 1 of 5 = 20 % > 18 % healthy. 7 of 8 blocked: 12.5 %: unhealthy.
        blocked = ["us-west-1", "us-west-2", "eu-west-1", "sa-east-1", "ap-southeast-1", "ap-southeast-2", "ap-northeast-1"]
        assert twin.control("route53/checkers", {"blocked": blocked})[0] == 200
        assert wait_for(lambda: not health(twin, hc_all)["healthy"])
        time.sleep(0.5)
        assert health(twin, hc_five)["healthy"]
        obs = r53.get_health_check_status(HealthCheckId=hc_all)["HealthCheckObservations"]
        assert len(obs) == 8 and sum(o["StatusReport"]["Status"].startswith("Success") for o in obs) == 1
        assert twin.control("route53/checkers", {"blocked": blocked + ["us-east-1"]})[0] == 200
        assert wait_for(lambda: not health(twin, hc_five)["healthy"])
    finally:
        twin.control("route53/checkers", {"blocked": []})


def test_string_match_must_be_in_the_first_5120_bytes(twin, endpoint):
    r53 = twin.client("route53")
    endpoint.body = b"x" * 5118 + b"READY"  # straddles byte 5120
    hc_id = r53.create_health_check(CallerReference=str(uuid.uuid4()), HealthCheckConfig={
        "Type": "HTTP_STR_MATCH", "IPAddress": "127.0.0.1", "Port": endpoint.port, "SearchString": "READY",
        "RequestInterval": 10, "FailureThreshold": 1, "Regions": ["us-east-1", "us-west-1", "eu-west-1"]})["HealthCheck"]["Id"]
    assert wait_for(lambda: not health(twin, hc_id)["healthy"])
    endpoint.body = b"x" * 5115 + b"READY"  # ends at byte 5120
    assert wait_for(lambda: health(twin, hc_id)["healthy"])
