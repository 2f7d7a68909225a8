"""Tight-loop throughput of fn.crs4.cassandra next to the same reads done with the Python
cassandra-driver, on the same rows, in one run.

    python bench/reader_throughput.py [--host H --port P] [--samples 3000] [--epochs 3]
    python bench/reader_throughput.py --checksum     (also: the cost of checksum_col)

Without --port it starts a local server (cassandra_dali.server) in a temporary directory.
Prints images/s and MB/s per epoch for both, and the ratio; writes a JSON next to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import cassandra_dali
import numpy as np
from bench_server import server_for, write_random_rows
from cassandra.concurrent import execute_concurrent_with_args
from cassandra_dali import server
from cassandra_dali.client import Connection
from cassandra_dali.client.cluster import make_cluster
from cassandra_dali.sharding import shard_layout
from cassandra_dali.sources import CassandraSource
from nvidia.dali import pipeline_def

KEYSPACE = "bench_reader"


def server_cpu_s() -> float:
    """CPU seconds (user + system) the server has used so far; 0 when it is not ours."""
    return (server.cpu_seconds(SERVER_PID) or 0.0) if SERVER_PID is not None else 0.0


def bench_operator(
    host: str, port: int, ids: list[str], batch: int, epochs: int, **reader_args: Any
) -> list[dict[str, float]]:
    @pipeline_def(batch_size=batch, num_threads=2, device_id=None, prefetch_queue_depth=2)
    def pipe() -> tuple[Any, Any]:
        source = CassandraSource(f"{KEYSPACE}.data", uuids=ids,
                                 connection=Connection(host, port), options=reader_args)
        return source.read()

    p = pipe()
    p.build()
    batches = shard_layout(len(ids), shard_id=0, num_shards=1, batch_size=batch)["batches_per_epoch"]
    results = []
    for _ in range(epochs):
        start, nbytes, cpu = time.perf_counter(), 0, server_cpu_s()
        for _ in range(batches):
            data, _label = p.run()
            nbytes += sum(data[i].shape()[0] for i in range(len(data)))
        elapsed = time.perf_counter() - start
        busy = server_cpu_s() - cpu - IDLE_CPU_PER_S * elapsed
        results.append({"images_s": batches * batch / elapsed, "mb_s": nbytes / elapsed / 1e6,
                        "server_cpu_s_per_1000": busy / (batches * batch) * 1e3})
    return results


def bench_python_driver(host: str, port: int, ids: list[str], epochs: int, concurrency: int) -> list[dict[str, float]]:
    cluster = make_cluster(host, port, protocol_version=None)  # TCP_NODELAY, token-aware
    session = cluster.connect()
    select = session.prepare(f"SELECT data, label FROM {KEYSPACE}.data WHERE id = ?")
    params = [(uuid.UUID(u),) for u in ids]
    results = []
    for _ in range(epochs):
        start, nbytes, cpu = time.perf_counter(), 0, server_cpu_s()
        for ok, rows in execute_concurrent_with_args(session, select, params, concurrency=concurrency):
            assert ok, rows
            nbytes += len(rows.one().data)
        elapsed = time.perf_counter() - start
        busy = server_cpu_s() - cpu - IDLE_CPU_PER_S * elapsed
        results.append({"images_s": len(ids) / elapsed, "mb_s": nbytes / elapsed / 1e6,
                        "server_cpu_s_per_1000": busy / len(ids) * 1e3})
    cluster.shutdown()
    return results


def steady(runs: list[dict[str, float]]) -> list[dict[str, float]]:
    return runs[1:] if len(runs) > 1 else runs  # the first epoch warms caches and connections


def summary(steady: list[dict[str, float]]) -> dict[str, float]:
    ips = [r["images_s"] for r in steady]
    mbs = [r["mb_s"] for r in steady]
    cpu = [r.get("server_cpu_s_per_1000", 0.0) for r in steady]
    return {
        "server_cpu_s_per_1000": statistics.mean(cpu),
        "server_cpu_s_per_1000_std": statistics.pstdev(cpu),
        "images_s": statistics.mean(ips),
        "images_s_std": statistics.pstdev(ips),
        "mb_s": statistics.mean(mbs),
        "mb_s_std": statistics.pstdev(mbs),
    }


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1),
            "python": platform.python_version(), "driver": cassandra_dali.driver_info()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="an existing server; default: start one")
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=128, help="Python driver requests in flight")
    parser.add_argument("--out", type=Path, default=Path("bench/results/reader_throughput.json"))
    parser.add_argument("--rounds", type=int, default=3, help="interleaved measured rounds")
    parser.add_argument("--warmup-rounds", type=int, default=2,
                        help="untimed rounds of both readers first (server JIT warm-up)")
    parser.add_argument("--checksum", action="store_true",
                        help="also measure the operator verifying every sample (checksum_col)")
    parser.add_argument("--sweep", action="store_true",
                        help="also measure the operator over io_threads x prefetch_buffers")
    args = parser.parse_args()

    global SERVER_PID, IDLE_CPU_PER_S
    with server_for(args.host, args.port, "reader") as conn:
        args.host, args.port = conn.host, conn.port
        SERVER_PID = getattr(conn, "pid", None)
        cluster = make_cluster(args.host, args.port, protocol_version=None)
        written, total = write_random_rows(cluster.connect(), KEYSPACE, args.samples,
                                           (20_000, 100_000))
        ids = [str(u) for u in written]
        cluster.shutdown()
        print(f"{len(ids)} rows, {total / 1e6:.1f} MB, mean {total / len(ids) / 1e3:.1f} KB")
        if SERVER_PID is not None:
            cpu, idle_started = server_cpu_s(), time.perf_counter()
            time.sleep(5)
            IDLE_CPU_PER_S = (server_cpu_s() - cpu) / (time.perf_counter() - idle_started)
            print(f"server idle: {IDLE_CPU_PER_S:.3f} CPU-s/s (subtracted from the figures)")
        # A fresh server's JIT is cold: the first reads run 2x slower, whoever makes them.
        for _ in range(args.warmup_rounds):
            bench_operator(args.host, args.port, ids, args.batch, 2)
            bench_python_driver(args.host, args.port, ids, 1, args.concurrency)
        # Interleaved rounds: a change in load (compaction, GC, neighbours) hits both alike.
        op, py, verified = [], [], []
        for _ in range(args.rounds):
            op += steady(bench_operator(args.host, args.port, ids, args.batch, args.epochs))
            py += steady(bench_python_driver(args.host, args.port, ids, args.epochs, args.concurrency))
            if args.checksum:
                verified += steady(bench_operator(args.host, args.port, ids, args.batch,
                                                  args.epochs, checksum_col="crc32c"))
        sweep = []
        if args.sweep:
            for io_threads in (1, 2, 4):
                for prefetch in (1, 2, 4, 8):
                    s = summary(steady(bench_operator(
                        args.host, args.port, ids, args.batch, args.epochs,
                        io_threads=io_threads, prefetch_buffers=prefetch)))
                    sweep.append({"io_threads": io_threads, "prefetch_buffers": prefetch, **s})
                    print(f"io_threads={io_threads} prefetch_buffers={prefetch}: "
                          f"{s['images_s']:.0f} images/s, {s['mb_s']:.1f} MB/s")
    s_op, s_py = summary(op), summary(py)
    print(f"{'reader':<34}{'images/s':>18}{'MB/s':>16}{'server CPU-s/1000 rows':>26}")
    for name, s in [("fn.crs4.cassandra", s_op), ("python cassandra-driver (concurrent)", s_py)]:
        print(f"{name:<34}{s['images_s']:>10.0f} ± {s['images_s_std']:<5.0f}{s['mb_s']:>9.1f} ± "
              f"{s['mb_s_std']:<5.1f}{s['server_cpu_s_per_1000']:>14.3f} ± "
              f"{s['server_cpu_s_per_1000_std']:.3f}")
    checksum: dict[str, Any] = {}
    if args.checksum:
        s_ck = summary(verified)
        block = np.random.default_rng(1).bytes(64 << 20)
        started = time.perf_counter()
        cassandra_dali._native.crc32c(block)
        crc_gb_s = len(block) / (time.perf_counter() - started) / 1e9
        print(f"{'fn.crs4.cassandra, checksum_col':<34}{s_ck['images_s']:>10.0f} ± "
              f"{s_ck['images_s_std']:<5.0f}{s_ck['mb_s']:>9.1f} ± {s_ck['mb_s_std']:<5.1f}")
        print(f"ratio verified / unverified: {s_ck['images_s'] / s_op['images_s']:.3f}x; "
              f"CRC32C alone: {crc_gb_s:.1f} GB/s on one core")
        checksum = {"verified": {"epochs": verified, **s_ck}, "crc32c_gb_s": crc_gb_s,
                    "ratio_verified": s_ck["images_s"] / s_op["images_s"]}
    ratio = s_op["images_s"] / s_py["images_s"]
    print(f"ratio fn.crs4.cassandra / python driver: {ratio:.2f}x ({args.rounds} rounds x epochs 2..{args.epochs}, batch {args.batch})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": machine(), "samples": len(ids), "bytes": total, "batch": args.batch,
        "operator": {"epochs": op, **s_op}, "python_driver": {"epochs": py, **s_py}, "ratio": ratio,
        "sweep": sweep, "checksum": checksum, "server_idle_cpu_per_s": IDLE_CPU_PER_S,
    }, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
