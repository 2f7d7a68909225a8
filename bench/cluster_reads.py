"""Reads from a 3-node cluster (``server start --nodes 3``): where they go and what a node loss
costs. One table of random rows at RF 3, read with fn.crs4.cassandra given all three contact
points (LOCAL_ONE, token-aware):

1. after a warm-up epoch, two epochs with every node up: rows/s, the reader's reads per replica
   host, and each node's own count of reads it coordinated and served (its system_views);
2. node 2 SIGKILLed at the start of epoch 3, epochs 3 and 4 without it: rows/s (ratio to 1.),
   the longest ``pipe.run()``, retries (samples are counted here; tests/test_cluster.py checks
   each one);
3. node 2 started again, epochs 5 and 6: rows/s, and the reads node 2 served again;
4. the cost of reading at LOCAL_QUORUM (two replicas answer each read): a second pipeline,
   both warmed up one epoch, then one epoch each in turn, three times; rows/s and the ratio.

Each phase also says how busy the machine's cores were: on a small machine the nodes share
them, so a node less can mean more rows/s.

    python bench/cluster_reads.py --rows 6000

Uses the cluster in the cache's servers/bench-cluster (started if it does not run; stopped at
the end unless it was running or --keep).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench_server import add_cluster_arguments, cluster_for, machine_cpu, write_random_rows
from cassandra_dali import server, telemetry
from cassandra_dali.client import nodes
from cassandra_dali.sources import cassandra_node
from nvidia.dali import pipeline_def

ROOT = Path(__file__).resolve().parents[1]
NAME = "cluster-reads"


def node_reads(info: server.ClusterInfo, keyspace: str) -> dict[str, tuple[int, int]]:
    return nodes.node_read_counts(info, keyspace, "data")


def delta(after: dict[str, tuple[int, int]], before: dict[str, tuple[int, int]]
          ) -> dict[str, list[int]]:
    return {a: [after[a][0] - before.get(a, (0, 0))[0], after[a][1] - before.get(a, (0, 0))[1]]
            for a in after}


BUSY: list[float] = []  # the machine's busy share during the last read_epochs


def read_epochs(pipe: Any, epochs: int, batches: int) -> tuple[float, float]:
    """(rows/s, longest run() in s) over ``epochs`` epochs of ``batches`` batches."""
    longest, rows = 0.0, 0
    busy0, total0 = machine_cpu()
    started = time.perf_counter()
    for _ in range(epochs * batches):
        t = time.perf_counter()
        data, _labels = pipe.run()
        longest = max(longest, time.perf_counter() - t)
        rows += len(data)
    busy1, total1 = machine_cpu()
    BUSY[:] = [(busy1 - busy0) / (total1 - total0)]
    return rows / (time.perf_counter() - started), longest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--row-bytes", type=int, nargs=2, default=[10_000, 30_000])
    parser.add_argument("--batch", type=int, default=64)
    add_cluster_arguments(parser)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/cluster_reads.json")
    args = parser.parse_args()

    result: dict[str, Any] = {"rows": args.rows, "row_bytes": args.row_bytes, "rf": 3,
                              "batch": args.batch}
    with cluster_for(args) as info:
        session = info.connect()
        try:
            ids, total = write_random_rows(session, "bench_cluster", args.rows,
                                           tuple(args.row_bytes), replication_factor=3)
        finally:
            session.cluster.shutdown()
        print(f"{args.rows} rows ({total / 1e6:.0f} MB) at RF 3 in {info.contact_point}")
        reader = dict(info.connection().reader_kwargs(), table="bench_cluster.data",
                      source_uuids=[str(i) for i in ids], request_timeout_ms=2000)

        @pipeline_def(batch_size=args.batch, num_threads=2, device_id=None,
                      prefetch_queue_depth=2)
        def pipe_def(arguments: dict[str, Any], name: str) -> Any:
            return cassandra_node(arguments, name=name)

        pipe = pipe_def(reader, NAME)
        pipe.build()
        batches = args.rows // args.batch

        read_epochs(pipe, 1, batches)  # warm-up: JIT, caches, the read-ahead's depth
        before = node_reads(info, "bench_cluster")
        rate, longest = read_epochs(pipe, 2, batches)
        stats = telemetry.readers(NAME)[0]
        result["healthy"] = {"rows_per_s": rate, "longest_run_s": longest, "busy": BUSY[0],
                             "reads_by_host": stats.reads_by_host,
                             "node_reads": delta(node_reads(info, "bench_cluster"), before)}
        print(f"all nodes up: {rate:,.0f} rows/s (cores {BUSY[0]:.0%} busy); reads by replica "
              "host (reader) "
              f"{stats.reads_by_host}; per node [coordinated, served] "
              f"{result['healthy']['node_reads']}")

        rows_before, retries_before = stats.rows, stats.retries
        server.stop_node(info.dir, 2, kill=True)
        down_rate, down_longest = read_epochs(pipe, 2, batches)
        stats = telemetry.readers(NAME)[0]
        result["node2_killed"] = {"rows_per_s": down_rate, "ratio": down_rate / rate,
                                  "longest_run_s": down_longest, "busy": BUSY[0],
                                  "retries": stats.retries - retries_before,
                                  "rows": stats.rows - rows_before}
        print(f"node 2 SIGKILLed: {down_rate:,.0f} rows/s ({down_rate / rate:.2f}x, cores "
              f"{BUSY[0]:.0%} busy), longest "
              f"run() {down_longest:.2f} s, {stats.retries - retries_before} reads retried")

        started = time.monotonic()
        server.start_node(info.dir, 2)
        restart = time.monotonic() - started
        before = node_reads(info, "bench_cluster")
        back_rate, back_longest = read_epochs(pipe, 2, batches)
        back = delta(node_reads(info, "bench_cluster"), before)
        result["node2_back"] = {"restart_s": restart, "rows_per_s": back_rate,
                                "ratio": back_rate / rate, "longest_run_s": back_longest,
                                "node_reads": back}
        print(f"node 2 back after {restart:.1f} s: {back_rate:,.0f} rows/s "
              f"({back_rate / rate:.2f}x); per node [coordinated, served] {back}")
        result["telemetry"] = telemetry.summary(telemetry.readers(NAME)[0])
        print(result["telemetry"])

        quorum = pipe_def(dict(reader, consistency="LOCAL_QUORUM"), NAME + "-quorum")
        quorum.build()
        read_epochs(quorum, 1, batches)  # warm-up
        rates: dict[str, list[float]] = {"LOCAL_ONE": [], "LOCAL_QUORUM": []}
        for _ in range(3):  # in turn, so a drift of the machine hits both alike
            rates["LOCAL_ONE"].append(read_epochs(pipe, 1, batches)[0])
            rates["LOCAL_QUORUM"].append(read_epochs(quorum, 1, batches)[0])
        one, both = (statistics.mean(rates[k]) for k in ("LOCAL_ONE", "LOCAL_QUORUM"))
        result["consistency"] = {"rows_per_s": rates, "ratio": both / one}
        print(f"LOCAL_ONE {one:,.0f} rows/s, LOCAL_QUORUM {both:,.0f} rows/s ({both / one:.2f}x); "
              f"per epoch {rates}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
