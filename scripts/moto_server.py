"""Start moto's server on loopback for Lifeboat's tests and local drill.

Prints one line `MOTO_PORT=<port>` on stdout once the server answers, then serves until
SIGTERM/SIGINT, or, with --exit-on-stdin-eof, until its standard input closes (so a test
process that dies can never leave a server behind).

Requests are serialized by one lock. moto's backends are not thread-safe: a DynamoDB
conditional write checks and writes in two Python steps, so two concurrent requests can
both pass the check. Real DynamoDB makes each conditional write atomic; the lock restores
that, which is what the lease and version tests rely on. Background work of moto (Step
Functions executions of Standard machines) runs in its own threads, outside requests, and
is not held by it; a synchronous call that waits inside one request for work that needs
another request (StartSyncExecution of an Express machine calling our Lambdas) would
deadlock here.

RDS read replicas (their creation, promotion, lag and breakage) and Aurora global
failover are emulated by the twin's `rds` module (scripts/twin/rds.py), always on.
`--setting NAME=JSON` sets a named local setting of the twin at start (printed in its timeline).
"""

import argparse
import json
import os
import re
import signal
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from twin import install as twin_install
from twin.core import Controls, Twin


class Serialized:
    """WSGI middleware running one request at a time, body included."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            # Materialize the body inside the lock: moto builds some responses lazily.
            return list(self.app(environ, start_response))


class Instances:
    """The instances of one function that `cargo lambda watch` may run at once: a count
    of those busy, and synchronous invocations served before asynchronous ones."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.busy = 0
        self.sync_waiting = 0
        # How many instances watch has started: the most ever busy at once (watch starts
        # one when none is idle and keeps it), so an invocation that makes `busy` exceed it
        # is served by a new instance, started inside it.
        self.started = 0

    def acquire(self, limit: int, synchronous: bool, timeout: float | None, stopping: threading.Event) -> tuple[bool, bool]:
        """Takes a free instance: a synchronous caller within `timeout` (False if none came
        free), an asynchronous one once no synchronous caller waits (False only when the
        twin stops). Also returns whether watch will start a new instance for it."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            if synchronous:
                self.sync_waiting += 1
            try:
                while self.busy >= limit or (not synchronous and self.sync_waiting > 0):
                    if stopping.is_set():
                        return False, False
                    wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                    if wait <= 0:
                        return False, False
                    self.cond.wait(wait)
                self.busy += 1
                cold = self.busy > self.started
                self.started = max(self.started, self.busy)
                return True, cold
            finally:
                if synchronous:
                    self.sync_waiting -= 1
                    self.cond.notify_all()

    def release(self) -> None:
        with self.cond:
            self.busy -= 1
            self.cond.notify_all()


class LambdaRouter:
    """Sends Lambda Invoke calls to `cargo lambda watch`, everything else to moto.

    moto's Step Functions sends every Lambda task to `localhost:$MOTO_PORT`, i.e. back to
    this server; here it reaches our real functions instead of moto's Lambda backend.
    `cargo lambda watch` answers a function error with HTTP 500 while real Lambda answers
    200 with `X-Amz-Function-Error: Unhandled` and the `{"errorType", "errorMessage"}`
    payload; we translate, so ASL Retry/Catch see our error names. Invocations run
    outside the request lock: a function calls back into moto while it runs.

    As Lambda does:
    - `X-Amz-Invocation-Type: Event` is answered 202 at once (empty body) and the function
      runs in a background thread ("For the Event invocation type, this status code is 202",
      Invoke API reference, https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html).
    - A function that has not answered within its timeout (`twin.function_timeouts[binary]`,
      default 30 s, the template's Globals Timeout; the named local setting
      `lambda.timeout_seconds.<binary>` overrides it) gets the timed-out answer: HTTP 200,
      `X-Amz-Function-Error: Unhandled` ("Unhandled errors include ... function timeouts",
      Invoke API reference) and `{"errorType": "Sandbox.Timedout", "errorMessage":
      "RequestId: <id> Error: Task timed out after 30.00 seconds"}` ("Troubleshoot invocation
      issues in Lambda", Sandbox.Timedout, https://docs.aws.amazon.com/lambda/latest/dg/troubleshooting-invocation.html);
      moto's Step Functions takes `errorType` as the task's error name. The process under
      `cargo lambda watch` is not stopped (real Lambda would freeze it).
    - `POST /_twin/lambda/fault {"function": "replica-promoter", "mode": "timeout"|"none",
      "count": N}` makes the function's next N invocations (default: until cleared) run past
      their timeout: held for the timeout, never forwarded, then answered as timed out.
    - Lambda scales a function out to one execution environment per concurrent
      invocation, and a function's timeout is how long it may *run* ("the amount of time
      that Lambda allows a function to run before stopping it", `Timeout`, CreateFunction
      API reference, https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html).
      `cargo lambda watch` runs at most `--concurrency` instances of a function and
      queues the rest in its own FIFO, where the wait would count in the timeout: a storm
      of asynchronous alarm deliveries then timed out a state machine's synchronous task
      that Lambda would have run at once in an environment of its own. So the router
      forwards at most `lambda.instances` invocations of a function at once (the named
      local setting; the harness sets it to watch's `--concurrency`; at most
      `FORWARD_LIMIT`), each to an idle instance, and holds the rest here:
      - synchronous invocations go first, as Lambda runs them without queueing; the
        asynchronous ones wait, as Lambda's internal queue holds them ("Lambda places the
        event in a queue", https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html);
      - the timeout runs from the forward, when an instance takes the invocation, not
        from the arrival;
      - an environment's Init phase is not part of the timeout: it has its own limit of
        10 s ("The Init phase is limited to 10 seconds", "Understanding the Lambda
        execution environment lifecycle",
        https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html),
        while watch starts an instance inside the first invocation it serves. An
        invocation that needs a new instance (more in flight than watch has started) is
        allowed `lambda.init_seconds` (the named local setting; default 10, the Init
        limit) on top of its timeout. Where init ends inside watch is not seen, so the
        whole limit is allowed;
      - a synchronous invocation that finds no free instance within its function's
        timeout is throttled as Lambda throttles one over its concurrency: HTTP 429
        `TooManyRequestsException`, `Reason: ConcurrentInvocationLimitExceeded`
        ("Rate Exceeded.", Invoke API reference, Errors), which the machines retry.
      (cargo-lambda 1.9.2 also deadlocks once 100 invocations of one function are queued:
      `RequestCache::upsert` awaits the full queue while it holds the lock every instance
      needs to take its next invocation. `FORWARD_LIMIT` keeps below it.)
    Timeline rows: `lambda.invoke` (function, ms, queued_ms, status, invocation_type,
    cold), `lambda.timeout` and `lambda.throttled`.
    """

    FORWARD_LIMIT = 64
    INSTANCES = "lambda.instances"
    INIT = "lambda.init_seconds"
    # Lambda's Init phase limit (lambda-runtime-environment.html, above).
    INIT_LIMIT = 10.0
    # Lambda's longest timeout (900 s, CreateFunction `Timeout`): how long a forward may
    # wait for watch's answer, so that no instance is held for ever.
    RUN_LIMIT = 900

    INVOKE = re.compile(r"^/2015-03-31/functions/(?P<function>[^/]+)/invocations$")
    SETTING = "lambda.timeout_seconds."

    def __init__(self, app, lambda_endpoint: str, twin: Twin):
        self.app = app
        self.endpoint = lambda_endpoint.rstrip("/")
        self.twin = twin
        self.faults: dict[str, int | None] = {}  # binary -> invocations left (None: until cleared)
        self.faults_lock = threading.Lock()
        self.instances: dict[str, Instances] = {}  # binary -> its instances' slots
        twin.control("lambda/fault")(self.fault_control)
        twin.settings_hooks.append(self.on_settings)

    def on_settings(self, changed: dict) -> None:
        """`lambda.timeout_seconds.<binary>` sets that function's timeout (seconds)."""
        for name, value in changed.items():
            if name.startswith(self.SETTING):
                self.twin.function_timeouts[name[len(self.SETTING):]] = float(value)

    def timeout_of(self, binary: str) -> float:
        override = self.twin.setting(self.SETTING + binary, None)
        return float(override) if override is not None else float(self.twin.function_timeouts.get(binary, 30))

    def fault_control(self, method: str, body, query: dict) -> tuple:
        if method == "POST":
            if not isinstance(body, dict) or not body.get("function") or body.get("mode") not in ("timeout", "none"):
                return 400, {"error": "lambda/fault: {function, mode: timeout|none, count?}"}
            binary = self.function_name(body["function"])
            with self.faults_lock:
                if body["mode"] == "none":
                    self.faults.pop(binary, None)
                else:
                    count = body.get("count")
                    self.faults[binary] = int(count) if count is not None else None
            self.twin.timeline.record(
                "lambda.fault", f"{binary}: {body['mode']}" + (f" for {body['count']} invocations" if body.get("count") is not None else ""),
                function=binary, mode=body["mode"], count=body.get("count"))
        return 200, {"faults": self.faults}

    def take_fault(self, binary: str) -> bool:
        """Whether this invocation of `binary` is to time out (consumes one of `count`)."""
        with self.faults_lock:
            if binary not in self.faults:
                return False
            left = self.faults[binary]
            if left is not None:
                if left <= 1:
                    self.faults.pop(binary)
                else:
                    self.faults[binary] = left - 1
            return True

    def function_name(self, raw: str) -> str:
        """A name or ARN (arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]),
        the deployed name mapped to its binary (template FunctionName -> Binary)."""
        return self.twin.binary_of(urllib.parse.unquote(raw))

    def timed_out(self, binary: str, timeout: float) -> tuple[str, list, bytes]:
        import uuid

        self.twin.timeline.record("lambda.timeout", f"{binary} timed out after {timeout:.2f} seconds", function=binary, timeout=timeout)
        payload = json.dumps({
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"RequestId: {uuid.uuid4()} Error: Task timed out after {timeout:.2f} seconds",
        }).encode()
        return "200 OK", [("Content-Type", "application/json"), ("X-Amz-Function-Error", "Unhandled")], payload

    def throttled(self, binary: str, waited: float) -> tuple[str, list, bytes]:
        self.twin.timeline.record(
            "lambda.throttled", f"{binary}: no free instance within {waited:.2f} s",
            function=binary, waited=waited)
        payload = json.dumps({
            "Type": "User", "Reason": "ConcurrentInvocationLimitExceeded", "message": "Rate Exceeded.",
        }).encode()
        return "429 Too Many Requests", [
            ("Content-Type", "application/json"), ("x-amzn-ErrorType", "TooManyRequestsException"),
        ], payload

    def limit(self) -> int:
        """How many invocations of one function are forwarded at once (`lambda.instances`)."""
        value = self.twin.setting(self.INSTANCES, None)
        return max(1, min(int(value), self.FORWARD_LIMIT)) if value is not None else self.FORWARD_LIMIT

    def init_limit(self) -> float:
        """What a new instance's first invocation is allowed beyond its timeout."""
        value = self.twin.setting(self.INIT, None)
        return float(value) if value is not None else self.INIT_LIMIT

    def run(self, binary: str, body: bytes, synchronous: bool) -> tuple[str, list, bytes, float, bool]:
        """One invocation as Lambda runs it: once an instance is free, forwarded and bounded
        by the function's timeout (and the Init limit when watch starts an instance for
        it). Also returns how long it waited for the instance, and whether it was cold."""
        import time

        timeout = self.timeout_of(binary)
        if self.take_fault(binary):
            self.twin.stopping.wait(timeout)
            return (*self.timed_out(binary, timeout), 0.0, False)
        with self.faults_lock:
            slots = self.instances.setdefault(binary, Instances())
        started = time.monotonic()
        got, cold = slots.acquire(self.limit(), synchronous, timeout if synchronous else None, self.twin.stopping)
        waited = time.monotonic() - started
        if not got:
            return (*self.throttled(binary, waited), waited, False)
        allowed = timeout + (self.init_limit() if cold else 0.0)
        # The instance stays busy until watch answers, even after the caller has had its
        # timed-out answer: watch does not stop a function that overruns (Lambda would),
        # so the next invocation must not be queued behind it in watch.
        outcome: list = []
        done = threading.Event()

        def work() -> None:
            try:
                outcome.append(self.forward(binary, body))
            finally:
                slots.release()
                done.set()

        threading.Thread(target=work, name=f"forward-{binary}", daemon=True).start()
        if not done.wait(allowed) or not outcome:
            return (*self.timed_out(binary, timeout), waited, cold)
        return (*outcome[0], waited, cold)

    def forward(self, binary: str, body: bytes) -> tuple[str, list, bytes]:
        """Sends one invocation to `cargo lambda watch` and waits for its answer (at most
        `RUN_LIMIT`; the caller stops waiting at the function's timeout)."""
        request = urllib.request.Request(
            f"{self.endpoint}/2015-03-31/functions/{urllib.parse.quote(binary)}/invocations",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        headers = [("Content-Type", "application/json")]
        try:
            with urllib.request.urlopen(request, timeout=self.RUN_LIMIT) as response:
                status, payload = "200 OK", response.read()
        except urllib.error.HTTPError as error:
            payload = error.read()
            if error.code == 500:
                status = "200 OK"
                headers.append(("X-Amz-Function-Error", "Unhandled"))
            else:
                status = f"{error.code} {error.reason}"
        except OSError as error:
            status = "502 Bad Gateway"
            payload = json.dumps({"errorType": "ServiceException", "errorMessage": str(error)}).encode()
            headers.append(("x-amzn-ErrorType", "ServiceException"))
        return status, headers, payload

    def invoke(self, binary: str, body: bytes, invocation_type: str) -> tuple[str, list, bytes]:
        import time

        started = time.monotonic()
        status, headers, payload, waited, cold = self.run(binary, body, invocation_type != "Event")
        queued_ms = round(waited * 1000, 1)
        ms = round((time.monotonic() - started) * 1000 - queued_ms, 1)
        error = dict(headers).get("X-Amz-Function-Error")
        self.twin.timeline.record(
            "lambda.invoke", f"{binary} ({invocation_type}): {status}" + (f", {error}" if error else "")
            + f" in {ms} ms" + (f" after {queued_ms} ms for an instance" if queued_ms >= 1 else "")
            + (" (a new instance)" if cold else ""),
            function=binary, ms=ms, queued_ms=queued_ms, status=int(status.split(" ", 1)[0]),
            invocation_type=invocation_type, function_error=error, cold=cold)
        return status, headers, payload

    def not_run_here(self, raw: str) -> str | None:
        """The Region of a function ARN whose stack this twin does not run, if any.

        One `cargo lambda watch` runs one stack's functions (one `AWS_REGION`). The named
        local setting `lambda.regions` lists the Regions whose stacks run locally; an
        invocation of another Region's function (an EventBridge rule or alarm of that
        stack) is not run, and says so, instead of running as the wrong Region."""
        regions = self.twin.setting("lambda.regions", None)
        ref = urllib.parse.unquote(raw)
        if not regions or not ref.startswith("arn:"):
            return None
        region = ref.split(":")[3]
        return None if region in regions else region

    def __call__(self, environ, start_response):
        match = self.INVOKE.match(environ.get("PATH_INFO", ""))
        if environ.get("REQUEST_METHOD") != "POST" or not match:
            return self.app(environ, start_response)
        name = self.function_name(match["function"])
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b"{}"
        elsewhere = self.not_run_here(match["function"])
        if elsewhere is not None:
            message = f"{name} of the {elsewhere} stack is not run by this twin (local setting lambda.regions)"
            self.twin.timeline.record("lambda.skipped", message, function=name, region=elsewhere)
            payload = json.dumps({"Type": "Service", "Message": message}).encode()
            start_response("503 Service Unavailable", [
                ("Content-Type", "application/json"),
                ("x-amzn-ErrorType", "ServiceException"),
                ("Content-Length", str(len(payload))),
            ])
            return [payload]
        invocation_type = environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse")
        if invocation_type == "Event":
            threading.Thread(target=self.invoke, args=(name, body, "Event"), name=f"invoke-{name}", daemon=True).start()
            start_response("202 Accepted", [("Content-Type", "application/json"), ("Content-Length", "0")])
            return [b""]
        status, headers, payload = self.invoke(name, body, invocation_type)
        headers.append(("Content-Length", str(len(payload))))
        start_response(status, headers)
        return [payload]


def fix_sfn_integration() -> None:
    """Make moto's Step Functions integration (`arn:aws:states:::states:startExecution`,
    `.sync`, `.sync:2`) speak the names AWS uses. moto 5.2.5 hands the ASL's parameters
    (`StateMachineArn`, `Name`, `Input`) to boto3 unchanged, whose members are camelCase,
    so every nested execution fails with `States.Runtime` / `KeyError: 'StateMachineArn'`;
    and it returns boto3's camelCase answers where AWS returns `ExecutionArn`, `Output`,
    ... The drill machine starts the failover and failback machines this way."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_sfn as sfn,
    )

    cls = sfn.StateTaskServiceSfn

    def recase(d, first):
        return {first(k[:1]) + k[1:]: v for k, v in d.items()}

    original_eval = cls._eval_service_task

    def _eval_service_task(self, env, resource_runtime_part, normalised_parameters, state_credentials):
        camel = recase(normalised_parameters, str.lower)
        normalised_parameters.clear()
        normalised_parameters.update(camel)
        original_eval(self, env, resource_runtime_part, normalised_parameters, state_credentials)
        env.stack.append(recase(env.stack.pop(), str.upper))

    original_response = cls._normalise_response

    def _normalise_response(self, response, boto_service_name=None, service_action_name=None):
        original_response(self, response, boto_service_name, service_action_name)
        if isinstance(response, dict):
            pascal = recase(response, str.upper)
            response.clear()
            response.update(pascal)

    cls._eval_service_task = _eval_service_task
    cls._normalise_response = _normalise_response


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    parser.add_argument(
        "--lambda-endpoint",
        help="route Lambda Invoke to this `cargo lambda watch` URL (e.g. http://127.0.0.1:9000)",
    )
    parser.add_argument(
        "--execute-state-machines",
        action="store_true",
        help="make Step Functions really execute ASL (moto's execute_state_machine)",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="a named local setting of the twin (e.g. twin.minute_seconds=5), as POST /_twin/settings sets it",
    )
    args = parser.parse_args()
    if args.execute_state_machines:
        fix_sfn_integration()

    serialized = Serialized(DomainDispatcherApplication(create_backend_app))
    twin = Twin(serialized.lock)
    twin.host = args.host
    twin.lambda_endpoint = args.lambda_endpoint
    twin_install.install(twin)
    initial = {}
    for setting in args.setting:
        name, _, value = setting.partition("=")
        initial[name] = json.loads(value)
    if initial:
        twin._settings("POST", initial, {})
    app = serialized
    if args.lambda_endpoint:
        app = LambdaRouter(app, args.lambda_endpoint, twin)
    app = Controls(twin_install.wrap(app, twin), twin)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_address[1]
    twin.start(port)
    # moto's Step Functions calls services (our Lambdas included) at localhost:$MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    # Ready means answering HTTP, not just bound.
    urllib.request.urlopen(f"http://{args.host}:{port}/moto-api/data.json", timeout=30).read()
    if args.execute_state_machines:
        config = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
        urllib.request.urlopen(
            urllib.request.Request(f"http://{args.host}:{port}/moto-api/config", data=config, method="POST"),
            timeout=30,
        ).read()
    print(f"MOTO_PORT={port}", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.exit_on_stdin_eof:
        def wait_eof():
            sys.stdin.read()
            stop.set()

        threading.Thread(target=wait_eof, daemon=True).start()
    stop.wait()
    twin.stopping.set()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
