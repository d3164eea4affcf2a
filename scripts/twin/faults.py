"""A Region that fails like a Region: its AWS APIs hang, fail, throttle or slow down.

A Region in trouble usually does not refuse connections: it hangs, times out or returns 5xx
and throttling, sometimes only for some services. This WSGI layer (inside the call log, so
faulted calls are logged with their fault) answers requests signed for a faulted Region.

Control `/_twin/faults`:
- `POST {"region": "us-east-1", "mode": "hang"|"error"|"throttle"|"slow"|"down"|"none",
  "ms": 300, "services": ["dynamodb", ...], "targets": ["aws", "workload"],
  "route53_control_plane": false}` sets (or, with `"none"`, clears) the Region's fault for the
  given targets. `services` (default: every service) takes signing names or boto3 names
  (`cloudwatch` = `monitoring`, `stepfunctions` = `states`). `targets` default to both, except
  for `down` (connection refused), a workload-only mode: `down` with target `aws` is a 400.
  `route53_control_plane: true` also applies the fault to Route 53 API calls (service `route53`,
  signed in us-east-1, its control plane) whatever the faulted Region; without it Route 53's
  API is never faulted by a Region's fault (it is a global service).
- `GET` -> `{"aws": {region: fault}, "workload": {region: fault}}`; `DELETE` clears all.
State: `twin.region_faults` (AWS APIs, read by others) and `twin.workload_faults` (the
workload endpoints of workload.py); listeners in `twin.fault_listeners` are called with
`(target, region, fault_or_None)` on every change. Each change is a `fault.set` /
`fault.cleared` timeline row.

Modes as the client sees them (error codes the Rust SDK classifies: aws-runtime's
`THROTTLING_ERRORS` lists Throttling, ThrottlingException, TooManyRequestsException, SlowDown,
... — https://docs.rs/crate/aws-runtime/latest/source/src/retries/classifiers.rs):
- `hang`: the request is accepted and never answered while the fault lasts; when it is cleared
  (or the server stops) the held request is answered 503 ServiceUnavailable (the caller has
  normally given up long before: only a client read timeout gets it out).
- `error`: HTTP 500 in the protocol's shape (`error_response`).
- `throttle`: the protocol's throttling error (`throttle_response`).
- `slow`: answered normally after `ms` milliseconds.
Calls signed with the twin's own key (AWS acting on its own behalf) are never faulted.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any, Callable

from .core import TWIN_ACCESS_KEY, Twin
from . import calllog

MODES = ("hang", "error", "throttle", "slow", "down", "none")
TARGETS = ("aws", "workload")
ALIASES = {"cloudwatch": "monitoring", "stepfunctions": "states", "sfn": "states"}

# Protocol of each service as AWS's SDKs speak it (signing name -> protocol). JSON-protocol
# services send X-Amz-Target; query-protocol services send Action=; the rest are REST.
REST_XML = {"s3", "route53"}
REST_JSON = {"lambda"}


def protocol_of(service: str, environ: dict) -> str:
    """`json`, `cbor`, `query`, `s3`, `route53` or `rest-json` for a request to `service`."""
    if service == "s3":
        return "s3"
    if service == "route53":
        return "route53"
    if service in REST_JSON:
        return "rest-json"
    if environ.get("HTTP_SMITHY_PROTOCOL") == "rpc-v2-cbor":
        return "cbor"
    if environ.get("HTTP_X_AMZ_TARGET"):
        # awsQueryCompatible JSON (boto3's CloudWatch sends `x-amzn-query-mode: true`): the
        # error codes are the query protocol's, also in `x-amzn-query-error: <Code>;<Type>`.
        return "json-query" if environ.get("HTTP_X_AMZN_QUERY_MODE") == "true" else "json"
    return "query"


def _cbor_text(value: str) -> bytes:
    data = value.encode()
    n = len(data)
    if n < 24:
        head = bytes([0x60 | n])
    elif n < 256:
        head = bytes([0x78, n])
    else:
        head = bytes([0x79]) + n.to_bytes(2, "big")
    return head + data


def cbor_map(obj: dict[str, str]) -> bytes:
    """A CBOR (RFC 8949) map of text strings: the Smithy RPC v2 CBOR error body."""
    out = bytes([0xA0 | len(obj)])
    for key, value in obj.items():
        out += _cbor_text(key) + _cbor_text(value)
    return out


def _xml(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()


def error_response(protocol: str, service: str, status: int = 500, code: str | None = None,
                   message: str = "We encountered an internal error. Please try again.") -> tuple[int, list, bytes]:
    """(status, headers, body) of a server-side failure in the protocol's error shape.

    - JSON protocols (DynamoDB, Step Functions): `{"__type": ..., "message": ...}` with
      `x-amzn-ErrorType`; DynamoDB's 5xx is `InternalServerError` ("Error handling with
      DynamoDB", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html).
    - Query protocol (RDS, CloudWatch): `<ErrorResponse><Error><Type>Receiver</Type>
      <Code>InternalFailure</Code>...` (AWS common errors: InternalFailure, HTTP 500).
    - Route 53 (REST-XML): the same `ErrorResponse` shape in Route 53's namespace.
    - S3 (REST-XML): `<Error><Code>InternalError</Code>...` ("Amazon S3 error best
      practices": retry InternalErrors, https://docs.aws.amazon.com/AmazonS3/latest/userguide/ErrorBestPractices.html).
    - Lambda (REST-JSON): `ServiceException` (HTTP 500) with `x-amzn-ErrorType`.
    """
    request_id = str(uuid.uuid4())
    if protocol == "cbor":
        # Smithy RPC v2 CBOR errors: `__type` in a CBOR map, `smithy-protocol` header
        # (https://smithy.io/2.0/additional-specs/protocols/smithy-rpc-v2.html).
        code = code or "InternalFailure"
        body = cbor_map({"__type": code, "message": message})
        return status, [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor"),
                        ("x-amzn-ErrorType", code), ("x-amzn-RequestId", request_id)], body
    if protocol in ("json", "json-query"):
        code = code or ("InternalFailure" if protocol == "json-query" else "InternalServerError")
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-ErrorType", code),
                   ("x-amzn-RequestId", request_id)]
        if protocol == "json-query":
            headers.append(("x-amzn-query-error", f"{code};{'Sender' if status < 500 else 'Receiver'}"))
        return status, headers, body
    if protocol == "rest-json":
        code = code or "ServiceException"
        body = json.dumps({"Type": "Service", "message": message}).encode()
        return status, [("Content-Type", "application/json"), ("x-amzn-ErrorType", code),
                        ("x-amzn-RequestId", request_id)], body
    if protocol == "s3":
        code = code or "InternalError"
        body = _xml(f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>")
        return status, [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)], body
    code = code or "InternalFailure"
    kind = "Sender" if status < 500 else "Receiver"
    ns = ' xmlns="https://route53.amazonaws.com/doc/2013-04-01/"' if protocol == "route53" else ""
    body = _xml(f"<ErrorResponse{ns}><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>"
                f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>")
    return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body


def throttle_response(protocol: str, service: str) -> tuple[int, list, bytes]:
    """The protocol's documented throttling error (all in aws-runtime's THROTTLING_ERRORS):
    - JSON: `ThrottlingException`, HTTP 400 (DynamoDB's "Rate of requests exceeds the allowed
      throughput", Programming.Errors above; Step Functions' ThrottlingException).
    - Query (RDS, CloudWatch): `Throttling`, HTTP 400, Type Sender ("Rate exceeded").
    - Route 53: `Throttling` / "Rate exceeded", HTTP 400 ("I'm getting API throttling errors in
      Amazon Route 53", https://repost.aws/knowledge-center/route-53-avoid-throttling-errors).
    - S3: `SlowDown`, HTTP 503 ("Please reduce your request rate.", ErrorBestPractices above).
    - Lambda: `TooManyRequestsException`, HTTP 429 (Invoke API errors).
    """
    if protocol in ("cbor", "json-query"):
        return error_response(protocol, service, 400, "Throttling", "Rate exceeded")
    if protocol == "json":
        return error_response(protocol, service, 400, "ThrottlingException", "Rate of requests exceeds the allowed throughput.")
    if protocol == "s3":
        return error_response(protocol, service, 503, "SlowDown", "Please reduce your request rate.")
    if protocol == "rest-json":
        return error_response(protocol, service, 429, "TooManyRequestsException", "Rate exceeded")
    return error_response(protocol, service, 400, "Throttling", "Rate exceeded")


def normalise_service(name: str) -> str:
    name = name.lower()
    return ALIASES.get(name, name)


def matching_fault(faults: dict[str, dict], region: str | None, service: str | None) -> dict | None:
    """The AWS-target fault a request signed for (`region`, `service`) gets, if any.

    Route 53's API (service `route53`) is faulted only by a fault with
    `route53_control_plane: true`, in whatever Region that fault is; any other service by the
    fault of the Region it is signed for, when the fault's `services` (if given) name it."""
    service = normalise_service(service or "")
    if service == "route53":
        for fault in faults.values():
            if fault.get("route53_control_plane"):
                return fault
        return None
    fault = faults.get(region or "")
    if not fault:
        return None
    services = fault.get("services")
    if services and service not in {normalise_service(s) for s in services}:
        return None
    return fault


def parse_request(body: Any) -> dict:
    """Validates a `POST /_twin/faults` body; returns the normalised fault spec."""
    if not isinstance(body, dict) or not body.get("region") or body.get("mode") not in MODES:
        raise ValueError(f"faults: {{region, mode: {'|'.join(MODES)}, ms?, services?, targets?, route53_control_plane?}}")
    mode = body["mode"]
    targets = body.get("targets") or (["workload"] if mode == "down" else list(TARGETS))
    if any(t not in TARGETS for t in targets):
        raise ValueError(f"faults: targets must be among {list(TARGETS)}")
    if mode == "down" and "aws" in targets:
        raise ValueError("faults: mode 'down' (connection refused) is a workload-only mode: AWS APIs of a Region in trouble hang, fail or throttle")
    spec = {
        "region": body["region"],
        "mode": mode,
        "ms": float(body.get("ms", 0) or 0),
        "services": [normalise_service(s) for s in body["services"]] if body.get("services") else None,
        "targets": list(targets),
        "route53_control_plane": bool(body.get("route53_control_plane", False)),
    }
    if mode == "slow" and spec["ms"] <= 0:
        raise ValueError("faults: mode 'slow' needs ms > 0")
    return spec


class Faults:
    """The fault state of every Region, shared by the AWS layer and the workload endpoints."""

    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        self.changed = threading.Condition()
        if not hasattr(twin, "workload_faults"):
            twin.workload_faults = {}
        if not hasattr(twin, "fault_listeners"):
            twin.fault_listeners = []

    def _store(self, target: str) -> dict[str, dict]:
        return self.twin.region_faults if target == "aws" else self.twin.workload_faults

    def set(self, spec: dict) -> None:
        for target in spec["targets"]:
            store = self._store(target)
            region = spec["region"]
            if spec["mode"] == "none":
                if store.pop(region, None) is not None:
                    self._changed(target, region, None)
                continue
            fault = {k: v for k, v in spec.items() if k not in ("targets", "region")}
            fault["since"] = time.time()
            store[region] = fault
            self._changed(target, region, fault)

    def clear_all(self) -> None:
        for target in TARGETS:
            store = self._store(target)
            for region in list(store):
                store.pop(region, None)
                self._changed(target, region, None)

    def _changed(self, target: str, region: str, fault: dict | None) -> None:
        if fault is None:
            self.twin.timeline.record("fault.cleared", f"{target} faults of {region} cleared", target=target, region=region)
        else:
            scope = ",".join(fault["services"]) if fault.get("services") else "every service"
            extra = f" {fault['ms']:.0f} ms" if fault["mode"] == "slow" else ""
            r53 = " + Route 53 control plane" if fault.get("route53_control_plane") and target == "aws" else ""
            self.twin.timeline.record(
                "fault.set", f"{target} of {region}: {fault['mode']}{extra} ({scope}{r53})",
                target=target, region=region, mode=fault["mode"], ms=fault.get("ms"),
                services=fault.get("services"), route53_control_plane=fault.get("route53_control_plane"),
            )
        with self.changed:
            self.changed.notify_all()
        for listener in list(self.twin.fault_listeners):
            listener(target, region, fault)

    def wait_while(self, still: Callable[[], bool]) -> None:
        """Blocks while `still()` holds and the server runs (a hung request)."""
        with self.changed:
            while still() and not self.twin.stopping.is_set():
                self.changed.wait(0.5)

    # ------------------------------------------------------------------ control
    def control(self, method: str, body: Any, query: dict) -> tuple:
        if method == "POST":
            self.set(parse_request(body))
        elif method == "DELETE":
            self.clear_all()
        return 200, {"aws": self.twin.region_faults, "workload": self.twin.workload_faults}


class FaultLayer:
    """WSGI layer answering requests of a faulted Region (and service) as that Region would."""

    def __init__(self, app, twin: Twin, faults: Faults) -> None:
        self.app = app
        self.twin = twin
        self.faults = faults

    def __call__(self, environ, start_response):
        if not calllog.is_aws_call(environ):
            return self.app(environ, start_response)
        key, region, service = calllog.credential_scope(environ)
        if key == TWIN_ACCESS_KEY:
            return self.app(environ, start_response)
        fault = matching_fault(self.twin.region_faults, region, service)
        if fault is None:
            return self.app(environ, start_response)
        mode = fault["mode"]
        environ["twin.fault"] = mode
        protocol = protocol_of(service or "", environ)
        if mode == "slow":
            time.sleep(fault["ms"] / 1000.0)
            return self.app(environ, start_response)
        if mode == "hang":
            self.faults.wait_while(lambda: (matching_fault(self.twin.region_faults, region, service) or {}).get("mode") == "hang")
            status, headers, body = error_response(protocol, service or "", 503, "ServiceUnavailable", "Service unavailable")
        elif mode == "throttle":
            status, headers, body = throttle_response(protocol, service or "")
        else:
            status, headers, body = error_response(protocol, service or "", 500)
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {'Error'}", headers)
        return [body]


def install(twin: Twin) -> None:
    twin.faults = Faults(twin)
    twin.control("faults")(twin.faults.control)


def wrap(app, twin: Twin):
    return FaultLayer(app, twin, twin.faults)
