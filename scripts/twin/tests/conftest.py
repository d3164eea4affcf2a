"""Shared fixtures: a real moto server (scripts/moto_server.py, with the twin installed)
on a free loopback port, started per test module, and boto3 clients pointed at it; a fake
Lambda endpoint for the modules whose AWS services invoke functions; polling helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SCRIPTS))

from twin.core import ACCOUNT  # noqa: E402  (needs SCRIPTS on the path)

CLIENT_KEY = "testing"


class Server:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPTS / "moto_server.py"), "--port", "0", "--exit-on-stdin-eof", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if os.environ.get("TWIN_TEST_LOG") else subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("MOTO_PORT="):
            self.proc.kill()
            raise RuntimeError(f"moto_server.py did not start: {line!r}")
        self.port = int(line.strip().split("=", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def client(self, service: str, region: str = "us-east-1"):
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=CLIENT_KEY,
            aws_secret_access_key=CLIENT_KEY,
            config=Config(retries={"max_attempts": 1}),
        )

    def control(self, name: str, body=None, method: str | None = None, query: str = ""):
        """Calls `/_twin/<name>`; returns (status, json)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_twin/{name}{'?' + query if query else ''}",
            data=data,
            method=method or ("GET" if body is None else "POST"),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def timeline(self, since: int = 0) -> list[dict]:
        return self.control("timeline", query=f"since={since}")[1]["rows"]

    def stop(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


def wait_for(fn, timeout: float = 5.0, every: float = 0.05):
    """Calls `fn` every `every` seconds until it returns something true or `timeout`
    seconds have passed; returns its last value."""
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value or time.time() > deadline:
            return value
        time.sleep(every)


# ---------------------------------------------------------------- a server with a fake Lambda
class FakeLambda:
    """Answers `POST /2015-03-31/functions/<name>/invocations` like `cargo lambda watch`,
    recording (name, payload); `fail[name] = k` answers the next k calls with HTTP 500."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.fail: dict[str, int] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                name = self.path.split("/")[3]
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.calls.append((name, json.loads(body or b"{}")))
                if owner.fail.get(name, 0) > 0:
                    owner.fail[name] -= 1
                    self.send_response(500)
                    payload = b'{"errorType":"Boom","errorMessage":"boom"}'
                else:
                    self.send_response(200)
                    payload = b"{}"
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def of(self, name: str) -> list[dict]:
        return [p for n, p in self.calls if n == name]

    def wait(self, name: str, count: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.time() + timeout
        while time.time() < deadline and len(self.of(name)) < count:
            time.sleep(0.05)
        return self.of(name)

    def stop(self) -> None:
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def lambda_world():
    """(server, fake): a server invoking functions on a `FakeLambda`, with one-second
    minutes and CloudWatch's background alarm evaluation off (a test asks for an evaluation
    through `/_twin/alarms/evaluate`, or turns it on)."""
    fake = FakeLambda()
    server = Server("--lambda-endpoint", fake.url)
    server.control("settings", {"twin.minute_seconds": 1, "cloudwatch.evaluate": False})
    yield server, fake
    server.stop()
    fake.stop()


def fn_arn(name: str, region: str = "us-east-1") -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"


def allow(server, function: str, principal: str, source_arn: str | None = None) -> None:
    """Adds a Lambda resource-based policy statement letting `principal` invoke `function`."""
    body = {"function": function, "principal": principal}
    if source_arn:
        body["source_arn"] = source_arn
    assert server.control("lambda/permissions", body)[0] == 200
