"""CloudWatch alarm evaluation, composite alarms, SetAlarmState and actions
(scripts/twin/cloudwatch.py), checked against the CloudWatch User Guide's examples."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from conftest import allow, fn_arn
from twin import cloudwatch as cw

ACCOUNT = "123456789012"
GT = "GreaterThanThreshold"


def points(row: str) -> list[cw.Point]:
    """'0 - X - X' (oldest first): 0 non-breaching, X breaching, - missing (threshold 1)."""
    return [cw.Point(i * 60.0, None if c == "-" else (0.0 if c == "0" else 5.0)) for i, c in enumerate(row.split())]


STATES = ("missing", "ignore", "breaching", "notBreaching")
RETAIN = "RETAIN"

# User Guide, "How alarm state is evaluated when data is missing": first table (3 of 3),
# second table (2 of 3); columns MISSING, IGNORE, BREACHING, NOT BREACHING.
TABLE_3_OF_3 = [
    ("0 - X - X", ("OK", "OK", "OK", "OK")),
    ("0 - - - -", ("OK", "OK", "OK", "OK")),
    ("- - - - -", ("INSUFFICIENT_DATA", RETAIN, "ALARM", "OK")),
    ("0 X X - X", ("ALARM", "ALARM", "ALARM", "ALARM")),
    ("- - - - X", ("INSUFFICIENT_DATA", RETAIN, "ALARM", "OK")),
    ("X - - - -", ("ALARM", RETAIN, "ALARM", "OK")),
]
TABLE_2_OF_3 = [
    ("0 - X - X", ("ALARM", "ALARM", "ALARM", "ALARM")),
    ("0 0 X 0 X", ("ALARM", "ALARM", "ALARM", "ALARM")),
    ("0 - X - -", ("OK", "OK", "ALARM", "OK")),
    ("- - - - 0", ("OK", "OK", "ALARM", "OK")),
    ("- - - - X", ("INSUFFICIENT_DATA", RETAIN, "ALARM", "OK")),
]


@pytest.mark.parametrize("row,expected", TABLE_3_OF_3)
def test_missing_data_table_3_of_3(row, expected):
    assert tuple(cw.decide(points(row), 3, 3, GT, 1.0, t).state for t in STATES) == expected


@pytest.mark.parametrize("row,expected", TABLE_2_OF_3)
def test_missing_data_table_2_of_3(row, expected):
    assert tuple(cw.decide(points(row), 3, 2, GT, 1.0, t).state for t in STATES) == expected


def test_enough_real_points_use_the_most_recent_ones():
    # 5 real points, N=3: only the last three count (X 0 X -> 2 breaching).
    assert cw.decide(points("X X 0 0 X"), 3, 2, GT, 1.0, "breaching").state == "OK"


def test_default_treatment_is_missing_and_dynamodb_always_ignores():
    assert cw.effective_treatment("App", None) == "missing"
    assert cw.effective_treatment("App", "breaching") == "breaching"
    assert cw.effective_treatment("AWS/DynamoDB", "breaching") == "ignore"


def test_each_statistic():
    values, agg = [1.0, 2.0, 6.0], [(10.0, 0.5, 9.0, 4.0)]
    assert cw.statistic(values, agg, "Minimum") == 0.5
    assert cw.statistic(values, agg, "Maximum") == 9.0
    assert cw.statistic(values, agg, "Sum") == 19.0
    assert cw.statistic(values, agg, "SampleCount") == 7.0
    assert cw.statistic(values, agg, "Average") == pytest.approx(19.0 / 7)
    assert cw.statistic([float(i) for i in range(1, 101)], [], "p90") == 90.0
    assert cw.statistic([], [], "Sum") is None


def test_percentiles_need_raw_or_single_valued_sets_and_no_negative_values():
    """API reference, GetMetricStatistics: percentiles from raw points, from statistic sets
    only when SampleCount is 1 or Min equals Max, never over negative values."""
    assert cw.percentile([5.0, 1.0, 3.0, 2.0, 4.0], [], 50) == 3.0
    assert cw.percentile([1.0], [(7.0, 7.0, 7.0, 1.0)], 99) == 7.0
    assert cw.percentile([], [(12.0, 3.0, 3.0, 4.0)], 50) == 3.0
    assert cw.percentile([1.0], [(10.0, 1.0, 9.0, 2.0)], 50) is None
    assert cw.percentile([3.0, -1.0], [], 50) is None
    assert cw.percentile([], [], 99) is None


def test_get_metric_data_answers_percentiles(server):
    """moto answers a null value for any pNN: the twin computes it, and leaves out a
    period where CloudWatch has none."""
    client = server.client("cloudwatch", "eu-west-1")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    for name, values in (("Latency", [float(v) for v in range(1, 101)]), ("Skew", [5.0, -2.0])):
        client.put_metric_data(Namespace="Pct", MetricData=[
            {"MetricName": name, "Values": values, "Timestamp": now, "StorageResolution": 1}])
    out = client.get_metric_data(
        MetricDataQueries=[
            {"Id": q, "MetricStat": {"Metric": {"Namespace": "Pct", "MetricName": name},
                                     "Period": 60, "Stat": stat}}
            for q, name, stat in (("p99", "Latency", "p99"), ("p50", "Latency", "p50"),
                                  ("skew", "Skew", "p50"), ("avg", "Skew", "Average"))],
        StartTime=now - dt.timedelta(minutes=5), EndTime=now + dt.timedelta(minutes=1))
    got = {r["Id"]: r["Values"] for r in out["MetricDataResults"]}
    assert got["p99"] == [99.0]
    assert got["p50"] == [50.0]
    assert got["skew"] == []
    assert got["avg"] == [1.5]


def test_get_metric_data_keeps_to_the_namespace_a_query_names(server):
    """A metric is its namespace, name and dimensions (API reference, `Metric` and
    `MetricStat`: "The metric to return, including the metric name, namespace, and
    dimensions"). moto drops the namespace once a query has dimensions, so one test's
    datapoint answered another namespace's query."""
    client = server.client("cloudwatch", "eu-west-1")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    dims = [{"Name": "Workload", "Value": "ns-apart"}]
    for namespace, value in (("Apart/One", 1.0), ("Apart/Two", 0.0)):
        client.put_metric_data(Namespace=namespace, MetricData=[
            {"MetricName": "Switch", "Dimensions": dims, "Value": value, "Timestamp": now}])
    queries = [
        {"Id": ident, "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": "Switch", **extra},
                                     "Period": 60, "Stat": "Minimum"}}
        for ident, namespace, extra in (("one", "Apart/One", {"Dimensions": dims}),
                                        ("two", "Apart/Two", {"Dimensions": dims}),
                                        ("none", "Apart/None", {"Dimensions": dims}),
                                        ("bare", "Apart/One", {}))]
    # moto's metric math is a reference to another query's id, no more.
    queries.append({"Id": "ref", "Expression": "one"})
    out = client.get_metric_data(MetricDataQueries=queries, StartTime=now - dt.timedelta(minutes=5),
                                 EndTime=now + dt.timedelta(minutes=1))
    got = {r["Id"]: r["Values"] for r in out["MetricDataResults"]}
    assert got["one"] == [1.0]
    assert got["two"] == [0.0]
    assert got["none"] == []
    assert got["bare"] == []  # the metric without dimensions: none was put
    assert got["ref"] == [1.0]
    assert [r["Id"] for r in out["MetricDataResults"]] == ["one", "two", "none", "bare", "ref"]
    # The time range is still checked first (API reference, GetMetricData: EndTime
    # "must be greater than StartTime").
    for end in (now, now - dt.timedelta(minutes=1)):
        with pytest.raises(client.exceptions.ClientError, match="EndTime|StartTime"):
            client.get_metric_data(MetricDataQueries=queries, StartTime=now, EndTime=end)


