"""``cassandra-dali demo`` (``make demo``): the Imagenette workflow end to end, step by step.

1. start a local Cassandra (in ~/.cache/cassandra-dali/servers/demo);
2. generate a small Imagenette stand-in (10 classes x 50 train images, cached between runs);
3. create the tables of ``create_tables.cql`` (shipped in the package, linked from
   examples/imagenette);
4. ingest the train split; 5. list its UUIDs into a rows file;
6. read it with fn.crs4.cassandra and with fn.readers.file (the same images) in interleaved
   rounds, measured as bench/compare_readers.py measures (:mod:`cassandra_dali.benchmark.rounds`),
   and print both throughputs side by side; 7. stop the server (also on failure or Ctrl-C).

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
from ..benchmark import readloop, rounds
from ..client import cql_files, token_scan
from ..dataset import TABLES_CQL, images, ingest, rows_files
from ..errors import UserError


# As bench/compare_readers.py: a new JVM serves reads several times slower until its JIT has
# compiled the read path.
WARMUP_ROUNDS = 2


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
    if args.epochs < 2 or args.rounds < 1:  # before the server starts, not after the ingest
        raise UserError(f"--epochs {args.epochs} --rounds {args.rounds}: a round needs 2 epochs "
                        "or more (its first is warm-up) and at least 1 round is measured")
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

        # Measured as bench/compare_readers.py measures (cassandra_dali.benchmark.rounds): a new
        # loop per round, the readers' rounds interleaved, the warm-up rounds and each loop's epoch
        # 0 left out, all images over all the time.
        loops = {
            "cassandra": readloop.LoopConfig(reader="cassandra", batch_size=args.bs,
                                             epochs=args.epochs, connection=conn,
                                             data_table="imagenette.data_train",
                                             rows_fn=str(rows_fn)),
            "file": readloop.LoopConfig(reader="file", batch_size=args.bs, epochs=args.epochs,
                                        connection=conn, file_root=str(root / "train")),
        }
        with step(
            6,
            f"reading with fn.crs4.cassandra and fn.readers.file in turn: {args.rounds} rounds "
            f"(and {WARMUP_ROUNDS} of warm-up) of {args.epochs} epochs each, batch size {args.bs}",
            f"python3 loop_read.py --data-table imagenette.data_train --rows-fn {rows_fn} "
            f"{flags}; python3 loop_read.py --reader=file --file-root={root / 'train'}",
        ):
            usage = {"wall": 0.0, "server": 0.0, "reader": 0.0}
            marks: dict[str, tuple[float, float | None, float]] = {}

            def observe(name: str, round_: int, epoch: int, stat: readloop.EpochStat,
                        counted: bool) -> None:
                # The CPU the server and this process used while the Cassandra reader read.
                now = (time.monotonic(), server.cpu_seconds(info.pid or 0), time.process_time())
                before = marks.get(name)
                if name == "cassandra" and counted and before is not None:
                    usage["wall"] += now[0] - before[0]
                    if now[1] is not None and before[1] is not None:
                        usage["server"] += now[1] - before[1]
                    usage["reader"] += now[2] - before[2]
                marks[name] = now
                if epoch == args.epochs - 1:
                    print(f"    round {round_} {name:<10} epoch {epoch}: "
                          f"{stat.images_per_s:8.0f} images/s" + ("" if counted else " (warm-up)"))

            measured = rounds.run_rounds(
                {name: (lambda c=config: readloop.Loop(c)) for name, config in loops.items()},
                rounds=args.rounds, warmup_rounds=WARMUP_ROUNDS, epochs=args.epochs,
                observe=observe)
            results = {name: rounds.of_rounds(r) for name, r in measured.items()}
            bound = _what_bounds(usage["wall"], usage["server"], usage["reader"])
    finally:
        with step(7, "stopping Cassandra", f"cassandra-dali server stop --dir {server_dir}"):
            server.stop(server_dir)

    print("\nthroughput on this machine (all images over all the time of the measured rounds, "
          "± half the 95 % interval of the per-round rates):")
    print(f"    {'reader':<26} {'images/s':>22} {'MB/s':>8}")
    for reader, name in (("cassandra", "fn.crs4.cassandra"), ("file", "fn.readers.file")):
        r = results[reader]
        print(f"    {name:<26} {r.images_per_s:>12,.0f} ± {r.spread:<7,.0f} {r.mb_per_s:>8.1f}")
    ratio = results["cassandra"].images_per_s / results["file"].images_per_s
    print(
        f"    cassandra / file: {ratio:.2f} (the file reader reads a local disk through the "
        "page cache; Cassandra goes through the network stack and the server)"
    )
    print(f"    {bound}")
    print("\nnext: examples/imagenette/README.md walks through the same steps by hand.")
    return 0


def _what_bounds(wall_s: float, server_cpu_s: float, reader_cpu_s: float) -> str:
    """One line on what limits the Cassandra figure on this machine."""
    cores = os.cpu_count() or 1
    if wall_s <= 0:
        return f"what bounds it: the server and the reader share this machine's {cores} cores"
    return (f"what bounds it: the server and the reader share this machine's {cores} cores; "
            f"while reading, the server used {server_cpu_s / wall_s / cores:.0%} of them and the "
            f"reader {reader_cpu_s / wall_s / cores:.0%} (a server of its own reads faster: "
            "docs/benchmarks.md)")


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
    parser.add_argument("--epochs", type=int, default=16,
                        help="epochs per round; each round's first is warm-up (%(default)s)")
    parser.add_argument("--rounds", type=int, default=6,
                        help=f"measured rounds per reader, interleaved, after {WARMUP_ROUNDS} of "
                        "warm-up (%(default)s)")
    parser.add_argument("--heap", default="1G", help="Cassandra heap (%(default)s)")
    parser.set_defaults(func=run, log_prefix="    ")  # library messages indented under steps
