"""The aiohttp side of scripts/bench-probe: the same probe loop as the Rust client
(64 concurrent probes, status 200 and body text checked, latency per probe), keep-alive
or a new connection each time. Prints one JSON line."""

import asyncio
import json
import sys
import time

import aiohttp


async def run(url, concurrency, duration, keep_alive):
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=not keep_alive)
    timeout = aiohttp.ClientTimeout(total=2)
    latencies = []
    failures = 0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker(until):
            nonlocal failures
            lat = []
            while time.perf_counter() < until:
                t0 = time.perf_counter()
                try:
                    async with session.get(url, allow_redirects=False) as resp:
                        body = await resp.text()
                        ok = resp.status == 200 and '"status":"ok"' in body
                except Exception:  # noqa: BLE001 - a failed probe is counted, not raised
                    ok = False
                if ok:
                    lat.append(time.perf_counter() - t0)
                else:
                    failures += 1
            return lat

        until = time.perf_counter() + 1.0  # warm-up
        await asyncio.gather(*(worker(until) for _ in range(concurrency)))
        failures = 0
        start = time.perf_counter()
        until = start + duration
        for lat in await asyncio.gather(*(worker(until) for _ in range(concurrency))):
            latencies.extend(lat)
        elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p):
        i = min(max(int(-(-len(latencies) * p // 1)), 1), len(latencies)) - 1
        return latencies[i] * 1000

    return {
        "client": "python-aiohttp",
        "mode": "keepalive" if keep_alive else "new",
        "concurrency": concurrency,
        "probes": len(latencies),
        "failures": failures,
        "probes_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(pct(0.50), 3),
        "p99_ms": round(pct(0.99), 3),
    }


def main():
    url, concurrency, seconds, mode = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    print(json.dumps(asyncio.run(run(url, concurrency, seconds, mode == "keepalive"))))


if __name__ == "__main__":
    main()
