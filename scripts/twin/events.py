"""EventBridge delivery, and the asynchronous delivery every AWS-side invoke shares.

moto 5.2.5 stores rules and targets but delivers nothing useful: `Rule.send_to_targets`
ignores the rule's State, raises NotImplementedError for Lambda and Step Functions targets,
and scheduled rules never fire. This module:

- routes events to every ENABLED rule of a bus whose EventPattern matches (a schedule rule,
  with no pattern, matches no event: moto's matcher would match it to every one; moto's own
  matcher, `moto.events.models.EventPattern`: prefix, anything-but, numeric, ...), both the
  events the twin emits (CloudWatch "CloudWatch Alarm State Change", see cloudwatch.py) and
  client PutEvents (moto's put_events is patched through `Rule.send_to_targets`);
- invokes Lambda targets asynchronously through `core.invoke` when a resource policy lets
  `events.amazonaws.com` invoke them for that rule's ARN, and Step Functions targets with
  StartExecution (a UUID execution name, as EventBridge does);
- honours a target's Input, InputPath and InputTransformer;
- fires scheduled rules (`rate(...)`; `cron(...)` is recorded as not emulated);
- owns the twin's asynchronous delivery queue (`deliver`): at-least-once, Lambda's async
  retries on function errors, the duplicate-delivery fault, and delivery counts.

Controls: `GET /_twin/delivery` -> {"duplicates": N, "attempts": n, "by_target": {arn: n},
"failed": n}; `POST /_twin/delivery {"duplicates": N}` makes every later delivery (alarm
actions and EventBridge targets) arrive N extra times.
"""

from __future__ import annotations

import copy
import datetime as dt
import heapq
import itertools
import json
import re
import threading
import time
import uuid
from typing import Any, Callable

from . import core

EVENTS_PRINCIPAL = "events.amazonaws.com"

# "How Lambda handles errors and retries with asynchronous invocation" (AWS Lambda Developer
# Guide, https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html):
# "If the function returns an error, by default Lambda attempts to run it two more times,
# with a one-minute wait between the first two attempts, and two minutes between the second
# and third attempts." ... "For throttling errors (429) and system errors (500-series),
# Lambda returns the event to the queue and attempts to run the function again for up to 6
# hours by default. The retry interval increases exponentially from 1 second after the
# first attempt to a maximum of 5 minutes." Minutes here are twin minutes (twin.minute()).
FUNCTION_ERROR_RETRY_MINUTES = (1.0, 2.0)
SYSTEM_RETRY_FIRST_SECONDS = 1.0
SYSTEM_RETRY_MAX_MINUTES = 5.0
SYSTEM_RETRY_GIVE_UP_MINUTES = 6 * 60.0


