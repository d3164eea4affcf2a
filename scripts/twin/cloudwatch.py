"""CloudWatch alarms that evaluate themselves, run their actions and emit their events.

moto 5.2.5 stores alarms and metric data but never evaluates an alarm, never runs an
action, has no PutCompositeAlarm nor DescribeAlarmHistory, starts every alarm in OK and
resets the state when an alarm is updated. This module, as the CloudWatch User Guide and
API reference document:

- evaluates every metric alarm of every Region (background loop, under `twin.locked()`):
  standard alarms once a (twin) minute, high-resolution ones (Period 10, 20 or 30) at
  their period; a Period of P seconds lasts P/60 * twin.minute() real seconds (the same
  compression for every period, so a 10-s alarm is a sixth of a twin minute);
- keeps each datum's StorageResolution (moto drops it): standard-resolution data (60,
  the default) is stored at one-minute granularity, so a high-resolution alarm on it
  sees data in one period of each minute only and "might often lapse into
  INSUFFICIENT_DATA" (API reference, PutMetricAlarm `Period`);
- evaluates composite alarms (AlarmRule) after the metric alarms of each tick;
- sets StateValue/StateReason/StateReasonData/StateUpdatedTimestamp and
  StateTransitionedTimestamp on each transition, with an alarm history item
  (DescribeAlarmHistory, added to moto);
- on each transition puts "CloudWatch Alarm State Change" on the Region's default bus
  (events.py) and, when ActionsEnabled, runs the new state's actions (Lambda: an
  asynchronous invoke with the alarm-action payload, only if a resource policy allows
  `lambda.alarms.cloudwatch.amazonaws.com` for the alarm's ARN);
- makes SetAlarmState a transition (actions and event on change); the next evaluation
  puts the alarm back to its actual state.

Controls: `POST /_twin/alarms/evaluate` evaluates every alarm now and returns
{"transitions": [{"alarm", "region", "old", "new", "reason"}]}. Settings:
`cloudwatch.evaluate` (default true; false pauses the evaluator), `twin.minute_seconds`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from . import core, events

LAMBDA_ALARMS_PRINCIPAL = "lambda.alarms.cloudwatch.amazonaws.com"
STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")

# ComparisonOperator -> (test, phrase used in StateReason).
OPERATORS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}


# ====================================================================== pure rules
HIGH_RESOLUTION_PERIODS = (10, 20, 30)


def valid_period(period: int) -> bool:
    """API reference, PutMetricAlarm `Period`: "Valid values are 10, 20, 30, and any
    multiple of 60" (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html)."""
    return period in HIGH_RESOLUTION_PERIODS or (period >= 60 and period % 60 == 0)


def period_real_seconds(period: int, minute: float) -> float:
    """Real seconds one period lasts here: period/60 twin minutes (twin.minute() real
    seconds each), high-resolution periods included."""
    return period / 60.0 * minute


def evaluation_cadence(period: int, minute: float) -> float:
    """How often CloudWatch evaluates an alarm: standard alarms every minute, high-resolution
    alarms (10, 20 or 30 s) at their period (User Guide, "High-resolution alarms"), in
    real seconds here."""
    if period in HIGH_RESOLUTION_PERIODS:
        return period_real_seconds(period, minute)
    return minute


def stored_at(at: float, resolution: int, minute: float) -> float:
    """When a datum counts: high-resolution data (StorageResolution 1) at its timestamp;
    standard-resolution data at the start of its (twin) minute, the granularity CloudWatch
    stores it at (API reference, PutMetricData `StorageResolution`: "Setting this to 60
    specifies this metric as a regular-resolution metric, which CloudWatch stores at
    1-minute resolution")."""
    if resolution == 1:
        return at
    return math.floor(at / minute) * minute


def statistic(values: list[float], aggregated: list[tuple[float, float, float, float]], stat: str) -> float | None:
    """A statistic over one period: `values` are raw samples, `aggregated` are
    StatisticSets (sum, min, max, count). Minimum, Maximum, Average, Sum, SampleCount, and
    pNN (nearest-rank percentile over raw samples) as the User Guide's "Statistics
    definitions" define them. None when the period has no data."""
    count = len(values) + sum(a[3] for a in aggregated)
    if count == 0:
        return None
    if stat == "SampleCount":
        return float(count)
    if stat == "Sum":
        return float(sum(values) + sum(a[0] for a in aggregated))
    if stat == "Average":
        return float(sum(values) + sum(a[0] for a in aggregated)) / count
    if stat == "Minimum":
        return float(min(list(values) + [a[1] for a in aggregated]))
    if stat == "Maximum":
        return float(max(list(values) + [a[2] for a in aggregated]))
    if stat.startswith("p"):
        return percentile(values, aggregated, float(stat[1:]))
    raise ValueError(f"unsupported statistic {stat!r}")


