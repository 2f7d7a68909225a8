"""``cassandra-dali data ...``: the dataset workflow.

- ``data generate ROOT``: an Imagenette stand-in (:mod:`cassandra_dali.dataset.images`);
- ``data ingest ROOT --split-subdir ... --data-table ... --metadata-table ...``: what
  ``examples/imagenette/extract_serial.py`` does (``data ingest-spark``: ``extract_spark.py``);
- ``data uuids --metadata-table ... --rows-fn ...``: ``cache_uuids.py``
  (:mod:`cassandra_dali.client.token_scan`, :mod:`cassandra_dali.dataset.rows_files`);
- ``data split --metadata-table ... --out DIR``: train/val or k-fold rows files
  (:mod:`cassandra_dali.dataset.splits`);
- ``data read``: ``loop_read.py`` (:mod:`cassandra_dali.benchmark.readloop`);
- ``data verify --decode --data-table ...``: bad samples into the quarantine file, and
  ``data exclude --rows-fn IN --quarantine FILE --out OUT``: a rows file without them
  (:mod:`.quarantine`, :mod:`cassandra_dali.dataset.quarantine`).

The example scripts call :func:`cassandra_dali.cli.script_main` with the name of one of these
commands, so a script and its sub-command take the same flags and fail the same way.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..client import token_scan
from ..dataset import images, rows_files
from . import ingest, quarantine, read, split
from ._options import add_connection_arguments, connection_from_args

# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def _add_generate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", metavar="ROOT", help="where to write train/ and val/")
    parser.add_argument("--train-per-class", type=int, default=50, help="(%(default)s)")
    parser.add_argument("--val-per-class", type=int, default=10, help="(%(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes (%(default)s)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _generate(args: argparse.Namespace) -> int:
    summary = images.generate(
        args.root,
        args.train_per_class,
        args.val_per_class,
        args.seed,
        workers=args.workers,
        progress=not args.no_progress,
    )
    print(
        f"{summary.files} JPEGs in {summary.root} ({summary.total_bytes / 1e6:.1f} MB, "
        f"{summary.mean_bytes / 1e3:.1f} KB on average, "
        f"{summary.min_bytes / 1e3:.1f}..{summary.max_bytes / 1e3:.1f} KB)"
    )
    return 0


def _add_uuids(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metadata-table", required=True, help="keyspace.table to scan")
    parser.add_argument("--rows-fn", required=True, help="rows file to write (one UUID per line)")
    parser.add_argument("--id-col", default="id", help="(%(default)s)")
    parser.add_argument(
        "--binary",
        action="store_true",
        help="write a binary rows file (16 bytes per UUID): the reader reads it where it lies "
        "instead of loading it, for lists of any length",
    )
    parser.add_argument(
        "--splits",
        type=int,
        default=token_scan.DEFAULT_SPLITS,
        help="token ranges the ring is split into (%(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=token_scan.DEFAULT_CONCURRENCY,
        help="ranges queried at once (%(default)s)",
    )
    add_connection_arguments(parser)


def _uuids(args: argparse.Namespace) -> int:
    conn = connection_from_args(args)
    session = conn.connect()
    try:
        ids = token_scan.scan_ids(
            session,
            args.metadata_table,
            id_col=args.id_col,
            splits=args.splits,
            concurrency=args.concurrency,
        )
    finally:
        session.cluster.shutdown()
    count = rows_files.write_rows_file(
        args.rows_fn,
        ids,
        comment=f"{len(ids)} ids of {args.metadata_table} at {conn.contact_point}",
        binary=args.binary,
    )
    print(f"{count} UUIDs from {args.metadata_table} written to {args.rows_fn}")
    return 0


# name: (help, add arguments, run)
COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {
    "generate": ("write an Imagenette stand-in (imagenette2-320 layout)", _add_generate, _generate),
    "ingest": (
        "store a split's images and metadata in Cassandra (serial)",
        ingest.add_arguments,
        ingest.run_serial,
    ),
    "ingest-spark": (
        "the same with Spark: one Cassandra session per partition (run under spark-submit)",
        ingest.add_spark_arguments,
        ingest.run_spark,
    ),
    "uuids": ("scan a metadata table's UUIDs into a rows file", _add_uuids, _uuids),
    "split": (
        "draw train/val rows files, or k folds, from a metadata table (seeded, stratified)",
        split.add_arguments,
        split.run,
    ),
    "read": (
        "read a dataset with DALI and report the throughput",
        read.add_arguments,
        read.run_from_args,
    ),
    "verify": (
        "check every value of a data table (--decode) and quarantine the bad ones",
        quarantine.add_verify_arguments,
        quarantine.run_verify,
    ),
    "exclude": (
        "write a rows file without the samples listed in quarantine files",
        quarantine.add_exclude_arguments,
        quarantine.run_exclude,
    ),
}


def add_parser(subparsers: Any) -> None:
    data = subparsers.add_parser(
        "data",
        help="generate, ingest, list and read datasets",
        description="The dataset workflow of examples/imagenette, as sub-commands.",
    )
    commands = data.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add_arguments, func) in COMMANDS.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(command)
        command.set_defaults(func=func)