@pytest.mark.parametrize("op,below,equal,above", [
    ("GreaterThanThreshold", False, False, True),
    ("GreaterThanOrEqualToThreshold", False, True, True),
    ("LessThanThreshold", True, False, False),
    ("LessThanOrEqualToThreshold", True, True, False),
])
def test_each_comparison(op, below, equal, above):
    assert (cw.breaching(0.0, op, 1.0), cw.breaching(1.0, op, 1.0), cw.breaching(2.0, op, 1.0)) == (below, equal, above)


def test_period_arithmetic_with_minute_scaling():
    # PutMetricAlarm: "Valid values are 10, 20, 30, and any multiple of 60."
    assert [cw.valid_period(p) for p in (10, 20, 30, 60, 300, 45, 90)] == [True, True, True, True, True, False, False]
    assert cw.period_real_seconds(60, 60) == 60 and cw.period_real_seconds(300, 2) == 10
    # Every period is compressed alike: a 10-s period is a sixth of a twin minute.
    assert cw.period_real_seconds(10, 6) == 1 and cw.period_real_seconds(30, 6) == 3
    assert cw.evaluation_cadence(300, 2) == 2 and cw.evaluation_cadence(10, 6) == 1
    assert cw.period_real_seconds(10, 60) == 10 and cw.evaluation_cadence(10, 60) == 10  # real time


