"""Region faults as the client sees them: hang, error, throttle, slow, by Region and service."""

from __future__ import annotations

import contextlib
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


# One call per protocol, made in the faulted Region.
PROTOCOL_CALLS = {
    "dynamodb": lambda c: c.list_tables(),
    "rds": lambda c: c.describe_db_instances(),
    "cloudwatch": lambda c: c.list_metrics(),  # JSON, query-compatible
    "s3": lambda c: c.list_objects_v2(Bucket="b"),
    "stepfunctions": lambda c: c.list_state_machines(),
}


@pytest.mark.parametrize("mode,query_status,query_body,expected", [
    ("error", 500, b"<Type>Receiver</Type><Code>InternalFailure</Code>", {
        "dynamodb": ("InternalServerError", 500),
        "rds": ("InternalFailure", 500),
        "cloudwatch": ("InternalFailure", 500),
        "s3": ("InternalError", 500),
        "stepfunctions": ("InternalServerError", 500),
    }),
    ("throttle", 400, b"<Code>Throttling</Code>", {
        "dynamodb": ("ThrottlingException", 400),
        "rds": ("Throttling", 400),
        "cloudwatch": ("Throttling", 400),
        "stepfunctions": ("ThrottlingException", 400),
        "s3": ("SlowDown", 503),
    }),
])
def test_fault_answer_per_protocol(server, clear, mode, query_status, query_body, expected):
    """(code, HTTP status) each protocol answers with; CloudWatch's query (XML) protocol too."""
    server.control("faults", {"region": "eu-west-1", "mode": mode})
    status, body = query_call(server.url, "monitoring", "eu-west-1", {"Action": "ListMetrics", "Version": "2010-08-01"})
    assert status == query_status and query_body in body
    for service, want in expected.items():
        assert code_of(lambda: PROTOCOL_CALLS[service](client(server, service, "eu-west-1"))) == want, service


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


