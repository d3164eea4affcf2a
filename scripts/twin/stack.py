"""The stack deployer: the twin builds its world from `template.yaml` itself.

`POST /_twin/stack {"template"?, "region", "stack_name"?, "parameters"?, "overrides"?}`
deploys one stack of the SAM template into moto as CloudFormation would after the SAM
transform: parameters (defaults, `Number`, `CommaDelimitedList`, constraints), pseudo
parameters, `Rules` (a failed assertion refuses the stack with its AssertDescription),
`Conditions`, the intrinsic functions, resources in dependency order. Deployed into moto:
CloudWatch alarms (metric and composite), Route 53 health checks (global, through
us-east-1, tagged), SNS topics (Ref: the topic ARN), EventBridge rules with their targets (the ones SAM generates for
`Schedule`/`EventBridgeRule`/`CloudWatchEvent` events included), Lambda permissions (into
`twin.permissions`). `AWS::Serverless::Function`s register their deployed name -> binary in
`twin.functions` and their timeout in `twin.function_timeouts`. Everything else (functions,
state machines, the table, buckets, dashboards, roles) is listed in `skipped` with why: the
harness creates the machines and the table from the same files.

`GET /_twin/stack` lists deployed stacks; `GET /_twin/stack/drift?region=&stack=` compares
each deployed resource's live configuration (DescribeAlarms, GetHealthCheck +
ListTagsForResource, DescribeRule + ListTargetsByRule, the permission registry) with the
resolved template plus overrides; `DELETE /_twin/stack?region=&stack=` deletes a stack.

Overrides (`{"HomeHealthAlarm": {"Period": 10}}`) are named local inputs: each replaces
one property of one resource after resolution, is printed in the timeline
(`stack.override`) and returned; one naming a resource or property the resolved template
does not have is refused (400).

The pure functions (`load_template`, `resolve_parameters`, `evaluate_conditions`,
`check_rules`, `resolve`, `sam_expand`, `plan`) do no I/O and are tested without a server.

AWS documents followed (cited again beside the code that follows them):
- CloudFormation "Parameters" https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html
- "Pseudo parameters reference" https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/pseudo-parameter-reference.html
- "Intrinsic function reference" https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference.html
- "Rules" https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/rules-section-structure.html
- "Name type" https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-name.html
- SAM "CloudFormation resources generated when AWS::Serverless::Function is specified"
  https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-specification-generated-resources-function.html
  and "... AWS::Serverless::StateMachine ..." (sam-specification-generated-resources-statemachine.html);
  the exact target ids and permission names follow the SAM translator (aws-sam-translator
  1.110, samtranslator/model/eventsources/push.py, model/stepfunctions/events.py).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import threading
from pathlib import Path
from typing import Any, Callable

from botocore.exceptions import ClientError

from . import core

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = REPO / "template.yaml"
DEFAULT_STACK = "lifeboat"


class StackError(Exception):
    """A template or request CloudFormation would refuse (HTTP 400)."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


# ---------------------------------------------------------------- template


def load_template(path: str | Path | None = None) -> dict:
    """Reads a template with cfn-lint's YAML loader (as tests/tests/template.rs does):
    `!Ref`, `!Sub`, `!GetAtt` ... arrive as `Ref`, `Fn::Sub`, `Fn::GetAtt`. A relative
    path is relative to the repository."""
    from cfnlint.decode import cfn_yaml

    p = Path(path) if path else DEFAULT_TEMPLATE
    if not p.is_absolute():
        p = REPO / p
    if not p.exists():
        raise StackError(f"template {p} does not exist")
    return json.loads(json.dumps(cfn_yaml.loads(p.read_text())))


# ---------------------------------------------------------------- parameters


