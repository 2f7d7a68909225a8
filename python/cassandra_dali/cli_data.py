"""``cassandra-dali data ...`` and ``cassandra-dali schema apply``: the dataset workflow.

- ``data generate ROOT``: an Imagenette stand-in (:mod:`cassandra_dali.dataset`);
- ``data ingest ROOT --split-subdir ... --data-table ... --metadata-table ...``: what
  ``examples/imagenette/extract_serial.py`` does (:mod:`cassandra_dali.ingest`);
- ``data uuids --metadata-table ... --rows-fn ...``: ``cache_uuids.py``
  (:mod:`cassandra_dali.uuids`);
- ``data read``: ``loop_read.py`` (:mod:`cassandra_dali.readloop`);
- ``schema apply FILE``: ``cqlsh -f FILE`` without cqlsh (:mod:`cassandra_dali.schema`).

The example scripts call :func:`script_main` with the name of one of these commands, so a
script and its sub-command take the same flags and fail the same way.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import connection, dataset, ingest, readloop, schema, uuids

log = logging.getLogger(__name__)

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ingest.IngestError,
    connection.ConnectionFailed,
    readloop.LoopError,
    schema.CqlSyntaxError,
    FileNotFoundError,
)


def _driver_errors() -> tuple[type[BaseException], ...]:
    # Server-side refusals (unknown table, bad CQL) are the user's to fix: one line, no traceback.
    try:
        from cassandra import DriverException, RequestExecutionException, RequestValidationException
    except ImportError:
        return ()
    return (RequestValidationException, RequestExecutionException, DriverException)


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
    summary = dataset.generate(
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
        "--splits",
        type=int,
        default=uuids.DEFAULT_SPLITS,
        help="token ranges the ring is split into (%(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=uuids.DEFAULT_CONCURRENCY,
        help="ranges queried at once (%(default)s)",
    )
    connection.add_connection_arguments(parser)


def _uuids(args: argparse.Namespace) -> int:
    conn = connection.from_args(args)
    session = conn.connect()
    try:
        ids = uuids.scan_ids(
            session,
            args.metadata_table,
            id_col=args.id_col,
            splits=args.splits,
            concurrency=args.concurrency,
        )
    finally:
        session.cluster.shutdown()
    count = uuids.write_rows_file(
        args.rows_fn,
        ids,
        comment=f"{len(ids)} ids of {args.metadata_table} at {conn.contact_point}",
    )
    print(f"{count} UUIDs from {args.metadata_table} written to {args.rows_fn}")
    return 0


def _add_schema_apply(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="CQL script, e.g. create_tables.cql")
    parser.add_argument(
        "--keyspace", default=None, help="create this keyspace instead of the one the file names"
    )
    connection.add_connection_arguments(parser)


def _schema_apply(args: argparse.Namespace) -> int:
    session = connection.from_args(args).connect()
    try:
        statements = schema.apply(session, args.file, keyspace=args.keyspace)
    finally:
        session.cluster.shutdown()
    print(f"{len(statements)} statements from {args.file} applied")
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
    "uuids": ("scan a metadata table's UUIDs into a rows file", _add_uuids, _uuids),
    "read": (
        "read a dataset with DALI and report the throughput",
        readloop.add_arguments,
        readloop.run_from_args,
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

    group = subparsers.add_parser("schema", help="apply CQL files (cqlsh -f without cqlsh)")
    schema_commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    apply = schema_commands.add_parser("apply", help="run every statement of a .cql file")
    _add_schema_apply(apply)
    apply.set_defaults(func=_schema_apply)


def script_main(
    command: str,
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
) -> int:
    """Entry point of an example script that is one ``data`` command under another name."""
    help_text, add_arguments, func = COMMANDS[command]
    parser = argparse.ArgumentParser(prog=prog, description=description or help_text)
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    from .cli import configure_logging  # cli imports this module's groups

    configure_logging(args.verbose)
    return run_guarded(func, args, prog or command)


def run_guarded(
    func: Callable[[argparse.Namespace], int], args: argparse.Namespace, name: str
) -> int:
    """Run a command; the errors a user can fix become one line on stderr and exit status 1."""
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except EXPECTED_ERRORS + _driver_errors() as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 1