# ---------------------------------------------------------------- Lambda: async invoke, timeouts
class FakeLambdaWatch:
    """Stands in for `cargo lambda watch`: `echo` returns its input, `slow` sleeps 1.5 s,
    `boom` fails (HTTP 500 as cargo lambda answers a function error), `held` waits until
    `release` is set (`held_now` and `held_most` count its invocations in flight), and
    `paced` sleeps its payload's `sleep` seconds on one of `PACED_INSTANCES` instances,
    queueing the rest as watch queues beyond its `--concurrency`, and `cold` runs its
    payload's `run` seconds in an idle instance, or starts one first (`COLD_INIT` s) when
    none is idle, as watch does."""

    PACED_INSTANCES = 2
    COLD_INIT = 1.0

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        calls = self.calls = []
        self.release = threading.Event()
        self.held_now = self.held_most = 0
        owner = self
        counting = threading.Lock()
        paced = threading.Semaphore(self.PACED_INSTANCES)
        idle = [0]  # `cold`'s started instances not running an invocation

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                name = self.path.split("/")[3]
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                calls.append((name, body))
                if name == "slow":
                    time.sleep(1.5)
                if name == "paced":
                    with paced:
                        time.sleep(json.loads(body)["sleep"])
                if name == "cold":
                    with counting:
                        started = idle[0] > 0
                        idle[0] -= 1 if started else 0
                    time.sleep((0 if started else owner.COLD_INIT) + json.loads(body)["run"])
                    with counting:
                        idle[0] += 1
                if name == "held":
                    with counting:
                        owner.held_now += 1
                        owner.held_most = max(owner.held_most, owner.held_now)
                    owner.release.wait(20)
                    with counting:
                        owner.held_now -= 1
                status, payload = (500, b'{"errorType":"Boom","errorMessage":"no"}') if name == "boom" else (200, body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

        class Server(ThreadingHTTPServer):
            # The burst test connects 64 at once: socketserver's backlog of 5 would refuse
            # some under load (cargo lambda watch listens with a far longer one).
            request_queue_size = 256

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@contextlib.contextmanager
def local_settings(server, settings: dict, reset: tuple[str, ...], settle: float = 0.0):
    """Named local settings for one test of the module's shared server: `reset` cleared
    afterwards, pass or fail, once `settle` seconds have let its invocations finish."""
    server.control("settings", settings)
    try:
        yield server.client("lambda")
    finally:
        time.sleep(settle)
        server.control("settings", dict.fromkeys(reset))


@pytest.fixture(scope="module")
def lambdas():
    from conftest import Server

    fake = FakeLambdaWatch()
    server = Server("--lambda-endpoint", fake.url)
    yield server, fake
    server.stop()
    fake.server.shutdown()


def test_function_error_is_200_unhandled(lambdas):
    server, _ = lambdas
    out = server.client("lambda").invoke(FunctionName="boom", Payload=b"{}")
    assert out["StatusCode"] == 200 and out["FunctionError"] == "Unhandled"
    assert json.loads(out["Payload"].read())["errorType"] == "Boom"


def test_event_invoke_answers_202_at_once_and_runs_in_background(lambdas):
    server, fake = lambdas
    started = time.monotonic()
    out = server.client("lambda").invoke(FunctionName="arn:aws:lambda:us-east-1:123456789012:function:slow",
                                         InvocationType="Event", Payload=b'{"n": 1}')
    assert out["StatusCode"] == 202 and time.monotonic() - started < 0.5
    deadline = time.monotonic() + 3
    while ("slow", b'{"n": 1}') not in fake.calls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ("slow", b'{"n": 1}') in fake.calls


def test_timeout_answers_sandbox_timedout(lambdas):
    server, _ = lambdas
    # The timeout alone: no Init allowance, were this invocation to start an instance.
    with local_settings(server, {"lambda.timeout_seconds.slow": 0.5, "lambda.init_seconds": 0},
                        reset=("lambda.init_seconds",)) as client:
        started = time.monotonic()
        out = client.invoke(FunctionName="slow", Payload=b"{}")
        elapsed = time.monotonic() - started
    payload = json.loads(out["Payload"].read())
    assert out["StatusCode"] == 200 and out["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert payload["errorMessage"].endswith("Task timed out after 0.50 seconds")
    assert 0.5 <= elapsed < 1.4
    assert any(r["kind"] == "lambda.timeout" and r["function"] == "slow" for r in server.timeline())


def test_a_new_instance_has_the_init_limit_on_top_of_the_timeout(lambdas):
    # Lambda's Init phase has its own 10-s limit, outside the function timeout
    # (lambda-runtime-environment.html); watch starts an instance inside the first
    # invocation it serves. Timeout 0.5 s, init 1 s: the first invocation (a new
    # instance) succeeds within timeout + `lambda.init_seconds`; the next one, in the
    # started instance, is held to the timeout alone.
    server, fake = lambdas
    with local_settings(server, {"lambda.timeout_seconds.cold": 0.5, "lambda.init_seconds": 2},
                        reset=("lambda.init_seconds",), settle=1.5) as client:
        out = client.invoke(FunctionName="cold", Payload=b'{"run": 0.1}')
        assert "FunctionError" not in out, out["Payload"].read()
        assert json.loads(out["Payload"].read()) == {"run": 0.1}
        started = time.monotonic()
        out = client.invoke(FunctionName="cold", Payload=b'{"run": 1.5}')
        assert json.loads(out["Payload"].read())["errorType"] == "Sandbox.Timedout"
        assert time.monotonic() - started < 1.4
        rows = [r for r in server.timeline() if r["kind"] == "lambda.invoke" and r["function"] == "cold"]
        assert [(r["cold"], r["function_error"]) for r in rows] == [(True, None), (False, "Unhandled")], rows


def test_timeout_fault_holds_for_the_timeout_and_never_forwards(lambdas):
    server, fake = lambdas
    server.control("settings", {"lambda.timeout_seconds.echo": 0.3})
    assert server.control("lambda/fault", {"function": "echo", "mode": "timeout", "count": 1})[0] == 200
    before = len(fake.calls)
    started = time.monotonic()
    out = server.client("lambda").invoke(FunctionName="echo", Payload=b'{"x": 1}')
    assert time.monotonic() - started >= 0.3
    assert json.loads(out["Payload"].read())["errorType"] == "Sandbox.Timedout"
    assert len(fake.calls) == before  # never forwarded
    out = server.client("lambda").invoke(FunctionName="echo", Payload=b'{"x": 2}')  # count was 1
    assert "FunctionError" not in out and json.loads(out["Payload"].read()) == {"x": 2}
    rows = [r for r in server.timeline() if r["kind"] == "lambda.invoke" and r["function"] == "echo"]
    assert rows[-1]["status"] == 200 and rows[-1]["ms"] >= 0


def test_a_burst_is_forwarded_at_most_forward_limit_at_a_time_and_every_invocation_runs(lambdas):
    # Lambda scales out per invocation; cargo lambda watch 1.9.2 queues beyond its
    # instances and deadlocks at 100 queued. 150 asynchronous invocations at once: at most
    # FORWARD_LIMIT reach it together, the rest wait in the twin, and all of them run.
    import moto_server

    server, fake = lambdas
    server.control("settings", {"lambda.timeout_seconds.held": 30})
    client = server.client("lambda")
    for i in range(150):
        assert client.invoke(FunctionName="held", InvocationType="Event", Payload=json.dumps({"i": i}).encode())["StatusCode"] == 202
    deadline = time.monotonic() + 10
    while fake.held_now < moto_server.LambdaRouter.FORWARD_LIMIT and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert fake.held_most == moto_server.LambdaRouter.FORWARD_LIMIT
    fake.release.set()
    deadline = time.monotonic() + 25
    while sum(1 for n, _ in fake.calls if n == "held") < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(json.loads(b)["i"] for n, b in fake.calls if n == "held") == list(range(150))
    failed = [r for r in server.timeline() if r["kind"] == "lambda.invoke" and r["function"] == "held" and r["status"] != 200]
    assert failed == []
    assert fake.held_most == moto_server.LambdaRouter.FORWARD_LIMIT


def test_a_synchronous_invocation_runs_ahead_of_queued_asynchronous_ones_timed_from_its_start(lambdas):
    # Lambda runs a synchronous invocation at once in an environment of its own and times
    # only its run. Watch runs `PACED_INSTANCES` at once: with eight asynchronous
    # invocations of 1 s ahead of it in watch's queue, a 0.2-s synchronous one would take
    # over 3 s from its arrival and time out; the router holds the asynchronous ones back
    # (`lambda.instances`) and forwards the synchronous one first.
    server, fake = lambdas
    with local_settings(server, {"lambda.instances": FakeLambdaWatch.PACED_INSTANCES,
                                 "lambda.timeout_seconds.paced": 3},
                        reset=("lambda.instances",)) as client:
        for i in range(8):
            out = client.invoke(FunctionName="paced", InvocationType="Event", Payload=json.dumps({"sleep": 1.0, "i": i}).encode())
            assert out["StatusCode"] == 202
        time.sleep(0.3)
        out = client.invoke(FunctionName="paced", Payload=b'{"sleep": 0.2, "sync": true}')
        assert "FunctionError" not in out, out["Payload"].read()
        assert json.loads(out["Payload"].read()) == {"sleep": 0.2, "sync": True}
        deadline = time.monotonic() + 15
        done = lambda: [r for r in server.timeline() if r["kind"] == "lambda.invoke" and r["function"] == "paced"]
        while len(done()) < 9 and time.monotonic() < deadline:
            time.sleep(0.1)
        rows = done()
        assert len(rows) == 9 and all(r["status"] == 200 and not r["function_error"] for r in rows), rows
        sync = next(r for r in rows if r["invocation_type"] == "RequestResponse")
        assert 0 < sync["queued_ms"] <= 1500 and sync["ms"] < 1500, sync
        # The asynchronous ones waited their turn, and none was timed out for it.
        assert max(r["queued_ms"] for r in rows if r["invocation_type"] == "Event") >= 2000


def test_a_synchronous_invocation_with_no_free_instance_within_its_timeout_is_throttled(lambdas):
    # AWS answers an invocation over the concurrency it may use with 429
    # TooManyRequestsException (Invoke API reference, Errors); the machines retry it.
    server, fake = lambdas
    with local_settings(server, {"lambda.instances": 1, "lambda.timeout_seconds.paced": 0.5},
                        reset=("lambda.instances",), settle=3.0) as client:
        # Its one instance is busy for 3 s: timed out at 0.5 s, the function still runs
        # in watch, which does not stop it as Lambda would.
        client.invoke(FunctionName="paced", InvocationType="Event", Payload=b'{"sleep": 3.0}')
        time.sleep(0.3)
        started = time.monotonic()
        with pytest.raises(botocore.exceptions.ClientError) as info:
            # The client's one retry is throttled as well, within the 3 s.
            client.invoke(FunctionName="paced", Payload=b'{"sleep": 0.0}')
        assert 0.5 <= time.monotonic() - started < 2.6
        err = info.value.response
        assert (err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]) == ("TooManyRequestsException", 429)
        assert err.get("Reason") == "ConcurrentInvocationLimitExceeded"
        assert any(r["kind"] == "lambda.throttled" and r["function"] == "paced" for r in server.timeline())


def test_region_fault_applies_to_invoke(lambdas):
    server, _ = lambdas
    server.control("faults", {"region": "eu-west-1", "mode": "throttle", "services": ["lambda"]})
    try:
        assert code_of(lambda: server.client("lambda", "eu-west-1").invoke(FunctionName="echo", Payload=b"{}")) == ("TooManyRequestsException", 429)
    finally:
        server.control("faults", method="DELETE")