def _datum(value: float, at: float, resolution: int):
    from moto.cloudwatch.models import MetricDatum

    d = MetricDatum("Lifeboat", "RegionHealthy", value, [], dt.datetime.fromtimestamp(at, dt.timezone.utc))
    d._twin_resolution = resolution
    return d


@pytest.mark.parametrize("resolution,with_data", [(1, 6), (60, 1)])
def test_a_high_resolution_alarm_sees_standard_resolution_data_once_a_minute(resolution, with_data):
    """PutMetricAlarm `Period`: "If you specify a period of 10, 20, or 30 for a metric that
    does not have sub-minute resolution ... it does not receive data for the attempts that
    do not correspond to a one-minute data resolution, and the alarm might often lapse
    into INSUFFICENT_DATA status." One datum every 10 s for a minute (real time here:
    minute = 60), a 10-s alarm: every period has data only at StorageResolution 1."""
    import types

    start = 1_800_000_000.0  # a minute boundary
    assert start % 60 == 0
    backend = types.SimpleNamespace(metric_data=[_datum(0.0, start + 10 * i + 1, resolution) for i in range(6)])
    source = cw.Source("Lifeboat", "RegionHealthy", frozenset(), "Minimum", 10, None)
    points = cw.metric_points(backend, source, 4, start + 60, 60.0)  # 6 periods: the minute
    assert len(points) == 6
    assert sum(p.value is not None for p in points) == with_data
    # A 1-of-1 alarm on the standard-resolution data lapses into INSUFFICIENT_DATA in
    # the periods without a datum.
    last = cw.decide(points[-1:], 1, 1, "LessThanThreshold", 1.0, "missing")
    assert last.state == ("ALARM" if resolution == 1 else "INSUFFICIENT_DATA")


def test_stored_at_floors_standard_resolution_to_the_minute():
    assert cw.stored_at(65.5, 60, 60.0) == 60.0 and cw.stored_at(65.5, 1, 60.0) == 65.5
    assert cw.stored_at(13.0, 60, 6.0) == 12.0  # a twin minute of 6 s


def test_state_reason_matches_documented_format():
    p = [cw.Point(dt.datetime(2019, 10, 2, 16, 59, tzinfo=dt.timezone.utc).timestamp(), 99.50160229693434)]
    outcome = cw.decide(p, 1, 1, GT, 50.0, "missing")
    assert cw.reason(outcome, "OK", 1, 1, GT, 50.0) == (
        "Threshold Crossed: 1 out of the last 1 datapoints [99.50160229693434 (02/10/19 16:59:00)] was greater than "
        "the threshold (50.0) (minimum 1 datapoint for OK -> ALARM transition).")
    empty = cw.decide(points("- - - - -"), 5, 5, GT, 1.0, "missing")
    assert cw.reason(empty, "OK", 5, 5, GT, 1.0) == "Insufficient Data: 5 datapoints were unknown."
    data = json.loads(cw.reason_data(outcome, "Average", 300, 50.0, p, p[0].start + 340))
    assert data["version"] == "1.0" and data["recentDatapoints"] == [99.50160229693434]
    assert data["startDate"] == "2019-10-02T16:59:00.000+0000" and data["threshold"] == 50.0