def percentile(values: list[float], aggregated: list[tuple[float, float, float, float]], pct: float) -> float | None:
    """pNN over one period (nearest rank), or None where CloudWatch has none. API
    reference, GetMetricStatistics: "CloudWatch needs raw data points to calculate
    percentile statistics. If you publish data using a statistic set instead, you can
    only retrieve percentile statistics for this data if one of the following conditions
    is true: The SampleCount value of the statistic set is 1. The Min and the Max values
    of the statistic set are equal." and "Percentile statistics are not available for
    metrics when any of the metric values are negative numbers."
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricStatistics.html).
    A set that qualifies counts as SampleCount samples of its Min."""
    samples = list(values)
    for total, low, high, count in aggregated:
        if count != 1 and low != high:
            return None
        samples.extend([low] * max(1, int(round(count))))
    if not samples or any(v < 0 for v in samples):
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return float(ordered[rank - 1])


def breaching(value: float, operator: str, threshold: float) -> bool:
    """Whether one datapoint breaches: the statistic is the first operand (API reference,
    PutMetricAlarm ComparisonOperator)."""
    return OPERATORS[operator][0](value, threshold)


@dataclass
class Point:
    start: float  # epoch seconds of the period's start
    value: float | None  # None: missing
    samples: float = 0.0


@dataclass
class Outcome:
    state: str  # OK / ALARM / INSUFFICIENT_DATA, or "RETAIN" (ignore: keep the state)
    evaluated: list[Point] = field(default_factory=list)  # real points evaluated, oldest first
    breaching: list[Point] = field(default_factory=list)
    filled: int = 0  # missing points filled in by TreatMissingData
    fill_as: str | None = None


def decide(points: list[Point], n: int, m: int, operator: str, threshold: float, treat: str) -> Outcome:
    """The alarm state from the points of the evaluation range (oldest first), following
    the User Guide, "How alarm state is evaluated when data is missing"
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html;
    source text awsdocs/amazon-cloudwatch-user-guide doc_source/AlarmThatSendsEmail.md):

    - CloudWatch retrieves more points than EvaluationPeriods (the evaluation range);
    - if at least N real points exist, the most recent N real points are evaluated and
      TreatMissingData is not used;
    - otherwise every real point of the range is evaluated and the N - real missing ones
      are filled per TreatMissingData ("uses missing data points only as few times as
      possible"); M (DatapointsToAlarm) or more breaching -> ALARM, else OK;
    - `missing` does not count missing points: ALARM with M breaching real points, OK with
      a non-breaching real point, ALARM when the oldest point of the range is breaching
      and none is non-breaching (the doc's sixth row), else INSUFFICIENT_DATA;
    - `ignore` is `missing` except that it keeps the current state where `missing` would
      go to INSUFFICIENT_DATA ("Retain current state"), the oldest-point case included.
    """
    real = [p for p in points if p.value is not None]
    flags = [(p, breaching(p.value, operator, threshold)) for p in real]
    if len(real) >= n:
        chosen = flags[-n:]
        bad = [p for p, b in chosen if b]
        return Outcome("ALARM" if len(bad) >= m else "OK", [p for p, _ in chosen], bad)
    bad = [p for p, b in flags if b]
    good = [p for p, b in flags if not b]
    fill = n - len(real)
    if treat == "breaching":
        return Outcome("ALARM" if len(bad) + fill >= m else "OK", real, bad, fill, "Breaching")
    if treat == "notBreaching":
        return Outcome("ALARM" if len(bad) >= m else "OK", real, bad, fill, "NonBreaching")
    if len(bad) >= m:
        return Outcome("ALARM", real, bad)
    if good:
        return Outcome("OK", real, bad)
    if treat == "missing" and points and points[0].value is not None and bad and points[0] is bad[0]:
        return Outcome("ALARM", real, bad)
    return Outcome("INSUFFICIENT_DATA" if treat == "missing" else "RETAIN", real, bad)


def effective_treatment(namespace: str | None, treat: str | None) -> str:
    """TreatMissingData, default `missing`; alarms on AWS/DynamoDB metrics "always ignore
    missing data even if you choose a different option" (API reference, PutMetricAlarm
    TreatMissingData: "When an AWS/DynamoDB metric has missing data, alarms that evaluate
    that metric remain in their current state")."""
    if namespace == "AWS/DynamoDB":
        return "ignore"
    return treat or "missing"


def short_time(epoch: float) -> str:
    """Datapoint time in a StateReason: "02/10/19 16:59:00" (day/month/year, UTC)."""
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%d/%m/%y %H:%M:%S")


def long_time(epoch: float) -> str:
    """Timestamps in reason data and payloads: "2019-10-02T17:04:40.985+0000"."""
    d = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}+0000"


def _plural(k: int, word: str) -> str:
    return f"{k} {word}" + ("" if k == 1 else "s")


