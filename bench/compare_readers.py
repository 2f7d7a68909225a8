"""Three ways to feed DALI the same images, measured in one run (issue 4):

1. ``fn.crs4.cassandra`` (this project), rows listed in a rows file;
2. ``fn.readers.file`` over the same JPEGs in class folders (local disk, page cache);
3. what a user would otherwise write: the Python ``cassandra-driver`` feeding
   ``fn.external_source``, each batch read with concurrent queries
   (``execute_concurrent_with_args``) and the next batch fetched ahead in a background thread.

    python bench/compare_readers.py [--host H --port P] [--train-per-class 200] [--bs 128]

Without --port it starts a local server (cassandra_dali.server) and, after the ingest, restarts
it: commit-log replay flushes the memtables, so reads come from SSTables as they would on a
server that has been running for a while. The readers then run in interleaved rounds (A B C,
A B C, ...), the same number of batches per epoch each (same batch size, same images); two first
rounds warm the server's JIT and are not counted, nor is each run's epoch 0.
Writes a JSON and a PNG plot (``--out``), and records the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cassandra_dali
import s3_store
from cassandra_dali import server
from cassandra_dali.benchmark import readloop, rounds
from cassandra_dali.client import Connection, cql_files, token_scan
from cassandra_dali.dataset import images, ingest, rows_files
from driver_loader import DriverLoop

KEYSPACE = "bench_readers"
REPO = Path(__file__).resolve().parents[1]
CQL = REPO / "examples" / "imagenette" / "create_tables.cql"
LABELS = {
    "cassandra": "fn.crs4.cassandra",
    "file": "fn.readers.file",
    "driver": "cassandra-driver + external_source",
    "s3": "fn.readers.file, s3:// (MinIO)",
}


# --------------------------------------------------------------------------------------------
# Set-up, machine, output
# --------------------------------------------------------------------------------------------


def prepare_data(root: Path, train_per_class: int, seed: int) -> dict[str, Any]:
    marker = root / ".generated.json"
    wanted = {"train_per_class": train_per_class, "seed": seed}
    if not (marker.is_file() and json.loads(marker.read_text()) == wanted):
        images.generate(root, train_per_class, 0, seed, progress=True)
        marker.write_text(json.dumps(wanted))
    files = list((root / "train").rglob("*.JPEG"))
    total = sum(f.stat().st_size for f in files)
    return {"images": len(files), "bytes": total, "mean_kb": total / len(files) / 1e3}


def ingest_train(conn: Connection, root: Path) -> ingest.IngestSummary:
    session = conn.connect()
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=120)
        cql_files.apply(session, CQL, keyspace=KEYSPACE)
    finally:
        session.cluster.shutdown()
    config = ingest.IngestConfig(
        f"{KEYSPACE}.data_train", f"{KEYSPACE}.metadata_train", connection=conn
    )
    return ingest.ingest_split(root, "train", config, progress=True)


def ingest_and_list(
    conn: Connection, root: Path, own_dir: Path | None, heap: str
) -> tuple[Connection, list[str], Path]:
    """Ingests ROOT/train, restarts the server when it is ours (commit-log replay flushes the
    memtables: reads then come from SSTables, as on a server that has run a while), and writes
    the rows file. Returns the connection to use, the ids and the rows file."""
    print(ingest_train(conn, root).format())
    if own_dir is not None:
        print("restarting the server (commit-log replay flushes the memtables to SSTables)")
        server.stop(own_dir)
        info = server.start(server.ServerConfig(dir=own_dir, heap=heap, cluster_name="bench"))
        conn = Connection(host=info.host, port=info.port)
    session = conn.connect()
    try:
        ids = [str(u) for u in token_scan.scan_ids(session, f"{KEYSPACE}.metadata_train")]
    finally:
        session.cluster.shutdown()
    rows = root / "train.rows"
    rows_files.write_rows_file(rows, ids)
    return conn, ids, rows


def machine(conn: Connection) -> dict[str, Any]:
    import cassandra
    import nvidia.dali

    cpu = ""
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(
                line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    session = conn.connect()
    try:
        release = session.execute("SELECT release_version FROM system.local").one()[0]
    finally:
        session.cluster.shutdown()
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "dali": nvidia.dali.__version__,
        "cassandra_dali": cassandra_dali.__version__,
        "cassandra_driver_python": cassandra.__version__,
        "cassandra": release,
        "java": java[0] if java else "",
        "driver_library": cassandra_dali.driver_info(),
        "load_average_at_start": os.getloadavg(),
    }


def _server_pid(own_dir: Path | None) -> int | None:
    if own_dir is None:
        return None
    return server.status(own_dir).pid


def summarise(measured: list[list[readloop.EpochStat]]) -> dict[str, Any]:
    figures = rounds.of_rounds(measured)
    round_mbs = [sum(e.bytes for e in r) / sum(e.seconds for e in r) / 1e6 for r in measured]
    return {
        "images_per_s": figures.images_per_s,
        "images_per_s_std": statistics.stdev(figures.round_images_per_s)
        if len(measured) > 1 else 0.0,
        "images_per_s_ci95": figures.spread,
        "round_images_per_s": list(figures.round_images_per_s),
        "mb_per_s": figures.mb_per_s,
        "mb_per_s_std": statistics.stdev(round_mbs) if len(round_mbs) > 1 else 0.0,
        "epochs_measured": sum(len(r) for r in measured),
        "epochs": [dataclasses.asdict(s) for r in measured for s in r],
    }


def plot(results: dict[str, dict[str, Any]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, unit in ((axes[0], "images_per_s", "images/s"), (axes[1], "mb_per_s", "MB/s")):
        values = [results[n][key] for n in names]
        errors = [results[n][key + "_std"] for n in names]
        bars = ax.bar(
            [LABELS[n].replace(" + ", "\n+ ") for n in names],
            values,
            yerr=errors,
            capsize=4,
            color=["#2b6cb0", "#718096", "#c05621", "#2f855a"][: len(names)],
        )
        ax.bar_label(bars, labels=[f"{v:.0f}" for v in values], padding=3)
        ax.set_ylabel(unit)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_ylim(0, max(v + e for v, e in zip(values, errors)) * 1.2)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=None, help="an existing server; default: start one"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=server.cache_root() / "bench" / "imagenette",
        help="dataset folder (generated once, then reused)",
    )
    parser.add_argument("--train-per-class", type=int, default=200, help="(%(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bs", type=int, default=128, help="batch size, all readers (%(default)s)")
    parser.add_argument(
        "--epochs", type=int, default=6, help="epochs per run; the first is warm-up (%(default)s)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of each reader, interleaved (%(default)s)"
    )
    parser.add_argument(
        "--warmup-rounds",
        type=int,
        default=2,
        help="rounds run first and not counted: the server's JIT is cold after its restart "
        "(%(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=128,
        help="driver loader: queries in flight per batch (%(default)s)",
    )
    parser.add_argument(
        "--heap", default="2G", help="heap of the server started here (%(default)s)"
    )
    parser.add_argument(
        "--s3", action=argparse.BooleanOptionalAction, default=None,
        help="also read the JPEGs from MinIO with s3:// paths (default: when `make minio` "
        "has built it)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "bench" / "results" / "compare_readers",
        help="writes OUT.json and OUT.png",
    )
    args = parser.parse_args()
    report = print

    data = prepare_data(args.root, args.train_per_class, args.seed)
    print(
        f"{data['images']} JPEGs, {data['bytes'] / 1e6:.1f} MB, {data['mean_kb']:.1f} KB on average"
    )
    own_dir = None
    if args.port is None:
        own_dir = server.cache_root() / "servers" / "bench-compare"
        info = server.start(server.ServerConfig(dir=own_dir, heap=args.heap, cluster_name="bench"))
        args.host, args.port = info.host, info.port
    conn = Connection(host=args.host, port=args.port)
    store = None
    try:
        conn, ids, rows_fn = ingest_and_list(conn, args.root, own_dir, args.heap)
        if args.s3 or (args.s3 is None and s3_store.minio_binary() is not None):
            store = s3_store.MinioStore(server.cache_root() / "bench" / "minio", args.root)
            os.environ.update(store.environment)  # DALI's S3 client reads them
        host_info = machine(conn)
        loaders: dict[str, Callable[[], Any]] = {
            "cassandra": lambda: readloop.Loop(
                readloop.LoopConfig(
                    reader="cassandra",
                    data_table=f"{KEYSPACE}.data_train",
                    rows_fn=str(rows_fn),
                    batch_size=args.bs,
                    epochs=args.epochs,
                    connection=conn,
                )
            ),
            "file": lambda: readloop.Loop(
                readloop.LoopConfig(
                    reader="file",
                    file_root=str(args.root / "train"),
                    batch_size=args.bs,
                    epochs=args.epochs,
                    connection=conn,
                )
            ),
            "driver": lambda: DriverLoop(
                conn, f"{KEYSPACE}.data_train", ids, args.bs, args.concurrency
            ),
        }
        if store is not None:
            loaders["s3"] = lambda: readloop.Loop(
                readloop.LoopConfig(
                    reader="file",
                    file_root=f"s3://{s3_store.BUCKET}/train",
                    batch_size=args.bs,
                    epochs=args.epochs,
                    connection=conn,
                )
            )
        # The servers' CPU per image read, for each reader (its epochs' share; idle use included).
        pids = {"cassandra": getattr(conn, "pid", None) or _server_pid(own_dir),
                "s3": store.pid if store is not None else None}
        server_cpu: dict[str, list[float]] = {name: [] for name in loaders}
        # The project's one way of measuring readers against each other
        # (cassandra_dali.benchmark.rounds: interleaved rounds, warm-up left out).
        last_cpu: dict[str, float | None] = {}

        def observe(name: str, round_: int, epoch: int, stat: readloop.EpochStat,
                    counted: bool) -> None:
            pid = pids["s3" if name == "s3" else "cassandra"]
            now = server.cpu_seconds(pid) if pid else None
            before = last_cpu.get(name)
            if counted and now is not None and before is not None:
                server_cpu[name].append((now - before) / stat.images * 1e3)
            last_cpu[name] = now
            report(
                f"round {round_} {LABELS[name]:<36} epoch {epoch}: "
                f"{stat.images_per_s:7.0f} images/s {stat.mb_per_s:7.1f} MB/s"
                + ("" if counted else " (warm-up)")
            )

        measured = rounds.run_rounds(loaders, rounds=args.rounds,
                                     warmup_rounds=args.warmup_rounds, epochs=args.epochs,
                                     observe=observe)
    finally:
        if store is not None:
            store.close()
        if own_dir is not None:
            server.stop(own_dir)

    figures = {name: summarise(stats) for name, stats in measured.items()}
    for name, values in server_cpu.items():
        if values:
            figures[name]["server_cpu_s_per_1000_images"] = statistics.fmean(values)
    ops = figures["cassandra"]["images_per_s"]
    ratios = {
        "cassandra_over_file": ops / figures["file"]["images_per_s"],
        "cassandra_over_driver": ops / figures["driver"]["images_per_s"],
    }
    if "s3" in figures:
        ratios["cassandra_over_s3"] = ops / figures["s3"]["images_per_s"]
    print(f"\n{'reader':<38}{'images/s':>18}{'MB/s':>18}{'server CPU-s/1000 images':>28}")
    for name, f in figures.items():
        cpu = f.get("server_cpu_s_per_1000_images")
        print(
            f"{LABELS[name]:<38}{f['images_per_s']:>10.0f} ± {f['images_per_s_std']:<6.0f}"
            f"{f['mb_per_s']:>9.1f} ± {f['mb_per_s_std']:<6.1f}"
            + (f"{cpu:>16.3f}" if cpu is not None and name != "file" else "")
        )
    if "cassandra_over_s3" in ratios:
        print(f"fn.crs4.cassandra / fn.readers.file over S3: {ratios['cassandra_over_s3']:.2f}x")
    print(
        f"fn.crs4.cassandra / fn.readers.file: {ratios['cassandra_over_file']:.2f}x; "
        f"fn.crs4.cassandra / driver loader: {ratios['cassandra_over_driver']:.2f}x "
        f"(batch {args.bs}; all images over all the time, ± std of the per-round rates, "
        f"{args.rounds} rounds of {args.epochs - 1} epochs)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "machine": host_info,
        "data": data,
        "batch_size": args.bs,
        "epochs": args.epochs,
        "rounds": args.rounds,
        "warmup_rounds": args.warmup_rounds,
        "driver_concurrency": args.concurrency,
        "results": figures,
        "ratios": ratios,
        "load_average_at_end": os.getloadavg(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    plot(
        figures,
        f"{data['images']} JPEGs ({data['mean_kb']:.0f} KB avg), batch {args.bs}, "
        f"{host_info['cores']} cores ({host_info['cpu']}), Cassandra {host_info['cassandra']} "
        "on the same machine",
        args.out.with_suffix(".png"),
    )
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
