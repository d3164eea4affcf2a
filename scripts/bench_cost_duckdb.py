"""DuckDB side of scripts/bench-cost: the same aggregation as cost-reporter's core
(cost = net unblended where present else unblended, exact DECIMAL, grouped by Region,
service and usage type, which decides the category) over the same csv.gz. Prints one
JSON line like the Rust bench: rows, seconds, rows/s, peak RSS of this process."""
import json
import resource
import sys
import time

import duckdb

path, threads = sys.argv[1], int(sys.argv[2])
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
started = time.perf_counter()
rows, total, groups = con.execute(
    """
    WITH g AS (
      SELECT product_region_code, line_item_product_code, line_item_usage_type,
             count(*) AS n,
             sum(CAST(coalesce(line_item_net_unblended_cost, line_item_unblended_cost)
                      AS DECIMAL(38, 12))) AS cost,
             sum(CAST(line_item_unblended_cost AS DECIMAL(38, 12))) AS unblended
      FROM read_csv(?, header = true, all_varchar = true, compression = 'gzip')
      GROUP BY ALL
    )
    SELECT sum(n), sum(cost), count(*) FROM g
    """,
    [path],
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