def reason(outcome: Outcome, old: str, n: int, m: int, operator: str, threshold: float) -> str:
    """StateReason as CloudWatch writes it (User Guide, "Alarm events and EventBridge"
    examples: "Threshold Crossed: 1 out of the last 1 datapoints [99.50160229693434
    (02/10/19 16:59:00)] was greater than the threshold (50.0) (minimum 1 datapoint for
    OK -> ALARM transition)."; "... was not greater than the threshold (50.0) (minimum 1
    datapoint for ALARM -> OK transition)."; "Insufficient Data: 5 datapoints were
    unknown." in the Lambda alarm action example)."""
    phrase = OPERATORS[operator][1]
    if outcome.state == "INSUFFICIENT_DATA":
        return f"Insufficient Data: {_plural(n, 'datapoint')} {'was' if n == 1 else 'were'} unknown."
    if outcome.state == "ALARM":
        listed, verb, minimum = outcome.breaching, phrase, m
    else:
        listed = [p for p in outcome.evaluated if p not in outcome.breaching]
        verb, minimum = f"not {phrase}", n - m + 1
    text = ", ".join(f"{p.value!r} ({short_time(p.start)})" for p in reversed(listed))
    if not listed:
        what = f"no datapoints were received for {_plural(n, 'period')} and {_plural(outcome.filled, 'missing datapoint')} {'was' if outcome.filled == 1 else 'were'} treated as [{outcome.fill_as}]"
        return f"Threshold Crossed: {what}."
    counted = len(listed)
    tail = ""
    if outcome.filled and outcome.fill_as:
        tail = f" and {_plural(outcome.filled, 'missing datapoint')} {'was' if outcome.filled == 1 else 'were'} treated as [{outcome.fill_as}]"
    return (f"Threshold Crossed: {counted} out of the last {n} datapoints [{text}] "
            f"{'was' if counted == 1 else 'were'} {verb} the threshold ({float(threshold)!r}){tail} "
            f"(minimum {_plural(minimum, 'datapoint')} for {old} -> {outcome.state} transition).")


def reason_data(outcome: Outcome, stat: str, period: int, threshold: float, points: list[Point], now: float) -> str:
    """StateReasonData JSON (User Guide examples: version, queryDate, startDate, statistic,
    period, recentDatapoints, threshold, evaluatedDatapoints)."""
    data: dict[str, Any] = {"version": "1.0", "queryDate": long_time(now)}
    if outcome.evaluated:
        data["startDate"] = long_time(outcome.evaluated[0].start)
    data.update({"statistic": stat, "period": period, "recentDatapoints": [p.value for p in outcome.evaluated], "threshold": float(threshold)})
    evaluated = []
    for p in reversed(outcome.evaluated if outcome.evaluated else points):
        item: dict[str, Any] = {"timestamp": long_time(p.start)}
        if p.value is not None:
            item.update({"sampleCount": p.samples, "value": p.value})
        evaluated.append(item)
    data["evaluatedDatapoints"] = evaluated
    return json.dumps(data)


# ---------------------------------------------------------------- composite rules
class RuleSyntaxError(ValueError):
    pass


def parse_rule(text: str):
    """Parses a composite AlarmRule (API reference, PutCompositeAlarm AlarmRule):
    ALARM(name|ARN), OK(...), INSUFFICIENT_DATA(...), TRUE, FALSE, AND, OR, NOT and
    parentheses; names may be double-quoted. Precedence NOT > AND > OR. Returns an AST of
    tuples: ("const", bool), ("state", STATE, name), ("not", x), ("and"|"or", a, b)."""
    pos = 0

    def skip() -> None:
        nonlocal pos
        while pos < len(text) and text[pos].isspace():
            pos += 1

    def word() -> str:
        skip()
        start = pos
        end = start
        while end < len(text) and (text[end].isalpha() or text[end] == "_"):
            end += 1
        return text[start:end]

    def take(w: str) -> bool:
        nonlocal pos
        skip()
        if text.startswith(w, pos):
            after = pos + len(w)
            if w.isalpha() and after < len(text) and (text[after].isalnum() or text[after] == "_"):
                return False
            pos = after
            return True
        return False

    def name() -> str:
        nonlocal pos
        skip()
        if pos < len(text) and text[pos] == '"':
            end = text.find('"', pos + 1)
            if end < 0:
                raise RuleSyntaxError(f"unterminated quote at {pos}")
            value, pos = text[pos + 1:end], end + 1
            return value
        end = text.find(")", pos)
        if end < 0:
            raise RuleSyntaxError(f"missing ')' at {pos}")
        value, pos = text[pos:end].strip(), end
        if not value:
            raise RuleSyntaxError(f"empty alarm name at {pos}")
        return value

    def primary():
        nonlocal pos
        if take("("):
            node = expr()
            if not take(")"):
                raise RuleSyntaxError(f"expected ')' at {pos}")
            return node
        w = word()
        if w in ("TRUE", "FALSE"):
            take(w)
            return ("const", w == "TRUE")
        if w in STATES:
            take(w)
            if not take("("):
                raise RuleSyntaxError(f"expected '(' after {w} at {pos}")
            n = name()
            if not take(")"):
                raise RuleSyntaxError(f"expected ')' at {pos}")
            return ("state", w, n)
        raise RuleSyntaxError(f"unexpected {text[pos:pos + 20]!r} at {pos}")

    def negation():
        if take("NOT"):
            return ("not", negation())
        return primary()

    def conjunction():
        node = negation()
        while take("AND"):
            node = ("and", node, negation())
        return node

    def expr():
        node = conjunction()
        while take("OR"):
            node = ("or", node, conjunction())
        return node

    tree = expr()
    skip()
    if pos != len(text):
        raise RuleSyntaxError(f"unexpected {text[pos:pos + 20]!r} at {pos}")
    return tree