def test_composite_rule_grammar():
    states = {"a": "ALARM", "b": "OK", "c d": "INSUFFICIENT_DATA", "x": "ALARM"}
    look = lambda ref: states.get(cw.alarm_name(ref))  # noqa: E731
    arn = f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:x"
    cases = {
        "ALARM(a) AND OK(b)": True,
        'ALARM("a") AND NOT OK("b")': False,
        'INSUFFICIENT_DATA("c d") OR FALSE': True,
        f"ALARM({arn})": True,
        "NOT (ALARM(a) OR ALARM(b)) OR TRUE": True,
        "ALARM(a) AND (ALARM(b) OR OK(b))": True,
        "ALARM(b) OR ALARM(a) AND FALSE": False,  # AND binds tighter than OR
        "TRUE AND NOT TRUE": False,
    }
    for text, expected in cases.items():
        assert cw.eval_rule(cw.parse_rule(text), look) is expected, text
    for bad in ("ALARM(a", "ALARM(a) AND", "MAYBE(a)", "ALARM(a) OK(b)", ""):
        with pytest.raises(cw.RuleSyntaxError):
            cw.parse_rule(bad)


# ------------------------------------------------------------------ integration
def put_alarm(client, name: str, **extra) -> str:
    args = dict(AlarmName=name, Namespace="Lifeboat", MetricName=name, Statistic="Maximum", Period=60,
                EvaluationPeriods=1, Threshold=1.0, ComparisonOperator=GT)
    args.update(extra)
    client.put_metric_alarm(**args)
    return f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:{name}"


def put_value(client, metric: str, value: float) -> None:
    # One twin minute (1 s) ago: inside the evaluation range of a 60 s alarm.
    client.put_metric_data(Namespace="Lifeboat", MetricData=[{
        "MetricName": metric, "Value": value, "Timestamp": dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)}])


def evaluate(server) -> list[dict]:
    status, body = server.control("alarms/evaluate", {})
    assert status == 200
    return body["transitions"]


def state(client, name: str) -> dict:
    found = client.describe_alarms(AlarmNames=[name])
    return (found["MetricAlarms"] + found["CompositeAlarms"])[0]


def test_new_alarm_starts_insufficient_data_then_evaluates(lambda_world):
    server, fake = lambda_world
    c = server.client("cloudwatch")
    put_alarm(c, "cw-eval")
    assert state(c, "cw-eval")["StateValue"] == "INSUFFICIENT_DATA"
    put_value(c, "cw-eval", 5.0)
    moves = [t for t in evaluate(server) if t["alarm"] == "cw-eval"]
    assert [(t["old"], t["new"]) for t in moves] == [("INSUFFICIENT_DATA", "ALARM")]
    alarm = state(c, "cw-eval")
    assert alarm["StateValue"] == "ALARM" and alarm["StateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [5.0 (")
    assert json.loads(alarm["StateReasonData"])["recentDatapoints"] == [5.0]
    first = alarm["StateTransitionedTimestamp"]
    assert [t for t in evaluate(server) if t["alarm"] == "cw-eval"] == []  # no change, no transition
    assert state(c, "cw-eval")["StateTransitionedTimestamp"] == first
    items = c.describe_alarm_history(AlarmName="cw-eval", HistoryItemType="StateUpdate")["AlarmHistoryItems"]
    assert items[0]["HistorySummary"] == "Alarm updated from INSUFFICIENT_DATA to ALARM"
    rows = [r for r in server.timeline() if r["kind"] == "cloudwatch.alarm" and r.get("alarm") == "cw-eval"]
    assert rows[-1]["old"] == "INSUFFICIENT_DATA" and rows[-1]["new"] == "ALARM" and rows[-1]["region"] == "us-east-1"


