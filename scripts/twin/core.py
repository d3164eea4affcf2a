"""The twin's shared parts: one `Twin` per moto server process.

- `twin.locked()`: moto's backends are not thread-safe; the server serializes requests
  with one lock (`Serialized` in moto_server.py) and every background thread of the twin
  that reads or changes a moto backend in-process holds the same lock.
- `twin.client(service, region)`: a boto3 client to this server, signed with the twin's
  own access key (`TWIN_ACCESS_KEY`): AWS acting on its own behalf (an alarm's action, an
  EventBridge target). Those calls bypass client faults and are logged as `caller=aws`.
- `twin.timeline`: what the twin did (alarm state changes, deliveries, faults, promotions),
  read by the harness through `GET /_twin/timeline?since=N` and printed in the drill.
- `twin.control(name)`: registers `/_twin/<name>`, a JSON control endpoint.
- `twin.every(seconds, fn, name)`: a background loop (daemon thread) until the server stops.
- `twin.settings`: named local settings (delays, lags), set by `POST /_twin/settings` and
  printed in the timeline when changed: local overrides are named inputs.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
import traceback
from typing import Any, Callable

ACCOUNT = "123456789012"
TWIN_ACCESS_KEY = "AKIDTWINAWSITSELF"
TWIN_SECRET_KEY = "twin"

Handler = Callable[[str, Any, dict], tuple]  # (method, body, query) -> (status, obj)


class Timeline:
    """Append-only, thread-safe list of what the twin did."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[dict] = []

    def record(self, kind: str, detail: str, **fields: Any) -> dict:
        row = {"at": time.time(), "kind": kind, "detail": detail, **fields}
        with self._lock:
            row["seq"] = len(self._rows)
            self._rows.append(row)
        return row

    def since(self, seq: int = 0) -> list[dict]:
        with self._lock:
            return list(self._rows[seq:])


class Twin:
    def __init__(self, moto_lock: threading.Lock) -> None:
        self.moto_lock = moto_lock
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.lambda_endpoint: str | None = None
        # Deployed function name (template FunctionName) -> cargo binary name, and each
        # binary's timeout in seconds (template Timeout / Globals), set by the stack module.
        self.functions: dict[str, str] = {}
        self.function_timeouts: dict[str, float] = {}
        # Lambda resource-based policy statements (AWS::Lambda::Permission and the ones SAM
        # generates): {"function": binary, "principal", "source_arn", "source_account"}.
        # Written by the stack module (or POST /_twin/lambda/permissions); AWS services
        # (alarm actions, EventBridge targets) invoke a function only when one allows them.
        self.permissions: list[dict] = []
        # Region -> the fault its AWS APIs answer with ({"mode": "hang"|"error"|"throttle"
        # |"slow", ...}), kept by the faults module; others read it (a replica whose source
        # Region hangs stops replicating).
        self.region_faults: dict[str, dict] = {}
        self.timeline = Timeline()
        self.controls: dict[str, Handler] = {}
        self.settings: dict[str, Any] = {}
        self.settings_hooks: list[Callable[[dict], None]] = []
        self.stopping = threading.Event()
        self._started: list[tuple[float | Callable[[], float], Callable[[], None], str]] = []
        self.control("timeline")(self._timeline)
        self.control("settings")(self._settings)
        self.control("lambda/permissions")(self._permissions)

    # ---------------------------------------------------------------- plumbing
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @contextlib.contextmanager
    def locked(self):
        with self.moto_lock:
            yield

    def control(self, name: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.controls[name] = fn
            return fn

        return register

    def every(self, seconds: float | Callable[[], float], fn: Callable[[], None], name: str) -> None:
        """Runs `fn` every `seconds` (a number or a callable read each time) once started."""
        self._started.append((seconds, fn, name))
        if self.port is not None:
            self._spawn(seconds, fn, name)

    def start(self, port: int) -> None:
        """Called by moto_server.py once the server is bound."""
        self.port = port
        for seconds, fn, name in self._started:
            self._spawn(seconds, fn, name)

    def _spawn(self, seconds, fn, name) -> None:
        def loop() -> None:
            while not self.stopping.is_set():
                try:
                    fn()
                except Exception as error:  # a bug in the twin must be visible, not fatal
                    self.timeline.record("twin.error", f"{name}: {error!r}")
                    traceback.print_exc(file=sys.stderr)
                interval = seconds() if callable(seconds) else seconds
                self.stopping.wait(max(0.05, float(interval)))

        threading.Thread(target=loop, name=f"twin-{name}", daemon=True).start()

    def client(self, service: str, region: str):
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=TWIN_ACCESS_KEY,
            aws_secret_access_key=TWIN_SECRET_KEY,
            config=Config(retries={"max_attempts": 1}, read_timeout=900, connect_timeout=5),
        )

    def binary_of(self, function_ref: str) -> str:
        """A Lambda name or ARN (any qualifier) -> the binary `cargo lambda watch` serves."""
        name = function_ref
        if name.startswith("arn:"):
            parts = name.split(":")
            name = parts[6] if len(parts) > 6 else name
        name = name.split(":")[0]
        return self.functions.get(name, name)

    def setting(self, name: str, default: Any) -> Any:
        return self.settings.get(name, default)

    def minute(self) -> float:
        """Real seconds a CloudWatch/EventBridge "minute" lasts here: 60 unless the named
        local setting `twin.minute_seconds` shortens it (printed in the timeline)."""
        return float(self.setting("twin.minute_seconds", 60))

    def region_failing(self, region: str) -> bool:
        """Whether Region `region` is down (its APIs hang or fail) by the faults module."""
        fault = self.region_faults.get(region)
        return bool(fault) and fault.get("mode") in ("hang", "error")

    def allowed(self, function_ref: str, principal: str, source_arn: str | None) -> bool:
        """Whether a resource policy lets `principal` invoke the function for `source_arn`
        (Lambda resource-based policies; a statement without SourceArn allows any)."""
        binary = self.binary_of(function_ref)
        for p in self.permissions:
            if self.binary_of(p.get("function", "")) != binary or p.get("principal") != principal:
                continue
            want = p.get("source_arn")
            if not want or want == source_arn or (want.endswith("*") and (source_arn or "").startswith(want[:-1])):
                return True
        return False

    # ---------------------------------------------------------------- controls
    def _timeline(self, method: str, body: Any, query: dict) -> tuple:
        return 200, {"rows": self.timeline.since(int(query.get("since", 0) or 0))}

    def _permissions(self, method: str, body: Any, query: dict) -> tuple:
        if method == "POST":
            if not isinstance(body, dict) or not body.get("function") or not body.get("principal"):
                return 400, {"error": "lambda/permissions: {function, principal, source_arn?, source_account?}"}
            self.permissions.append(body)
            self.timeline.record("lambda.permission", f"{body['principal']} may invoke {body['function']}" + (f" for {body['source_arn']}" if body.get("source_arn") else ""))
        return 200, {"permissions": self.permissions}

    def _settings(self, method: str, body: Any, query: dict) -> tuple:
        if method == "POST":
            if not isinstance(body, dict):
                return 400, {"error": "settings: a JSON object of name: value"}
            self.settings.update(body)
            for name, value in sorted(body.items()):
                self.timeline.record("twin.setting", f"local setting {name} = {json.dumps(value)}", name=name, value=value)
            for hook in self.settings_hooks:
                hook(body)
        return 200, {"settings": self.settings}


