"""The ``cassandra-dali`` command (also ``python -m cassandra_dali.cli``): one argparse
sub-command group per module (:mod:`.server`, :mod:`.data`, :mod:`.schema`, :mod:`.demo`,
:mod:`.checkpoint`;
``data``'s larger commands in :mod:`.ingest`, :mod:`.read`, :mod:`.split`), and the private
helpers: flags shared through :mod:`._options`, one way to fail (:mod:`._common`).

A group module exposes ``add_parser(subparsers)``, which adds its sub-parser and sets
``func(args) -> int`` on each of its commands. Add a group by adding its module to
:data:`GROUPS`. The example scripts are ``data`` commands under other names
(:func:`script_main`).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from types import ModuleType

from ._common import configure_logging, run_guarded

GROUPS: tuple[str, ...] = ("server", "data", "schema", "demo", "checkpoint")


def _groups() -> list[ModuleType]:
    # Imported here, not at module load, so that one broken group cannot hide the others'
    # import errors behind its own.
    return [importlib.import_module(f"{__name__}.{name}") for name in GROUPS]


def build_parser(groups: Sequence[ModuleType] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cassandra-dali",
        description="Tools for the Cassandra DALI reader: a local server, datasets, the demo.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    for module in groups if groups is not None else _groups():
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, prefix=getattr(args, "log_prefix", ""))
    return run_guarded(args.func, args, "cassandra-dali")


def script_main(
    command: str,
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
) -> int:
    """Entry point of an example script that is one ``data`` command under another name."""
    from .data import COMMANDS

    help_text, add_arguments, func = COMMANDS[command]
    parser = argparse.ArgumentParser(prog=prog, description=description or help_text)
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    return run_guarded(func, args, prog or command)


__all__ = ["build_parser", "main", "script_main"]
