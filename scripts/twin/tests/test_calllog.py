"""The call log: one row per AWS call, its operation per protocol, its Region and caller."""

from __future__ import annotations

import json
import urllib.request

import pytest
from botocore.config import Config

from twin import calllog
from twin.core import TWIN_ACCESS_KEY

from sigv4 import query_call


# ---------------------------------------------------------------- pure rules
def test_credential_scope_from_authorization_header():
    environ = {"HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-1/dynamodb/aws4_request, "
                                     "SignedHeaders=host;x-amz-date, Signature=abc"}
    assert calllog.credential_scope(environ) == ("AKID", "eu-west-1", "dynamodb")


def test_credential_scope_from_presigned_url():
    environ = {"QUERY_STRING": "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20240101%2Fus-west-2%2Fs3%2Faws4_request&X-Amz-Signature=x"}
    assert calllog.credential_scope(environ) == ("AKID", "us-west-2", "s3")


def test_caller_app_id_then_twin_key_then_states_then_harness():
    assert calllog.caller_of("aws-sdk-rust/1.3 os/linux lang/rust app/failover-executor", "x") == "failover-executor"
    assert calllog.caller_of("Boto3/1.35 md/Botocore#1.35 ua/2.0", TWIN_ACCESS_KEY) == "aws"
    assert calllog.caller_of("Boto3/1.35 md/Botocore#1.35 ua/2.0", "ak") == "states"
    assert calllog.caller_of("Boto3/1.35", "testing") == "harness"


@pytest.mark.parametrize("method,path,query,op", [
    ("POST", "/2013-04-01/hostedzone/Z1/rrset", {}, "ChangeResourceRecordSets"),
    ("POST", "/2013-04-01/hostedzone/Z1/rrset/", {}, "ChangeResourceRecordSets"),
    ("GET", "/2013-04-01/hostedzone/Z1/rrset", {}, "ListResourceRecordSets"),
    ("GET", "/2013-04-01/change/C1", {}, "GetChange"),
    ("GET", "/2013-04-01/healthcheck/h-1/status", {}, "GetHealthCheckStatus"),
    ("POST", "/2013-04-01/healthcheck", {}, "CreateHealthCheck"),
    ("GET", "/2013-04-01/hostedzone/Z1", {}, "GetHostedZone"),
])
def test_route53_operations_by_method_and_path(method, path, query, op):
    assert calllog.rest_operation("route53", method, path, query, {}) == op


@pytest.mark.parametrize("method,path,query,headers,op", [
    ("GET", "/b/k/x.json", {}, {}, "GetObject"),
    ("PUT", "/b/k", {}, {}, "PutObject"),
    ("PUT", "/b/k", {}, {"x-amz-copy-source": "/a/k"}, "CopyObject"),
    ("GET", "/b", {"list-type": "2"}, {}, "ListObjectsV2"),
    ("GET", "/b", {"replication": ""}, {}, "GetBucketReplication"),
    ("PUT", "/b", {"replication": ""}, {}, "PutBucketReplication"),
    ("PUT", "/b", {}, {}, "CreateBucket"),
    ("HEAD", "/b/k", {}, {}, "HeadObject"),
    ("GET", "/", {}, {}, "ListBuckets"),
])
def test_s3_operations_by_method_path_and_query_keys(method, path, query, headers, op):
    assert calllog.rest_operation("s3", method, path, query, headers) == op


def test_lambda_invoke_path():
    assert calllog.rest_operation("lambda", "POST", "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af/invocations", {}, {}) == "Invoke"


