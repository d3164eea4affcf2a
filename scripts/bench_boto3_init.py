"""The Python + boto3 reference for the footprint benchmark: the init a Python Lambda of
the same function would do (import boto3, build the same clients once), then the runtime
API loop's first /next. It answers the event with `{}`: only init is compared."""

import json
import os
import sys
import urllib.request

import boto3

services = [s for s in sys.argv[1].split(",") if s]
session = boto3.session.Session()
clients = {s: session.client(s) for s in services}

api = os.environ["AWS_LAMBDA_RUNTIME_API"]
with urllib.request.urlopen(f"http://{api}/2018-06-01/runtime/invocation/next") as resp:
    request_id = resp.headers["Lambda-Runtime-Aws-Request-Id"]
    event = json.loads(resp.read() or b"{}")
urllib.request.urlopen(
    urllib.request.Request(
        f"http://{api}/2018-06-01/runtime/invocation/{request_id}/response",
        data=b"{}",
        method="POST",
    )
).read()
