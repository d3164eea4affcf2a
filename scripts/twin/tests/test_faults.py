"""Region faults as the client sees them: hang, error, throttle, slow, by Region and service."""

from __future__ import annotations

import json
import threading
import time

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from twin import faults
from twin.core import TWIN_ACCESS_KEY

from sigv4 import query_call


# ---------------------------------------------------------------- pure rules
def test_route53_faulted_only_with_control_plane_flag():
    table = {"us-west-2": {"mode": "hang", "services": None, "route53_control_plane": False}}
    assert faults.matching_fault(table, "us-east-1", "route53") is None
    table["us-west-2"]["route53_control_plane"] = True
    assert faults.matching_fault(table, "us-east-1", "route53")["mode"] == "hang"


def test_services_filter_accepts_boto_names():
    table = {"us-east-1": {"mode": "error", "services": ["monitoring"], "route53_control_plane": False}}
    assert faults.matching_fault(table, "us-east-1", "monitoring") is not None
    assert faults.matching_fault(table, "us-east-1", "dynamodb") is None
    assert faults.parse_request({"region": "r", "mode": "error", "services": ["cloudwatch", "stepfunctions"]})["services"] == ["monitoring", "states"]


def test_down_is_a_workload_only_mode():
    assert faults.parse_request({"region": "r", "mode": "down"})["targets"] == ["workload"]
    with pytest.raises(ValueError):
        faults.parse_request({"region": "r", "mode": "down", "targets": ["aws"]})
    with pytest.raises(ValueError):
        faults.parse_request({"region": "r", "mode": "slow"})


def test_throttle_codes_are_sdk_throttling_codes():
    # aws-runtime's THROTTLING_ERRORS (retries/classifiers.rs)
    throttling = {"Throttling", "ThrottlingException", "TooManyRequestsException", "SlowDown"}
    for protocol in ("json", "json-query", "cbor", "query", "route53", "s3", "rest-json"):
        status, headers, body = faults.throttle_response(protocol, "x")
        text = body.decode("latin-1") + " ".join(v for k, v in headers if k == "x-amzn-ErrorType")
        assert any(code in text for code in throttling), protocol


# ---------------------------------------------------------------- through the server
@pytest.fixture
def clear(server):
    yield
    server.control("faults", method="DELETE")


def client(server, service, region="us-east-1", read_timeout=60, key="testing"):
    return boto3.client(service, region_name=region, endpoint_url=server.url, aws_access_key_id=key,
                        aws_secret_access_key=key,
                        config=Config(retries={"max_attempts": 1}, read_timeout=read_timeout, connect_timeout=5))


def code_of(call) -> tuple[str, int]:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call()
    err = info.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_error_per_protocol(server, clear):
    server.control("faults", {"region": "eu-west-1", "mode": "error"})
    assert code_of(lambda: client(server, "dynamodb", "eu-west-1").list_tables()) == ("InternalServerError", 500)
    assert code_of(lambda: client(server, "rds", "eu-west-1").describe_db_instances()) == ("InternalFailure", 500)
    status, body = query_call(server.url, "monitoring", "eu-west-1", {"Action": "ListMetrics", "Version": "2010-08-01"})
    assert status == 500 and b"<Type>Receiver</Type><Code>InternalFailure</Code>" in body
    assert code_of(lambda: client(server, "cloudwatch", "eu-west-1").list_metrics()) == ("InternalFailure", 500)  # JSON, query-compatible
    assert code_of(lambda: client(server, "s3", "eu-west-1").list_objects_v2(Bucket="b")) == ("InternalError", 500)
    assert code_of(lambda: client(server, "stepfunctions", "eu-west-1").list_state_machines()) == ("InternalServerError", 500)