def eval_rule(tree, state_of: Callable[[str], str | None]) -> bool:
    """Evaluates a parsed AlarmRule; `state_of(name or ARN)` is that alarm's state."""
    kind = tree[0]
    if kind == "const":
        return tree[1]
    if kind == "state":
        return state_of(tree[2]) == tree[1]
    if kind == "not":
        return not eval_rule(tree[1], state_of)
    if kind == "and":
        return eval_rule(tree[1], state_of) and eval_rule(tree[2], state_of)
    return eval_rule(tree[1], state_of) or eval_rule(tree[2], state_of)


def alarm_name(ref: str) -> str:
    """An AlarmRule reference (name or arn:aws:cloudwatch:<region>:<account>:alarm:<name>)."""
    return ref.split(":alarm:", 1)[1] if ref.startswith("arn:") else ref


def rule_alarms(tree) -> list[str]:
    if tree[0] == "state":
        return [tree[2]]
    return [n for child in tree[1:] if isinstance(child, tuple) for n in rule_alarms(child)]


# ====================================================================== moto glue
def _epoch(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


def _dims(dimensions) -> frozenset:
    out = set()
    for d in dimensions or []:
        if isinstance(d, dict):
            out.add((d.get("Name"), d.get("Value")))
        else:
            out.add((d.name, d.value))
    return frozenset(out)


def is_metric(datum, namespace: str | None, name: str | None, dimensions: frozenset) -> bool:
    """Whether a datum belongs to the metric named by namespace, name and all of its
    dimensions: a metric's identity (API reference, `Metric`)."""
    return datum.namespace == namespace and datum.name == name and _dims(datum.dimensions) == dimensions


@dataclass
class Source:
    namespace: str
    metric: str
    dimensions: frozenset
    stat: str
    period: int
    unit: str | None


def alarm_source(alarm) -> Source | None:
    """The one metric an alarm evaluates: its own (Namespace/MetricName) or a Metrics list
    whose only returned query is a MetricStat. Metric math is not evaluated."""
    if alarm.metric_name:
        return Source(alarm.namespace, alarm.metric_name, _dims(alarm.dimensions),
                      alarm.extended_statistic or alarm.statistic, int(alarm.period), alarm.unit)
    queries = alarm.metric_data_queries or []
    returned = [q for q in queries if q.return_data in (None, True, "true", "True")]
    if len(returned) == 1 and returned[0].metric_stat is not None and not any(q.expression for q in queries):
        ms = returned[0].metric_stat
        return Source(ms.metric.namespace, ms.metric.metric_name, _dims(ms.metric.dimensions),
                      ms.stat, int(ms.period), ms.unit)
    return None


def metric_points(backend, source: Source, n: int, now: float, minute: float) -> list[Point]:
    """The evaluation range: N + 2 complete periods before `now`, oldest first (the User
    Guide's example retrieves 5 points for 3 evaluation periods). A period is
    period_real_seconds long, aligned on the epoch."""
    from moto.cloudwatch.models import MetricAggregatedDatum, MetricDatum

    length = period_real_seconds(source.period, minute)
    end = math.floor(now / length) * length
    count = n + 2
    first = end - count * length
    buckets: list[tuple[list[float], list[tuple[float, float, float, float]]]] = [([], []) for _ in range(count)]
    for datum in backend.metric_data:
        if not is_metric(datum, source.namespace, source.metric, source.dimensions):
            continue
        if source.unit and datum.unit != source.unit:
            continue
        at = stored_at(_epoch(datum.timestamp), getattr(datum, "_twin_resolution", 60), minute)
        if not first <= at < end:
            continue
        index = int((at - first) // length)
        if isinstance(datum, MetricDatum):
            buckets[index][0].append(float(datum.value))
        elif isinstance(datum, MetricAggregatedDatum):
            buckets[index][1].append((datum.sum, datum.min, datum.max, datum.sample_count))
    points = []
    for i, (values, aggregated) in enumerate(buckets):
        value = statistic(values, aggregated, source.stat)
        points.append(Point(first + i * length, value, float(len(values) + sum(a[3] for a in aggregated))))
    return points


def metrics_configuration(alarm) -> list[dict]:
    """configuration.metrics of alarm events and Lambda payloads (User Guide examples)."""
    def stat_block(namespace, metric, dimensions, period, stat, unit) -> dict:
        block = {"metric": {"namespace": namespace, "name": metric,
                            "dimensions": {k: v for k, v in sorted(dimensions)}},
                 "period": int(period), "stat": stat}
        if unit:
            block["unit"] = unit
        return block

    if alarm.metric_name:
        ident = getattr(alarm, "_twin_metric_id", None) or str(uuid.uuid5(uuid.NAMESPACE_URL, alarm.alarm_arn))
        return [{"id": ident, "metricStat": stat_block(alarm.namespace, alarm.metric_name, _dims(alarm.dimensions),
                                                      alarm.period, alarm.extended_statistic or alarm.statistic, alarm.unit),
                 "returnData": True}]
    out = []
    for q in alarm.metric_data_queries or []:
        item: dict[str, Any] = {"id": q.id}
        if q.expression:
            item["expression"] = q.expression
        if q.label:
            item["label"] = q.label
        if q.metric_stat is not None:
            ms = q.metric_stat
            item["metricStat"] = stat_block(ms.metric.namespace, ms.metric.metric_name, _dims(ms.metric.dimensions), ms.period, ms.stat, ms.unit)
        item["returnData"] = q.return_data in (None, True, "true", "True")
        out.append(item)
    return out


def configuration(alarm) -> dict:
    if alarm.rule is not None:
        return {"alarmRule": alarm.rule, "description": alarm.description}
    return {"description": alarm.description, "metrics": metrics_configuration(alarm)}


def state_block(value: str, reason_text: str, data: str | None, timestamp: float) -> dict:
    block = {"value": value, "reason": reason_text}
    if data and data != "{}":
        block["reasonData"] = data
    block["timestamp"] = long_time(timestamp)
    return block


def lambda_payload(alarm, region: str, new: dict, old: dict, now: float) -> dict:
    """The event a Lambda alarm action receives (User Guide, "Using Amazon CloudWatch
    alarms", Lambda alarm action payload example,
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#Lambda-action-payload):
    source aws.cloudwatch, alarmArn, accountId, time, region, alarmData{alarmName, state,
    previousState, configuration}."""
    return {
        "source": "aws.cloudwatch",
        "alarmArn": alarm.alarm_arn,
        "accountId": core.ACCOUNT,
        "time": long_time(now),
        "region": region,
        "alarmData": {"alarmName": alarm.name, "state": new, "previousState": old, "configuration": configuration(alarm)},
    }


def state_change_detail(alarm, new: dict, old: dict) -> dict:
    """detail of "CloudWatch Alarm State Change" (User Guide, "Alarm events and
    EventBridge", https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html)."""
    return {"alarmName": alarm.name, "state": new, "previousState": old, "configuration": configuration(alarm)}


class Alarms:
    def __init__(self, twin: core.Twin) -> None:
        self.twin = twin
        self.noted: set[str] = set()

    # ------------------------------------------------------------ transitions
    def history(self, alarm, kind: str, summary: str, data: dict | None = None, now: float | None = None) -> None:
        items = alarm.__dict__.setdefault("_twin_history", [])
        items.append({
            "AlarmName": alarm.name,
            "AlarmType": "CompositeAlarm" if alarm.rule is not None else "MetricAlarm",
            "Timestamp": dt.datetime.fromtimestamp(now or time.time(), dt.timezone.utc),
            "HistoryItemType": kind,
            "HistorySummary": summary,
            "HistoryData": json.dumps(data or {}),
        })

    def transition(self, alarm, region: str, new_state: str, reason_text: str, data: str | None, source: str) -> dict | None:
        """Sets an alarm's state (moto's lock held). On a change: StateTransitionedTimestamp,
        a history item, a timeline row, the EventBridge event and the new state's actions.
        Returns the transition or None."""
        old_state = alarm.state_value
        now = time.time()
        old_block = state_block(old_state, alarm.state_reason, alarm.state_reason_data, _epoch(alarm.state_updated_timestamp))
        if new_state == old_state:
            if source == "SetAlarmState":
                alarm.state_reason, alarm.state_reason_data = reason_text, data
                alarm.state_updated_timestamp = dt.datetime.fromtimestamp(now, dt.timezone.utc).replace(tzinfo=None)
            return None
        alarm.update_state(reason_text, data, new_state)
        stamp = dt.datetime.fromtimestamp(now, dt.timezone.utc).replace(tzinfo=None)
        alarm.state_updated_timestamp = stamp
        alarm.state_transitioned_timestamp = stamp
        new_block = state_block(new_state, reason_text, data, now)
        self.history(alarm, "StateUpdate", f"Alarm updated from {old_state} to {new_state}",
                     {"version": "1.0", "oldState": {"stateValue": old_state, "stateReason": old_block["reason"]},
                      "newState": {"stateValue": new_state, "stateReason": reason_text,
                                   **({"stateReasonData": json.loads(data)} if data and data != "{}" else {})}}, now)
        row = {"alarm": alarm.name, "region": region, "old": old_state, "new": new_state, "reason": reason_text, "source": source}
        self.twin.timeline.record("cloudwatch.alarm", f"alarm {alarm.name} ({region}): {old_state} -> {new_state}: {reason_text}", **row)
        events.put_aws_event(self.twin, region, "aws.cloudwatch", "CloudWatch Alarm State Change", [alarm.alarm_arn],
                             state_change_detail(alarm, new_block, old_block))
        if alarm.actions_enabled:
            self.run_actions(alarm, region, new_state, new_block, old_block, now)
        return row

    def run_actions(self, alarm, region: str, new_state: str, new_block: dict, old_block: dict, now: float) -> None:
        actions = {"ALARM": alarm.alarm_actions, "OK": alarm.ok_actions, "INSUFFICIENT_DATA": alarm.insufficient_data_actions}[new_state] or []
        for arn in actions:
            fields = {"alarm": alarm.name, "region": region, "action": arn, "state": new_state}
            if arn.startswith("arn:aws:lambda:"):
                # "CloudWatch alarms guarantees an asynchronous invocation of the Lambda
                # function for a given state change, except ... When CloudWatch is not
                # authorized to invoke the Lambda function" and the function needs a
                # resource policy for lambda.alarms.cloudwatch.amazonaws.com (User Guide,
                # "Invoke a Lambda function from an alarm",
                # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-actions-Lambda.html).
                if not self.twin.allowed(arn, LAMBDA_ALARMS_PRINCIPAL, alarm.alarm_arn):
                    why = (f"CloudWatch Alarms is not authorized to perform: lambda:InvokeFunction on {arn} "
                           f"(no resource-based policy allows {LAMBDA_ALARMS_PRINCIPAL} for {alarm.alarm_arn})")
                    self.history(alarm, "Action", f"Failed to execute action {arn}. Received error: \"{why}\"",
                                 {"actionState": "Failed", "error": why}, now)
                    self.twin.timeline.record("cloudwatch.action", f"alarm {alarm.name}: action {arn} failed: {why}", **fields, status="failed", error=why)
                    continue
                payload = lambda_payload(alarm, region, new_block, old_block, now)
                self.history(alarm, "Action", f"Successfully executed action {arn}", {"actionState": "Succeeded"}, now)
                self.twin.timeline.record("cloudwatch.action", f"alarm {alarm.name}: invoking {arn} asynchronously", **fields, status="queued")
                events.invoke_lambda_async(self.twin, arn, payload, "cloudwatch.action", alarm=alarm.name, region=region, state=new_state)
            else:
                self.twin.timeline.record("cloudwatch.action", f"alarm {alarm.name}: action {arn} not emulated", **fields, status="not emulated")

    # ------------------------------------------------------------ evaluation
    def evaluate_metric_alarm(self, alarm, backend, region: str, now: float) -> dict | None:
        source = alarm_source(alarm)
        if source is None:
            key = f"{region}/{alarm.name}/math"
            if key not in self.noted:
                self.noted.add(key)
                self.twin.timeline.record("cloudwatch.alarm", f"alarm {alarm.name} ({region}): metric math alarm not evaluated", alarm=alarm.name, region=region, status="not evaluated")
            return None
        if not valid_period(source.period):
            return None
        n = int(alarm.evaluation_periods)
        m = int(alarm.datapoints_to_alarm or n)
        points = metric_points(backend, source, n, now, self.twin.minute())
        treat = effective_treatment(source.namespace, alarm.treat_missing_data)
        outcome = decide(points, n, m, alarm.comparison_operator, float(alarm.threshold), treat)
        if outcome.state == "RETAIN":
            return None
        text = reason(outcome, alarm.state_value, n, m, alarm.comparison_operator, float(alarm.threshold))
        data = reason_data(outcome, source.stat, source.period, float(alarm.threshold), points, now)
        return self.transition(alarm, region, outcome.state, text, data, "evaluation")

    def evaluate_composite(self, alarm, backend, region: str) -> dict | None:
        try:
            tree = parse_rule(alarm.rule)
        except RuleSyntaxError:
            return None

        def state_of(ref: str) -> str | None:
            other = backend.alarms.get(alarm_name(ref))
            return other.state_value if other is not None else None

        result = eval_rule(tree, state_of)
        new_state = "ALARM" if result else "OK"
        triggering = []
        for ref in rule_alarms(tree):
            other = backend.alarms.get(alarm_name(ref))
            if other is not None:
                triggering.append({"arn": other.alarm_arn, "state": {"value": other.state_value,
                                                                     "timestamp": long_time(_epoch(other.state_updated_timestamp))}})
        text = f"Composite alarm rule {alarm.rule} evaluated to {'TRUE' if result else 'FALSE'}."
        return self.transition(alarm, region, new_state, text, json.dumps({"triggeringAlarms": triggering}), "evaluation")

    def evaluate(self, force: bool = False) -> list[dict]:
        """One tick: metric alarms that are due (or all when `force`), then composites."""
        from moto.cloudwatch.models import cloudwatch_backends

        now = time.time()
        transitions: list[dict] = []
        minute = self.twin.minute()
        with self.twin.locked():
            for region, backend in list(cloudwatch_backends.get(core.ACCOUNT, {}).items()):
                for alarm in list(backend.alarms.values()):
                    if alarm.rule is not None:
                        continue
                    due = alarm.__dict__.get("_twin_next_eval", 0.0)
                    if not force and now < due:
                        continue
                    alarm._twin_next_eval = now + evaluation_cadence(int(alarm.period or 60), minute)
                    row = self.evaluate_metric_alarm(alarm, backend, region, now)
                    if row:
                        transitions.append(row)
                # Composites after metric alarms; repeat so composites of composites settle.
                for _ in range(5):
                    changed = False
                    for alarm in list(backend.alarms.values()):
                        if alarm.rule is None:
                            continue
                        row = self.evaluate_composite(alarm, backend, region)
                        if row:
                            transitions.append(row)
                            changed = True
                    if not changed:
                        break
        return transitions

    def tick(self) -> None:
        if self.twin.setting("cloudwatch.evaluate", True) in (False, "false", 0):
            return
        self.evaluate()

    def control(self, method: str, body: Any, query: dict) -> tuple:
        if method != "POST":
            return 405, {"error": "alarms/evaluate: POST"}
        return 200, {"transitions": self.evaluate(force=True)}


# ---------------------------------------------------------------- moto patches
def patch_moto(alarms: Alarms) -> None:
    from moto.cloudwatch import models, responses
    from moto.cloudwatch.metric_data_expression_parser import parse_expression
    from moto.cloudwatch.exceptions import InvalidFormat, ResourceNotFound, ValidationError
    from moto.core.responses import ActionResult, EmptyResult

    models.CloudWatchBackend._twin_alarms = alarms
    if getattr(models.CloudWatchBackend, "_twin_patched", False):
        return
    models.CloudWatchBackend._twin_patched = True
    original_put = models.CloudWatchBackend.put_metric_alarm
    original_put_data = models.CloudWatchBackend.put_metric_data

    def put_metric_data(self, namespace, metric_data):
        """Keeps each member's StorageResolution on the datums it adds (moto drops it):
        1 (high resolution) or 60 (the default)."""
        for member in metric_data:
            before = len(self.metric_data)
            original_put_data(self, namespace, [member])
            resolution = 1 if str(member.get("StorageResolution", "60")) == "1" else 60
            for datum in self.metric_data[before:]:
                datum._twin_resolution = resolution

    models.CloudWatchBackend.put_metric_data = put_metric_data

    original_stat_for_type = models.Statistics.get_statistics_for_type

    def get_statistics_for_type(self, stat):
        """pNN.NN too (moto answers None for any percentile, so GetMetricData returned
        a null value): the same rule the alarms use (`percentile`)."""
        if isinstance(stat, str) and stat.startswith("p"):
            try:
                pct = float(stat[1:])
            except ValueError:
                return None
            aggregated = [(a.sum, a.min, a.max, a.sample_count) for a in self.metric_aggregated_list]
            return percentile(self.metric_single_values_list, aggregated, pct)
        return original_stat_for_type(self, stat)

    models.Statistics.get_statistics_for_type = get_statistics_for_type
    original_get_data = models.CloudWatchBackend.get_metric_data
    original_all_metrics = models.CloudWatchBackend.get_all_metrics
    # The metric the MetricStat query being answered on this thread names, if any.
    answering = threading.local()

    def get_all_metrics(self):
        data = original_all_metrics(self)
        metric = getattr(answering, "metric", None)
        if metric is None:
            return data
        return [md for md in data if is_metric(md, *metric)]

    models.CloudWatchBackend.get_all_metrics = get_all_metrics

    def get_metric_data(self, queries, start_time, end_time, scan_by="TimestampAscending"):
        """Each MetricStat query reads its own metric only: a metric is its namespace,
        name and dimensions, all of them (API reference, `MetricStat`: "The metric to
        return, including the metric name, namespace, and dimensions";
        https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricStat.html).
        moto drops the namespace once a query has dimensions, and matches any dimensions
        when it has none. Metric math runs over those results as moto's does.

        A period whose statistic CloudWatch does not have (a percentile over negative
        values or unqualified statistic sets) is left out, as a period without data is,
        instead of moto's null value."""
        # moto's own time-range checks (it makes them before reading any data).
        if start_time.replace(microsecond=0) > end_time.replace(microsecond=0):
            raise ValidationError("The parameter EndTime must be greater than StartTime.")
        if start_time.replace(microsecond=0) == end_time.replace(microsecond=0):
            raise ValidationError("The parameter StartTime must not equal parameter EndTime.")
        stats: list[tuple[dict, dict]] = []
        for query in queries:
            if "MetricStat" not in query:
                continue
            metric = query["MetricStat"]["Metric"]
            answering.metric = (metric.get("Namespace"), metric.get("MetricName"), _dims(metric.get("Dimensions")))
            try:
                [result] = original_get_data(self, [dict(query, ReturnData=True)], start_time, end_time, scan_by)
            finally:
                answering.metric = None
            pairs = [(v, t) for v, t in zip(result["values"], result["timestamps"]) if v is not None]
            result["values"] = [v for v, _ in pairs]
            result["timestamps"] = [t for _, t in pairs]
            stats.append((query, result))
        results = [r for q, r in stats if q.get("ReturnData", True) not in (False, "false")]
        for query in queries:
            expression = query.get("Expression")
            if expression is None or expression.startswith("SELECT"):
                continue
            values, timestamps = parse_expression(expression, [r for _, r in stats])
            results.append({"id": query["Id"], "label": query.get("Label") or query["Id"], "values": values,
                            "timestamps": timestamps, "status_code": "Complete"})
        insights = [q for q in queries if str(q.get("Expression", "")).startswith("SELECT")]
        if insights:
            results.extend(original_get_data(self, insights, start_time, end_time, scan_by))
        return results

    models.CloudWatchBackend.get_metric_data = get_metric_data

    def put_metric_alarm(self, name, *args, **kwargs):
        """API reference, PutMetricAlarm/PutCompositeAlarm: "When this operation creates an
        alarm, the alarm state is immediately set to INSUFFICIENT_DATA" ... "When you update
        an existing alarm, its state is left unchanged"."""
        period = kwargs.get("period")
        if kwargs.get("rule") is None and period is not None and not valid_period(int(period)):
            raise ValidationError("The parameter Period must be 10, 20, 30 or a multiple of 60.")
        if kwargs.get("rule") is not None:
            try:
                parse_rule(kwargs["rule"])
            except RuleSyntaxError as error:
                raise ValidationError(f"AlarmRule is invalid: {error}")
        existing = self.alarms.get(name)
        alarm = original_put(self, name, *args, **kwargs)
        if existing is not None:
            for attr in ("state_value", "state_reason", "state_reason_data", "state_updated_timestamp", "history"):
                setattr(alarm, attr, getattr(existing, attr))
            for attr in ("state_transitioned_timestamp", "_twin_history", "_twin_next_eval"):
                if attr in existing.__dict__:
                    setattr(alarm, attr, existing.__dict__[attr])
        else:
            alarm.state_value = "INSUFFICIENT_DATA"
            alarm.state_reason = "Unchecked: Initial alarm creation"
            alarm.state_reason_data = None
            alarm.state_transitioned_timestamp = alarm.state_updated_timestamp
        return alarm

    def set_alarm_state(self, alarm_name, reason_text, data, state_value):
        """API reference, SetAlarmState: "Temporarily sets the state of an alarm ... When the
        updated state differs from the previous value, the action configured for the
        appropriate state is invoked ... metric alarms return to their actual state
        quickly, often within seconds" (the next evaluation puts them back)."""
        try:
            if data is not None:
                json.loads(data)
        except ValueError:
            raise InvalidFormat("Unknown")
        if alarm_name not in self.alarms:
            raise ResourceNotFound
        if state_value not in STATES:
            raise ValidationError(
                "1 validation error detected: "
                f"Value '{state_value}' at 'stateValue' failed to satisfy constraint: "
                "Member must satisfy enum value set: [INSUFFICIENT_DATA, ALARM, OK]")
        self._twin_alarms.transition(self.alarms[alarm_name], self.region_name, state_value, reason_text, data, "SetAlarmState")

    def put_composite_alarm(self) -> ActionResult:
        self.cloudwatch_backend.put_metric_alarm(
            name=self._get_param("AlarmName"), namespace=None, metric_name=None,
            comparison_operator=None, evaluation_periods=None, period=None, threshold=None,
            statistic=None, description=self._get_param("AlarmDescription"), dimensions=[],
            alarm_actions=self._get_param("AlarmActions", []),
            ok_actions=self._get_param("OKActions", []),
            insufficient_data_actions=self._get_param("InsufficientDataActions", []),
            actions_enabled=self._get_bool_param("ActionsEnabled"),
            rule=self._get_param("AlarmRule"), tags=self._get_param("Tags", []))
        return EmptyResult()

    def describe_alarm_history(self) -> ActionResult:
        name = self._get_param("AlarmName")
        kind = self._get_param("HistoryItemType")
        start, end = self._get_param("StartDate"), self._get_param("EndDate")
        items = []
        for alarm in self.cloudwatch_backend.alarms.values():
            if name and alarm.name != name:
                continue
            for item in alarm.__dict__.get("_twin_history", []):
                if kind and item["HistoryItemType"] != kind:
                    continue
                if start and item["Timestamp"].timestamp() < _epoch(start):
                    continue
                if end and item["Timestamp"].timestamp() > _epoch(end):
                    continue
                items.append(item)
        items.sort(key=lambda i: i["Timestamp"], reverse=self._get_param("ScanBy", "TimestampDescending") != "TimestampAscending")
        limit = int(self._get_param("MaxRecords") or 100)
        return ActionResult({"AlarmHistoryItems": items[:limit]})

    models.CloudWatchBackend.put_metric_alarm = put_metric_alarm
    models.CloudWatchBackend.set_alarm_state = set_alarm_state
    responses.CloudWatchResponse.put_composite_alarm = put_composite_alarm
    responses.CloudWatchResponse.describe_alarm_history = describe_alarm_history


def install(twin: core.Twin) -> None:
    alarms = Alarms(twin)
    twin.cloudwatch_alarms = alarms
    patch_moto(alarms)
    twin.control("alarms/evaluate")(alarms.control)

    def tick() -> float:
        return max(0.1, min(1.0, twin.minute() / 20))

    twin.every(tick, alarms.tick, "cloudwatch-alarms")