class Controls:
    """WSGI layer answering `/_twin/<name>`; everything else goes to `app`."""

    PREFIX = "/_twin/"

    def __init__(self, app, twin: Twin) -> None:
        self.app = app
        self.twin = twin

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith(self.PREFIX):
            return self.app(environ, start_response)
        name = path[len(self.PREFIX):].strip("/")
        handler = self.twin.controls.get(name)
        method = environ.get("REQUEST_METHOD", "GET")
        from urllib.parse import parse_qsl

        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        if handler is None:
            status, obj = 404, {"error": f"no twin control {name!r}", "controls": sorted(self.twin.controls)}
        else:
            try:
                body = json.loads(raw) if raw else None
                status, obj = handler(method, body, query)
            except (ValueError, KeyError, TypeError) as error:
                status, obj = 400, {"error": f"{name}: {error}"}
        payload = json.dumps(obj, default=str).encode()
        start_response(f"{status} {'OK' if status < 400 else 'Error'}", [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
        ])
        return [payload]


def invoke(twin: Twin, function_ref: str, payload: Any, timeout: float = 900) -> tuple[int, dict, bytes]:
    """Invokes a function through this server's Lambda router, as AWS itself does for an
    alarm action or an EventBridge target: `(status, headers, body)`. Signed with the
    twin's key, in the function's Region (from its ARN), so the call log shows it as
    `caller=aws`."""
    import urllib.error
    import urllib.parse
    import urllib.request

    region = function_ref.split(":")[3] if function_ref.startswith("arn:") else "us-east-1"
    date = time.strftime("%Y%m%d", time.gmtime())
    request = urllib.request.Request(
        f"{twin.url}/2015-03-31/functions/{urllib.parse.quote(function_ref, safe='')}/invocations",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Amz-Invocation-Type": "Event",
            "Authorization": f"AWS4-HMAC-SHA256 Credential={TWIN_ACCESS_KEY}/{date}/{region}/lambda/aws4_request, SignedHeaders=host, Signature=0",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
