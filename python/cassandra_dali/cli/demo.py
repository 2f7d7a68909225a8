"""``cassandra-dali demo`` (``make demo``): the Imagenette workflow end to end, step by step.

1. start a local Cassandra (in ~/.cache/cassandra-dali/servers/demo);
2. generate a small Imagenette stand-in (10 classes x 50 train images, cached between runs);
3. create the tables of ``create_tables.cql`` (shipped in the package, linked from
   examples/imagenette);
4. ingest the train split; 5. list its UUIDs into a rows file;
6. read it with fn.crs4.cassandra and with fn.readers.file (the same images), and print both
   throughputs side by side; 7. stop the server (also on failure or Ctrl-C).

Each step prints the example command that does the same, so the README can be followed after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import server
from ..benchmark import readloop
from ..client import cql_files, token_scan
from ..dataset import TABLES_CQL, images, ingest, rows_files


@contextlib.contextmanager
def step(number: int, title: str, command: str = "") -> Iterator[None]:
    print(f"\n[{number}] {title}", flush=True)
    if command:
        print(f"    (same as: {command})", flush=True)
    started = time.monotonic()
    yield
    print(f"    done in {time.monotonic() - started:.1f} s", flush=True)


def ensure_dataset(root: Path, train_per_class: int, val_per_class: int, seed: int) -> str:
    """Generate once; a marker file records the parameters so a change regenerates."""
    marker = root / ".generated.json"
    wanted = {"train_per_class": train_per_class, "val_per_class": val_per_class, "seed": seed}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return f"    already there: {root}"
    summary = images.generate(root, train_per_class, val_per_class, seed, progress=True)
    marker.write_text(json.dumps(wanted))
    return (
        f"    {summary.files} JPEGs, {summary.total_bytes / 1e6:.1f} MB, "
        f"{summary.mean_bytes / 1e3:.0f} KB on average, in {root}"
    )


def run(args: argparse.Namespace) -> int:
    cache = server.cache_root()
    server_dir = args.server_dir or cache / "servers" / "demo"
    root = args.root or cache / "demo" / "imagenette"
    rows_fn = root / "train.rows"
    cql = TABLES_CQL

    with step(1, f"starting Cassandra in {server_dir}", "cassandra-dali server start --dir DIR"):
        info = server.start(
            server.ServerConfig(dir=server_dir, heap=args.heap, cluster_name="demo")
        )
        print(f"    listening at {info.contact_point} (started in {info.startup_seconds:.0f} s)")
    conn = info.connection()
    flags = f"--host {info.host} --port {info.port}"
    try:
        with step(
            2,
            f"generating the dataset: 10 classes x {args.train_per_class} train images",
            f"cassandra-dali data generate {root} --train-per-class {args.train_per_class} "
            f"--val-per-class {args.val_per_class} --seed {args.seed}",
        ):
            print(ensure_dataset(root, args.train_per_class, args.val_per_class, args.seed))

        with step(
            3,
            "creating keyspace imagenette and its tables",
            f"cqlsh {info.host} {info.port} -f {cql}",
        ):
            session = conn.connect()
            try:
                cql_files.apply(session, cql)  # logs each statement
            finally:
                session.cluster.shutdown()

        config = ingest.IngestConfig(
            "imagenette.data_train", "imagenette.metadata_train", connection=conn
        )
        with step(
            4,
            "ingesting the train split (images -> data_train, origins -> metadata_train)",
            f"python3 extract_serial.py {root} --split-subdir=train --data-table "
            f"imagenette.data_train --metadata-table imagenette.metadata_train {flags}",
        ):
            summary = ingest.ingest_split(root, "train", config, progress=True)
            print("    " + summary.format().replace("\n", "\n    "))

        with step(
            5,
            "listing the UUIDs of metadata_train (token-range scan) into a rows file",
            f"python3 cache_uuids.py --metadata-table=imagenette.metadata_train "
            f"--rows-fn {rows_fn} {flags}",
        ):
            session = conn.connect()
            try:
                ids = token_scan.scan_ids(session, "imagenette.metadata_train")
            finally:
                session.cluster.shutdown()
            count = rows_files.write_rows_file(rows_fn, ids,
                                               comment="ids of imagenette.metadata_train")
            print(f"    {count} UUIDs in {rows_fn}")

        results = {}
        bound = ""
        common = dict(batch_size=args.bs, epochs=args.epochs, connection=conn)
        for number, reader, command, config_args in (
            (
                6,
                "cassandra",
                f"python3 loop_read.py --data-table imagenette.data_train --rows-fn {rows_fn} "
                f"{flags}",
                dict(data_table="imagenette.data_train", rows_fn=str(rows_fn)),
            ),
            (
                7,
                "file",
                f"python3 loop_read.py --reader=file --file-root={root / 'train'}",
                dict(file_root=str(root / "train")),
            ),
        ):
            with step(
                number,
                f"reading with the {reader} reader: {args.epochs} epochs, batch size {args.bs}",
                command,
            ):
                loop = readloop.LoopConfig(reader=reader, **common, **config_args)  # type: ignore[arg-type]
                started, server_cpu = time.monotonic(), server.cpu_seconds(info.pid or 0)
                own_cpu = time.process_time()
                results[reader] = readloop.run(loop, report=lambda line: print("    " + line))
                if reader == "cassandra":
                    bound = _what_bounds(time.monotonic() - started, server_cpu,
                                         server.cpu_seconds(info.pid or 0),
                                         time.process_time() - own_cpu)
    finally:
        with step(8, "stopping Cassandra", f"cassandra-dali server stop --dir {server_dir}"):
            server.stop(server_dir)

    print("\nthroughput on this machine (epochs 1.. together, ± per-epoch std; epoch 0 is "
          "warm-up):")
    print(f"    {'reader':<26} {'images/s':>16} {'MB/s':>14}")
    for reader, name in (("cassandra", "fn.crs4.cassandra"), ("file", "fn.readers.file")):
        ips, ips_std = results[reader].mean_std("images_per_s")
        mbs, mbs_std = results[reader].mean_std("mb_per_s")
        print(f"    {name:<26} {ips:>9.0f} ± {ips_std:<5.0f} {mbs:>7.1f} ± {mbs_std:<5.1f}")
    ratio = (
        results["cassandra"].mean_std("images_per_s")[0]
        / results["file"].mean_std("images_per_s")[0]
    )
    print(
        f"    cassandra / file: {ratio:.2f} (the file reader reads a local disk through the "
        "page cache; Cassandra goes through the network stack and the server)"
    )
    print(f"    {bound}")
    print("\nnext: examples/imagenette/README.md walks through the same steps by hand.")
    return 0


def _what_bounds(wall_s: float, server_before: float | None, server_after: float | None,
                 reader_cpu_s: float) -> str:
    """One line on what limits the Cassandra figure on this machine."""
    cores = os.cpu_count() or 1
    if server_before is None or server_after is None:
        return f"what bounds it: the server and the reader share this machine's {cores} cores"
    server_share = (server_after - server_before) / wall_s / cores
    reader_share = reader_cpu_s / wall_s / cores
    return (f"what bounds it: the server and the reader share this machine's {cores} cores; "
            f"while reading, the server used {server_share:.0%} of them and the reader "
            f"{reader_share:.0%} (a server of its own reads faster: docs/benchmarks.md)")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="the Imagenette workflow end to end on a local server (make demo)",
        description=__doc__.splitlines()[0].replace("``", ""),
    )
    parser.add_argument("--root", type=Path, help="dataset folder (default: in the cache)")
    parser.add_argument("--server-dir", type=Path, help="server folder (default: servers/demo)")
    parser.add_argument("--train-per-class", type=int, default=50, help="(%(default)s)")
    parser.add_argument("--val-per-class", type=int, default=10, help="(%(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(%(default)s)")
    parser.add_argument("--bs", type=int, default=64, help="batch size (%(default)s)")
    parser.add_argument("--epochs", type=int, default=12,
                        help="epochs; the first is warm-up, left out of the mean (%(default)s)")
    parser.add_argument("--heap", default="1G", help="Cassandra heap (%(default)s)")
    parser.set_defaults(func=run, log_prefix="    ")  # library messages indented under steps
