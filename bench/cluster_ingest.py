"""Ingest into a 3-node cluster at RF 3 (writes at LOCAL_QUORUM): extract_serial.py against
extract_spark.py on a standalone Spark master with 1 and with 2 workers (1 core each), the same
generated images each time, a fresh keyspace per run.

    python bench/cluster_ingest.py --per-class 100 --rounds 2

Prints images/s and MB/s as the ingest measures them (from its first write to its last: no JVM
start-up) and the wall time of the whole command (with it), the ratio of each to the serial
run, how busy the machine's cores were during the command and the cluster nodes' share of
them. ``--write-consistencies ONE ALL`` adds serial runs at those levels (what a looser or
stricter write costs). Starts the cluster in the cache's servers/bench-cluster (stopped at the
end unless it was running or --keep), or uses the one in --cluster-dir if it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_server import add_cluster_arguments, cluster_for, machine_cpu
from cassandra_dali import server
from cassandra_dali.client import cql_files
from cassandra_dali.dataset import images
from spark_standalone import StandaloneSpark, spark_env

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "imagenette"
SCHEMA = ROOT / "python" / "cassandra_dali" / "dataset" / "create_tables.cql"
SUMMARY = re.compile(r"ingest summary: (\d+) written \(([\d.]+) MB\).*?; ([\d.]+) s, "
                     r"(\d+) images/s, ([\d.]+) MB/s")


def fresh_keyspace(info: server.ClusterInfo, keyspace: str) -> None:
    session = info.connect()
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
        cql_files.apply(session, SCHEMA, keyspace=keyspace, replication_factor=3)
    finally:
        session.cluster.shutdown()


def nodes_cpu(info: server.ClusterInfo) -> float:
    """CPU seconds the cluster's JVMs have used so far."""
    return sum(server.cpu_seconds(n.status.pid) or 0.0
               for n in server.cluster_status(info.dir) if n.status.pid)


def run_ingest(command: list[str], expected: int, info: server.ClusterInfo) -> dict[str, Any]:
    busy0, total0 = machine_cpu()
    nodes0 = nodes_cpu(info)
    started = time.monotonic()
    result = subprocess.run(command, cwd=EXAMPLES, env=spark_env(), capture_output=True,
                            text=True, timeout=3600)
    wall = time.monotonic() - started
    busy1, total1 = machine_cpu()
    cores = os.cpu_count() or 1
    match = SUMMARY.search(result.stdout)
    if result.returncode != 0 or match is None or int(match.group(1)) != expected:
        raise RuntimeError(f"{command[0]} failed ({result.returncode}):\n{result.stdout[-2000:]}"
                           f"\n{result.stderr[-4000:]}")
    return {"written": int(match.group(1)), "mb": float(match.group(2)),
            "seconds": float(match.group(3)), "images_per_s": int(match.group(4)),
            "mb_per_s": float(match.group(5)), "wall_seconds": wall,
            # Share of the machine's cores busy during the command, and the nodes' part of it.
            "machine_busy": (busy1 - busy0) / (total1 - total0),
            "nodes_cores": (nodes_cpu(info) - nodes0) / wall / cores}


def ingest_args(root: Path, keyspace: str, info: server.ClusterInfo) -> list[str]:
    return [str(root), "--split-subdir=train", "--data-table", f"{keyspace}.data_train",
            "--metadata-table", f"{keyspace}.metadata_train", "--no-progress",
            "--host", info.host, "--port", str(info.port)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=100, help="images per class (10 classes)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--write-consistencies", nargs="*", default=[],
                        help="extra serial runs at these levels (the default is LOCAL_QUORUM)")
    add_cluster_arguments(parser)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/cluster_ingest.json")
    args = parser.parse_args()

    data = server.cache_root() / "bench-data" / f"imagenette-{args.per_class}"
    if not (data / "train").is_dir():
        images.generate(data, args.per_class, 0, seed=7)
    expected = 10 * args.per_class
    print(f"{expected} images in {data}")
    runs: dict[str, list[dict[str, Any]]] = {}
    with cluster_for(args) as info:
        for round_ in range(args.rounds):
            fresh_keyspace(info, "bench_serial")
            serial = [sys.executable, "extract_serial.py", *ingest_args(data, "bench_serial", info)]
            runs.setdefault("serial", []).append(run_ingest(serial, expected, info))
            for level in args.write_consistencies:
                fresh_keyspace(info, "bench_serial")
                runs.setdefault(f"serial {level}", []).append(
                    run_ingest([*serial, "--consistency", level], expected, info))
            for workers in args.workers:
                name = f"spark {workers} worker{'s' if workers > 1 else ''}"
                keyspace = f"bench_spark{workers}"
                fresh_keyspace(info, keyspace)
                spark_dir = server.cache_root() / "bench-spark" / f"w{workers}"
                with StandaloneSpark(spark_dir, workers=workers, cores=1, memory="1g") as spark:
                    submit = [str(Path(spark_env()["SPARK_HOME"]) / "bin" / "spark-submit"),
                              "--master", spark.url,
                              "--conf", f"spark.default.parallelism={args.partitions}",
                              "--conf", "spark.driver.host=127.0.0.1",
                              "--conf", "spark.executor.cores=1",
                              "--conf", "spark.executor.memory=1g",
                              "--conf", "spark.ui.enabled=false",
                              "extract_spark.py", *ingest_args(data, keyspace, info)]
                    runs.setdefault(name, []).append(run_ingest(submit, expected, info))
            print(f"round {round_ + 1}: " + ", ".join(
                f"{k} {v[-1]['images_per_s']} img/s" for k, v in runs.items()))

    base = statistics.mean(r["images_per_s"] for r in runs["serial"])
    base_wall = statistics.mean(r["wall_seconds"] for r in runs["serial"])
    print(f"\n{expected} images ({runs['serial'][0]['mb']:.0f} MB) into a 3-node cluster, RF 3, "
          f"LOCAL_QUORUM; mean of {args.rounds} rounds")
    print(f"{'how':18} {'images/s':>9} {'MB/s':>6} {'ratio':>6} {'wall s':>7} {'ratio':>6} "
          f"{'busy':>5} {'nodes':>5}")
    table = []
    for name, results in runs.items():
        rate = statistics.mean(r["images_per_s"] for r in results)
        mbps = statistics.mean(r["mb_per_s"] for r in results)
        wall = statistics.mean(r["wall_seconds"] for r in results)
        busy = statistics.mean(r["machine_busy"] for r in results)
        nodes = statistics.mean(r["nodes_cores"] for r in results)
        print(f"{name:18} {rate:9.0f} {mbps:6.1f} {rate / base:6.2f} {wall:7.1f} "
              f"{base_wall / wall:6.2f} {busy:5.0%} {nodes:5.0%}")
        table.append({"how": name, "images_per_s": rate, "mb_per_s": mbps,
                      "ratio_to_serial": rate / base, "wall_seconds": wall,
                      "wall_ratio_to_serial": base_wall / wall, "machine_busy": busy,
                      "nodes_share_of_cores": nodes, "runs": results})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"images": expected, "nodes": 3, "rf": 3,
                                    "consistency": "LOCAL_QUORUM", "results": table}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
