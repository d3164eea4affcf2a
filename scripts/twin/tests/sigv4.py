"""A query-protocol call as the pinned Rust SDK sends it (aws-sdk-cloudwatch 1.99: form body
`Action=...&Version=...`, SigV4-signed), for tests: boto3 speaks CloudWatch over CBOR."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def query_call(url: str, service: str, region: str, params: dict, key: str = "testing",
               user_agent: str = "aws-sdk-rust/1.3.0 os/linux lang/rust") -> tuple[int, bytes]:
    body = urllib.parse.urlencode(params)
    request = AWSRequest(method="POST", url=url + "/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "User-Agent": user_agent})
    SigV4Auth(Credentials(key, key), service, region).add_auth(request)
    prepared = urllib.request.Request(url + "/", data=body.encode(), method="POST", headers=dict(request.headers))
    try:
        with urllib.request.urlopen(prepared, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
