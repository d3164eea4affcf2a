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


class Serialized:
    """WSGI middleware running one request at a time, body included."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            # Materialize the body inside the lock: moto builds some responses lazily.
            return list(self.app(environ, start_response))


class LambdaRouter:
    """Sends Lambda Invoke calls to `cargo lambda watch`, everything else to moto.

    moto's Step Functions sends every Lambda task to `localhost:$MOTO_PORT`, i.e. back to
    this server; here it reaches our real functions instead of moto's Lambda backend.
    `cargo lambda watch` answers a function error with HTTP 500 while real Lambda answers
    200 with `X-Amz-Function-Error: Unhandled` and the `{"errorType", "errorMessage"}`
    payload; we translate, so ASL Retry/Catch see our error names. Invocations run
    outside the request lock: a function calls back into moto while it runs.
    """

    INVOKE = re.compile(r"^/2015-03-31/functions/(?P<function>[^/]+)/invocations$")

    def __init__(self, app, lambda_endpoint: str):
        self.app = app
        self.endpoint = lambda_endpoint.rstrip("/")

    @staticmethod
    def function_name(raw: str) -> str:
        name = urllib.parse.unquote(raw)
        if name.startswith("arn:"):
            # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
            parts = name.split(":")
            name = parts[6] if len(parts) > 6 else name
        return name.split(":")[0]

    def __call__(self, environ, start_response):
        match = self.INVOKE.match(environ.get("PATH_INFO", ""))
        if environ.get("REQUEST_METHOD") != "POST" or not match:
            return self.app(environ, start_response)
        name = self.function_name(match["function"])
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b"{}"
        request = urllib.request.Request(
            f"{self.endpoint}/2015-03-31/functions/{urllib.parse.quote(name)}/invocations",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        headers = [("Content-Type", "application/json")]
        try:
            with urllib.request.urlopen(request, timeout=900) as response:
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
        headers.append(("Content-Length", str(len(payload))))
        start_response(status, headers)
        return [payload]


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
    args = parser.parse_args()

    app = Serialized(DomainDispatcherApplication(create_backend_app))
    if args.lambda_endpoint:
        app = LambdaRouter(app, args.lambda_endpoint)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_address[1]
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
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
