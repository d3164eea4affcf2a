"""EventBridge delivery and the twin's asynchronous delivery (scripts/twin/events.py)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from conftest import allow, fn_arn
from twin import core, events

ACCOUNT = core.ACCOUNT


# ------------------------------------------------------------------ pure rules
def test_function_error_retried_twice_after_one_then_two_minutes():
    assert events.retry_delay("function", 0, 60) == 60
    assert events.retry_delay("function", 1, 60) == 120
    assert events.retry_delay("function", 2, 60) is None
    assert events.retry_delay("function", 0, 2) == 2  # scaled by twin.minute()


def test_system_errors_back_off_exponentially_to_five_minutes():
    assert [events.retry_delay("system", i, 60) for i in range(4)] == [1, 2, 4, 8]
    assert events.retry_delay("system", 20, 60) == 300
    assert events.retry_delay("system", 10_000, 60) is None  # gives up after 6 hours


def test_classify_invoke_answers():
    assert events.classify(202, {}) == "ok"
    assert events.classify(200, {"X-Amz-Function-Error": "Unhandled"}) == "function"
    assert events.classify(502, {}) == "system"
    assert events.classify(429, {}) == "system"


def test_delivery_retries_a_function_error_then_succeeds():
    twin = core.Twin(threading.Lock())
    twin.settings["twin.minute_seconds"] = 0.05
    delivery = events.Delivery(twin)
    answers = [(200, {"X-Amz-Function-Error": "Unhandled"}, b"e"), (200, {"X-Amz-Function-Error": "Unhandled"}, b"e"), (200, {}, b"")]
    delivery.deliver("t", lambda: answers.pop(0), "test.delivery", True)
    deadline = time.time() + 5
    while time.time() < deadline and answers:
        time.sleep(0.02)
    time.sleep(0.1)
    assert delivery.attempts == 3 and delivery.failed == 0
    statuses = [r["status"] for r in twin.timeline.since() if r["kind"] == "test.delivery"]
    assert statuses == ["function", "function", "ok"]
    twin.stopping.set()


def test_delivery_gives_up_after_three_attempts():
    twin = core.Twin(threading.Lock())
    twin.settings["twin.minute_seconds"] = 0.02
    delivery = events.Delivery(twin)
    delivery.deliver("t", lambda: (200, {"X-Amz-Function-Error": "Unhandled"}, b"e"), "test.delivery", True)
    deadline = time.time() + 5
    while time.time() < deadline and not delivery.failed:
        time.sleep(0.02)
    assert delivery.attempts == 3 and delivery.failed == 1
    twin.stopping.set()


def test_duplicates_fault_delivers_extra_copies():
    twin = core.Twin(threading.Lock())
    delivery = events.Delivery(twin)
    assert delivery.control("POST", {"duplicates": 2}, {})[0] == 200
    sent = []
    delivery.deliver("t", lambda: sent.append(1) or (202, {}, b""), "test.delivery", True)
    deadline = time.time() + 5
    while time.time() < deadline and len(sent) < 3:
        time.sleep(0.02)
    time.sleep(0.1)
    assert len(sent) == 3
    assert delivery.control("GET", None, {})[1]["by_target"] == {"t": 3}
    twin.stopping.set()


EVENT = {"id": "e1", "source": "aws.cloudwatch", "resources": ["arn:r"], "detail": {"alarmName": "lb-a", "state": {"value": "ALARM"}}}


def test_target_input_constant_path_and_transformer():
    assert events.target_input({"Input": '{"k": 1}'}, EVENT) == '{"k": 1}'
    assert json.loads(events.target_input({"InputPath": "$.detail.state"}, EVENT)) == {"value": "ALARM"}
    assert json.loads(events.target_input({"InputPath": "$.resources[0]"}, EVENT)) == "arn:r"
    text = events.target_input({"InputTransformer": {"InputPathsMap": {"name": "$.detail.alarmName", "st": "$.detail.state"},
                                                     "InputTemplate": '{"alarm": "<name>", "state": <st>}'}}, EVENT)
    assert json.loads(text) == {"alarm": "lb-a", "state": {"value": "ALARM"}}
    assert json.loads(events.target_input({}, EVENT)) == EVENT


def test_rate_expressions_scale_minutes():
    assert events.rate_seconds("rate(1 minute)", 60) == 60
    assert events.rate_seconds("rate(5 minutes)", 2) == 10
    assert events.rate_seconds("rate(2 hours)", 1) == 120
    assert events.rate_seconds("rate(1 day)", 1) == 1440
    assert events.rate_seconds("cron(0 12 * * ? *)", 60) is None


def test_scheduled_event_shape():
    e = events.scheduled_event("arn:aws:events:us-east-1:1:rule/r", "us-east-1", 0)
    assert e["detail-type"] == "Scheduled Event" and e["source"] == "aws.events"
    assert e["resources"] == ["arn:aws:events:us-east-1:1:rule/r"] and e["detail"] == {}
    assert e["time"] == "1970-01-01T00:00:00Z" and e["version"] == "0"


# ------------------------------------------------------------------ integration
def test_put_events_reaches_matching_enabled_rules_only(lambda_world):
    server, fake = lambda_world
    eb = server.client("events")
    rule = eb.put_rule(Name="orders", EventPattern=json.dumps({"source": [{"prefix": "app."}]}))["RuleArn"]
    eb.put_targets(Rule="orders", Targets=[{"Id": "1", "Arn": fn_arn("ev-orders")}])
    eb.put_rule(Name="off", EventPattern=json.dumps({"source": [{"prefix": "app."}]}), State="DISABLED")
    eb.put_targets(Rule="off", Targets=[{"Id": "1", "Arn": fn_arn("ev-off")}])
    allow(server, "ev-orders", "events.amazonaws.com", rule)
    allow(server, "ev-off", "events.amazonaws.com")
    eb.put_events(Entries=[{"Source": "app.shop", "DetailType": "Order", "Detail": '{"n": 1}'}])
    eb.put_events(Entries=[{"Source": "other", "DetailType": "Order", "Detail": '{"n": 2}'}])
    got = fake.wait("ev-orders", 1)
    time.sleep(0.3)
    assert len(fake.of("ev-orders")) == 1 and got[0]["detail"] == {"n": 1} and got[0]["source"] == "app.shop"
    assert fake.of("ev-off") == []
    rows = [r for r in server.timeline() if r["kind"] == "events.delivery" and r.get("rule") == "orders"]
    assert rows and rows[0]["status"] == "ok" and rows[0]["event_id"]


def test_lambda_target_without_permission_is_not_invoked(lambda_world):
    server, fake = lambda_world
    eb = server.client("events")
    eb.put_rule(Name="denied", EventPattern=json.dumps({"source": ["app.denied"]}))
    eb.put_targets(Rule="denied", Targets=[{"Id": "1", "Arn": fn_arn("ev-denied")}])
    eb.put_events(Entries=[{"Source": "app.denied", "DetailType": "X", "Detail": "{}"}])
    time.sleep(0.3)
    assert fake.of("ev-denied") == []
    assert any(r.get("status") == "denied" and r.get("rule") == "denied" for r in server.timeline())


def test_step_functions_target_starts_an_execution_with_transformed_input(lambda_world):
    server, fake = lambda_world
    sfn = server.client("stepfunctions")
    machine = sfn.create_state_machine(name="ev-machine", roleArn=f"arn:aws:iam::{ACCOUNT}:role/r",
                                       definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
    eb = server.client("events")
    eb.put_rule(Name="to-sfn", EventPattern=json.dumps({"detail-type": ["Go"]}))
    eb.put_targets(Rule="to-sfn", Targets=[{"Id": "1", "Arn": machine, "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/r",
                                             "InputTransformer": {"InputPathsMap": {"who": "$.detail.who"}, "InputTemplate": '{"who": "<who>"}'}}])
    eb.put_events(Entries=[{"Source": "app", "DetailType": "Go", "Detail": '{"who": "drill"}'}])
    deadline = time.time() + 10
    executions = []
    while time.time() < deadline and not executions:
        executions = sfn.list_executions(stateMachineArn=machine)["executions"]
        time.sleep(0.1)
    assert len(executions) == 1
    described = sfn.describe_execution(executionArn=executions[0]["executionArn"])
    assert json.loads(described["input"]) == {"who": "drill"}
    assert len(executions[0]["name"]) == 36  # a generated UUID, never "None"


def test_scheduled_rate_rule_fires_every_n_twin_minutes(lambda_world):
    server, fake = lambda_world
    eb = server.client("events")
    rule = eb.put_rule(Name="every-minute", ScheduleExpression="rate(1 minute)")["RuleArn"]
    eb.put_targets(Rule="every-minute", Targets=[{"Id": "1", "Arn": fn_arn("ev-tick")}])
    allow(server, "ev-tick", "events.amazonaws.com", rule)
    got = fake.wait("ev-tick", 2, timeout=6)  # twin minute = 1 s
    assert len(got) >= 2
    assert got[0]["detail-type"] == "Scheduled Event" and got[0]["resources"] == [rule] and got[0]["source"] == "aws.events"
    eb.disable_rule(Name="every-minute")


def test_a_schedule_rule_matches_no_put_events(lambda_world):
    # PutRule API reference: "Rules with EventPatterns are triggered when a matching event
    # is observed. Rules with ScheduleExpressions self-trigger based on the given
    # schedule." moto matches a rule without a pattern against every event.
    server, fake = lambda_world
    eb = server.client("events")
    rule = eb.put_rule(Name="hourly", ScheduleExpression="rate(60 minutes)")["RuleArn"]
    eb.put_targets(Rule="hourly", Targets=[{"Id": "1", "Arn": fn_arn("ev-hourly")}])
    allow(server, "ev-hourly", "events.amazonaws.com", rule)
    both = eb.put_rule(Name="hourly-or-app", ScheduleExpression="rate(60 minutes)",
                       EventPattern=json.dumps({"source": ["app.both"]}))["RuleArn"]
    eb.put_targets(Rule="hourly-or-app", Targets=[{"Id": "1", "Arn": fn_arn("ev-both")}])
    allow(server, "ev-both", "events.amazonaws.com", both)
    eb.put_events(Entries=[{"Source": "app.both", "DetailType": "Verdict Changed", "Detail": "{}"}])
    got = fake.wait("ev-both", 1)
    time.sleep(0.3)
    assert got[0]["source"] == "app.both"
    assert fake.of("ev-hourly") == []
    eb.disable_rule(Name="hourly")
    eb.disable_rule(Name="hourly-or-app")


def test_cron_rule_is_recorded_as_not_emulated(lambda_world):
    server, fake = lambda_world
    server.client("events").put_rule(Name="nightly", ScheduleExpression="cron(0 3 * * ? *)")
    deadline = time.time() + 5
    while time.time() < deadline:
        if any(r["kind"] == "events.schedule" and "cron not emulated" in r["detail"] for r in server.timeline()):
            break
        time.sleep(0.1)
    else:
        pytest.fail("cron rule not recorded")
