"""Memory and start-up time of fn.crs4.cassandra over a list of 100 million rows (issue 11).

    python bench/long_list.py [--rows 100000000] [--ranks 2] [--port P]

A table of --real rows (2 KB each) is written, then two binary rows files: one listing those
rows once (the "empty" reader's list) and one of --rows entries cycling over them (a rows file
may repeat a UUID). For each list, --ranks processes each build a pipeline on their shard, run
--batches batches, and report their start-up time (pipeline build) and their own memory
(VmRSS after build and after reading, VmHWM). Starts its own server without --port.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_server import server_for, write_cycled_rows_file, write_random_rows

KEYSPACE = "bench_long_list"

CHILD = """
import json, sys, time
from cassandra_dali.client import Connection
from cassandra_dali.sources import CassandraSource
from nvidia.dali import pipeline_def
def memory():
    fields = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}
host, port, table, rows_file, rank, ranks, batches = sys.argv[1:8]
before = memory()
source = CassandraSource(table, rows_file=rows_file, connection=Connection(host, int(port)))
@pipeline_def(batch_size=128, num_threads=2, device_id=None, prefetch_queue_depth=2)
def pipe():
    return source.read(shard_id=int(rank), num_shards=int(ranks))
started = time.perf_counter()
p = pipe()
p.build()
built_s = time.perf_counter() - started
built = memory()
started = time.perf_counter()
for _ in range(int(batches)):
    p.run()
read_s = time.perf_counter() - started
print(json.dumps({"build_seconds": built_s, "read_seconds": read_s, "before": before,
                  "built": built, "after": memory(),
                  "epoch_size": p.reader_meta("Reader")["epoch_size"]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--real", type=int, default=20_000)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("bench/results/long_list.json"))
    args = parser.parse_args()
    from cassandra_dali.dataset import rows_files

    results: dict[str, Any] = {"rows": args.rows, "real": args.real, "ranks": args.ranks}
    with server_for(args.host, args.port, "long-list") as conn, \
            tempfile.TemporaryDirectory(prefix="long-list-") as work:
        session = conn.connect()
        real_ids, _ = write_random_rows(session, KEYSPACE, args.real, 2048)
        real = np.frombuffer(b"".join(u.bytes for u in real_ids), dtype=np.uint8).reshape(-1, 16)
        session.cluster.shutdown()
        lists = {"empty": Path(work) / "real.rowsb", "long": Path(work) / "long.rowsb"}
        rows_files.write_binary_rows_file(lists["empty"], real)
        started = time.perf_counter()
        write_cycled_rows_file(lists["long"], real_ids, args.rows)
        results["write_seconds"] = time.perf_counter() - started
        print(f"{args.rows:,} UUIDs in {lists['long']} ({lists['long'].stat().st_size / 1e9:.1f} "
              f"GB, written in {results['write_seconds']:.0f} s)", flush=True)
        for name, path in lists.items():
            children = [subprocess.Popen(
                [sys.executable, "-c", CHILD, conn.host, str(conn.port), f"{KEYSPACE}.data",
                 str(path), str(rank), str(args.ranks), str(args.batches)],
                stdout=subprocess.PIPE, text=True) for rank in range(args.ranks)]
            results[name] = [json.loads(child.communicate()[0].strip().splitlines()[-1])
                             for child in children]
            for rank, r in enumerate(results[name]):
                print(f"{name:>5} list ({r['epoch_size']:>11,} rows), rank {rank}: build "
                      f"{r['build_seconds']:.2f} s, RSS {r['built']['VmRSS']:.0f} MiB built, "
                      f"{r['after']['VmRSS']:.0f} MiB after {args.batches} batches of 128 "
                      f"({args.batches * 128 / r['read_seconds']:,.0f} rows/s), peak "
                      f"{r['after']['VmHWM']:.0f} MiB", flush=True)
    for rank in range(args.ranks):
        above = results["long"][rank]["after"]["VmHWM"] - results["empty"][rank]["after"]["VmHWM"]
        print(f"rank {rank}: peak RSS with {args.rows:,} rows minus with {args.real:,}: "
              f"{above:+.0f} MiB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
