"""``cassandra-dali schema apply FILE``: ``cqlsh -f FILE`` without cqlsh
(:mod:`cassandra_dali.client.cql_files`)."""

from __future__ import annotations

import argparse
from typing import Any

from ..client import cql_files
from ._options import add_connection_arguments, connection_from_args


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _add_schema_apply(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="CQL script, e.g. create_tables.cql")
    parser.add_argument(
        "--keyspace", default=None, help="create this keyspace instead of the one the file names"
    )
    parser.add_argument(
        "--replication-factor", type=_positive, default=None, metavar="N",
        help="N copies of each row in every data center (NetworkTopologyStrategy) instead of "
        "the file's replication; 3 on a cluster, so a node down costs nothing",
    )
    add_connection_arguments(parser)


def _schema_apply(args: argparse.Namespace) -> int:
    session = connection_from_args(args).connect()
    try:
        statements = cql_files.apply(session, args.file, keyspace=args.keyspace,
                                     replication_factor=args.replication_factor)
    finally:
        session.cluster.shutdown()
    print(f"{len(statements)} statements from {args.file} applied")
    return 0


def add_parser(subparsers: Any) -> None:
    group = subparsers.add_parser("schema", help="apply CQL files (cqlsh -f without cqlsh)")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    apply = commands.add_parser("apply", help="run every statement of a .cql file")
    _add_schema_apply(apply)
    apply.set_defaults(func=_schema_apply)
