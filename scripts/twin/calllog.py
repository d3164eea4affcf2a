"""The call log: one row per AWS API request the server answered, the outermost WSGI layer.

Row: `{seq, at (epoch s), ms, service, operation, region, caller, status, fault, plane}`.
- `region`, `service`: the SigV4 credential scope (`Authorization: AWS4-HMAC-SHA256
  Credential=<key>/<date>/<region>/<service>/aws4_request, ...`, or a presigned URL's
  `X-Amz-Credential`) — "Signature Version 4 signing process", credential scope
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html).
- `operation`: `X-Amz-Target`'s part after the dot (JSON protocols: DynamoDB, Step Functions),
  the last path segment of Smithy RPC v2 CBOR's `/service/<s>/operation/<Op>` (boto3's CloudWatch),
  `Action=` of the query string or form body (query protocol: RDS, CloudWatch, SNS, SQS,
  STS), or the REST method + path (Route 53, S3, Lambda) by `rest_operation`.
- `caller`: the SDK user agent's `app/<name>` token (each function's SDK sends its name as
  its app id), else `aws` for the twin's own key (AWS acting on its own behalf), else `states`
  for moto's Step Functions executor (its Lambda tasks and service integrations sign with the
  access key `ak`: moto/stepfunctions/parser/asl/utils/boto_client.py), else `harness`.
- `fault`: the Region fault mode the request got (faults.py), or null.
- `plane`: for Route 53, `control` (its API, served from us-east-1); DNS answers and health
  checks (the data plane) are logged by the modules that emulate them through
  `twin.call_log.add(...)` with `plane="data"`. Null for other services.
Control: `GET /_twin/calls?since=N` -> `{"calls": [...], "pending": [...]}` (`pending`: calls
accepted and not answered yet, e.g. held by a `hang` fault). `/_twin/` and `/moto-api/` paths
are not logged.
"""

from __future__ import annotations

import io
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote

from .core import TWIN_ACCESS_KEY, Twin

STATES_EXECUTOR_KEY = "ak"
CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")
RPC_V2_PATH = re.compile(r"^/service/[^/]+/operation/([^/]+)$")
APP_ID = re.compile(r"(?:^|\s)app/([^\s]+)")