def test_operation_from_target_and_action():
    assert calllog.operation_of({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.PutItem"}, "dynamodb", None) == "PutItem"
    assert calllog.operation_of({"HTTP_X_AMZ_TARGET": "AWSStepFunctions.StartExecution"}, "states", None) == "StartExecution"
    assert calllog.operation_of({"QUERY_STRING": "Action=DescribeDBInstances&Version=2014-10-31"}, "rds", None) == "DescribeDBInstances"
    assert calllog.operation_of({}, "monitoring", b"Action=PutMetricData&Version=2010-08-01") == "PutMetricData"


# ---------------------------------------------------------------- through the server
def calls_since(server, seq):
    return server.control("calls", query=f"since={seq}")[1]["calls"]


def mark(server):
    return len(server.control("calls")[1]["calls"])


def last_call(server, seq, operation):
    rows = [r for r in calls_since(server, seq) if r["operation"] == operation]
    assert rows, f"no {operation} in {calls_since(server, seq)}"
    return rows[-1]


def test_dynamodb_json_protocol_logged(server):
    seq = mark(server)
    ddb = server.client("dynamodb", "eu-west-1")
    ddb.create_table(TableName="t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}})
    row = last_call(server, seq, "PutItem")
    assert row["service"] == "dynamodb" and row["region"] == "eu-west-1"
    assert row["status"] == 200 and row["fault"] is None and row["caller"] == "harness"
    assert row["ms"] >= 0 and row["plane"] is None


def test_cloudwatch_query_protocol_reads_action_from_body_and_moto_still_gets_it(server):
    seq = mark(server)
    status, _ = query_call(server.url, "monitoring", "us-west-2", {
        "Action": "PutMetricData", "Version": "2010-08-01", "Namespace": "Lifeboat",
        "MetricData.member.1.MetricName": "m", "MetricData.member.1.Value": "1"})
    assert status == 200
    listed = server.client("cloudwatch", "us-west-2").list_metrics(Namespace="Lifeboat")["Metrics"]
    assert [m["MetricName"] for m in listed] == ["m"]  # the body was put back for moto
    row = last_call(server, seq, "PutMetricData")
    assert row["service"] == "monitoring" and row["region"] == "us-west-2" and row["status"] == 200


def test_cloudwatch_json_and_cbor_operations(server):
    seq = mark(server)
    server.client("cloudwatch", "us-west-2").list_metrics()  # boto3: query-compatible JSON
    assert last_call(server, seq, "ListMetrics")["service"] == "monitoring"
    assert calllog.operation_of({"PATH_INFO": "/service/GraniteServiceVersion20100801/operation/GetMetricData"}, "monitoring", None) == "GetMetricData"


def test_rds_query_protocol(server):
    seq = mark(server)
    server.client("rds", "us-east-2").describe_db_instances()
    row = last_call(server, seq, "DescribeDBInstances")
    assert row["service"] == "rds" and row["region"] == "us-east-2"


def test_route53_rest_calls_are_control_plane(server):
    seq = mark(server)
    r53 = server.client("route53")
    zone = r53.create_hosted_zone(Name="example.com", CallerReference="c1")["HostedZone"]["Id"].split("/")[-1]
    change = r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": "a.example.com", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "127.0.1.1"}]}}]})
    r53.get_change(Id=change["ChangeInfo"]["Id"])
    r53.list_resource_record_sets(HostedZoneId=zone)
    ops = [r["operation"] for r in calls_since(server, seq)]
    assert ops == ["CreateHostedZone", "ChangeResourceRecordSets", "GetChange", "ListResourceRecordSets"]
    assert {r["plane"] for r in calls_since(server, seq)} == {"control"}
    assert {r["region"] for r in calls_since(server, seq)} == {"us-east-1"}


def test_s3_rest_operations(server):
    seq = mark(server)
    s3 = server.client("s3")
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k/1", Body=b"x")
    s3.get_object(Bucket="bkt", Key="k/1")["Body"].read()
    s3.list_objects_v2(Bucket="bkt")
    ops = [r["operation"] for r in calls_since(server, seq)]
    assert ops == ["CreateBucket", "PutObject", "GetObject", "ListObjectsV2"]


def test_stepfunctions_json_protocol(server):
    seq = mark(server)
    server.client("stepfunctions").list_state_machines()
    row = last_call(server, seq, "ListStateMachines")
    assert row["service"] == "states"


def test_caller_from_sdk_app_id(server):
    import boto3

    seq = mark(server)
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=server.url,
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=Config(user_agent_appid="failover-executor", retries={"max_attempts": 1}))
    client.list_tables()
    assert last_call(server, seq, "ListTables")["caller"] == "failover-executor"


def test_twin_key_is_caller_aws(server):
    import boto3

    seq = mark(server)
    boto3.client("dynamodb", region_name="us-east-1", endpoint_url=server.url,
                 aws_access_key_id=TWIN_ACCESS_KEY, aws_secret_access_key="twin").list_tables()
    assert last_call(server, seq, "ListTables")["caller"] == "aws"


def test_twin_controls_and_moto_api_not_logged(server):
    seq = mark(server)
    server.control("timeline")
    urllib.request.urlopen(f"{server.url}/moto-api/data.json", timeout=10).read()
    assert calls_since(server, seq) == []
