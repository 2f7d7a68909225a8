"""The ``cassandra-dali`` command: one argparse sub-command group per module.

A group module exposes ``add_parser(subparsers)``, which adds its sub-parser and sets
``func(args) -> int`` on each of its commands, and may list in ``EXPECTED_ERRORS`` the exception
types that are the user's to fix: those are printed as one line on stderr, without a traceback.
Add a group by adding its module to :data:`GROUPS`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

GROUPS: tuple[str, ...] = (
    "cassandra_dali.cli_server",
    "cassandra_dali.cli_data",
)


def _groups() -> list[ModuleType]:
    # Imported here, not at module load, so that `cassandra-dali --help` stays fast and one
    # broken group cannot hide the others' import errors behind its own.
    return [importlib.import_module(name) for name in GROUPS]


def build_parser(groups: Sequence[ModuleType] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cassandra-dali",
        description="Tools for the Cassandra DALI reader: local server, and more.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    for module in groups if groups is not None else _groups():
        module.add_parser(subparsers)
    return parser


def configure_logging(verbose: bool) -> None:
    """Progress messages from the library go to stderr, results of commands to stdout."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    if not verbose:
        # The driver logs each failed connection with a traceback; the error reaches the user
        # once, in one line, from the command.
        logging.getLogger("cassandra").setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    groups = _groups()
    parser = build_parser(groups)
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    expected: tuple[type[BaseException], ...] = tuple(
        error for module in groups for error in getattr(module, "EXPECTED_ERRORS", ())
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("cassandra-dali: interrupted", file=sys.stderr)
        return 130
    except expected as error:
        print(f"cassandra-dali: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