def test_set_alarm_state_fires_action_once_and_reverts_at_next_evaluation(lambda_world):
    server, fake = lambda_world
    c = server.client("cloudwatch")
    arn = put_alarm(c, "cw-set", AlarmActions=[fn_arn("cw-set-fn")], AlarmDescription="set test")
    allow(server, "cw-set-fn", "lambda.alarms.cloudwatch.amazonaws.com", arn)
    c.set_alarm_state(AlarmName="cw-set", StateValue="ALARM", StateReason="testing")
    assert state(c, "cw-set")["StateValue"] == "ALARM"
    c.set_alarm_state(AlarmName="cw-set", StateValue="ALARM", StateReason="again")  # no change: no action
    got = fake.wait("cw-set-fn", 1)
    moves = [t for t in evaluate(server) if t["alarm"] == "cw-set"]
    assert [(t["old"], t["new"]) for t in moves] == [("ALARM", "INSUFFICIENT_DATA")]  # no data: its actual state
    time.sleep(0.3)
    assert len(fake.of("cw-set-fn")) == 1
    payload = got[0]
    assert payload["source"] == "aws.cloudwatch" and payload["alarmArn"] == arn and payload["accountId"] == ACCOUNT
    assert payload["region"] == "us-east-1" and payload["time"].endswith("+0000")
    data = payload["alarmData"]
    assert data["alarmName"] == "cw-set" and data["state"]["value"] == "ALARM" and data["state"]["reason"] == "testing"
    assert data["previousState"]["value"] == "INSUFFICIENT_DATA"
    assert data["previousState"]["reason"] == "Unchecked: Initial alarm creation"
    assert data["configuration"]["description"] == "set test"
    metric = data["configuration"]["metrics"][0]
    assert metric["metricStat"]["metric"] == {"namespace": "Lifeboat", "name": "cw-set", "dimensions": {}}
    assert metric["metricStat"]["period"] == 60 and metric["metricStat"]["stat"] == "Maximum" and metric["returnData"] is True


def test_lambda_action_without_permission_is_refused_and_recorded(lambda_world):
    server, fake = lambda_world
    c = server.client("cloudwatch")
    put_alarm(c, "cw-denied", AlarmActions=[fn_arn("cw-denied-fn")])
    c.set_alarm_state(AlarmName="cw-denied", StateValue="ALARM", StateReason="testing")
    time.sleep(0.3)
    assert fake.of("cw-denied-fn") == []
    rows = [r for r in server.timeline() if r["kind"] == "cloudwatch.action" and r.get("alarm") == "cw-denied"]
    assert rows and rows[0]["status"] == "failed" and "lambda.alarms.cloudwatch.amazonaws.com" in rows[0]["error"]
    items = c.describe_alarm_history(AlarmName="cw-denied", HistoryItemType="Action")["AlarmHistoryItems"]
    assert items and items[0]["HistorySummary"].startswith("Failed to execute action")


def test_actions_disabled_fire_nothing_and_other_actions_are_not_emulated(lambda_world):
    server, fake = lambda_world
    c = server.client("cloudwatch")
    arn = put_alarm(c, "cw-quiet", AlarmActions=[fn_arn("cw-quiet-fn")], ActionsEnabled=False)
    allow(server, "cw-quiet-fn", "lambda.alarms.cloudwatch.amazonaws.com", arn)
    put_alarm(c, "cw-sns", AlarmActions=[f"arn:aws:sns:us-east-1:{ACCOUNT}:topic"])
    c.set_alarm_state(AlarmName="cw-quiet", StateValue="ALARM", StateReason="t")
    c.set_alarm_state(AlarmName="cw-sns", StateValue="ALARM", StateReason="t")
    time.sleep(0.3)
    assert fake.of("cw-quiet-fn") == []
    assert any(r.get("alarm") == "cw-sns" and r.get("status") == "not emulated" for r in server.timeline())


def test_duplicate_delivery_fault(lambda_world):
    server, fake = lambda_world
    c = server.client("cloudwatch")
    arn = put_alarm(c, "cw-dup", OKActions=[fn_arn("cw-dup-fn")])
    allow(server, "cw-dup-fn", "lambda.alarms.cloudwatch.amazonaws.com", arn)
    assert server.control("delivery", {"duplicates": 2})[0] == 200
    try:
        c.set_alarm_state(AlarmName="cw-dup", StateValue="OK", StateReason="t")
        got = fake.wait("cw-dup-fn", 3)
        time.sleep(0.3)
        assert len(fake.of("cw-dup-fn")) == 3 and all(p["alarmData"]["state"]["value"] == "OK" for p in got)
        assert server.control("delivery")[1]["by_target"][fn_arn("cw-dup-fn")] == 3
    finally:
        server.control("delivery", {"duplicates": 0})


