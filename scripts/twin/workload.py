"""The workload's HTTP endpoint in each Region, on loopback, for health checks and DNS to reach.

`POST /_twin/workload {"region": "us-east-1"}` starts (idempotently) that Region's endpoint on
its own loopback address — 127.0.1.1, 127.0.1.2, ... in order of creation (loopback range
only) — and ONE port shared by every Region, so a DNS A record holding a Region's address plus
the shared port reaches that Region. Returns `{"region", "address", "port", "url"}` with
`url = http://<address>:<port>/health`. `GET /_twin/workload` -> `{"regions": {region:
{address, port, url, requests, fault}}}`.

The endpoint answers any GET with 200 `{"region": "<r>", "status": "ok"}` (threaded server).
Its faults come from `POST /_twin/faults` with target `workload` (faults.py):
`hang` = accepted and never answered while the fault lasts (then the connection is closed with
no answer), `error` = 503, `slow` = answered after `ms`, `throttle` = 503 as well (a web
workload has no throttling protocol of its own), `down` = connection refused (the listener is
closed; reopened on the same address and port when the fault is cleared).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .core import Twin

BASE = "127.0.1."
MAX_REGIONS = 16


def address_of(index: int) -> str:
    """The loopback address of the index-th Region created (0-based): 127.0.1.<index+1>."""
    if not 0 <= index < MAX_REGIONS:
        raise ValueError(f"workload: at most {MAX_REGIONS} Regions")
    return f"{BASE}{index + 1}"


def shared_port() -> int:
    """A port free on every workload address (127.0.1.1 .. 127.0.1.16)."""
    for _ in range(50):
        probe = socket.socket()
        probe.bind((address_of(0), 0))
        port = probe.getsockname()[1]
        probe.close()
        try:
            for i in range(MAX_REGIONS):
                s = socket.socket()
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((address_of(i), port))
                finally:
                    s.close()
        except OSError:
            continue
        return port
    raise OSError("workload: no port free on every workload address")


class Endpoint:
    """One Region's endpoint: a threaded HTTP server that can be taken down and back up."""

    def __init__(self, twin: Twin, region: str, address: str, port: int) -> None:
        self.twin = twin
        self.region = region
        self.address = address
        self.port = port
        self.requests = 0
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.released = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/health"

    def fault(self) -> dict | None:
        return self.twin.workload_faults.get(self.region)

    def up(self) -> None:
        with self.lock:
            if self.server is not None:
                return
            endpoint = self

            class Handler(BaseHTTPRequestHandler):
                def log_message(self, *args: Any) -> None:
                    pass

                def do_GET(self) -> None:
                    endpoint.serve(self)

            server = ThreadingHTTPServer((self.address, self.port), Handler)
            server.daemon_threads = True
            self.server = server
            threading.Thread(target=server.serve_forever, name=f"workload-{self.region}", daemon=True).start()

    def down(self) -> None:
        with self.lock:
            server, self.server = self.server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.requests += 1
        fault = self.fault() or {}
        mode = fault.get("mode")
        if mode == "hang":
            with self.released:
                while (self.fault() or {}).get("mode") == "hang" and not self.twin.stopping.is_set():
                    self.released.wait(0.5)
            handler.close_connection = True
            return
        if mode == "slow":
            time.sleep(float(fault.get("ms", 0)) / 1000.0)
        if mode in ("error", "throttle"):
            status, body = 503, {"region": self.region, "status": "unavailable"}
        else:
            status, body = 200, {"region": self.region, "status": "ok"}
        payload = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def on_fault(self, fault: dict | None) -> None:
        if fault and fault.get("mode") == "down":
            self.down()
        else:
            self.up()
        with self.released:
            self.released.notify_all()

    def describe(self) -> dict:
        return {"region": self.region, "address": self.address, "port": self.port, "url": self.url,
                "requests": self.requests, "fault": self.fault(), "listening": self.server is not None}


class Workloads:
    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        self.endpoints: dict[str, Endpoint] = {}
        self.port: int | None = None
        self.lock = threading.Lock()
        if not hasattr(twin, "workload_faults"):
            twin.workload_faults = {}
        if not hasattr(twin, "fault_listeners"):
            twin.fault_listeners = []
        twin.fault_listeners.append(self.on_fault)

    def start(self, region: str) -> Endpoint:
        with self.lock:
            endpoint = self.endpoints.get(region)
            if endpoint is None:
                if self.port is None:
                    self.port = shared_port()
                endpoint = Endpoint(self.twin, region, address_of(len(self.endpoints)), self.port)
                self.endpoints[region] = endpoint
                if (endpoint.fault() or {}).get("mode") != "down":
                    endpoint.up()
                self.twin.timeline.record("workload.start", f"workload of {region} listens on {endpoint.url}",
                                          region=region, address=endpoint.address, port=endpoint.port)
            return endpoint

    def on_fault(self, target: str, region: str, fault: dict | None) -> None:
        if target != "workload":
            return
        endpoint = self.endpoints.get(region)
        if endpoint is not None:
            endpoint.on_fault(fault)

    def control(self, method: str, body: Any, query: dict) -> tuple:
        if method == "POST":
            if not isinstance(body, dict) or not body.get("region"):
                return 400, {"error": "workload: {region}"}
            e = self.start(body["region"])
            return 200, {"region": e.region, "address": e.address, "port": e.port, "url": e.url}
        return 200, {"regions": {r: e.describe() for r, e in self.endpoints.items()}}

    def stop(self) -> None:
        for endpoint in self.endpoints.values():
            endpoint.down()


def install(twin: Twin) -> None:
    twin.workloads = Workloads(twin)
    twin.control("workload")(twin.workloads.control)