def resolve_parameters(template: dict, given: dict | None) -> dict[str, Any]:
    """Parameter values as CloudFormation sees them ("Parameters" section reference,
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html):
    a given value or the `Default`; a parameter with neither is an error, as is a given
    parameter the template does not declare. `Number` is validated as a number but used
    as a string ("the parameter value becomes a string"); `CommaDelimitedList` is a list
    of strings split at commas, each member space-trimmed. `AllowedValues`,
    `AllowedPattern` (the whole value), `MinLength`/`MaxLength`, `MinValue`/`MaxValue`
    are enforced, the error naming `ConstraintDescription` when there is one."""
    declared = template.get("Parameters") or {}
    given = dict(given or {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise StackError(f"Parameters: {unknown} do not exist in the template")
    values: dict[str, Any] = {}
    missing = []
    for name, spec in declared.items():
        if name in given:
            raw = given[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            missing.append(name)
            continue
        kind = spec.get("Type", "String")
        if isinstance(raw, list):
            raw = ",".join(str(x) for x in raw)
        if isinstance(raw, bool):
            raw = "true" if raw else "false"
        raw = str(raw)
        constraint = spec.get("ConstraintDescription")

        def fail(why: str) -> None:
            raise StackError(f"Parameter '{name}' {constraint or why}")

        if kind == "Number":
            try:
                number = float(raw)
            except ValueError:
                fail("must be a number")
            if "MinValue" in spec and number < float(spec["MinValue"]):
                fail(f"must be a number not less than {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                fail(f"must be a number not greater than {spec['MaxValue']}")
        if kind in ("CommaDelimitedList", "List<Number>") or kind.startswith("List<"):
            value: Any = [member.strip() for member in raw.split(",")]
            members = value
        else:
            value = raw
            members = [raw]
        for member in members:
            if "AllowedValues" in spec and member not in [str(v) for v in spec["AllowedValues"]]:
                fail(f"must be one of AllowedValues {spec['AllowedValues']}")
            if "AllowedPattern" in spec and kind == "String" and not re.fullmatch(spec["AllowedPattern"], member):
                fail(f"must match pattern {spec['AllowedPattern']}")
        if kind == "String":
            if "MinLength" in spec and len(raw) < int(spec["MinLength"]):
                fail(f"must contain at least {spec['MinLength']} characters")
            if "MaxLength" in spec and len(raw) > int(spec["MaxLength"]):
                fail(f"must contain at most {spec['MaxLength']} characters")
        values[name] = value
    if missing:
        raise StackError(f"Parameters: {missing} must have values")
    return values


# ---------------------------------------------------------------- context


class Context:
    """What intrinsic functions see: parameters, pseudo parameters, conditions, mappings,
    and the resources known so far (logical id -> type, physical id, attributes)."""

    def __init__(self, template: dict, region: str, stack_name: str, parameters: dict[str, Any], account: str = core.ACCOUNT) -> None:
        self.template = template
        self.region = region
        self.account = account
        self.stack_name = stack_name
        self.parameters = parameters
        self.mappings = template.get("Mappings") or {}
        self.condition_defs = template.get("Conditions") or {}
        self.conditions: dict[str, bool] = {}
        self.resource_types: dict[str, str] = {}
        self.physical: dict[str, Any] = {}
        self.attributes: dict[str, dict[str, Any]] = {}

    def pseudo(self, name: str) -> Any:
        """Pseudo parameters ("Pseudo parameters reference",
        https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/pseudo-parameter-reference.html)."""
        values = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.stack_name}/{_uuid_like(self.region, self.stack_name)}",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        if name not in values:
            raise StackError(f"Template error: unknown pseudo parameter {name}")
        return values[name]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical:
            return self.physical[name]
        if name in self.resource_types:
            raise StackError(f"Template error: {name} is referenced before it exists (or its Condition is false)")
        raise StackError(f"Template format error: Unresolved resource dependencies [{name}] in the Resources block of the template")

    def get_att(self, name: str, attribute: str) -> Any:
        if name not in self.attributes:
            self.ref(name)  # the same errors as Ref
        attrs = self.attributes.get(name, {})
        if attribute not in attrs:
            raise StackError(f"Template error: resource {name} ({self.resource_types.get(name)}) does not support attribute type {attribute} in Fn::GetAtt")
        return attrs[attribute]

    def condition(self, name: str) -> bool:
        if name in self.conditions:
            return self.conditions[name]
        if name not in self.condition_defs:
            raise StackError(f"Template error: unresolved condition dependency {name}")
        self.conditions[name] = False  # cycle guard
        value = resolve(self.condition_defs[name], self)
        if not isinstance(value, bool):
            raise StackError(f"Template error: condition {name} is not a boolean")
        self.conditions[name] = value
        return value


def _uuid_like(*parts: str) -> str:
    h = hashlib.sha256("|".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def evaluate_conditions(ctx: Context) -> dict[str, bool]:
    """Every condition of the template (Fn::Equals/Not/And/Or/If, `Condition`)."""
    for name in ctx.condition_defs:
        ctx.condition(name)
    return dict(ctx.conditions)


def check_rules(ctx: Context) -> None:
    """`Rules` ("Rules", https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/rules-section-structure.html):
    a rule whose `RuleCondition` is true (or that has none) applies its `Assertions`; one
    that is false refuses the stack, CloudFormation answering with its AssertDescription."""
    for name, rule in (ctx.template.get("Rules") or {}).items():
        if "RuleCondition" in rule and resolve(rule["RuleCondition"], ctx) is not True:
            continue
        for assertion in rule.get("Assertions") or []:
            if resolve(assertion["Assert"], ctx) is not True:
                raise StackError(assertion.get("AssertDescription") or f"Assertion of rule {name} failed")


# ---------------------------------------------------------------- intrinsic functions


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_SUB = re.compile(r"\$\{([^}]*)\}")


def _sub(text: str, variables: dict[str, Any], ctx: Context) -> str:
    """Fn::Sub: `${Name}` is a variable, a parameter, a pseudo parameter or a resource's Ref;
    `${Res.Attr}` is Fn::GetAtt; `${!Literal}` stays `${Literal}`."""

    def one(match: re.Match) -> str:
        inner = match.group(1)
        if inner.startswith("!"):
            return "${" + inner[1:] + "}"
        if inner in variables:
            value = variables[inner]
        elif "." in inner and not inner.startswith("AWS::"):
            res, attr = inner.split(".", 1)
            value = ctx.get_att(res, attr)
        else:
            value = ctx.ref(inner)
        if isinstance(value, list) or value is NO_VALUE:
            raise StackError(f"Template error: Fn::Sub variable {inner} is not a string")
        return _scalar(value)

    return _SUB.sub(one, text)


def _as_list(value: Any, fn: str) -> list:
    if not isinstance(value, list):
        raise StackError(f"Template error: {fn} needs a list, got {value!r}")
    return value


def _fn(name: str, arg: Any, ctx: Context) -> Any:
    """One intrinsic function ("Intrinsic function reference",
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference.html)."""
    if name == "Ref":
        return ctx.ref(resolve(arg, ctx))
    if name == "Fn::GetAtt":
        if isinstance(arg, str):
            res, attr = arg.split(".", 1)
        else:
            res, attr = _as_list(arg, name)
            attr = resolve(attr, ctx)
        return ctx.get_att(res, attr)
    if name == "Fn::Sub":
        if isinstance(arg, str):
            return _sub(arg, {}, ctx)
        text, variables = _as_list(arg, name)
        return _sub(text, {k: resolve(v, ctx) for k, v in variables.items()}, ctx)
    if name == "Fn::Join":
        delimiter, items = _as_list(arg, name)
        items = resolve(items, ctx)
        return delimiter.join(_scalar(x) for x in _as_list(items, name))
    if name == "Fn::Split":
        delimiter, text = _as_list(arg, name)
        return resolve(text, ctx).split(delimiter)
    if name == "Fn::Select":
        index, items = _as_list(arg, name)
        index = int(resolve(index, ctx))
        items = _as_list(resolve(items, ctx), name)
        if not 0 <= index < len(items):
            raise StackError(f"Template error: Fn::Select cannot select nonexistent value at index {index}")
        return items[index]
    if name == "Fn::If":
        condition, yes, no = _as_list(arg, name)
        return resolve(yes if ctx.condition(condition) else no, ctx)
    if name == "Fn::Equals":
        a, b = (resolve(x, ctx) for x in _as_list(arg, name))
        if isinstance(a, list) or isinstance(b, list):
            return a == b
        return _scalar(a) == _scalar(b)
    if name == "Fn::Not":
        (value,) = _as_list(arg, name)
        return not _truth(resolve(value, ctx), name)
    if name == "Fn::And":
        return all(_truth(resolve(v, ctx), name) for v in _as_list(arg, name))
    if name == "Fn::Or":
        return any(_truth(resolve(v, ctx), name) for v in _as_list(arg, name))
    if name == "Condition":
        return ctx.condition(arg)
    if name == "Fn::FindInMap":
        mapping, top, second = (resolve(x, ctx) for x in _as_list(arg, name))
        try:
            return ctx.mappings[mapping][top][second]
        except KeyError as missing:
            raise StackError(f"Template error: Fn::FindInMap: {missing} not in mapping {mapping}") from None
    if name == "Fn::Base64":
        return base64.b64encode(_scalar(resolve(arg, ctx)).encode()).decode()
    if name == "Fn::GetAZs":
        region = resolve(arg, ctx) or ctx.region
        return [f"{region}{zone}" for zone in "abc"]
    # Rule-specific functions (Rules section).
    if name == "Fn::Contains":
        items, value = (resolve(x, ctx) for x in _as_list(arg, name))
        return _scalar(value) in [_scalar(x) for x in items]
    if name == "Fn::EachMemberEquals":
        items, value = (resolve(x, ctx) for x in _as_list(arg, name))
        return all(_scalar(x) == _scalar(value) for x in items)
    if name == "Fn::EachMemberIn":
        items, allowed = (resolve(x, ctx) for x in _as_list(arg, name))
        return all(_scalar(x) in [_scalar(y) for y in allowed] for x in items)
    raise StackError(f"Template error: {name} is not supported by the twin's stack deployer")


def _truth(value: Any, fn: str) -> bool:
    if not isinstance(value, bool):
        raise StackError(f"Template error: {fn} needs conditions, got {value!r}")
    return value


INTRINSICS = {"Ref", "Condition"}


def _is_intrinsic(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        (key,) = value
        if key.startswith("Fn::") or key == "Ref" or (key == "Condition" and isinstance(value[key], str)):
            return key
    return None


def resolve(value: Any, ctx: Context) -> Any:
    """Resolves every intrinsic function in `value`; `AWS::NoValue` removes a list member
    or a property."""
    fn = _is_intrinsic(value)
    if fn:
        return _fn(fn, value[fn], ctx)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            r = resolve(v, ctx)
            if r is not NO_VALUE:
                out[k] = r
        return out
    if isinstance(value, list):
        return [r for r in (resolve(v, ctx) for v in value) if r is not NO_VALUE]
    return value


def references(value: Any) -> set[str]:
    """Logical ids `value` names through Ref, Fn::GetAtt and Fn::Sub (every branch)."""
    out: set[str] = set()
    if isinstance(value, dict):
        fn = _is_intrinsic(value)
        if fn == "Ref" and isinstance(value["Ref"], str):
            out.add(value["Ref"])
        elif fn == "Fn::GetAtt":
            arg = value[fn]
            out.add(arg.split(".", 1)[0] if isinstance(arg, str) else arg[0])
        elif fn == "Fn::Sub":
            arg = value[fn]
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            for inner in _SUB.findall(text):
                if not inner.startswith("!") and inner not in variables:
                    out.add(inner.split(".", 1)[0])
            out |= references(variables)
            return {r for r in out if not r.startswith("AWS::")}
        for v in value.values():
            out |= references(v)
    elif isinstance(value, list):
        for v in value:
            out |= references(v)
    return {r for r in out if not r.startswith("AWS::")}


# ---------------------------------------------------------------- SAM transform


def _merge_globals(globals_: dict, props: dict) -> dict:
    """SAM Globals: the resource's own properties win; maps are merged, lists appended
    (the global items first) ("Globals section of the AWS SAM template",
    https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-specification-template-anatomy-globals.html)."""
    out = copy.deepcopy(globals_)
    for key, value in props.items():
        if key in out and isinstance(out[key], dict) and isinstance(value, dict) and not _is_intrinsic(value):
            out[key] = _merge_globals(out[key], value)
        elif key in out and isinstance(out[key], list) and isinstance(value, list):
            out[key] = out[key] + value
        else:
            out[key] = copy.deepcopy(value)
    return out


def _target_id(logical_id: str, suffix: str) -> str:
    # samtranslator.model.events.generate_valid_target_id: at most 64 characters.
    return logical_id + suffix if len(logical_id) + len(suffix) <= 64 else logical_id[: 64 - len(suffix)] + suffix


# SAM event types that become an `AWS::Events::Rule`; other event types are not emulated.
_RULE_EVENT_TYPES = ("Schedule", "EventBridgeRule", "CloudWatchEvent")


def _generated_role(kind: str, attrs: dict) -> dict:
    """An `AWS::IAM::Role` SAM generates for a `kind` resource: it keeps the parent's
    Condition, not its DependsOn."""
    return {"Type": "AWS::IAM::Role", "Properties": {}, "Sam": kind, **{k: v for k, v in attrs.items() if k == "Condition"}}


def _copy_set(dst: dict, src: dict, keys: tuple[str, ...]) -> None:
    """Copies each of `keys` that `src` sets (not None) to `dst`."""
    for key in keys:
        if src.get(key) is not None:
            dst[key] = src[key]


def _rule_events(out: dict[str, dict], logical: str, events: dict, kind: str, attrs: dict):
    """The events of SAM resource `logical` that become a rule, as (event_id, rule_id =
    logical + event_id, type, properties); an event of any other type is recorded in `out`
    as a `SAM event <type>` placeholder under its rule_id and not yielded."""
    for event_id, event in events.items():
        rule_id = logical + event_id
        etype = event.get("Type")
        ep = event.get("Properties") or {}
        if etype not in _RULE_EVENT_TYPES:
            out[rule_id] = {"Type": f"SAM event {etype}", "Properties": {}, "Sam": kind, **attrs}
            continue
        yield event_id, rule_id, etype, ep


def _set_rule_state(rule: dict, ep: dict) -> None:
    """The rule's State from the event's `State`, then from its `Enabled` (true, "true" or
    "True" -> ENABLED, else DISABLED), which wins when both are set."""
    if ep.get("State") is not None:
        rule["State"] = ep["State"]
    if ep.get("Enabled") is not None:
        rule["State"] = "ENABLED" if ep["Enabled"] in (True, "true", "True") else "DISABLED"


def sam_expand(template: dict) -> dict[str, dict]:
    """The CloudFormation resources the SAM transform generates (SAM "generated resources"
    pages): `AWS::Serverless::Function` X -> `AWS::Lambda::Function` X and role `XRole`;
    each `Schedule`/`EventBridgeRule`/`CloudWatchEvent` event E -> `AWS::Events::Rule` XE
    (target id `XELambdaTarget`) and `AWS::Lambda::Permission` `XEPermission` for
    events.amazonaws.com with the rule's ARN; `AWS::Serverless::StateMachine` S ->
    `AWS::StepFunctions::StateMachine` S and `SRole`; its `Schedule` event E -> rule SE
    (target id `SEStepFunctionsTarget`, role `SERole`). Generated resources keep their
    parent's Condition. Function properties get `Globals.Function`."""
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    out: dict[str, dict] = {}
    for logical, res in (template.get("Resources") or {}).items():
        kind = res.get("Type")
        attrs = {k: res[k] for k in ("Condition", "DependsOn") if k in res}
        props = res.get("Properties") or {}
        if kind == "AWS::Serverless::Function":
            fprops = _merge_globals(globals_fn, props)
            events = fprops.pop("Events", None) or {}
            out[logical] = {"Type": "AWS::Lambda::Function", "Properties": fprops, "Metadata": res.get("Metadata") or {}, "Sam": kind, **attrs}
            out[logical + "Role"] = _generated_role(kind, attrs)
            for event_id, rule_id, etype, ep in _rule_events(out, logical, events, kind, attrs):
                rule: dict[str, Any] = {}
                if etype == "Schedule":
                    rule["ScheduleExpression"] = ep.get("Schedule")
                    if ep.get("Name") is not None:
                        rule["Name"] = ep["Name"]
                    if ep.get("Description") is not None:
                        rule["Description"] = ep["Description"]
                    target_id = _target_id(rule_id, "LambdaTarget")
                else:
                    if ep.get("Pattern") is not None:
                        rule["EventPattern"] = ep["Pattern"]
                    if ep.get("EventBusName") is not None:
                        rule["EventBusName"] = ep["EventBusName"]
                    if ep.get("RuleName") is not None:
                        rule["Name"] = ep["RuleName"]
                    target_id = (ep.get("Target") or {}).get("Id") or _target_id(rule_id, "LambdaTarget")
                if ep.get("State") is not None and ep.get("Enabled") is not None:
                    raise StackError(f"Event {event_id} of {logical}: State and Enabled Properties cannot both be specified.")
                _set_rule_state(rule, ep)
                target: dict[str, Any] = {"Arn": {"Fn::GetAtt": [logical, "Arn"]}, "Id": target_id}
                _copy_set(target, ep, ("Input", "InputPath", "InputTransformer", "RetryPolicy"))
                rule["Targets"] = [target]
                out[rule_id] = {"Type": "AWS::Events::Rule", "Properties": rule, "Sam": kind, **attrs}
                out[rule_id + "Permission"] = {
                    "Type": "AWS::Lambda::Permission",
                    "Properties": {
                        "Action": "lambda:InvokeFunction",
                        "FunctionName": {"Ref": logical},
                        "Principal": "events.amazonaws.com",
                        "SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]},
                    },
                    "Sam": kind,
                    **attrs,
                }
        elif kind == "AWS::Serverless::StateMachine":
            sprops = copy.deepcopy(props)
            events = sprops.pop("Events", None) or {}
            out[logical] = {"Type": "AWS::StepFunctions::StateMachine", "Properties": sprops, "Sam": kind, **attrs}
            out[logical + "Role"] = _generated_role(kind, attrs)
            for event_id, rule_id, etype, ep in _rule_events(out, logical, events, kind, attrs):
                rule = {}
                if etype == "Schedule":
                    rule["ScheduleExpression"] = ep.get("Schedule")
                elif ep.get("Pattern") is not None:
                    rule["EventPattern"] = ep["Pattern"]
                for src, dst in (("Name", "Name"), ("RuleName", "Name"), ("Description", "Description"), ("EventBusName", "EventBusName")):
                    if ep.get(src) is not None:
                        rule[dst] = ep[src]
                _set_rule_state(rule, ep)
                role = ep.get("RoleArn")
                if role is None:
                    out[rule_id + "Role"] = _generated_role(kind, attrs)
                    role = {"Fn::GetAtt": [rule_id + "Role", "Arn"]}
                target = {
                    "Arn": {"Ref": logical},
                    "Id": (ep.get("Target") or {}).get("Id") or _target_id(rule_id, "StepFunctionsTarget"),
                    "RoleArn": role,
                }
                _copy_set(target, ep, ("Input", "InputPath", "RetryPolicy"))
                rule["Targets"] = [target]
                out[rule_id] = {"Type": "AWS::Events::Rule", "Properties": rule, "Sam": kind, **attrs}
        else:
            out[logical] = copy.deepcopy(res)
    return out


# ---------------------------------------------------------------- names and attributes


def generated_name(stack: str, logical: str, region: str, max_len: int = 64, lower: bool = False) -> str:
    """A name CloudFormation generates for a resource without one ("Name type",
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-name.html:
    e.g. `stack123123123123-s3bucket-abcdefghijk1`): <stack>-<logical id>-<suffix>.
    The suffix is deterministic here (a hash of stack, Region and logical id)."""
    suffix = hashlib.sha256(f"{stack}|{region}|{logical}".encode()).hexdigest()[:12].upper()
    head = f"{stack}-{logical}"[: max_len - len(suffix) - 1]
    name = f"{head}-{suffix}"
    return name.lower() if lower else name


def identify(kind: str, logical: str, props: dict, ctx: Context) -> tuple[Any, dict[str, Any]]:
    """(Ref value, Fn::GetAtt attributes) of a resource, by each type's "Return values"
    in the CloudFormation resource reference and SAM's (a serverless function's Ref is
    its name, a state machine's Ref its ARN). Health checks are known only once created."""
    region, account, stack = ctx.region, ctx.account, ctx.stack_name
    if kind == "AWS::Lambda::Function":
        name = props.get("FunctionName") or generated_name(stack, logical, region)
        return name, {"Arn": f"arn:aws:lambda:{region}:{account}:function:{name}"}
    if kind == "AWS::StepFunctions::StateMachine":
        name = props.get("Name") or props.get("StateMachineName") or generated_name(stack, logical, region, 80)
        arn = f"arn:aws:states:{region}:{account}:stateMachine:{name}"
        return arn, {"Arn": arn, "Name": name}
    if kind in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
        name = props.get("AlarmName") or generated_name(stack, logical, region, 255)
        return name, {"Arn": f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"}
    if kind == "AWS::Events::Rule":
        name = props.get("Name") or generated_name(stack, logical, region)
        bus = props.get("EventBusName")
        arn = f"arn:aws:events:{region}:{account}:rule/{name}" if not bus or bus == "default" else f"arn:aws:events:{region}:{account}:rule/{bus}/{name}"
        return (name if not bus or bus == "default" else f"{bus}|{name}"), {"Arn": arn}
    if kind == "AWS::IAM::Role":
        name = props.get("RoleName") or generated_name(stack, logical, region)
        return name, {"Arn": f"arn:aws:iam::{account}:role/{name}", "RoleId": "AROA" + hashlib.sha256(name.encode()).hexdigest()[:17].upper()}
    if kind == "AWS::S3::Bucket":
        name = props.get("BucketName") or generated_name(stack, logical, region, 63, lower=True)
        return name, {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com", "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com"}
    if kind in ("AWS::DynamoDB::GlobalTable", "AWS::DynamoDB::Table"):
        name = props.get("TableName") or generated_name(stack, logical, region, 255)
        return name, {"Arn": f"arn:aws:dynamodb:{region}:{account}:table/{name}"}
    if kind == "AWS::CloudWatch::Dashboard":
        return props.get("DashboardName") or generated_name(stack, logical, region, 255), {}
    if kind == "AWS::Lambda::Permission":
        return generated_name(stack, logical, region), {}
    if kind == "AWS::SNS::Topic":
        # Ref returns the topic's ARN; Fn::GetAtt TopicArn and TopicName ("AWS::SNS::Topic",
        # CloudFormation User Guide, Return values,
        # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-sns-topic.html).
        name = props.get("TopicName") or generated_name(stack, logical, region, 256)
        arn = f"arn:aws:sns:{region}:{account}:{name}"
        return arn, {"TopicArn": arn, "TopicName": name, "Arn": arn}
    return generated_name(stack, logical, region), {}


DEPLOYED = {
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::CompositeAlarm",
    "AWS::Route53::HealthCheck",
    "AWS::Lambda::Permission",
    "AWS::Events::Rule",
    "AWS::SNS::Topic",
}

SKIP_REASONS = {
    "AWS::Lambda::Function": "runs under cargo lambda watch (the harness starts it); name and timeout registered in the twin",
    "AWS::StepFunctions::StateMachine": "created by the harness from the same statemachines/*.asl.json files",
    "AWS::DynamoDB::GlobalTable": "created by the harness (moto ignores global-table replicas)",
    "AWS::DynamoDB::Table": "created by the harness",
    "AWS::IAM::Role": "IAM is not emulated (moto does not enforce policies)",
    "AWS::S3::Bucket": "created by the harness when a test needs it",
    "AWS::CloudWatch::Dashboard": "dashboards have no behaviour to emulate",
}


def order(resources: dict[str, dict], active: set[str]) -> list[str]:
    """Active resources in dependency order (Ref, Fn::GetAtt, Fn::Sub, DependsOn); a cycle
    is refused, as CloudFormation does. CloudFormation creates resources that do not
    depend on each other in parallel, in no documented order; the twin takes them in
    template order (and `warnings` names the ones that refer to each other by name
    only, which CloudFormation could create in either order)."""
    deps: dict[str, set[str]] = {}
    for logical in active:
        res = resources[logical]
        found = references(res.get("Properties") or {})
        depends = res.get("DependsOn") or []
        found |= set([depends] if isinstance(depends, str) else depends)
        deps[logical] = {d for d in found if d in active and d != logical}
    position = {logical: i for i, logical in enumerate(resources)}
    done: list[str] = []
    placed: set[str] = set()
    pending = set(active)
    while pending:
        ready = sorted((r for r in pending if deps[r] <= placed), key=position.__getitem__)
        if not ready:
            raise StackError(f"Template error: circular dependency between resources {sorted(pending)}")
        for r in ready:
            done.append(r)
            placed.add(r)
            pending.discard(r)
    return done


def plan(template: dict, region: str, stack_name: str, parameters: dict | None) -> tuple[Context, dict[str, dict], list[str]]:
    """Everything before any I/O: parameters, Rules, conditions, the SAM expansion, the
    active resources (Condition true) in deploy order. Raises StackError as
    CloudFormation would refuse the stack."""
    values = resolve_parameters(template, parameters)
    ctx = Context(template, region, stack_name, values)
    check_rules(ctx)
    evaluate_conditions(ctx)
    resources = sam_expand(template)
    for logical, res in resources.items():
        ctx.resource_types[logical] = res["Type"]
    active = set()
    for logical, res in resources.items():
        cond = res.get("Condition")
        if cond is None or ctx.condition(cond):
            active.add(logical)
    return ctx, resources, order(resources, active)


def name_only_dependencies(resources: dict[str, dict], deployed: dict[str, dict], region: str) -> list[str]:
    """Health checks of this stack whose AlarmIdentifier names an alarm this same stack
    creates, without a Ref/GetAtt/DependsOn to it: CloudFormation may create them in
    parallel, and the health check can come first (CreateHealthCheck needs its alarm)."""
    alarms = {(region, e["physical_id"]): logical for logical, e in deployed.items() if e["type"] == "AWS::CloudWatch::Alarm"}
    out = []
    for logical, entry in deployed.items():
        if entry["type"] != "AWS::Route53::HealthCheck":
            continue
        alarm_id = (entry["properties"].get("HealthCheckConfig") or {}).get("AlarmIdentifier") or {}
        alarm = alarms.get((alarm_id.get("Region"), alarm_id.get("Name")))
        if alarm is None:
            continue
        res = resources[logical]
        depends = res.get("DependsOn") or []
        deps = references(res.get("Properties") or {}) | set([depends] if isinstance(depends, str) else depends)
        if alarm not in deps:
            out.append(f"{logical} names alarm {alarm_id['Name']} ({alarm} of this stack) without depending on it: CloudFormation may create {logical} first, before the alarm exists")
    return out


# ---------------------------------------------------------------- API shapes

ALARM_INT = {"Period", "EvaluationPeriods", "DatapointsToAlarm"}
ALARM_FLOAT = {"Threshold"}
ALARM_BOOL = {"ActionsEnabled"}
ALARM_LISTS = ("AlarmActions", "OKActions", "InsufficientDataActions")
HC_INT = {"Port", "RequestInterval", "FailureThreshold", "HealthThreshold"}
HC_BOOL = {"MeasureLatency", "Inverted", "Disabled", "EnableSNI"}


def _bool(value: Any) -> bool:
    return value in (True, "true", "True")


def alarm_request(props: dict) -> dict:
    """PutMetricAlarm parameters from AWS::CloudWatch::Alarm properties (the same names;
    numbers and booleans typed, since CloudFormation parameters arrive as strings)."""
    req: dict[str, Any] = {}
    for key, value in props.items():
        if key in ALARM_INT:
            value = int(float(value))
        elif key in ALARM_FLOAT:
            value = float(value)
        elif key in ALARM_BOOL:
            value = _bool(value)
        elif key == "Metrics":
            value = [_metric_query(q) for q in value]
        req[key] = value
    return req


def _metric_query(q: dict) -> dict:
    q = copy.deepcopy(q)
    if "Period" in q:
        q["Period"] = int(float(q["Period"]))
    if "ReturnData" in q:
        q["ReturnData"] = _bool(q["ReturnData"])
    if "MetricStat" in q and "Period" in q["MetricStat"]:
        q["MetricStat"]["Period"] = int(float(q["MetricStat"]["Period"]))
    return q


def health_check_config(props: dict) -> dict:
    """CreateHealthCheck's HealthCheckConfig from the resource's HealthCheckConfig."""
    config = {}
    for key, value in (props.get("HealthCheckConfig") or {}).items():
        if key in HC_INT:
            value = int(float(value))
        elif key in HC_BOOL:
            value = _bool(value)
        config[key] = value
    return config


def same(template: Any, live: Any) -> bool:
    """Whether a live value matches the template's: numbers by value, booleans against
    "true"/"false", maps by the template's keys, lists member by member."""
    if isinstance(template, dict):
        return isinstance(live, dict) and all(same(v, live.get(k)) for k, v in template.items())
    if isinstance(template, list):
        return isinstance(live, list) and len(template) == len(live) and all(same(a, b) for a, b in zip(template, live))
    if isinstance(template, bool) or isinstance(live, bool):
        return _scalar(template).lower() == _scalar(live).lower()
    if isinstance(template, (int, float)) or isinstance(live, (int, float)):
        try:
            return float(template) == float(live)
        except (TypeError, ValueError):
            return False
    return template == live


def _dims(value: Any) -> Any:
    return sorted(value, key=lambda d: (d.get("Name", ""), str(d.get("Value", "")))) if isinstance(value, list) else value


# ---------------------------------------------------------------- the deployer


class Deployer:
    """Deployed stacks of one twin, keyed by (Region, stack name)."""

    def __init__(self, twin: core.Twin) -> None:
        self.twin = twin
        self.stacks: dict[tuple[str, str], dict] = {}
        self.lock = threading.Lock()

    # -------------------------------------------------------------- deploy
    def deploy(self, body: dict) -> dict:
        region = body.get("region")
        if not region:
            raise StackError("stack: {region, template?, stack_name?, parameters?, overrides?}")
        name = body.get("stack_name") or DEFAULT_STACK
        template_path = body.get("template")
        template = load_template(template_path)
        ctx, resources, deploy_order = plan(template, region, name, body.get("parameters"))
        overrides = body.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise StackError("overrides: {LogicalId: {Property: value}}")
        for logical in overrides:
            if logical not in deploy_order:
                raise StackError(f"override names {logical}, which this stack does not have (resources: {sorted(deploy_order)})")

        with self.lock:
            previous = self.stacks.get((region, name), {"resources": {}})
            state = {
                "stack": name,
                "region": region,
                "template": str(template_path or DEFAULT_TEMPLATE),
                "parameters": ctx.parameters,
                "conditions": ctx.conditions,
                "resources": {},
                "skipped": {},
                "overrides": [],
                "functions": {},
            }
            # A dry run first (placeholder health-check ids), so a refused stack (a bad
            # override, an unresolvable reference) changes nothing; then each resource is
            # resolved and deployed in order, as CloudFormation does.
            self._resolve_all(ctx, resources, deploy_order, overrides, previous, state)
            for row in state["overrides"]:
                self.twin.timeline.record(
                    "stack.override",
                    f"local override {row['resource']}.{row['property']} = {json.dumps(row['value'])} (template: {json.dumps(row['template'])})",
                    stack=name, region=region, **{k: row[k] for k in ("resource", "property")},
                )
            state["overrides"] = []
            ctx.physical, ctx.attributes = {}, {}
            for logical in deploy_order:
                kind = resources[logical]["Type"]
                props = self._resolve_one(ctx, logical, resources[logical], overrides, state)
                old = previous["resources"].get(logical)
                created = False
                if kind == "AWS::Route53::HealthCheck":
                    if old and old["type"] == kind:
                        physical = old["physical_id"]
                    else:
                        try:
                            physical, created = self._create_health_check(name, region, logical, props), True
                        except ClientError as error:
                            self._failed(state, previous, name, region, logical, kind, error)
                    attrs: dict[str, Any] = {"HealthCheckId": physical}
                else:
                    physical, attrs = identify(kind, logical, props, ctx)
                ctx.physical[logical], ctx.attributes[logical] = physical, attrs
                entry = {"type": kind, "physical_id": physical, "arn": attrs.get("Arn"), "properties": props}
                if kind == "AWS::Lambda::Function":
                    self._register_function(state, resources[logical], props, physical)
                if kind in DEPLOYED:
                    try:
                        self._apply(name, region, logical, kind, props, entry, old, created)
                    except ClientError as error:
                        self._failed(state, previous, name, region, logical, kind, error)
                    state["resources"][logical] = entry
                    ctx.physical[logical] = entry["physical_id"]
                else:
                    state["skipped"][logical] = f"{kind}: {SKIP_REASONS.get(kind, 'not emulated by the twin')}"
            state["warnings"] = name_only_dependencies(resources, state["resources"], region)
            for warning in state["warnings"]:
                self.twin.timeline.record("stack.warning", f"stack {name} in {region}: {warning}", stack=name, region=region)
            outputs = {}
            for key, out in (template.get("Outputs") or {}).items():
                if out.get("Condition") and not ctx.condition(out["Condition"]):
                    continue
                try:
                    outputs[key] = resolve(out.get("Value"), ctx)
                except StackError as error:
                    outputs[key] = f"unresolved: {error}"
            state["outputs"] = outputs
            for logical, old in previous["resources"].items():
                if logical not in state["resources"]:
                    self._delete(name, region, logical, old)
            self.stacks[(region, name)] = state
        self.twin.timeline.record(
            "stack.deploy",
            f"stack {name} in {region}: {len(state['resources'])} resources deployed, {len(state['skipped'])} skipped, {len(state['overrides'])} overrides",
            stack=name, region=region,
        )
        return self.summary(state)

    def _failed(self, state: dict, previous: dict, name: str, region: str, logical: str, kind: str, error: ClientError) -> None:
        """A resource AWS refused: CloudFormation would roll back; the twin keeps what it
        made (so a corrected deploy updates it in place) and refuses the stack (400)."""
        kept = {k: v for k, v in previous["resources"].items() if k not in state["resources"]}
        self.stacks[(region, name)] = {**state, "resources": {**kept, **state["resources"]}}
        self.twin.timeline.record("stack.failed", f"stack {name} in {region}: {logical} ({kind}) CREATE_FAILED: {error}", stack=name, region=region, resource=logical)
        raise StackError(f"{logical} ({kind}): CREATE_FAILED: {error}") from error

    def _resolve_one(self, ctx: Context, logical: str, res: dict, overrides: dict, state: dict) -> dict:
        """One resource's properties resolved, its overrides applied (and listed)."""
        props = resolve(res.get("Properties") or {}, ctx)
        for prop, value in (overrides.get(logical) or {}).items():
            if prop not in props:
                raise StackError(f"override {logical}.{prop}: the resolved template has no property {prop} on {logical} (properties: {sorted(props)})")
            state["overrides"].append({"resource": logical, "property": prop, "value": value, "template": props[prop]})
            props[prop] = value
        return props

    def _resolve_all(self, ctx: Context, resources: dict, deploy_order: list, overrides: dict, previous: dict, state: dict) -> None:
        """The dry run: every active resource resolved in order, health checks not yet
        created standing in with a placeholder id."""
        for logical in deploy_order:
            res = resources[logical]
            props = self._resolve_one(ctx, logical, res, overrides, state)
            if res["Type"] == "AWS::Route53::HealthCheck":
                old = previous["resources"].get(logical)
                physical = old["physical_id"] if old else f"pending-{logical}"
                ctx.physical[logical], ctx.attributes[logical] = physical, {"HealthCheckId": physical}
            else:
                ctx.physical[logical], ctx.attributes[logical] = identify(res["Type"], logical, props, ctx)

    def summary(self, state: dict) -> dict:
        return {
            "stack": state["stack"],
            "region": state["region"],
            "resources": {k: {"type": v["type"], "physical_id": v["physical_id"], "arn": v["arn"]} for k, v in state["resources"].items()},
            "skipped": state["skipped"],
            "overrides": state["overrides"],
            "functions": state["functions"],
            "outputs": state.get("outputs", {}),
            "warnings": state.get("warnings", []),
            "conditions": state["conditions"],
        }

    def _register_function(self, state: dict, res: dict, props: dict, name: str) -> None:
        """A deployed function's name -> its binary (Metadata.BuildProperties.Binary), and
        the binary's timeout (Timeout, from Globals too; Lambda's default is 3 s)."""
        binary = ((res.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary") or name
        self.twin.functions[name] = binary
        self.twin.function_timeouts[binary] = float(props.get("Timeout", 3))
        state["functions"][name] = binary

    # -------------------------------------------------------------- per type
    def _apply(self, stack: str, region: str, logical: str, kind: str, props: dict, entry: dict, old: dict | None, created: bool) -> None:
        if old and old["type"] != kind:
            self._delete(stack, region, logical, old)
            old = None
        changed = old is None or old["properties"] != props or old["physical_id"] != entry["physical_id"]
        if kind == "AWS::CloudWatch::Alarm":
            if old and old["physical_id"] != entry["physical_id"]:
                self._delete(stack, region, logical, old)
            if changed or not self._alarm_exists(region, entry["physical_id"]):
                self.twin.client("cloudwatch", region).put_metric_alarm(**alarm_request(props))
        elif kind == "AWS::CloudWatch::CompositeAlarm":
            if old and old["physical_id"] != entry["physical_id"]:
                self._delete(stack, region, logical, old)
            if changed:
                req = {k: (_bool(v) if k == "ActionsEnabled" else v) for k, v in props.items()}
                self.twin.client("cloudwatch", region).put_composite_alarm(**req)
        elif kind == "AWS::Route53::HealthCheck":
            if not created and old and old["properties"] != props:
                self._update_health_check(stack, region, logical, props, entry, old)
            if created or changed:
                self._tag_health_check(entry["physical_id"], props, old)
        elif kind == "AWS::Events::Rule":
            if old and old["physical_id"] != entry["physical_id"]:
                self._delete(stack, region, logical, old)
            if changed:
                self._put_rule(region, entry["physical_id"], props, old)
        elif kind == "AWS::SNS::Topic":
            if old and old["physical_id"] != entry["physical_id"]:
                self._delete(stack, region, logical, old)
            # CreateTopic is idempotent for the same name and attributes; the display name
            # and key are kept as attributes (the twin does not encrypt).
            attributes = {k: str(props[k]) for k in ("DisplayName", "KmsMasterKeyId") if k in props}
            name = entry["physical_id"].rsplit(":", 1)[-1]
            self.twin.client("sns", region).create_topic(Name=name, Attributes=attributes)
        elif kind == "AWS::Lambda::Permission":
            statement = {
                "function": props.get("FunctionName"),
                "principal": props.get("Principal"),
                "source_arn": props.get("SourceArn"),
                "source_account": props.get("SourceAccount"),
            }
            if old and old.get("statement") in self.twin.permissions and old["statement"] != statement:
                self.twin.permissions.remove(old["statement"])
            if statement not in self.twin.permissions:
                self.twin.permissions.append(statement)
                self.twin.timeline.record("lambda.permission", f"{statement['principal']} may invoke {statement['function']}" + (f" for {statement['source_arn']}" if statement["source_arn"] else ""), stack=stack, resource=logical)
            entry["statement"] = statement
        if changed:
            self.twin.timeline.record("stack.resource", f"{'updated' if old else 'created'} {kind} {logical} ({entry['physical_id']}) in stack {stack} {region}", stack=stack, region=region, resource=logical)

    def _alarm_exists(self, region: str, name: str) -> bool:
        found = self.twin.client("cloudwatch", region).describe_alarms(AlarmNames=[name])
        return bool(found.get("MetricAlarms") or found.get("CompositeAlarms"))

    def _create_health_check(self, stack: str, region: str, logical: str, props: dict) -> str:
        """CreateHealthCheck with the whole HealthCheckConfig and a caller reference unique
        per stack resource. Route 53 is global: its control plane answers in us-east-1."""
        reference = f"{stack}-{region}-{logical}-{hashlib.sha256(json.dumps(props, sort_keys=True, default=str).encode()).hexdigest()[:12]}"
        client = self.twin.client("route53", "us-east-1")
        answer = client.create_health_check(CallerReference=reference[:64], HealthCheckConfig=health_check_config(props))
        return answer["HealthCheck"]["Id"]

    def _update_health_check(self, stack: str, region: str, logical: str, props: dict, entry: dict, old: dict) -> None:
        """A changed health check: UpdateHealthCheck for what it can change; a new Type,
        RequestInterval or MeasureLatency (not updatable) replaces it."""
        new, was = health_check_config(props), health_check_config(old["properties"])
        if any(new.get(k) != was.get(k) for k in ("Type", "RequestInterval", "MeasureLatency")):
            self.twin.client("route53", "us-east-1").delete_health_check(HealthCheckId=old["physical_id"])
            entry["physical_id"] = self._create_health_check(stack, region, logical, props)
            return
        update = {k: v for k, v in new.items() if k not in ("Type", "RequestInterval", "MeasureLatency", "RoutingControlArn")}
        self.twin.client("route53", "us-east-1").update_health_check(HealthCheckId=old["physical_id"], **update)

    def _tag_health_check(self, health_check_id: str, props: dict, old: dict | None) -> None:
        tags = [{"Key": t["Key"], "Value": str(t["Value"])} for t in props.get("HealthCheckTags") or []]
        gone = [t["Key"] for t in ((old or {}).get("properties", {}).get("HealthCheckTags") or []) if t["Key"] not in {x["Key"] for x in tags}]
        request: dict[str, Any] = {"ResourceType": "healthcheck", "ResourceId": health_check_id}
        if tags:
            request["AddTags"] = tags
        if gone:
            request["RemoveTagKeys"] = gone
        if tags or gone:
            self.twin.client("route53", "us-east-1").change_tags_for_resource(**request)

    def _put_rule(self, region: str, name: str, props: dict, old: dict | None) -> None:
        client = self.twin.client("events", region)
        request: dict[str, Any] = {"Name": name}
        if "ScheduleExpression" in props:
            request["ScheduleExpression"] = props["ScheduleExpression"]
        if "EventPattern" in props:
            pattern = props["EventPattern"]
            request["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        for key in ("State", "Description", "RoleArn", "EventBusName"):
            if key in props:
                request[key] = props[key]
        client.put_rule(**request)
        targets = [{k: v for k, v in t.items()} for t in props.get("Targets") or []]
        rule_ref = {"Rule": name} if "EventBusName" not in props else {"Rule": name, "EventBusName": props["EventBusName"]}
        old_ids = {t["Id"] for t in ((old or {}).get("properties", {}).get("Targets") or [])}
        stale = sorted(old_ids - {t["Id"] for t in targets})
        if stale:
            client.remove_targets(Ids=stale, **rule_ref)
        if targets:
            client.put_targets(Targets=targets, **rule_ref)

    def _delete(self, stack: str, region: str, logical: str, old: dict) -> None:
        """Deletes a resource the template no longer has (or whose Condition became false)."""
        kind, physical = old["type"], old["physical_id"]
        if kind in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
            self.twin.client("cloudwatch", region).delete_alarms(AlarmNames=[physical])
        elif kind == "AWS::Route53::HealthCheck":
            self.twin.client("route53", "us-east-1").delete_health_check(HealthCheckId=physical)
        elif kind == "AWS::Events::Rule":
            client = self.twin.client("events", region)
            ids = [t["Id"] for t in old["properties"].get("Targets") or []]
            if ids:
                client.remove_targets(Rule=physical, Ids=ids)
            client.delete_rule(Name=physical)
        elif kind == "AWS::SNS::Topic":
            self.twin.client("sns", region).delete_topic(TopicArn=physical)
        elif kind == "AWS::Lambda::Permission":
            if old.get("statement") in self.twin.permissions:
                self.twin.permissions.remove(old["statement"])
        self.twin.timeline.record("stack.resource", f"deleted {kind} {logical} ({physical}) from stack {stack} {region}", stack=stack, region=region, resource=logical)

    def delete_stack(self, region: str, name: str) -> dict:
        with self.lock:
            state = self.stacks.pop((region, name), None)
            if state is None:
                raise StackError(f"Stack with id {name} does not exist in {region}")
            for logical, old in state["resources"].items():
                self._delete(name, region, logical, old)
        return {"deleted": name, "region": region}

    # -------------------------------------------------------------- drift
    def drift(self, region: str, name: str) -> list[dict]:
        """Live configuration vs the resolved template plus overrides, property by
        property: [{"resource", "property", "template", "live"}]."""
        state = self.stacks.get((region, name))
        if state is None:
            raise StackError(f"Stack with id {name} does not exist in {region}")
        rows: list[dict] = []
        for logical, entry in state["resources"].items():
            checker: Callable | None = getattr(self, "_drift_" + entry["type"].split("::")[-1].lower(), None)
            if checker:
                checker(region, logical, entry, rows)
        return rows

    @staticmethod
    def _row(rows: list, logical: str, prop: str, template: Any, live: Any) -> None:
        rows.append({"resource": logical, "property": prop, "template": template, "live": live})

    def _drift_topic(self, region: str, logical: str, entry: dict, rows: list) -> None:
        try:
            live = self.twin.client("sns", region).get_topic_attributes(TopicArn=entry["physical_id"])["Attributes"]
        except ClientError:
            self._row(rows, logical, "(resource)", entry["physical_id"], None)
            return
        for key in ("DisplayName",):
            want = entry["properties"].get(key)
            if want is not None and live.get(key) != str(want):
                self._row(rows, logical, key, want, live.get(key))

    def _drift_alarm(self, region: str, logical: str, entry: dict, rows: list) -> None:
        found = self.twin.client("cloudwatch", region).describe_alarms(AlarmNames=[entry["physical_id"]]).get("MetricAlarms") or []
        if not found:
            self._row(rows, logical, "(resource)", entry["physical_id"], None)
            return
        live = found[0]
        want = alarm_request(entry["properties"])
        for key in ALARM_LISTS:
            want.setdefault(key, [])
        for key, value in want.items():
            if key == "Tags":
                continue
            have = live.get(key)
            if key in ALARM_LISTS:
                have = have or []
            if key == "Dimensions":
                value, have = _dims(value), _dims(have or [])
            if not same(value, have):
                self._row(rows, logical, key, value, have)

    def _drift_compositealarm(self, region: str, logical: str, entry: dict, rows: list) -> None:
        found = self.twin.client("cloudwatch", region).describe_alarms(AlarmNames=[entry["physical_id"]], AlarmTypes=["CompositeAlarm"]).get("CompositeAlarms") or []
        if not found:
            self._row(rows, logical, "(resource)", entry["physical_id"], None)
            return
        for key, value in entry["properties"].items():
            if key != "Tags" and not same(value, found[0].get(key)):
                self._row(rows, logical, key, value, found[0].get(key))

    def _drift_healthcheck(self, region: str, logical: str, entry: dict, rows: list) -> None:
        client = self.twin.client("route53", "us-east-1")
        try:
            live = client.get_health_check(HealthCheckId=entry["physical_id"])["HealthCheck"]
        except client.exceptions.NoSuchHealthCheck:
            self._row(rows, logical, "(resource)", entry["physical_id"], None)
            return
        have = live.get("HealthCheckConfig") or {}
        for key, value in health_check_config(entry["properties"]).items():
            if not same(value, have.get(key)):
                self._row(rows, logical, f"HealthCheckConfig.{key}", value, have.get(key))
        want_tags = {t["Key"]: str(t["Value"]) for t in entry["properties"].get("HealthCheckTags") or []}
        if want_tags:
            tags = client.list_tags_for_resource(ResourceType="healthcheck", ResourceId=entry["physical_id"])["ResourceTagSet"].get("Tags") or []
            have_tags = {t["Key"]: t.get("Value") for t in tags}
            for key, value in want_tags.items():
                if have_tags.get(key) != value:
                    self._row(rows, logical, f"HealthCheckTags.{key}", value, have_tags.get(key))

    def _drift_rule(self, region: str, logical: str, entry: dict, rows: list) -> None:
        client = self.twin.client("events", region)
        props = entry["properties"]
        try:
            live = client.describe_rule(Name=entry["physical_id"])
        except client.exceptions.ResourceNotFoundException:
            self._row(rows, logical, "(resource)", entry["physical_id"], None)
            return
        for key in ("ScheduleExpression", "State", "Description", "RoleArn"):
            if key in props and not same(props[key], live.get(key)):
                self._row(rows, logical, key, props[key], live.get(key))
        if "EventPattern" in props:
            want = props["EventPattern"] if not isinstance(props["EventPattern"], str) else json.loads(props["EventPattern"])
            have = json.loads(live["EventPattern"]) if live.get("EventPattern") else None
            if want != have:
                self._row(rows, logical, "EventPattern", want, have)
        targets = client.list_targets_by_rule(Rule=entry["physical_id"]).get("Targets") or []
        by_id = {t["Id"]: t for t in targets}
        for target in props.get("Targets") or []:
            have_t = by_id.pop(target["Id"], None)
            if have_t is None:
                self._row(rows, logical, f"Targets.{target['Id']}", target, None)
                continue
            for key, value in target.items():
                if not same(value, have_t.get(key)):
                    self._row(rows, logical, f"Targets.{target['Id']}.{key}", value, have_t.get(key))
        for extra_id, extra in by_id.items():
            self._row(rows, logical, f"Targets.{extra_id}", None, extra)

    def _drift_permission(self, region: str, logical: str, entry: dict, rows: list) -> None:
        if entry.get("statement") not in self.twin.permissions:
            self._row(rows, logical, "(statement)", entry.get("statement"), None)


# ---------------------------------------------------------------- controls


def install(twin: core.Twin) -> None:
    deployer = Deployer(twin)
    twin.stacks = deployer  # type: ignore[attr-defined]

    @twin.control("stack")
    def stack(method: str, body: Any, query: dict) -> tuple:
        try:
            if method == "POST":
                if not isinstance(body, dict):
                    raise StackError("stack: {region, template?, stack_name?, parameters?, overrides?}")
                return 200, deployer.deploy(body)
            if method == "DELETE":
                return 200, deployer.delete_stack(query.get("region", ""), query.get("stack") or DEFAULT_STACK)
        except StackError as error:
            return 400, {"error": str(error)}
        return 200, {"stacks": [deployer.summary(s) for s in deployer.stacks.values()]}

    @twin.control("stack/drift")
    def drift(method: str, body: Any, query: dict) -> tuple:
        try:
            region = query.get("region") or ""
            name = query.get("stack") or DEFAULT_STACK
            return 200, {"stack": name, "region": region, "drift": deployer.drift(region, name)}
        except StackError as error:
            return 400, {"error": str(error)}
