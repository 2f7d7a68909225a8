"""Time and memory of ``cassandra-dali data split`` as the metadata table grows (issue 13).

    python bench/split_scale.py [--rows 100000 400000] [--port P]

For each size, a fresh metadata table of that many rows (10 unbalanced labels) is written, then
split twice in a child process each (stratified 80/20, stratified 5 folds), and the child's
peak RSS and wall time are printed: the split scans the table three times and keeps only
per-label bucket counts, so its memory should not grow with the rows. Starts its own server
without --port.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench_server import server_for

KEYSPACE = "bench_split"

CHILD = """
import json, sys, time
from cassandra_dali.client import Connection
from cassandra_dali.dataset import splits
host, port, table, out, how = sys.argv[1:6]
session = Connection(host, int(port)).connect()
def hwm_mib():  # this process's own peak (ru_maxrss would carry the parent's over exec)
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
base = hwm_mib()
started = time.perf_counter()
spec = (splits.SplitSpec(table, seed=1, kfold=5, stratify="label") if how == "kfold"
        else splits.SplitSpec(table, seed=1, train_frac=0.8, stratify="label"))
manifest = splits.split(session, spec, out)
print(json.dumps({"seconds": time.perf_counter() - started, "base_rss_mib": base,
                  "peak_rss_mib": hwm_mib(),
                  "files": {k: v["rows"] for k, v in manifest["files"].items()}}))
session.cluster.shutdown()
"""


def write_table(session: Any, rows: int) -> str:
    from cassandra.concurrent import execute_concurrent_with_args

    table = f"{KEYSPACE}.meta_{rows}"
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
                    "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    session.execute(f"DROP TABLE IF EXISTS {table}")
    session.execute(f"CREATE TABLE {table} (id uuid PRIMARY KEY, label int)")
    insert = session.prepare(f"INSERT INTO {table} (id, label) VALUES (?, ?)")
    # Labels 0..9, class 9 a quarter the size of the others.
    params = ((uuid.uuid4(), (i * 31) % 37 // 4) for i in range(rows))
    for ok, result in execute_concurrent_with_args(session, insert, params, concurrency=128,
                                                   results_generator=True):
        assert ok, result
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 400_000])
    parser.add_argument("--out", type=Path, default=Path("bench/results/split_scale.json"))
    args = parser.parse_args()
    results = []
    with server_for(args.host, args.port, "split") as conn:
        args.host, args.port = conn.host, conn.port
        session = conn.connect()
        for rows in args.rows:
            started = time.perf_counter()
            table = write_table(session, rows)
            written = time.perf_counter() - started
            for how in ("train_frac", "kfold"):
                with tempfile.TemporaryDirectory() as out:
                    child = subprocess.run(
                        [sys.executable, "-c", CHILD, args.host, str(args.port), table, out, how],
                        check=True, capture_output=True, text=True)
                figures = json.loads(child.stdout.strip().splitlines()[-1])
                results.append({"rows": rows, "how": how, "write_seconds": written, **figures})
                print(f"{rows:>9} rows, {how:<10}: {figures['seconds']:6.1f} s "
                      f"({rows / figures['seconds']:,.0f} rows/s over 3 scans), peak RSS "
                      f"{figures['peak_rss_mib']:.0f} MiB (connected: "
                      f"{figures['base_rss_mib']:.0f} MiB)", flush=True)
        session.cluster.shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
