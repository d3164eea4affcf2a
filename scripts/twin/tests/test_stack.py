"""The stack deployer builds the twin's world from template.yaml as CloudFormation and the
SAM transform would: the intrinsic functions, parameters, conditions and Rules (pure, no
server), then the example spec's three stacks deployed into a real moto_server.py and
read back through moto's own APIs (DescribeAlarms, GetHealthCheck, DescribeRule,
ListTargetsByRule, the Lambda permission registry). These tests fail when the harness's
world and the template disagree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twin import stack as S
from twin.core import ACCOUNT

REPO = Path(__file__).resolve().parents[3]
SPEC = json.loads((REPO / "events/model/example-spec.json").read_text())


@pytest.fixture(scope="module")
def template() -> dict:
    return S.load_template()


# ---------------------------------------------------------------- intrinsic functions

MINI = {
    "Parameters": {
        "Name": {"Type": "String", "Default": "checkout"},
        "Count": {"Type": "Number", "Default": 3},
        "Regions": {"Type": "CommaDelimitedList", "Default": "us-east-1, eu-west-1"},
        "Empty": {"Type": "String", "Default": ""},
    },
    "Mappings": {"Sizes": {"eu-west-1": {"Memory": 256}}},
    "Conditions": {
        "HasName": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Name"}, ""]}]},
        "IsEmpty": {"Fn::Equals": [{"Ref": "Empty"}, ""]},
        "Both": {"Fn::And": [{"Condition": "HasName"}, {"Condition": "IsEmpty"}]},
        "Either": {"Fn::Or": [{"Fn::Equals": ["a", "b"]}, {"Condition": "IsEmpty"}]},
        "Neither": {"Fn::Not": [{"Condition": "Either"}]},
    },
    "Resources": {},
}


def mini_ctx() -> S.Context:
    ctx = S.Context(MINI, "eu-west-1", "lifeboat", S.resolve_parameters(MINI, {}))
    ctx.resource_types["Fn"] = "AWS::Lambda::Function"
    ctx.physical["Fn"] = "lifeboat-fn"
    ctx.attributes["Fn"] = {"Arn": f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:lifeboat-fn"}
    return ctx


INTRINSICS = [
    ({"Ref": "Name"}, "checkout"),
    ({"Ref": "Count"}, "3"),  # Number parameters are used as strings
    ({"Ref": "Regions"}, ["us-east-1", "eu-west-1"]),  # members space-trimmed
    ({"Ref": "AWS::Region"}, "eu-west-1"),
    ({"Ref": "AWS::AccountId"}, ACCOUNT),
    ({"Ref": "AWS::Partition"}, "aws"),
    ({"Ref": "AWS::StackName"}, "lifeboat"),
    ({"Ref": "AWS::URLSuffix"}, "amazonaws.com"),
    ({"Ref": "Fn"}, "lifeboat-fn"),
    ({"Fn::GetAtt": ["Fn", "Arn"]}, f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:lifeboat-fn"),
    ({"Fn::GetAtt": "Fn.Arn"}, f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:lifeboat-fn"),
    ({"Fn::Sub": "arn:${AWS::Partition}:x:${AWS::Region}:${AWS::AccountId}:${Name}"}, f"arn:aws:x:eu-west-1:{ACCOUNT}:checkout"),
    ({"Fn::Sub": "${Fn.Arn}/${Fn}"}, f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:lifeboat-fn/lifeboat-fn"),
    ({"Fn::Sub": "${!Literal}-${Name}"}, "${Literal}-checkout"),
    ({"Fn::Sub": ["${A}-${Name}", {"A": {"Fn::Select": [1, {"Ref": "Regions"}]}}]}, "eu-west-1-checkout"),
    ([{"Fn::Sub": "${Name}-1"}, {"Fn::Sub": "${Name}-2"}], ["checkout-1", "checkout-2"]),
    ({"Fn::Join": [",", {"Ref": "Regions"}]}, "us-east-1,eu-west-1"),
    ({"Fn::Join": ["-", ["a", {"Ref": "Name"}, 3]]}, "a-checkout-3"),
    ({"Fn::Split": [",", "a,,b"]}, ["a", "", "b"]),
    ({"Fn::Select": ["0", {"Fn::Split": [",", "x,y"]}]}, "x"),
    ({"Fn::If": ["HasName", "yes", "no"]}, "yes"),
    ({"Fn::If": ["Neither", "yes", {"Ref": "Name"}]}, "checkout"),
    ({"Fn::Equals": [{"Ref": "Count"}, 3]}, True),
    ({"Fn::Not": [{"Fn::Equals": ["a", "a"]}]}, False),
    ({"Fn::And": [{"Condition": "HasName"}, {"Condition": "IsEmpty"}]}, True),
    ({"Fn::Or": [{"Fn::Equals": ["a", "b"]}, {"Fn::Equals": ["c", "d"]}]}, False),
    ({"Fn::FindInMap": ["Sizes", {"Ref": "AWS::Region"}, "Memory"]}, 256),
    ({"Fn::Base64": "hi"}, "aGk="),
    ({"A": 1, "B": {"Ref": "AWS::NoValue"}}, {"A": 1}),
    (["a", {"Fn::If": ["Neither", "b", {"Ref": "AWS::NoValue"}]}, "c"], ["a", "c"]),
    # the template's HasSwitchN idiom: a list padded with empties, then the Nth member
    ({"Fn::Select": [2, {"Fn::Split": [",", {"Fn::Join": [",", [{"Fn::Join": [",", {"Ref": "Regions"}]}, ",,"]]}]}]}, ""),
]


@pytest.mark.parametrize("value,expected", INTRINSICS, ids=[json.dumps(v)[:60] for v, _ in INTRINSICS])
def test_intrinsic_functions_resolve_as_cloudformation_does(value, expected):
    assert S.resolve(value, mini_ctx()) == expected


def test_conditions_evaluate_with_condition_references():
    assert S.evaluate_conditions(mini_ctx()) == {"HasName": True, "IsEmpty": True, "Both": True, "Either": True, "Neither": False}


@pytest.mark.parametrize("value", [
    {"Ref": "Nope"},
    {"Fn::GetAtt": ["Fn", "Nope"]},
    {"Fn::Select": [5, ["a"]]},
    {"Fn::ImportValue": "x"},
    {"Fn::Sub": "${Regions}"},  # a list is not a Sub variable
])
def test_unresolvable_references_are_refused(value):
    with pytest.raises(S.StackError):
        S.resolve(value, mini_ctx())


@pytest.mark.parametrize("given,message", [
    ({"TableConsistency": "WEAK"}, "AllowedValues"),
    ({"TableName": "a b"}, "pattern"),
    ({"FailoverEvaluationPeriods": "0"}, "not less than 1"),
    ({"ProbeWindowSeconds": "56"}, "not greater than 55"),
    ({"ProbeWindowSeconds": "soon"}, "must be a number"),
    ({"NoSuchParameter": "x"}, "do not exist"),
])
def test_parameter_constraints_refuse_the_stack(template, given, message):
    with pytest.raises(S.StackError, match=message):
        S.resolve_parameters(template, given)


def test_a_parameter_without_default_must_be_given():
    with pytest.raises(S.StackError, match=r"\['X'\] must have values"):
        S.resolve_parameters({"Parameters": {"X": {"Type": "String"}}}, {})


# ---------------------------------------------------------------- the real template


def stack_parameters(region: str) -> dict:
    """The example spec's stack parameters for `region`: home us-east-1 (the primary),
    the prober eu-west-1, each stack hosting the switches the spec puts in its Region."""
    regions = [r["region"] for r in SPEC["regions"]]
    return {
        "WorkloadId": SPEC["workload"],
        "HomeRegion": regions[0],
        "Region2": regions[1],
        "Region3": regions[2],
        "ProbeRegion": "eu-west-1",
        "SwitchRegions": ",".join(r["region"] for r in SPEC["regions"] if r["routing_switch"]["region"] == region),
    }


@pytest.mark.parametrize("region,expected", [
    ("us-east-1", {"IsHome": True, "IsProber": False, "HasSwitch1": True, "HasSwitch2": True, "HasSwitch3": False, "HomeAndRegion3": True}),
    ("eu-west-1", {"IsHome": False, "IsProber": True, "HasSwitch1": True, "HasSwitch2": False, "HasSwitch3": False, "DrillOn": False}),
    ("ap-southeast-1", {"IsHome": False, "IsProber": False, "HasSwitch1": False, "HasSwitch2": False}),
])
def test_conditions_of_the_example_stacks(template, region, expected):
    ctx, _, _ = S.plan(template, region, "lifeboat", stack_parameters(region))
    assert {k: ctx.conditions[k] for k in expected} == expected


@pytest.mark.parametrize("switches,count", [("", 0), ("eu-west-1", 1), ("eu-west-1,ap-southeast-1", 2), ("a, b, c", 3)])
def test_switch_conditions_count_the_switch_regions(template, switches, count):
    ctx, _, _ = S.plan(template, "us-east-1", "lifeboat", {"SwitchRegions": switches})
    assert [ctx.conditions[f"HasSwitch{i}"] for i in (1, 2, 3)] == [i < count for i in range(3)]


def test_rules_refuse_a_region_named_twice(template):
    description = template["Rules"]["DistinctRegions"]["Assertions"][0]["AssertDescription"]
    with pytest.raises(S.StackError) as refused:
        S.plan(template, "us-east-1", "lifeboat", {"HomeRegion": "us-east-1", "Region2": "us-east-1"})
    assert str(refused.value) == description
    # Region3 empty is two Regions, not a duplicate.
    S.plan(template, "us-east-1", "lifeboat", {"HomeRegion": "us-east-1", "Region2": "eu-west-1", "Region3": ""})


def test_sam_generates_rules_permissions_and_roles_by_its_names(template):
    resources = S.sam_expand(template)
    probe = resources["HealthProbeFunctionProbe"]
    assert probe["Type"] == "AWS::Events::Rule"
    assert probe["Properties"]["Targets"] == [{"Arn": {"Fn::GetAtt": ["HealthProbeFunction", "Arn"]}, "Id": "HealthProbeFunctionProbeLambdaTarget"}]
    permission = resources["HealthProbeFunctionProbePermission"]["Properties"]
    assert permission == {
        "Action": "lambda:InvokeFunction",
        "FunctionName": {"Ref": "HealthProbeFunction"},
        "Principal": "events.amazonaws.com",
        "SourceArn": {"Fn::GetAtt": ["HealthProbeFunctionProbe", "Arn"]},
    }
    drill = resources["DrillStateMachineScheduled"]["Properties"]["Targets"][0]
    assert drill["Id"] == "DrillStateMachineScheduledStepFunctionsTarget"
    assert drill["Arn"] == {"Ref": "DrillStateMachine"}
    assert resources["DrillStateMachineScheduledRole"]["Type"] == "AWS::IAM::Role"
    assert "FailoverExecutorFunctionAlarmStateChangePermission" in resources
    # Globals.Function.Timeout applies where the function sets none.
    globals_timeout = template["Globals"]["Function"]["Timeout"]
    assert resources["FailoverExecutorFunction"]["Properties"]["Timeout"] == globals_timeout
    assert resources["HealthProbeFunction"]["Properties"]["Timeout"] == template["Resources"]["HealthProbeFunction"]["Properties"]["Timeout"]


def test_resources_deploy_after_what_they_reference(template):
    _, resources, order = S.plan(template, "eu-west-1", "lifeboat", stack_parameters("eu-west-1"))
    for logical in order:
        for dep in S.references(resources[logical].get("Properties") or {}):
            if dep in order:
                assert order.index(dep) < order.index(logical), (dep, logical)
    with pytest.raises(S.StackError, match="circular"):
        S.order({"A": {"Properties": {"X": {"Ref": "B"}}}, "B": {"Properties": {"X": {"Ref": "A"}}}}, {"A", "B"})


# ---------------------------------------------------------------- deployed into moto

DEPLOY_ORDER = ["eu-west-1", "ap-southeast-1", "us-east-1"]  # switch hosts before the home stack's health checks


@pytest.fixture(scope="module")
def deployed(server):
    out = {}
    for region in DEPLOY_ORDER:
        status, body = server.control("stack", {"region": region, "parameters": stack_parameters(region)})
        assert status == 200, body
        out[region] = body
    return out


def live_health_check_gaps(server) -> set[str]:
    """HealthCheckConfig fields moto (or the twin's Route 53) does not return at all."""
    r53 = server.client("route53", "us-east-1")
    checks = r53.list_health_checks()["HealthChecks"]
    return {k for k in ("AlarmIdentifier", "InsufficientDataHealthStatus") if checks and all(k not in c["HealthCheckConfig"] for c in checks)}


def drift(server, region: str) -> list[dict]:
    status, body = server.control("stack/drift", query=f"region={region}&stack=lifeboat")
    assert status == 200, body
    return body["drift"]


def test_the_three_example_stacks_deploy_without_drift(server, deployed):
    gaps = live_health_check_gaps(server)
    for region in DEPLOY_ORDER:
        rows = [r for r in drift(server, region) if r["property"].split(".")[-1] not in gaps or not r["property"].startswith("HealthCheckConfig.")]
        assert rows == [], (region, rows)
    assert set(deployed["us-east-1"]["resources"]) >= {"PrimaryRegionHealthCheck", "Region2HealthCheck", "Region3HealthCheck", "Switch1Alarm", "Switch2Alarm"}
    assert not {"HomeHealthAlarm", "Region2HealthAlarm", "Region3HealthAlarm"} & set(deployed["us-east-1"]["resources"])
    assert set(deployed["eu-west-1"]["resources"]) >= {
        "HomeHealthAlarm", "HomeHealthAlarmInvokePermission", "Region2HealthAlarm", "Region2HealthAlarmInvokePermission",
        "Region3HealthAlarm", "Region3HealthAlarmInvokePermission", "Switch1Alarm"}
    assert deployed["us-east-1"]["skipped"]["Table"].startswith("AWS::DynamoDB::GlobalTable")
    assert deployed["eu-west-1"]["skipped"]["FailoverStateMachine"].startswith("AWS::StepFunctions::StateMachine")
    assert "Table" not in deployed["eu-west-1"]["skipped"]  # IsHome only


@pytest.mark.parametrize("logical,watched", [
    ("HomeHealthAlarm", "us-east-1"), ("Region2HealthAlarm", "eu-west-1"), ("Region3HealthAlarm", "ap-southeast-1")])
def test_alarms_in_moto_are_the_templates(server, deployed, template, logical, watched):
    raw = template["Resources"][logical]["Properties"]
    alarm = server.client("cloudwatch", "eu-west-1").describe_alarms(
        AlarmNames=[f"lifeboat-checkout-{watched}-unhealthy-seen-from-eu-west-1"])["MetricAlarms"][0]
    assert alarm["EvaluationPeriods"] == int(template["Parameters"]["FailoverEvaluationPeriods"]["Default"])
    assert alarm["DatapointsToAlarm"] == raw["DatapointsToAlarm"] == 1
    assert alarm["Period"] == raw["Period"] and alarm["Statistic"] == raw["Statistic"]
    assert alarm["TreatMissingData"] == raw["TreatMissingData"]
    executor = [f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:lifeboat-failover-executor"]
    assert alarm["AlarmActions"] == alarm["OKActions"] == executor
    assert sorted((d["Name"], d["Value"]) for d in alarm["Dimensions"]) == [("Region", watched), ("Workload", "checkout")]
    # Every switch the spec places somewhere exists there, as the spec names it.
    for r in SPEC["regions"]:
        switch = r["routing_switch"]
        found = server.client("cloudwatch", switch["region"]).describe_alarms(AlarmNames=[switch["alarm_name"]])["MetricAlarms"]
        assert len(found) == 1, switch
        assert found[0]["Namespace"] == switch["namespace"] and found[0]["MetricName"] == switch["metric_name"]
        assert found[0]["TreatMissingData"] == template["Resources"]["Switch1Alarm"]["Properties"]["TreatMissingData"]


def test_health_checks_watch_the_switch_alarms(server, deployed):
    r53 = server.client("route53", "us-east-1")
    gaps = live_health_check_gaps(server)
    for logical, switch_of in (("PrimaryRegionHealthCheck", "us-east-1"), ("Region2HealthCheck", "eu-west-1"), ("Region3HealthCheck", "ap-southeast-1")):
        hc_id = deployed["us-east-1"]["resources"][logical]["physical_id"]
        config = r53.get_health_check(HealthCheckId=hc_id)["HealthCheck"]["HealthCheckConfig"]
        assert config["Type"] == "CLOUDWATCH_METRIC"
        switch = next(r["routing_switch"] for r in SPEC["regions"] if r["region"] == switch_of)
        if "AlarmIdentifier" not in gaps:
            assert config["AlarmIdentifier"] == {"Region": switch["region"], "Name": switch["alarm_name"]}
        if "InsufficientDataHealthStatus" not in gaps:
            assert config["InsufficientDataHealthStatus"] == "LastKnownStatus"
        tags = r53.list_tags_for_resource(ResourceType="healthcheck", ResourceId=hc_id)["ResourceTagSet"]["Tags"]
        assert {"Key": "Name", "Value": f"lifeboat-checkout-{switch_of}"} in tags


def test_rules_and_targets_are_the_sam_generated_ones(server, deployed, template):
    for region in DEPLOY_ORDER:
        events = server.client("events", region)
        probe = deployed[region]["resources"]["HealthProbeFunctionProbe"]["physical_id"]
        assert probe.startswith("lifeboat-HealthProbeFunctionProbe-")
        rule = events.describe_rule(Name=probe)
        assert rule["ScheduleExpression"] == template["Parameters"]["ProbeSchedule"]["Default"]
        assert rule["State"] == ("ENABLED" if region == "eu-west-1" else "DISABLED")
        assert events.list_targets_by_rule(Rule=probe)["Targets"] == [
            {"Id": "HealthProbeFunctionProbeLambdaTarget", "Arn": f"arn:aws:lambda:{region}:{ACCOUNT}:function:lifeboat-health-probe"}]
        alarms = deployed[region]["resources"]["FailoverExecutorFunctionAlarmStateChange"]["physical_id"]
        pattern = json.loads(events.describe_rule(Name=alarms)["EventPattern"])
        assert pattern["resources"] == [{"wildcard": f"arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:lifeboat-checkout-*-unhealthy-seen-from-*"}]
        drill = deployed[region]["resources"]["DrillStateMachineScheduled"]["physical_id"]
        (target,) = events.list_targets_by_rule(Rule=drill)["Targets"]
        assert target["Arn"] == f"arn:aws:states:{region}:{ACCOUNT}:stateMachine:lifeboat-drill-{region}"
        assert json.loads(target["Input"])["workload"] == "checkout"
        assert events.describe_rule(Name=drill)["State"] == "DISABLED"  # DrillEnabled defaults to "false"


def test_permissions_allow_exactly_the_templates_invokers(server, deployed):
    _, body = server.control("lambda/permissions")
    perms = body["permissions"]
    for watched in ("us-east-1", "eu-west-1", "ap-southeast-1"):
        alarm_arn = f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:lifeboat-checkout-{watched}-unhealthy-seen-from-eu-west-1"
        assert {
            "function": f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:lifeboat-failover-executor",
            "principal": "lambda.alarms.cloudwatch.amazonaws.com",
            "source_arn": alarm_arn,
            "source_account": ACCOUNT,
        } in perms
    for region in DEPLOY_ORDER:
        rule_arn = deployed[region]["resources"]["HealthProbeFunctionProbe"]["arn"]
        assert {"function": "lifeboat-health-probe", "principal": "events.amazonaws.com", "source_arn": rule_arn, "source_account": None} in perms
    assert sum(p["principal"] == "lambda.alarms.cloudwatch.amazonaws.com" for p in perms) == 3  # the prober's stack only, one a Region


def test_each_stack_has_its_notification_topic_and_ref_is_its_arn(server, deployed):
    for region in DEPLOY_ORDER:
        topic = deployed[region]["resources"]["NotificationTopic"]
        arn = topic["physical_id"]
        assert arn.startswith(f"arn:aws:sns:{region}:{ACCOUNT}:lifeboat-NotificationTopic-"), arn
        assert deployed[region]["outputs"]["NotificationTopicArn"] == arn
        attrs = server.client("sns", region).get_topic_attributes(TopicArn=arn)["Attributes"]
        assert attrs["DisplayName"] == f"Lifeboat checkout {region}"
    # NotificationEmail is empty by default: no e-mail subscription.
    assert "NotificationEmailSubscription" not in deployed["us-east-1"]["resources"]


def test_functions_map_to_their_binaries_and_timeouts(deployed, template):
    functions = deployed["eu-west-1"]["functions"]
    assert functions["lifeboat-failover-executor"] == "failover-executor"
    assert functions["lifeboat-health-probe"] == "health-probe"
    assert functions["lifeboat-deploy-wave"] == "deploy-wave"
    assert len(functions) == 6


def test_redeploying_is_idempotent(server, deployed):
    r53 = server.client("route53", "us-east-1")
    before = sorted(c["Id"] for c in r53.list_health_checks()["HealthChecks"])
    _, perms_before = server.control("lambda/permissions")
    status, body = server.control("stack", {"region": "us-east-1", "parameters": stack_parameters("us-east-1")})
    assert status == 200, body
    assert sorted(c["Id"] for c in r53.list_health_checks()["HealthChecks"]) == before
    assert body["resources"]["Region2HealthCheck"] == deployed["us-east-1"]["resources"]["Region2HealthCheck"]
    assert server.control("lambda/permissions")[1] == perms_before
    assert drift(server, "us-east-1") == [] or live_health_check_gaps(server)


def test_an_override_is_a_named_input_and_leaves_no_drift(server, deployed):
    since = len(server.timeline())
    params = stack_parameters("eu-west-1")
    status, body = server.control("stack", {"region": "eu-west-1", "parameters": params, "overrides": {"HomeHealthAlarm": {"Period": 60}}})
    assert status == 200, body
    assert body["overrides"] == [{"resource": "HomeHealthAlarm", "property": "Period", "value": 60, "template": 10}]
    rows = [r for r in server.timeline(since) if r["kind"] == "stack.override"]
    assert [r["detail"] for r in rows] == ["local override HomeHealthAlarm.Period = 60 (template: 10)"]
    alarm = server.client("cloudwatch", "eu-west-1").describe_alarms(AlarmNames=[body["resources"]["HomeHealthAlarm"]["physical_id"]])["MetricAlarms"][0]
    assert alarm["Period"] == 60
    assert drift(server, "eu-west-1") == []
    status, body = server.control("stack", {"region": "eu-west-1", "parameters": params})
    assert status == 200 and body["overrides"] == []
    assert server.client("cloudwatch", "eu-west-1").describe_alarms(AlarmNames=[alarm["AlarmName"]])["MetricAlarms"][0]["Period"] == 10


@pytest.mark.parametrize("overrides,message", [
    ({"HomeHealthAlarm": {"Periodd": 10}}, "no property Periodd"),
    ({"NoSuchAlarm": {"Period": 10}}, "does not have"),
    ({"Switch2Alarm": {"Period": 10}}, "does not have"),  # its Condition is false in eu-west-1
])
def test_an_override_the_template_does_not_have_is_refused(server, deployed, overrides, message):
    status, body = server.control("stack", {"region": "eu-west-1", "parameters": stack_parameters("eu-west-1"), "overrides": overrides})
    assert status == 400 and message in body["error"], body


def test_the_rules_refuse_the_stack_over_http(server, template):
    status, body = server.control("stack", {"region": "us-east-1", "stack_name": "refused", "parameters": {"Region2": "us-east-1"}})
    assert status == 400
    assert body["error"] == template["Rules"]["DistinctRegions"]["Assertions"][0]["AssertDescription"]
    assert all(s["stack"] != "refused" for s in server.control("stack")[1]["stacks"])


def test_drift_names_the_property_changed_behind_the_templates_back(server, deployed):
    cw = server.client("cloudwatch", "us-east-1")
    alarm = cw.describe_alarms(AlarmNames=["lifeboat-checkout-eu-west-1-switch"])["MetricAlarms"][0]
    keep = {k: alarm[k] for k in ("AlarmName", "Namespace", "MetricName", "Dimensions", "Statistic", "Period", "EvaluationPeriods", "ComparisonOperator", "TreatMissingData")}
    cw.put_metric_alarm(**keep, Threshold=5.0)
    try:
        rows = drift(server, "us-east-1")
        assert {"resource": "Switch1Alarm", "property": "Threshold", "template": 1.0, "live": 5.0} in rows
        assert all(r["resource"] == "Switch1Alarm" for r in rows if not r["property"].startswith("HealthCheckConfig."))
    finally:
        cw.put_metric_alarm(**keep, Threshold=float(alarm["Threshold"]))
    assert [r for r in drift(server, "us-east-1") if r["resource"] == "Switch1Alarm"] == []


def test_a_resource_the_template_no_longer_has_is_deleted(server, deployed):
    cw = server.client("cloudwatch", "ap-southeast-1")
    params = stack_parameters("ap-southeast-1")
    status, body = server.control("stack", {"region": "ap-southeast-1", "parameters": {**params, "SwitchRegions": "ap-southeast-1"}})
    assert status == 200 and "Switch1Alarm" in body["resources"], body
    assert cw.describe_alarms(AlarmNames=["lifeboat-checkout-ap-southeast-1-switch"])["MetricAlarms"]
    status, body = server.control("stack", {"region": "ap-southeast-1", "parameters": params})
    assert status == 200 and "Switch1Alarm" not in body["resources"]
    assert cw.describe_alarms(AlarmNames=["lifeboat-checkout-ap-southeast-1-switch"])["MetricAlarms"] == []
    listed = {(s["region"], s["stack"]) for s in server.control("stack")[1]["stacks"]}
    assert listed >= {(r, "lifeboat") for r in DEPLOY_ORDER}


def test_health_checks_that_name_a_sibling_alarm_without_depending_on_it_are_warned(server, deployed, tmp_path):
    # CloudFormation creates independent resources in parallel; a health check whose
    # alarm is created by the same stack, with no dependency on it, may be created first.
    # The shipped template names its switch alarms in a tag of each home-stack check,
    # which makes the dependency: no warning.
    assert all(d["warnings"] == [] for d in deployed.values()), {r: d["warnings"] for r, d in deployed.items()}
    # The same template without those tags is warned.
    import re

    text = (REPO / "template.yaml").read_text()
    stripped = re.sub(r"\n        # The alarm this check watches.*?Switch3Alarm, !Ref AWS::NoValue\]", "", text, flags=re.S)
    assert stripped != text
    copy = tmp_path / "template.yaml"
    copy.write_text(stripped)
    status, body = server.control("stack", {"region": "us-east-1", "template": str(copy), "parameters": stack_parameters("us-east-1")})
    assert status == 200, body
    assert any(w.startswith("Region2HealthCheck names alarm lifeboat-checkout-eu-west-1-switch (Switch1Alarm") for w in body["warnings"]), body["warnings"]
    # Back to the shipped template for the tests that follow.
    status, body = server.control("stack", {"region": "us-east-1", "parameters": stack_parameters("us-east-1")})
    assert status == 200 and body["warnings"] == [], body


def test_a_health_check_whose_alarm_does_not_exist_fails_the_stack(server):
    # The home stack deployed before the stack hosting its primary's switch: the twin's
    # Route 53 refuses CreateHealthCheck, and the deploy answers 400 naming the resource.
    params = {**stack_parameters("us-east-1"), "WorkloadId": "nowhere", "SwitchRegions": ""}
    status, body = server.control("stack", {"region": "us-east-1", "stack_name": "early", "parameters": params})
    assert status == 400 and "PrimaryRegionHealthCheck" in body["error"], body
    rows = [r for r in server.timeline() if r["kind"] == "stack.failed" and r.get("stack") == "early"]
    assert rows and "CREATE_FAILED" in rows[-1]["detail"]
    status, body = server.control("stack", method="DELETE", query="region=us-east-1&stack=early")
    assert status == 200, body


def test_drift_sees_a_removed_permission_and_a_removed_target(server, deployed):
    _, body = server.control("lambda/permissions")
    events = server.client("events", "eu-west-1")
    rule = deployed["eu-west-1"]["resources"]["HealthProbeFunctionProbe"]["physical_id"]
    events.remove_targets(Rule=rule, Ids=["HealthProbeFunctionProbeLambdaTarget"])
    try:
        rows = drift(server, "eu-west-1")
        assert {r["property"] for r in rows if r["resource"] == "HealthProbeFunctionProbe"} == {"Targets.HealthProbeFunctionProbeLambdaTarget"}
    finally:
        events.put_targets(Rule=rule, Targets=[{"Id": "HealthProbeFunctionProbeLambdaTarget", "Arn": f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:lifeboat-health-probe"}])
    assert drift(server, "eu-west-1") == []
