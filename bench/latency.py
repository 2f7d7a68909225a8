"""Reading across a long link (issue 11): small rows through a delay proxy at several round-trip
times, with the reader's defaults (adaptive read-ahead), with the old fixed depth
(max_prefetch_buffers=prefetch_buffers=2, the reference project's behaviour), tuned by hand,
and the Python driver as a baseline, all in one run against the same server and rows.

    python bench/latency.py [--rtt 0 50 200 400] [--rows 8000] [--row-bytes 2048] [--port P]

Each setting reads whole epochs through its own proxy; the first epoch (connections, the
read-ahead finding its depth) is left out. The proxy's own ceiling is measured first (the
reader through it at 0 ms against the reader without it), so a figure is never the proxy's.
Prints rows/s and the ratio to the same setting at 0 ms; writes JSON and a plot under docs/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from bench_server import server_for, write_random_rows
from cassandra_dali.client import Connection
from cassandra_dali.client.cluster import make_cluster
from cassandra_dali.sharding import shard_layout
from cassandra_dali.sources import CassandraSource
from delay_proxy import DelayProxy
from nvidia.dali import pipeline_def

KEYSPACE = "bench_latency"
BATCH = 128

READERS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "fixed depth 2 (before)": {"prefetch_buffers": 2, "max_prefetch_buffers": 2},
    "tuned (prefetch 32)": {"prefetch_buffers": 32, "max_prefetch_buffers": 32},
}


def reader_rates(host: str, port: int, ids: list[str], epochs: int, **options: Any) -> list[float]:
    source = CassandraSource(f"{KEYSPACE}.data", uuids=ids, connection=Connection(host, port),
                             options=options)

    @pipeline_def(batch_size=BATCH, num_threads=2, device_id=None, prefetch_queue_depth=2)
    def pipe() -> Any:
        return source.read()

    p = pipe()
    p.build()
    batches = shard_layout(len(ids), shard_id=0, num_shards=1, batch_size=BATCH)
    rates = []
    for _ in range(epochs):
        started = time.perf_counter()
        for _ in range(batches["batches_per_epoch"]):
            p.run()
        rates.append(batches["padded_shard_size"] / (time.perf_counter() - started))
    del p
    return rates


def driver_rates(host: str, port: int, ids: list[str], epochs: int) -> list[float]:
    from cassandra.concurrent import execute_concurrent_with_args

    cluster = make_cluster(host, port)
    session = cluster.connect()
    select = session.prepare(f"SELECT data, label FROM {KEYSPACE}.data WHERE id = ?")
    params = [(uuid.UUID(u),) for u in ids]
    rates = []
    for _ in range(epochs):
        started = time.perf_counter()
        for ok, rows in execute_concurrent_with_args(session, select, params, concurrency=128,
                                                     results_generator=True):
            assert ok and rows.one() is not None, rows
        rates.append(len(ids) / (time.perf_counter() - started))
    cluster.shutdown()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--rtt", type=float, nargs="+", default=[0, 50, 200, 400])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--driver-rows", type=int, default=3000,
                        help="rows the Python driver reads per epoch (it is slow at long RTT)")
    parser.add_argument("--row-bytes", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/latency.json"))
    args = parser.parse_args()

    results: dict[str, Any] = {"rows": args.rows, "row_bytes": args.row_bytes, "batch": BATCH,
                               "rtt_ms": args.rtt, "rows_per_s": {}}
    with server_for(args.host, args.port, "latency") as conn:
        session = conn.connect()
        ids = [str(u) for u in write_random_rows(session, KEYSPACE, args.rows, args.row_bytes)[0]]
        session.cluster.shutdown()
        reader_rates(conn.host, conn.port, ids, 2)  # the server's JIT, untimed
        direct = statistics.fmean(reader_rates(conn.host, conn.port, ids, args.epochs)[1:])
        proxy = DelayProxy(conn.host, conn.port, 0)
        through = statistics.fmean(reader_rates(proxy.host, proxy.port, ids, args.epochs)[1:])
        proxy.close()
        results["proxy_ceiling"] = {"direct": direct, "through_proxy_0ms": through}
        print(f"proxy ceiling: reader direct {direct:,.0f} rows/s, through the proxy at 0 ms "
              f"{through:,.0f} ({through / direct:.2f})", flush=True)
        table: dict[str, dict[float, float]] = {name: {} for name in [*READERS, "python driver"]}
        for rtt in args.rtt:
            proxy = DelayProxy(conn.host, conn.port, rtt)
            for name, options in READERS.items():
                rate = statistics.fmean(
                    reader_rates(proxy.host, proxy.port, ids, args.epochs, **options)[1:])
                table[name][rtt] = rate
                print(f"{rtt:>5.0f} ms  {name:<24} {rate:>9,.0f} rows/s", flush=True)
            rate = statistics.fmean(driver_rates(proxy.host, proxy.port,
                                                 ids[:args.driver_rows], 2)[1:])
            table["python driver"][rtt] = rate
            print(f"{rtt:>5.0f} ms  {'python driver (128)':<24} {rate:>9,.0f} rows/s", flush=True)
            proxy.close()
    results["rows_per_s"] = {name: {str(k): v for k, v in row.items()}
                             for name, row in table.items()}
    print(f"\n{'rows/s (ratio to 0 ms)':<26}" + "".join(f"{r:>16.0f} ms" for r in args.rtt))
    for name, row in table.items():
        base = row.get(args.rtt[0]) or 1.0
        print(f"{name:<26}" + "".join(f"{row[r]:>10,.0f} ({row[r] / base:.2f})" for r in args.rtt))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(6, 4))
        for name, row in table.items():
            axes.plot(list(row), list(row.values()), marker="o", label=name)
        axes.set(xlabel="round-trip time (ms)", ylabel="rows/s",
                 title=f"{args.row_bytes} B rows, batch {BATCH}")
        axes.set_yscale("log")
        axes.legend()
        figure.tight_layout()
        figure.savefig(args.out.with_suffix(".png"), dpi=100)
        print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    except ImportError:
        print(f"wrote {args.out} (no matplotlib: no plot)")


if __name__ == "__main__":
    main()
