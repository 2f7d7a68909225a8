"""Several ranks on one node sharding one table (issue 11): 1, 2 and 4 processes, each reading
its shard with the defaults; total rows/s and the server's CPU per 1,000 rows.

    python bench/ranks.py [--ranks 1 2 4] [--rows 6000] [--row-bytes 40000] [--port P]

Every rank runs as its own process (as under torchrun), reads 4 epochs of its shard and reports
epochs 1..3 (epoch 0 warms up); ranks start together and the total is all rows over the
slowest rank's time. Starts its own server without --port (then the server's CPU is measured,
net of its idle use).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_server import server_for, write_random_rows
from cassandra_dali import server

KEYSPACE = "bench_ranks"

CHILD = """
import json, sys, time
from cassandra_dali.client import Connection
from cassandra_dali.sharding import shard_layout
from cassandra_dali.sources import CassandraSource
from nvidia.dali import pipeline_def
host, port, table, rows_file, rank, ranks, epochs = sys.argv[1:8]
source = CassandraSource(table, rows_file=rows_file, connection=Connection(host, int(port)))
@pipeline_def(batch_size=128, num_threads=2, device_id=None, prefetch_queue_depth=2)
def pipe():
    return source.read(shard_id=int(rank), num_shards=int(ranks))
p = pipe()
p.build()
layout = shard_layout(p.reader_meta("Reader")["epoch_size"], shard_id=int(rank),
                      num_shards=int(ranks), batch_size=128)
for _ in range(layout["batches_per_epoch"]):
    p.run()
started = time.perf_counter()
for _ in range(int(epochs) - 1):
    for _ in range(layout["batches_per_epoch"]):
        p.run()
print(json.dumps({"seconds": time.perf_counter() - started,
                  "rows": layout["size"] * (int(epochs) - 1)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--row-bytes", type=int, default=40_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("bench/results/ranks.json"))
    args = parser.parse_args()
    from cassandra_dali.dataset import rows_files

    results: dict[str, Any] = {"rows": args.rows, "row_bytes": args.row_bytes, "runs": []}
    with server_for(args.host, args.port, "ranks") as conn:
        session = conn.connect()
        ids, _ = write_random_rows(session, KEYSPACE, args.rows, args.row_bytes)
        session.cluster.shutdown()
        rows_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-ranks-{os.getpid()}.rows"
        rows_files.write_rows_file(rows_path, ids)
        pid = getattr(conn, "pid", None)
        idle = 0.0
        if pid is not None:
            before, started = server.cpu_seconds(pid) or 0.0, time.perf_counter()
            time.sleep(5)
            idle = ((server.cpu_seconds(pid) or 0.0) - before) / (time.perf_counter() - started)
        results["server_idle_cpu_per_s"] = idle
        try:
            for ranks in args.ranks:
                cpu0, wall0 = (server.cpu_seconds(pid) or 0.0) if pid else 0.0, time.perf_counter()
                children = [subprocess.Popen(
                    [sys.executable, "-c", CHILD, conn.host, str(conn.port), f"{KEYSPACE}.data",
                     str(rows_path), str(rank), str(ranks), str(args.epochs)],
                    stdout=subprocess.PIPE, text=True) for rank in range(ranks)]
                reports = [json.loads(c.communicate()[0].strip().splitlines()[-1])
                           for c in children]
                wall = time.perf_counter() - wall0
                rows = sum(r["rows"] for r in reports)
                slowest = max(r["seconds"] for r in reports)
                cpu = ((server.cpu_seconds(pid) or 0.0) - cpu0 - idle * wall) if pid else 0.0
                # The server's CPU covers every epoch (warm-up included): per row of all of them.
                all_rows = rows * args.epochs / (args.epochs - 1)
                run = {"ranks": ranks, "rows_per_s": rows / slowest,
                       "per_rank_rows_per_s": [r["rows"] / r["seconds"] for r in reports],
                       "server_cpu_s_per_1000": cpu / all_rows * 1e3 if pid else None}
                results["runs"].append(run)
                print(f"{ranks} rank(s): {run['rows_per_s']:,.0f} rows/s in all "
                      f"({', '.join(f'{x:,.0f}' for x in run['per_rank_rows_per_s'])} per rank)"
                      + (f", server {run['server_cpu_s_per_1000']:.3f} CPU-s per 1,000 rows"
                         if pid else ""), flush=True)
        finally:
            rows_path.unlink(missing_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
