"""``cassandra-dali data ingest`` (``extract_serial.py``) and ``data ingest-spark``
(``extract_spark.py``): the same flags, the same rows (:mod:`cassandra_dali.dataset.ingest`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..dataset import spark
from ..dataset.ingest import (
    DEFAULT_MAX_SIZE,
    IngestConfig,
    IngestError,
    OnError,
    ingest_split,
)
from ..dataset.row_writer import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_BYTES_IN_FLIGHT,
    DEFAULT_RETRY_BUDGET_S,
    DEFAULT_WRITE_CONSISTENCY,
)
from ._options import add_connection_arguments, connection_from_args, parse_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "root",
        type=Path,
        metavar="ROOT",
        help="dataset root: ROOT/SPLIT/CLASS/FILE, e.g. imagenette2-320",
    )
    parser.add_argument(
        "--split-subdir", default="train", help="the split folder under ROOT (%(default)s)"
    )
    parser.add_argument("--data-table", required=True, help="keyspace.table for the images")
    parser.add_argument("--metadata-table", required=True, help="keyspace.table for the metadata")
    parser.add_argument(
        "--on-error",
        choices=[e.value for e in OnError],
        default=OnError.FAIL.value,
        help="bad files (unreadable, not JPEG/PNG, too big, empty folders) and "
        "failed writes: stop, or skip them and list them at the end "
        "(%(default)s)",
    )
    parser.add_argument(
        "--max-size",
        type=parse_size,
        default=DEFAULT_MAX_SIZE,
        help="largest file to store, e.g. 16M (default 16M)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="samples being written at once (%(default)s)",
    )
    parser.add_argument(
        "--max-bytes-in-flight",
        type=parse_size,
        default=DEFAULT_MAX_BYTES_IN_FLIGHT,
        help="sample bytes being written at once, e.g. 64M (default 64M; a larger file goes "
        "alone)",
    )
    parser.add_argument(
        "--retry-budget",
        type=float,
        default=DEFAULT_RETRY_BUDGET_S,
        metavar="SECONDS",
        help="how long a write is retried through back-pressure, timeouts or a server "
        "restart before it counts as failed (%(default)g)",
    )
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="first list the ids already in the metadata table and skip them "
        "(faster resume); by default rows are rewritten, identically",
    )
    parser.add_argument(
        "--checksum",
        action="store_true",
        help="also store each sample's CRC32C (column crc32c of the data table, added if "
        "missing); read with checksum_col='crc32c' to have every sample verified",
    )
    parser.add_argument(
        "--consistency",
        default=DEFAULT_WRITE_CONSISTENCY,
        type=str.upper,
        help="write consistency level (%(default)s: a majority of the local data center's "
        "replicas, so one node down at RF 3 costs nothing; ONE is faster, ALL stops when "
        "any replica is down)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_connection_arguments(parser)


def config_from_args(args: argparse.Namespace) -> IngestConfig:
    try:
        return IngestConfig(
            data_table=args.data_table,
            metadata_table=args.metadata_table,
            connection=connection_from_args(args),
            max_size=args.max_size,
            on_error=OnError(args.on_error),
            concurrency=args.concurrency,
            skip_existing=args.skip_existing,
            max_bytes_in_flight=args.max_bytes_in_flight,
            retry_budget_s=args.retry_budget,
            checksum=args.checksum,
            consistency=args.consistency,
        )
    except ValueError as error:
        raise IngestError(str(error)) from None


def run_serial(args: argparse.Namespace) -> int:
    """``extract_serial.py`` / ``cassandra-dali data ingest``: exit 0 when every row is stored."""
    config = config_from_args(args)
    summary = ingest_split(args.root, args.split_subdir, config, progress=not args.no_progress)
    print(summary.format())
    return 0 if summary.complete else 1


def add_spark_arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser)
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="partitions of the file list (default: spark.default.parallelism)",
    )


def run_spark(args: argparse.Namespace) -> int:
    """``extract_spark.py`` / ``cassandra-dali data ingest-spark``: exit 0 when every row is
    stored."""
    summary = spark.ingest_split(args.root, args.split_subdir, config_from_args(args),
                                 partitions=args.partitions)
    print(summary.format())
    return 0 if summary.complete else 1
