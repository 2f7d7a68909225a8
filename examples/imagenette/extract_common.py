"""Shared by extract_serial.py and extract_spark.py: their command line, and how they fail.

Shipped to Spark with ``--py-files extract_common.py``. The work itself (listing, checking,
writing, the summary) is in the cassandra_dali package: ``cassandra_dali.ingest``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

try:
    from cassandra_dali import cli_data, ingest
except ImportError as error:  # e.g. spark-submit running the system python3
    sys.exit(
        f"cannot import cassandra_dali ({error}): run with the Python of the environment where "
        "it is installed (activate it, or export PYSPARK_PYTHON=/path/to/.venv/bin/python)"
    )


def parse_args(
    prog: str,
    description: str,
    argv: Sequence[str] | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    ingest.add_arguments(parser)
    if extra is not None:
        extra(parser)
    return parser.parse_args(argv)


def main(run: Callable[[argparse.Namespace], int], args: argparse.Namespace, prog: str) -> None:
    """Run, with progress on stderr, results on stdout, and user errors as one line."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    # The driver logs each failed connection with a traceback; the user gets one line instead.
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    sys.exit(cli_data.run_guarded(run, args, prog))