def test_state_change_event_matches_prefix_pattern(lambda_world):
    server, fake = lambda_world
    eb = server.client("events")
    rule = eb.put_rule(Name="lb-alarms", EventPattern=json.dumps({
        "source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": [{"prefix": "lb-"}], "state": {"value": ["ALARM"]}}}))["RuleArn"]
    eb.put_targets(Rule="lb-alarms", Targets=[{"Id": "1", "Arn": fn_arn("cw-eb-fn")}])
    allow(server, "cw-eb-fn", "events.amazonaws.com", rule)
    c = server.client("cloudwatch")
    arn = put_alarm(c, "lb-primary")
    put_alarm(c, "other-primary")
    c.set_alarm_state(AlarmName="other-primary", StateValue="ALARM", StateReason="t")
    c.set_alarm_state(AlarmName="lb-primary", StateValue="ALARM", StateReason="t")
    got = fake.wait("cw-eb-fn", 1)
    time.sleep(0.3)
    assert len(fake.of("cw-eb-fn")) == 1
    event = got[0]
    assert event["detail-type"] == "CloudWatch Alarm State Change" and event["source"] == "aws.cloudwatch"
    assert event["resources"] == [arn] and event["account"] == ACCOUNT and event["region"] == "us-east-1"
    assert event["detail"]["alarmName"] == "lb-primary" and event["detail"]["state"]["value"] == "ALARM"
    assert event["detail"]["previousState"]["value"] == "INSUFFICIENT_DATA"
    assert event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["name"] == "lb-primary"


def test_composite_alarm_follows_its_rule_with_actions(lambda_world):
    server, fake = lambda_world
    c = server.client("cloudwatch")
    put_alarm(c, "cw-a")
    put_alarm(c, "cw-b")
    c.put_composite_alarm(AlarmName="cw-both", AlarmRule='ALARM("cw-a") AND ALARM(cw-b)', AlarmActions=[fn_arn("cw-comp-fn")])
    allow(server, "cw-comp-fn", "lambda.alarms.cloudwatch.amazonaws.com", f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:cw-both")
    assert state(c, "cw-both")["StateValue"] == "INSUFFICIENT_DATA"
    put_value(c, "cw-a", 5.0)
    put_value(c, "cw-b", 0.0)
    evaluate(server)
    assert state(c, "cw-both")["StateValue"] == "OK"
    put_value(c, "cw-b", 9.0)  # Maximum of the period is now breaching
    moves = [t for t in evaluate(server) if t["alarm"] in ("cw-b", "cw-both")]
    assert [(t["alarm"], t["new"]) for t in moves] == [("cw-b", "ALARM"), ("cw-both", "ALARM")]
    got = fake.wait("cw-comp-fn", 1)
    assert got[0]["alarmData"]["configuration"]["alarmRule"] == 'ALARM("cw-a") AND ALARM(cw-b)'
    with pytest.raises(c.exceptions.ClientError):
        c.put_composite_alarm(AlarmName="cw-bad", AlarmRule="ALARM(cw-a) AND")


def test_background_evaluator_runs_at_the_minute_cadence(lambda_world):
    server, fake = lambda_world
    c = server.client("cloudwatch")
    put_alarm(c, "cw-bg", TreatMissingData="breaching")
    server.control("settings", {"cloudwatch.evaluate": True})
    try:
        deadline = time.time() + 5
        while time.time() < deadline and state(c, "cw-bg")["StateValue"] != "ALARM":
            time.sleep(0.1)
        assert state(c, "cw-bg")["StateValue"] == "ALARM"  # every point missing, treated as breaching
    finally:
        server.control("settings", {"cloudwatch.evaluate": False})


def test_invalid_period_is_rejected(lambda_world):
    server, fake = lambda_world
    c = server.client("cloudwatch")
    with pytest.raises(c.exceptions.ClientError):
        put_alarm(c, "cw-period", Period=45)