def credential_scope(environ: dict) -> tuple[str | None, str | None, str | None]:
    """(access key, region, service) of a SigV4-signed request (header or presigned URL)."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    match = CREDENTIAL.search(auth)
    if match:
        return match[1], match[3], match[4]
    query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    cred = query.get("X-Amz-Credential")
    if cred:
        parts = unquote(cred).split("/")
        if len(parts) >= 5:
            return parts[0], parts[2], parts[3]
    return None, None, None


def caller_of(user_agent: str, access_key: str | None) -> str:
    """Who called: the SDK's app id, else `aws` (twin key), `states` (moto's Step Functions
    executor), or `harness`."""
    match = APP_ID.search(user_agent or "")
    if match:
        return match[1]
    if access_key == TWIN_ACCESS_KEY:
        return "aws"
    if access_key == STATES_EXECUTOR_KEY:
        return "states"
    return "harness"


ROUTE53 = [
    # (method, path regex under /2013-04-01, operation) — Route 53 API reference paths.
    ("POST", r"/hostedzone/[^/]+/rrset/?", "ChangeResourceRecordSets"),
    ("GET", r"/hostedzone/[^/]+/rrset/?", "ListResourceRecordSets"),
    ("GET", r"/hostedzone/?", "ListHostedZones"),
    ("POST", r"/hostedzone/?", "CreateHostedZone"),
    ("GET", r"/hostedzone/[^/]+", "GetHostedZone"),
    ("DELETE", r"/hostedzone/[^/]+", "DeleteHostedZone"),
    ("GET", r"/hostedzonesbyname/?", "ListHostedZonesByName"),
    ("GET", r"/hostedzonecount/?", "GetHostedZoneCount"),
    ("GET", r"/change/[^/]+", "GetChange"),
    ("GET", r"/healthcheck/[^/]+/status", "GetHealthCheckStatus"),
    ("GET", r"/healthcheck/[^/]+/lastfailurereason", "GetHealthCheckLastFailureReason"),
    ("GET", r"/healthcheck/?", "ListHealthChecks"),
    ("POST", r"/healthcheck/?", "CreateHealthCheck"),
    ("GET", r"/healthcheck/[^/]+", "GetHealthCheck"),
    ("POST", r"/healthcheck/[^/]+", "UpdateHealthCheck"),
    ("DELETE", r"/healthcheck/[^/]+", "DeleteHealthCheck"),
    ("GET", r"/tags/[^/]+/[^/]+", "ListTagsForResource"),
    ("POST", r"/tags/[^/]+/[^/]+", "ChangeTagsForResource"),
]

LAMBDA = [
    ("POST", r"/2015-03-31/functions/[^/]+/invocations", "Invoke"),
    ("POST", r"/2014-11-13/functions/[^/]+/invoke-async/?", "InvokeAsync"),
    ("GET", r"/2015-03-31/functions/?", "ListFunctions"),
    ("POST", r"/2015-03-31/functions/?", "CreateFunction"),
    ("GET", r"/2015-03-31/functions/[^/]+/configuration", "GetFunctionConfiguration"),
    ("PUT", r"/2015-03-31/functions/[^/]+/configuration", "UpdateFunctionConfiguration"),
    ("PUT", r"/2015-03-31/functions/[^/]+/code", "UpdateFunctionCode"),
    ("POST", r"/2015-03-31/functions/[^/]+/policy", "AddPermission"),
    ("GET", r"/2015-03-31/functions/[^/]+/policy", "GetPolicy"),
    ("GET", r"/2015-03-31/functions/[^/]+/aliases/?", "ListAliases"),
    ("POST", r"/2015-03-31/functions/[^/]+/aliases/?", "CreateAlias"),
    ("GET", r"/2015-03-31/functions/[^/]+/aliases/[^/]+", "GetAlias"),
    ("PUT", r"/2015-03-31/functions/[^/]+/aliases/[^/]+", "UpdateAlias"),
    ("POST", r"/2015-03-31/functions/[^/]+/versions", "PublishVersion"),
    ("GET", r"/2015-03-31/functions/[^/]+", "GetFunction"),
    ("DELETE", r"/2015-03-31/functions/[^/]+", "DeleteFunction"),
]

S3_BUCKET_SUBRESOURCES = {
    # query key -> (GET, PUT, DELETE) operation names (S3 API reference).
    "replication": ("GetBucketReplication", "PutBucketReplication", "DeleteBucketReplication"),
    "versioning": ("GetBucketVersioning", "PutBucketVersioning", None),
    "policy": ("GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"),
    "tagging": ("GetBucketTagging", "PutBucketTagging", "DeleteBucketTagging"),
    "lifecycle": ("GetBucketLifecycleConfiguration", "PutBucketLifecycleConfiguration", "DeleteBucketLifecycle"),
    "location": ("GetBucketLocation", None, None),
    "versions": ("ListObjectVersions", None, None),
    "uploads": ("ListMultipartUploads", None, None),
    "acl": ("GetBucketAcl", "PutBucketAcl", None),
    "notification": ("GetBucketNotificationConfiguration", "PutBucketNotificationConfiguration", None),
    "encryption": ("GetBucketEncryption", "PutBucketEncryption", "DeleteBucketEncryption"),
}


def _table(rules: list, method: str, path: str) -> str | None:
    for want, pattern, op in rules:
        if want == method and re.fullmatch(pattern, path):
            return op
    return None


def s3_operation(method: str, path: str, query: dict, headers: dict) -> str:
    """S3 operation of a path-style request `/<bucket>[/<key>]` by method and query keys."""
    parts = path.lstrip("/").split("/", 1)
    bucket = parts[0]
    key = parts[1] if len(parts) > 1 else ""
    if not bucket:
        return "ListBuckets" if method == "GET" else f"{method} /"
    if not key:
        for sub, ops in S3_BUCKET_SUBRESOURCES.items():
            if sub in query:
                op = {"GET": ops[0], "PUT": ops[1], "DELETE": ops[2]}.get(method)
                if op:
                    return op
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        return {
            "GET": "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects",
            "PUT": "CreateBucket",
            "DELETE": "DeleteBucket",
            "HEAD": "HeadBucket",
        }.get(method, f"{method} bucket")
    if method == "GET":
        if "tagging" in query:
            return "GetObjectTagging"
        if "acl" in query:
            return "GetObjectAcl"
        if "uploadId" in query:
            return "ListParts"
        return "GetObject"
    if method == "PUT":
        if "uploadId" in query and "partNumber" in query:
            return "UploadPartCopy" if "x-amz-copy-source" in headers else "UploadPart"
        if "tagging" in query:
            return "PutObjectTagging"
        return "CopyObject" if "x-amz-copy-source" in headers else "PutObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
    return f"{method} object"


def rest_operation(service: str | None, method: str, path: str, query: dict, headers: dict) -> str:
    """Operation name of a REST request (Route 53, S3, Lambda); `METHOD path` otherwise."""
    if service == "route53" or path.startswith("/2013-04-01/"):
        op = _table(ROUTE53, method, path[len("/2013-04-01"):]) if path.startswith("/2013-04-01/") else None
        return op or f"{method} {path}"
    if service == "lambda" or re.match(r"^/20\d\d-\d\d-\d\d/functions", path):
        return _table(LAMBDA, method, path) or f"{method} {path}"
    if service == "s3":
        return s3_operation(method, path, query, headers)
    return f"{method} {path}"


def operation_of(environ: dict, service: str | None, body: bytes | None) -> str:
    """The API operation a request calls (module docstring says how, per protocol)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    # Smithy RPC v2 CBOR (boto3's CloudWatch): POST /service/<service>/operation/<Operation>.
    cbor = RPC_V2_PATH.match(environ.get("PATH_INFO", ""))
    if cbor:
        return cbor[1]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if "Action" in query:
        return query["Action"][0]
    if body:
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        if "Action" in form:
            return form["Action"][0]
    flat = {k: v[0] for k, v in query.items()}
    headers = {k[5:].lower().replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_")}
    return rest_operation(service, environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", ""), flat, headers)


def read_form_body(environ: dict) -> bytes | None:
    """Reads a form-encoded body (query protocol) and puts it back for the app behind."""
    if "x-www-form-urlencoded" not in environ.get("CONTENT_TYPE", ""):
        return None
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


class CallLog:
    """Append-only, thread-safe list of calls, plus the calls not answered yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[dict] = []
        self._pending: dict[int, dict] = {}
        self._next = 0

    def add(self, **row: Any) -> dict:
        row.setdefault("at", time.time())
        with self._lock:
            row["seq"] = len(self._rows)
            self._rows.append(row)
        return row

    def begin(self, row: dict) -> int:
        with self._lock:
            self._next += 1
            self._pending[self._next] = row
            return self._next

    def end(self, token: int, **fields: Any) -> dict:
        with self._lock:
            row = self._pending.pop(token)
        row.update(fields)
        return self.add(**row)

    def since(self, seq: int = 0) -> list[dict]:
        with self._lock:
            return list(self._rows[seq:])

    def pending(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._pending.values()]


def is_aws_call(environ) -> bool:
    """Whether a request is an AWS API call: not one to the twin's controls (`/_twin/`) or
    moto's own API (`/moto-api/`), which are neither logged nor faulted."""
    return not environ.get("PATH_INFO", "").startswith(("/_twin/", "/moto-api/"))


class CallLogLayer:
    def __init__(self, app, twin: Twin, log: CallLog) -> None:
        self.app = app
        self.twin = twin
        self.log = log

    def __call__(self, environ, start_response):
        if not is_aws_call(environ):
            return self.app(environ, start_response)
        key, region, service = credential_scope(environ)
        body = read_form_body(environ)
        row = {
            "at": time.time(),
            "service": service,
            "operation": operation_of(environ, service, body),
            "region": region,
            "caller": caller_of(environ.get("HTTP_USER_AGENT", ""), key),
            "status": None,
            "fault": None,
            "plane": "control" if service == "route53" else None,
        }
        token = self.log.begin(row)
        started = time.monotonic()
        seen: dict[str, int] = {}

        def recording_start_response(status, headers, exc_info=None):
            seen["status"] = int(str(status).split(" ", 1)[0])
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        try:
            result = list(self.app(environ, recording_start_response))
        finally:
            self.log.end(token, ms=round((time.monotonic() - started) * 1000, 1),
                         status=seen.get("status"), fault=environ.get("twin.fault"))
        return result


def install(twin: Twin) -> None:
    twin.call_log = CallLog()

    @twin.control("calls")
    def calls(method: str, body: Any, query: dict) -> tuple:
        return 200, {"calls": twin.call_log.since(int(query.get("since", 0) or 0)), "pending": twin.call_log.pending()}


def wrap(app, twin: Twin):
    return CallLogLayer(app, twin, twin.call_log)
