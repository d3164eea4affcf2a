"""DuckDB side of scripts/bench-cost: the same aggregation as cost-reporter's core (the
cost of each line grouped by Region, service and usage type, which decides the
category; exact DECIMAL sums) over the same files, in any of the four shapes:

    bench_cost_duckdb.py FILE.csv.gz THREADS          one CUR 2.0 gzip CSV
    bench_cost_duckdb.py DIR THREADS SHAPE            a month's part-* files

SHAPE is cur2-csv, cur2-parquet, focus-csv or focus-parquet. The cost is CUR 2.0's net
unblended cost where present else its unblended cost, FOCUS's BilledCost. CSV is read
as text (as cost-reporter does) and cast to DECIMAL; Parquet's doubles are cast to
DECIMAL. Prints one JSON line like the Rust bench: rows, seconds, rows/s, peak RSS of
this process (which includes the Python interpreter)."""
import json
import os
import resource
import sys
import time

import duckdb

path, threads = sys.argv[1], int(sys.argv[2])
shape = sys.argv[3] if len(sys.argv) > 3 else "cur2-csv"
if os.path.isdir(path):
    ext = "snappy.parquet" if shape.endswith("parquet") else "csv.gz"
    source_glob = os.path.join(path, f"part-*.{ext}")
else:
    source_glob = path
if shape.endswith("parquet"):
    scan = "read_parquet(?)"
else:
    scan = "read_csv(?, header = true, all_varchar = true, compression = 'gzip')"
if shape.startswith("focus"):
    region, service, usage = "RegionId", "x_ServiceCode", "x_UsageType"
    cost = "BilledCost"
else:
    region, service, usage = (
        "product_region_code",
        "line_item_product_code",
        "line_item_usage_type",
    )
    cost = "coalesce(line_item_net_unblended_cost, line_item_unblended_cost)"

con = duckdb.connect()
con.execute(f"SET threads = {threads}")
started = time.perf_counter()
rows, total, groups = con.execute(
    f"""
    WITH g AS (
      SELECT {region}, {service}, {usage},
             count(*) AS n,
             sum(CAST({cost} AS DECIMAL(38, 12))) AS cost
      FROM {scan}
      GROUP BY ALL
    )
    SELECT sum(n), sum(cost), count(*) FROM g
    """,
    [source_glob],
).fetchone()
seconds = time.perf_counter() - started
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({
    "engine": f"duckdb {duckdb.__version__} threads={threads}",
    "source": path,
    "rows": int(rows),
    "seconds": seconds,
    "rows_per_second": round(rows / seconds),
    "peak_rss_mib": peak_kib / 1024,
    "total": str(total.normalize()) if total is not None else None,
    "groups": groups,
}))
