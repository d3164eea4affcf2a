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
import signal
import sys
import threading
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args()

    app = Serialized(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    # Ready means answering HTTP, not just bound.
    urllib.request.urlopen(f"http://{args.host}:{port}/moto-api/data.json", timeout=30).read()
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
