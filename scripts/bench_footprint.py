"""Cold-start footprint of every Lifeboat function, side by side with Python + boto3.

For each function, N times: start its release binary (or the boto3 program) against a
loopback Lambda runtime API served here, and measure
  - exec -> first GET /runtime/invocation/next     (init time)
  - exec -> first response for a real sample event from events/ (init + first invoke)
  - peak RSS (VmHWM from /proc after the first response)
and the stripped binary size. AWS calls go to a moto server seeded with the example world,
so the first invoke does real work. Prints a Markdown table.

Usage: scripts/bench-footprint [--runs 20] [--only NAME[,NAME]] [--binary PATH] [--no-boto3]

--only limits the run to some functions; --binary measures another build of the one
function named by --only (how the TLS alternatives in the README were measured); --no-boto3
skips the Python reference. The load average is printed before and after the run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# function -> (sample event under events/, AWS services its main.rs builds clients for)
FUNCTIONS = {
    "health-probe": ("health-probe/workload-checkout.json", ["dynamodb", "cloudwatch", "route53"]),
    "failover-executor": ("failover-executor/operator-request.json", ["dynamodb", "stepfunctions"]),
    "replica-promoter": ("replica-promoter/rds-status.json", ["dynamodb", "rds", "s3"]),
    "traffic-shifter": ("traffic-shifter/plan-failover.json", ["dynamodb", "cloudwatch", "route53"]),
    "deploy-wave": (None, ["dynamodb", "cloudwatch"]),
    "cost-reporter": ("cost-reporter/request.json", ["dynamodb", "s3", "cloudwatch"]),
}


class QuietServer(ThreadingHTTPServer):
    """Killing the process resets its held /next connection: not an error worth a trace."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Runtime:
    """A one-event Lambda runtime API on loopback that timestamps what the process does."""

    def __init__(self, event: bytes):
        self.event = event
        self.first_next = None
        self.responded = None
        self.response = None
        self.done = threading.Event()
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.endswith("/runtime/invocation/next"):
                    if runtime.first_next is None:
                        runtime.first_next = time.perf_counter()
                        body = runtime.event
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4()))
                        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
                        self.send_header(
                            "Lambda-Runtime-Invoked-Function-Arn",
                            "arn:aws:lambda:us-east-1:123456789012:function:bench",
                        )
                        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    else:
                        # Second /next: hold it until the process is killed.
                        runtime.done.wait(30)
                        self.send_response(410)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    return
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if "/response" in self.path or "/error" in self.path:
                    if runtime.responded is None:
                        runtime.responded = time.perf_counter()
                        runtime.response = ("error" if "/error" in self.path else "ok", body[:300])
                        runtime.done.set()
                self.send_response(202)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.done.set()
        self.server.shutdown()
        self.server.server_close()


def peak_rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def one_cold_start(cmd, event: bytes, env: dict):
    rt = Runtime(event)
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{rt.port}")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok = rt.done.wait(60)
    rss = peak_rss_kb(proc.pid)
    proc.kill()
    proc.wait()
    rt.close()
    if not ok or rt.first_next is None:
        raise RuntimeError(f"{cmd[0]}: no response within 60 s")
    return (rt.first_next - start) * 1e3, (rt.responded - start) * 1e3, rss, rt.response


def seed(endpoint: str, table: str):
    import boto3

    spec = json.loads((ROOT / "events/model/example-spec.json").read_text())
    for region in ["us-east-1", "eu-west-1", "ap-southeast-1"]:
        ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name=region,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        ddb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    res = boto3.resource("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                         aws_access_key_id="testing", aws_secret_access_key="testing")
    from decimal import Decimal

    item = json.loads(json.dumps(spec), parse_float=Decimal)
    item.update({"pk": "WORKLOAD#checkout", "sk": "SPEC", "item_type": "spec", "version": 1})
    res.Table(table).put_item(Item=item)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--target-dir", default=str(ROOT / "target"))
    parser.add_argument("--only", default="", help="comma-separated function names")
    parser.add_argument("--binary", help="measure this binary instead (needs one --only)")
    parser.add_argument("--no-boto3", action="store_true", help="skip the Python reference")
    args = parser.parse_args()
    only = [n for n in args.only.split(",") if n]
    unknown = [n for n in only if n not in FUNCTIONS]
    if unknown:
        parser.error(f"unknown function(s): {', '.join(unknown)}")
    if args.binary and len(only) != 1:
        parser.error("--binary needs exactly one function in --only")
    selected = {n: v for n, v in FUNCTIONS.items() if not only or n in only}
    load_before = os.getloadavg()

    moto = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts/moto_server.py"), "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    line = moto.stdout.readline().strip()
    endpoint = "http://127.0.0.1:" + line.split("=", 1)[1]
    table = "lifeboat-bench"
    seed(endpoint, table)

    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "LIFEBOAT_TABLE": table,
        "FAILOVER_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:lifeboat-failover",
        "REPORT_BUCKET": "lifeboat-reports",
    }
    release = Path(args.target_dir) / "release"
    rows = []
    for name, (event_path, services) in selected.items():
        event = (ROOT / "events" / event_path).read_bytes() if event_path and (ROOT / "events" / event_path).exists() else b"{}"
        binary = Path(args.binary) if args.binary else release / name
        size_mb = binary.stat().st_size / 1e6
        rust = [one_cold_start([str(binary)], event, env) for _ in range(args.runs)]
        py_cmd = [sys.executable, str(ROOT / "scripts/bench_boto3_init.py"), ",".join(services)]
        py = [] if args.no_boto3 else [one_cold_start(py_cmd, event, env) for _ in range(args.runs)]
        rows.append((name, size_mb, rust, py))
        print(f"{name}: first response {rust[0][3][0]}: {rust[0][3][1][:120]!r}", file=sys.stderr)

    moto.stdin.close()
    moto.wait(10)

    def p50(xs):
        return statistics.median(xs)

    load_after = os.getloadavg()
    print(f"\n{args.runs} cold starts each; loopback runtime API; AWS calls to moto; "
          f"load average (1/5/15 min) before {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, "
          f"after {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f}.\n")
    print("| function | binary (stripped) | init p50 (exec → /next) | first response p50 | peak RSS | boto3 init p50 | boto3 peak RSS | init speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for name, size, rust, py in rows:
        r_init = p50([r[0] for r in rust])
        r_first = p50([r[1] for r in rust])
        r_rss = max(r[2] for r in rust) / 1024
        if py:
            p_init = p50([r[0] for r in py])
            p_rss = max(r[2] for r in py) / 1024
            boto3 = f"{p_init:.0f} ms | {p_rss:.0f} MB | {p_init / r_init:.0f}×"
        else:
            boto3 = "– | – | –"
        print(f"| {name} | {size:.1f} MB | {r_init:.1f} ms | {r_first:.1f} ms | {r_rss:.1f} MB | {boto3} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
