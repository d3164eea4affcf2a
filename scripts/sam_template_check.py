"""Transforms template.yaml with the SAM translator, offline, and checks the IAM of the
result: what SAM's policy templates and event sources really grant, which cfn-lint (it
validates the SAM template itself) and the tests (they read template.yaml) do not see.

Run by scripts/sam-check with the SAM CLI's venv:  python sam_template_check.py TEMPLATE OUT
Writes the transformed template (JSON) to OUT and fails, naming each statement, on:
  - an Action "*" or "<service>:*" anywhere;
  - a Resource "*" for an action that has resource-level permissions (only the actions in
    NO_RESOURCE_LEVEL may use "*", and PutMetricData only under a cloudwatch:namespace
    condition);
  - a managed policy other than the two SAM attaches itself (logs, X-Ray).
"""

import json
import os
import sys
from pathlib import Path

# The translator fills pseudo parameters (AWS::Region) from a boto session: any Region
# will do offline; no credentials are read.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

# Actions AWS authorizes on "*" only (Service Authorization Reference: no resource type).
NO_RESOURCE_LEVEL = {
    "cloudwatch:PutMetricData",  # narrowed by the cloudwatch:namespace condition
    "cloudwatch:GetMetricData",
    # No resource type in the Service Authorization Reference:
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2autoscaling.html
    "autoscaling:DescribeAutoScalingGroups",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
}
# Attached by SAM itself: logs of the function (its own log group) and X-Ray (Tracing).
MANAGED_OK = ("AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess", "AWSXRayDaemonWriteAccess")


class NoManagedPolicies:
    """Offline: the template names no managed policy, so there is nothing to look up."""

    def load(self):
        return {}


def listify(v):
    return v if isinstance(v, list) else [v]


def branches(v):
    """A value or both branches of an Fn::If (conditions are not evaluated here)."""
    if isinstance(v, dict) and list(v) == ["Fn::If"]:
        _, a, b = v["Fn::If"]
        return branches(a) + branches(b)
    if isinstance(v, dict) and list(v) == ["Ref"] and v["Ref"] == "AWS::NoValue":
        return []
    return [v]


def statements(role):
    props = role.get("Properties", {})
    for policy in props.get("Policies", []):
        for p in branches(policy):
            for doc in branches(p.get("PolicyDocument", {})):
                for st in listify(doc.get("Statement", [])):
                    for s in branches(st):
                        yield p.get("PolicyName", "?"), s


def check(template):
    problems = []
    roles = 0
    for name, res in template["Resources"].items():
        if res.get("Type") != "AWS::IAM::Role":
            continue
        roles += 1
        for arn in res.get("Properties", {}).get("ManagedPolicyArns", []):
            text = json.dumps(arn)
            if not any(ok in text for ok in MANAGED_OK):
                problems.append(f"{name}: managed policy {text}")
        for policy, st in statements(res):
            if st.get("Effect") != "Allow":
                continue
            sid = st.get("Sid", "")
            where = f"{name}/{policy}{'/' + sid if sid else ''}"
            actions = [a for a in listify(st.get("Action", [])) if isinstance(a, str)]
            resources = listify(st.get("Resource", []))
            for a in actions:
                if a == "*" or a.endswith(":*"):
                    problems.append(f"{where}: wildcard action {a}")
            if "*" in resources:
                for a in actions:
                    if a not in NO_RESOURCE_LEVEL:
                        problems.append(f"{where}: {a} on Resource \"*\" (it has resource-level permissions)")
                    if a == "cloudwatch:PutMetricData":
                        cond = json.dumps(st.get("Condition", {}))
                        if "cloudwatch:namespace" not in cond:
                            problems.append(f"{where}: PutMetricData on \"*\" without a cloudwatch:namespace condition")
    if roles == 0:
        problems.append("no AWS::IAM::Role in the transformed template: nothing was checked")
    return roles, problems


def main():
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    template = yaml_parse(source.read_text())
    base = source.parent
    # What `sam validate` does too: local code and definition paths become placeholders
    # (S3 locations); machine files are inlined so the result is self-contained.
    for name, res in template["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = f"s3://offline-check/{name}.zip"
        if res["Type"] == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            props["Definition"] = json.loads((base / props.pop("DefinitionUri")).read_text())
    transformed = transform(template, {}, NoManagedPolicies())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(transformed, indent=1, default=str))
    roles, problems = check(transformed)
    for p in problems:
        print(f"IAM: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"IAM of the transformed template: {roles} roles, no wildcard action, \"*\" only for "
          f"actions without resource-level permissions ({out})", file=sys.stderr)


if __name__ == "__main__":
    main()