def iso_now(now: float | None = None) -> str:
    """EventBridge event time: "2019-10-02T17:04:40Z" (UTC, seconds)."""
    return dt.datetime.fromtimestamp(time.time() if now is None else now, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def retry_delay(kind: str, retries_done: int, minute: float) -> float | None:
    """Real seconds before the next attempt of an asynchronous Lambda invocation, or None
    when Lambda gives up (see FUNCTION_ERROR_RETRY_MINUTES): `kind` is "function" (the
    function returned an error: two retries, 1 then 2 minutes) or "system" (429/5xx or
    unreachable: 1 s doubling up to 5 minutes, for up to 6 hours)."""
    if kind == "function":
        if retries_done >= len(FUNCTION_ERROR_RETRY_MINUTES):
            return None
        return FUNCTION_ERROR_RETRY_MINUTES[retries_done] * minute
    cap = SYSTEM_RETRY_MAX_MINUTES * minute

    def wait(i: int) -> float:
        return min(SYSTEM_RETRY_FIRST_SECONDS * 2 ** min(i, 60), cap)

    waited = 0.0
    for i in range(retries_done):
        waited += wait(i)
        if waited >= SYSTEM_RETRY_GIVE_UP_MINUTES * minute:
            return None
    return wait(retries_done)


def classify(status: int, headers: dict) -> str:
    """What an Invoke answer means for an asynchronous delivery: "ok" (202 accepted, or 200
    run), "function" (200 + X-Amz-Function-Error), or "system" (429, 5xx, unreachable)."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    if status in (200, 202, 204):
        return "function" if lowered.get("x-amz-function-error") else "ok"
    return "system"


class Delivery:
    """The twin's asynchronous delivery queue (alarm actions, EventBridge targets).

    Each job is `send() -> (status, headers, body)`; attempts run on their own threads,
    outside moto's lock (a Lambda calls back into moto while it runs)."""

    def __init__(self, twin: core.Twin) -> None:
        self.twin = twin
        self.duplicates = 0
        self.attempts = 0
        self.failed = 0
        self.by_target: dict[str, int] = {}
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    # --------------------------------------------------------------- scheduling
    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="twin-delivery", daemon=True)
            self._thread.start()

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._queue, (time.time() + max(0.0, delay), next(self._seq), fn))
            self._ensure_thread()
            self._cond.notify()

    def _run(self) -> None:
        while not self.twin.stopping.is_set():
            with self._cond:
                while not self._queue:
                    self._cond.wait(0.5)
                    if self.twin.stopping.is_set():
                        return
                due, _, fn = self._queue[0]
                wait = due - time.time()
                if wait > 0:
                    self._cond.wait(min(wait, 0.5))
                    continue
                heapq.heappop(self._queue)
            threading.Thread(target=self._safe, args=(fn,), daemon=True).start()

    def _safe(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as error:  # visible in the timeline, never fatal
            self.twin.timeline.record("twin.error", f"delivery: {error!r}")

    # --------------------------------------------------------------- deliveries
    def deliver(self, target: str, send: Callable[[], tuple[int, dict, bytes]], kind: str,
                lambda_semantics: bool, **fields: Any) -> None:
        """Delivers once plus `duplicates` extra copies (the fault control), each retried as
        Lambda's asynchronous invocation does when `lambda_semantics`."""
        copies = 1 + int(self.duplicates)
        for copy_no in range(copies):
            self.later(0.0, lambda c=copy_no: self._attempt(target, send, kind, lambda_semantics, 0, c, fields))

    def _attempt(self, target, send, kind, lambda_semantics, retries_done, copy_no, fields) -> None:
        try:
            status, headers, body = send()
        except OSError as error:
            status, headers, body = 502, {}, str(error).encode()
        with self._cond:
            self.attempts += 1
            self.by_target[target] = self.by_target.get(target, 0) + 1
        outcome = classify(status, headers) if lambda_semantics else ("ok" if status < 300 else "system")
        row = dict(fields, target=target, attempt=retries_done + 1, status=outcome, http_status=status)
        if copy_no:
            row["duplicate"] = copy_no
        if outcome == "ok":
            self.twin.timeline.record(kind, f"delivered to {target}" + (f" (duplicate {copy_no})" if copy_no else ""), **row)
            return
        delay = retry_delay(outcome, retries_done, self.twin.minute()) if lambda_semantics else None
        text = body[:300].decode(errors="replace") if isinstance(body, bytes) else str(body)[:300]
        if delay is None:
            with self._cond:
                self.failed += 1
            self.twin.timeline.record(kind, f"delivery to {target} failed ({outcome} error), giving up: {text}", **row)
            return
        self.twin.timeline.record(kind, f"delivery to {target} failed ({outcome} error), retrying in {delay:.1f}s: {text}", **row, retry_in=delay)
        self.later(delay, lambda: self._attempt(target, send, kind, lambda_semantics, retries_done + 1, copy_no, fields))

    def control(self, method: str, body: Any, query: dict) -> tuple:
        if method == "POST":
            if not isinstance(body, dict) or not isinstance(body.get("duplicates"), int) or body["duplicates"] < 0:
                return 400, {"error": 'delivery: {"duplicates": N} with N >= 0'}
            self.duplicates = body["duplicates"]
            self.twin.timeline.record("fault.set", f"every later delivery arrives {self.duplicates} extra time(s)", duplicates=self.duplicates)
        with self._cond:
            return 200, {"duplicates": self.duplicates, "attempts": self.attempts, "failed": self.failed, "by_target": dict(self.by_target)}


def _attached(twin: core.Twin, name: str, make: Callable[[core.Twin], Any]) -> Any:
    """The one object kept on `twin` as attribute `name`, made by `make(twin)` on first use."""
    existing = getattr(twin, name, None)
    if existing is None:
        existing = make(twin)
        setattr(twin, name, existing)
    return existing


def delivery_of(twin: core.Twin) -> Delivery:
    return _attached(twin, "delivery", Delivery)


def invoke_lambda_async(twin: core.Twin, function_arn: str, payload: Any, kind: str, **fields: Any) -> None:
    """An asynchronous Lambda invocation made by AWS itself (at least once, retried)."""
    body = payload
    delivery_of(twin).deliver(function_arn, lambda: core.invoke(twin, function_arn, body), kind, True, **fields)


# ------------------------------------------------------------------- target input
def json_path(document: Any, path: str) -> Any:
    """EventBridge InputPath / InputPathsMap values: JSONPath like `$`, `$.detail.state`,
    `$.resources[0]` (PutTargets API reference, Target.InputPath). Missing -> None."""
    if not path.startswith("$"):
        raise ValueError(f"not a JSONPath: {path!r}")
    value = document
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path[1:]):
        if name:
            if not isinstance(value, dict) or name not in value:
                return None
            value = value[name]
        else:
            i = int(index)
            if not isinstance(value, list) or i >= len(value):
                return None
            value = value[i]
    return value


