"""Shared fixtures: a real moto server (scripts/moto_server.py, with the twin installed)
on a free loopback port, started per test module, and boto3 clients pointed at it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SCRIPTS))

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
