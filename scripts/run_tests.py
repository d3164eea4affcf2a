#!/usr/bin/env python3
"""Builds the workspace's test binaries once and runs them three at a time, slowest first.

`cargo test` runs its test binaries one after another, and ours mostly wait: a drill in
the twin spends its time on the twin's clock (about half a core, README "CI time"), so
one binary at a time leaves CI's two cores idle for most of the run. This runs the same
binaries, built by the same `cargo test --no-run`, `LIFEBOAT_TEST_JOBS` at a time
(default 3: the two drill binaries and the rest side by side), each exactly as cargo
would (its package's directory as the working directory, `CARGO` set), with its output
printed whole when it ends, so two never interleave. Each binary still runs its own
tests in parallel (libtest's threads), and a binary's tests that must not overlap say so
themselves (drill.rs and drill_alarms.rs each run one drill at a time). Arguments after
`--` go to every binary (a name filter, `--nocapture`).

Exit status: 0 when every binary passed, 1 otherwise (the failed ones are listed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# The binaries that take longest, longest first (seconds in the cold CI run on 2bbac7a,
# three at a time). Starting them first keeps the lanes even: the long ones run beside each
# other and the short ones fill in. A binary not named here starts after these.
SLOW_FIRST = {
    "drill": 721,
    "drill_alarms": 446,
    "plan_is_the_execution": 307,
    "critical_path": 242,
    "failback_machine": 167,
    "drill_machine": 152,
    "deploy_wave": 95,
    "cli": 85,
    "lease_twin": 80,
    "replica_promoter": 55,
    "traffic_shifter": 47,
    "health_probe": 27,
    "failover_machine": 25,
    "stepfunctions": 23,
    "failover_executor": 23,
    "cost_reporter": 18,
}


@dataclass
class Binary:
    """One test executable, as `cargo test --no-run` built it."""

    name: str
    kind: str
    src: str
    exe: str
    cwd: str

    def label(self) -> str:
        return f"{self.src} ({self.exe})"


def build(cargo: str, cargo_args: list[str]) -> list[Binary]:
    """`cargo test --no-run` with JSON messages: the executables it built, in its order."""
    cmd = [cargo, "test", *cargo_args, "--no-run", "--message-format=json-render-diagnostics"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    binaries: list[Binary] = []
    for line in proc.stdout.splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg.get("profile", {}).get("test"):
            continue
        target = msg["target"]
        binaries.append(
            Binary(
                name=target["name"],
                kind=target["kind"][0],
                src=os.path.relpath(target["src_path"]),
                exe=msg["executable"],
                cwd=str(Path(msg["manifest_path"]).parent),
            )
        )
    if proc.returncode != 0:
        sys.exit(proc.returncode)
    return binaries


def order(binaries: list[Binary]) -> list[Binary]:
    """Integration tests named in SLOW_FIRST first, longest first; then the rest as built."""
    def weight(b: Binary) -> int:
        return SLOW_FIRST.get(b.name, 0) if b.kind == "test" else 0

    return sorted(binaries, key=lambda b: -weight(b))


def main() -> int:
    args = sys.argv[1:]
    passthrough: list[str] = []
    if "--" in args:
        i = args.index("--")
        args, passthrough = args[:i], args[i + 1 :]
    cargo = os.environ.get("CARGO") or shutil.which("cargo") or "cargo"
    binaries = order(build(cargo, args))
    jobs = max(1, int(os.environ.get("LIFEBOAT_TEST_JOBS", "3")))
    print(f"== {len(binaries)} test binaries, {jobs} at a time", file=sys.stderr, flush=True)

    queue = list(binaries)
    lock = threading.Lock()
    failed: list[str] = []
    # The harness builds the functions' binaries resolving features as this test build
    # did (tests/src/lambda.rs, build_functions), so it finds them built.
    env = dict(os.environ, CARGO=cargo, LIFEBOAT_FUNCTIONS_BUILD="tests")
    started = time.monotonic()

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                b = queue.pop(0)
            t0 = time.monotonic()
            with tempfile.TemporaryFile(mode="w+") as out:
                rc = subprocess.run(
                    [b.exe, *passthrough], cwd=b.cwd, env=env, stdout=out,
                    stderr=subprocess.STDOUT, check=False,
                ).returncode
                out.seek(0)
                text = out.read()
            took = time.monotonic() - t0
            with lock:
                print(f"     Running {b.label()}", flush=True)
                sys.stdout.write(text)
                status = "ok" if rc == 0 else f"FAILED (exit {rc})"
                print(f"     {b.name}: {status} in {took:.1f} s "
                      f"({time.monotonic() - started:.0f} s into the run)\n", flush=True)
                if rc != 0:
                    failed.append(b.label())

    threads = [threading.Thread(target=worker) for _ in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = time.monotonic() - started
    if failed:
        print(f"== {len(failed)} of {len(binaries)} test binaries failed "
              f"({total:.0f} s):", file=sys.stderr)
        for f in failed:
            print(f"   {f}", file=sys.stderr)
        return 1
    print(f"== all {len(binaries)} test binaries passed ({total:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