def transform_input(template: str, paths: dict[str, str], event: dict) -> str:
    """InputTransformer (EventBridge User Guide, "Amazon EventBridge input transformation",
    https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html):
    each `<name>` of InputTemplate is replaced by the value InputPathsMap selects; a string
    is inserted as its text (the template quotes it where JSON needs quotes), anything else
    as JSON; `<aws.events.event.json>` is the whole event. Returns the target's input text."""
    values = {name: json_path(event, p) for name, p in (paths or {}).items()}
    values.setdefault("aws.events.event.json", event)

    def sub(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        if value is None:
            return "null"
        return value if isinstance(value, str) else json.dumps(value)

    return re.sub(r"<([A-Za-z0-9_.\-]+)>", sub, template)


def target_input(target: dict, event: dict) -> str:
    """The text a target receives (PutTargets API reference, Target: Input "Valid JSON text
    passed to the target. In this case, nothing from the event itself is passed"; InputPath
    selects part of the event; InputTransformer; else the whole matched event)."""
    if target.get("Input") is not None:
        return target["Input"]
    if target.get("InputPath"):
        return json.dumps(json_path(event, target["InputPath"]))
    transformer = target.get("InputTransformer")
    if transformer:
        return transform_input(transformer.get("InputTemplate", ""), transformer.get("InputPathsMap", {}), event)
    return json.dumps(event)


# ------------------------------------------------------------------- routing
class Router:
    def __init__(self, twin: core.Twin) -> None:
        self.twin = twin
        self.schedules: dict[str, float] = {}  # rule ARN + expression -> next fire (epoch s)
        self.cron_noted: set[str] = set()

    def deliver_to_target(self, rule, target: dict, event: dict) -> None:
        """Queues one event for one target of `rule` (called with moto's lock held)."""
        arn = target["Arn"]
        event_id = event.get("id")
        fields = {"rule": rule.name, "rule_arn": rule.arn, "event_id": event_id, "region": rule.region_name}
        text = target_input(target, event)
        service = arn.split(":")[2] if arn.count(":") >= 5 else ""
        if service == "lambda":
            # A Lambda target needs a resource-based policy for events.amazonaws.com with the
            # rule's ARN as SourceArn (EventBridge User Guide, "Using resource-based policies
            # for Amazon EventBridge", https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html).
            if not self.twin.allowed(arn, EVENTS_PRINCIPAL, rule.arn):
                self.twin.timeline.record("events.delivery", f"rule {rule.name}: {EVENTS_PRINCIPAL} is not allowed to invoke {arn}; not delivered",
                                          **fields, target=arn, status="denied")
                return
            payload = json.loads(text) if text else {}
            invoke_lambda_async(self.twin, arn, payload, "events.delivery", **fields)
        elif service == "states":
            region = arn.split(":")[3]
            twin = self.twin

            def send() -> tuple[int, dict, bytes]:
                # EventBridge starts a Step Functions target with StartExecution; the
                # execution name is generated (a UUID).
                client = twin.client("stepfunctions", region)
                try:
                    answer = client.start_execution(stateMachineArn=arn, name=str(uuid.uuid4()), input=text)
                except client.exceptions.ClientError as error:
                    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400), {}, str(error).encode()
                return 200, {}, answer["executionArn"].encode()

            delivery_of(self.twin).deliver(arn, send, "events.delivery", False, **fields)
        else:
            self.twin.timeline.record("events.delivery", f"rule {rule.name}: target {arn} not emulated", **fields, target=arn, status="not emulated")

    def route(self, region: str, event: dict, bus: str = "default") -> list[str]:
        """Sends `event` to every ENABLED rule of `bus` in `region` whose pattern matches
        (moto's lock held). Returns the matched rule names."""
        from moto.events.models import events_backends

        backend = events_backends[core.ACCOUNT][region]
        matched = []
        event_bus = backend.event_buses.get(bus)
        if event_bus is None:
            return matched
        for rule in list(event_bus.rules.values()):
            if rule.state != "ENABLED" or not rule.event_pattern.get_pattern():
                continue
            if rule.event_pattern.matches_event(event):
                matched.append(rule.name)
                for target in list(rule.targets):
                    self.deliver_to_target(rule, target, event)
        return matched

    # ------------------------------------------------------------ schedules
    def fire_schedules(self, now: float | None = None) -> int:
        """Fires every due scheduled rule once (holds moto's lock). Returns rules fired."""
        from moto.events.models import events_backends

        now = time.time() if now is None else now
        fired = 0
        with self.twin.locked():
            for region, backend in list(events_backends.get(core.ACCOUNT, {}).items()):
                bus = backend.event_buses.get("default")
                if bus is None:
                    continue
                for rule in list(bus.rules.values()):
                    expression = rule.scheduled_expression
                    if not expression or rule.state != "ENABLED":
                        continue
                    interval = rate_seconds(expression, self.twin.minute())
                    key = f"{rule.arn} {expression}"
                    if interval is None:
                        if key not in self.cron_noted:
                            self.cron_noted.add(key)
                            self.twin.timeline.record("events.schedule", f"rule {rule.name}: {expression}: cron not emulated", rule=rule.name, region=region)
                        continue
                    due = self.schedules.get(key)
                    if due is None:
                        # "rate" schedules start when the rule is created: first fire one
                        # interval later.
                        self.schedules[key] = now + interval
                        continue
                    if now < due:
                        continue
                    self.schedules[key] = max(due + interval, now)
                    event = scheduled_event(rule.arn, region, now)
                    fired += 1
                    self.twin.timeline.record("events.schedule", f"rule {rule.name} fired ({expression})", rule=rule.name, region=region, event_id=event["id"])
                    for target in list(rule.targets):
                        self.deliver_to_target(rule, target, event)
        return fired


RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")


def rate_seconds(expression: str, minute: float) -> float | None:
    """Real seconds between firings of `rate(N unit)` (EventBridge User Guide, "Schedule
    expressions for rules", https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html):
    N minutes/hours/days, each minute lasting twin.minute() seconds; None for cron(...)."""
    match = RATE.match(expression.strip())
    if not match:
        return None
    n, unit = int(match.group(1)), match.group(2)
    minutes = {"minute": 1, "minutes": 1, "hour": 60, "hours": 60, "day": 1440, "days": 1440}[unit]
    return n * minutes * minute


def scheduled_event(rule_arn: str, region: str, now: float | None = None) -> dict:
    """The event a scheduled rule sends (EventBridge User Guide, example "Scheduled Event":
    detail-type "Scheduled Event", source aws.events, resources [rule ARN], detail {})."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": core.ACCOUNT,
        "time": iso_now(now),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


def router_of(twin: core.Twin) -> Router:
    return _attached(twin, "event_router", Router)


def put_aws_event(twin: core.Twin, region: str, source: str, detail_type: str, resources: list[str], detail: dict) -> dict:
    """An event AWS itself puts on the default bus of `region` (moto's lock held)."""
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": core.ACCOUNT,
        "time": iso_now(),
        "region": region,
        "resources": resources,
        "detail": detail,
    }
    rules = router_of(twin).route(region, event)
    twin.timeline.record("events.put", f"{detail_type} from {source} in {region}: {len(rules)} rule(s) matched",
                         region=region, event_id=event["id"], rules=rules)
    return event


def patch_moto(twin: core.Twin) -> None:
    """moto's Rule.send_to_targets: skip DISABLED rules (AWS: a disabled rule matches
    nothing), give Lambda and Step Functions targets to the router, the rest to moto."""
    from moto.events import models

    if getattr(models.Rule, "_twin_patched", False):
        models.Rule._twin_router = router_of(twin)
        return
    original = models.Rule.send_to_targets

    def send_to_targets(self, original_event, transform_input: bool = True):
        # A rule with no pattern is a schedule rule: "Rules with EventPatterns are
        # triggered when a matching event is observed. Rules with ScheduleExpressions
        # self-trigger based on the given schedule" (PutRule API reference,
        # https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutRule.html).
        # moto matches an empty pattern against every event; its scheduled deliveries
        # come from fire_schedules, not through here.
        if (self.state != "ENABLED" or not self.event_pattern.get_pattern()
                or not self.event_pattern.matches_event(original_event)):
            return None
        event = copy.deepcopy(dict(original_event))
        event.pop("ingestion-time", None)
        if isinstance(event.get("time"), (int, float)):
            event["time"] = iso_now(event["time"])
        elif isinstance(event.get("time"), dt.datetime):
            event["time"] = event["time"].strftime("%Y-%m-%dT%H:%M:%SZ")
        ours = [t for t in self.targets if t["Arn"].split(":")[2:3] in (["lambda"], ["states"])]
        others = [t for t in self.targets if t not in ours]
        router = models.Rule._twin_router
        for target in ours:
            router.deliver_to_target(self, target, event)
        if others:
            saved = self.targets
            self.targets = others
            try:
                return original(self, original_event, transform_input)
            finally:
                self.targets = saved
        return None

    models.Rule.send_to_targets = send_to_targets
    models.Rule._twin_router = router_of(twin)
    models.Rule._twin_patched = True


def install(twin: core.Twin) -> None:
    delivery = delivery_of(twin)
    router = router_of(twin)
    patch_moto(twin)
    twin.control("delivery")(delivery.control)

    def tick() -> float:
        return max(0.1, min(1.0, twin.minute() / 20))

    twin.every(tick, router.fire_schedules, "events-schedules")
