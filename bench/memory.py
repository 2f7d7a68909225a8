"""Peak memory of fn.crs4.cassandra for small and large samples (issue 9).

    python bench/memory.py [--port P]     # without --port: starts a local server

Writes two tables (65,536 rows of 1 KB; 2,000 rows of 110 KB), then, each in a fresh process,
runs a CPU pipeline over one of them for a few epochs and reports the peak RSS of that process
(ru_maxrss) above its RSS once the pipeline is built, next to the bytes of one batch. Prints a
table and writes OUT.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KEYSPACE = "bench_memory"
CASES = {  # name: (rows, sample bytes, batch size)
    "1 KB x batch 65536": (65536, 1024, 65536),
    "110 KB x batch 512": (2000, 110 * 1024, 512),
}


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def write_tables(host: str, port: int) -> None:
    from cassandra.concurrent import execute_concurrent_with_args
    from cassandra_dali import server

    session = server.ServerInfo(host=host, port=port).connect()
    try:
        session.execute(f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        for i, (rows, size, _) in enumerate(CASES.values()):
            table = f"{KEYSPACE}.t{i}"
            session.execute(f"CREATE TABLE IF NOT EXISTS {table} "
                            "(id uuid PRIMARY KEY, label int, data blob)")
            if session.execute(f"SELECT count(*) FROM {table}", timeout=120).one()[0] >= rows:
                continue
            insert = session.prepare(f"INSERT INTO {table} (id, label, data) VALUES (?, ?, ?)")
            ids = [uuid.UUID(int=(i << 64) | n) for n in range(rows)]
            payload = os.urandom(size)
            # Few large writes at once: the driver's socket buffer refuses more (ConnectionBusy).
            execute_concurrent_with_args(session, insert, [(u, n, payload) for n, u in
                                                           enumerate(ids)],
                                         concurrency=64 if size < 65536 else 4)
    finally:
        session.cluster.shutdown()


def measure(host: str, port: int, case: str, epochs: int) -> dict[str, Any]:
    """In this process: build, run `epochs` epochs, return the RSS figures."""
    from cassandra_dali.client import Connection
    from cassandra_dali.sources import CassandraSource
    from nvidia.dali import pipeline_def

    index = list(CASES).index(case)
    rows, size, batch = CASES[case]
    ids = [str(uuid.UUID(int=(index << 64) | n)) for n in range(rows)]

    @pipeline_def(batch_size=batch, num_threads=2, device_id=None, prefetch_queue_depth=2)
    def pipe() -> Any:
        return CassandraSource(f"{KEYSPACE}.t{index}", uuids=ids,
                               connection=Connection(host, port)).read()

    p = pipe()
    p.build()
    built = _rss_mib()
    batches = -(-rows // batch)
    started = time.perf_counter()
    for _ in range(epochs * batches):
        p.run()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    batch_mib = batch * size / 2**20
    return {"case": case, "batch_mib": batch_mib, "rss_built_mib": built, "peak_rss_mib": peak,
            "above_built_mib": peak - built, "per_batch": (peak - built) / batch_mib,
            "samples_per_s": epochs * batches * batch / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # the child process's one case
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "memory")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(args.host, args.port, args.case, args.epochs)))
        return 0
    from bench_server import server_for  # imports DALI: not in the measured child's way

    with server_for(args.host, args.port, "memory") as conn:
        args.host, args.port = conn.host, conn.port
        write_tables(args.host, args.port)
        results = []
        for case in CASES:
            child = subprocess.run(
                [sys.executable, __file__, "--host", args.host, "--port", str(args.port),
                 "--epochs", str(args.epochs), "--case", case],
                capture_output=True, text=True, check=True)
            results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(f"{'case':<22}{'batch MiB':>10}{'built MiB':>11}{'peak MiB':>10}{'above':>8}"
          f"{'x batch':>9}{'samples/s':>11}")
    for r in results:
        print(f"{r['case']:<22}{r['batch_mib']:>10.1f}{r['rss_built_mib']:>11.0f}"
              f"{r['peak_rss_mib']:>10.0f}{r['above_built_mib']:>8.0f}{r['per_batch']:>9.1f}"
              f"{r['samples_per_s']:>11.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