def test_throttle_per_protocol(server, clear):
    server.control("faults", {"region": "eu-west-1", "mode": "throttle"})
    assert code_of(lambda: client(server, "dynamodb", "eu-west-1").list_tables()) == ("ThrottlingException", 400)
    assert code_of(lambda: client(server, "rds", "eu-west-1").describe_db_instances()) == ("Throttling", 400)
    status, body = query_call(server.url, "monitoring", "eu-west-1", {"Action": "ListMetrics", "Version": "2010-08-01"})
    assert status == 400 and b"<Code>Throttling</Code>" in body
    assert code_of(lambda: client(server, "cloudwatch", "eu-west-1").list_metrics()) == ("Throttling", 400)  # JSON, query-compatible
    assert code_of(lambda: client(server, "stepfunctions", "eu-west-1").list_state_machines()) == ("ThrottlingException", 400)
    assert code_of(lambda: client(server, "s3", "eu-west-1").list_objects_v2(Bucket="b")) == ("SlowDown", 503)


def test_route53_control_plane_flag(server, clear):
    r53 = client(server, "route53")
    server.control("faults", {"region": "us-west-2", "mode": "throttle"})
    r53.list_hosted_zones()  # a Region's fault leaves Route 53 alone
    server.control("faults", {"region": "us-west-2", "mode": "throttle", "route53_control_plane": True})
    assert code_of(lambda: r53.list_hosted_zones()) == ("Throttling", 400)
    server.control("faults", {"region": "us-west-2", "mode": "error", "route53_control_plane": True})
    assert code_of(lambda: r53.list_hosted_zones()) == ("InternalFailure", 500)


def test_fault_scoped_by_region_and_service(server, clear):
    server.control("faults", {"region": "eu-west-1", "mode": "error", "services": ["dynamodb"]})
    assert code_of(lambda: client(server, "dynamodb", "eu-west-1").list_tables())[0] == "InternalServerError"
    client(server, "dynamodb", "eu-west-2").list_tables()  # another Region
    client(server, "rds", "eu-west-1").describe_db_instances()  # another service


def test_twin_key_never_faulted(server, clear):
    server.control("faults", {"region": "eu-west-1", "mode": "error"})
    client(server, "dynamodb", "eu-west-1", key=TWIN_ACCESS_KEY).list_tables()


def test_slow_is_latency(server, clear):
    server.control("faults", {"region": "ap-south-1", "mode": "slow", "ms": 400})
    started = time.monotonic()
    client(server, "dynamodb", "ap-south-1").list_tables()
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    client(server, "dynamodb", "us-east-1").list_tables()
    assert time.monotonic() - started < 0.3


def test_hang_is_a_read_timeout_and_logged_with_its_fault(server, clear):
    seq = len(server.control("calls")[1]["calls"])
    server.control("faults", {"region": "sa-east-1", "mode": "hang"})
    started = time.monotonic()
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        client(server, "dynamodb", "sa-east-1", read_timeout=0.5).list_tables()
    assert time.monotonic() - started < 3
    assert any(p["region"] == "sa-east-1" for p in server.control("calls")[1]["pending"])
    # Another Region is still answered while sa-east-1 holds requests.
    client(server, "dynamodb", "us-east-1").list_tables()
    server.control("faults", {"region": "sa-east-1", "mode": "none"})
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        rows = [r for r in server.control("calls", query=f"since={seq}")[1]["calls"] if r["region"] == "sa-east-1"]
        if rows:
            break
        time.sleep(0.05)
    assert rows and rows[0]["fault"] == "hang" and rows[0]["status"] == 503


def test_faulted_calls_logged_with_their_fault(server, clear):
    seq = len(server.control("calls")[1]["calls"])
    server.control("faults", {"region": "eu-west-1", "mode": "throttle"})
    code_of(lambda: client(server, "dynamodb", "eu-west-1").list_tables())
    row = server.control("calls", query=f"since={seq}")[1]["calls"][-1]
    assert (row["fault"], row["status"], row["operation"]) == ("throttle", 400, "ListTables")


def test_set_and_clear_are_timeline_rows(server, clear):
    start = len(server.timeline())
    server.control("faults", {"region": "eu-north-1", "mode": "error", "targets": ["aws"]})
    status, state = server.control("faults")
    assert state["aws"]["eu-north-1"]["mode"] == "error"
    server.control("faults", method="DELETE")
    kinds = [r["kind"] for r in server.timeline(start)]
    assert kinds == ["fault.set", "fault.cleared"]
    assert server.control("faults")[1] == {"aws": {}, "workload": {}}


def test_bad_request_is_400(server):
    assert server.control("faults", {"region": "x", "mode": "explode"})[0] == 400
