"""How every command (sub-commands and example scripts alike) logs and fails: progress on
stderr, results on stdout, and the errors a user can fix as one line and exit status 1."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from ..errors import UserError

# Exit status of an interrupted command, as shells report SIGINT.
EXIT_INTERRUPTED = 130
EXIT_ERROR = 1


def configure_logging(verbose: bool = False, prefix: str = "") -> None:
    """Progress messages from the library go to stderr, results of commands to stdout."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format=f"{prefix}%(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        # The driver logs each failed connection with a traceback; the error reaches the user
        # once, in one line, from the command.
        logging.getLogger("cassandra").setLevel(logging.CRITICAL)


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's to fix (bad input, a server down, a refused query):
    printed as one line, without a traceback. Anything else is a bug and keeps its traceback.
    The tools' own errors are all :class:`UserError`; the others come from outside."""
    errors: tuple[type[BaseException], ...] = (UserError, FileNotFoundError)
    try:  # server-side refusals (unknown table, bad CQL)
        from cassandra import (
            DriverException,
            RequestExecutionException,
            RequestValidationException,
        )
    except ImportError:
        return errors
    return (*errors, RequestValidationException, RequestExecutionException, DriverException)


def run_guarded(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace,
                name: str) -> int:
    """Run a command; the errors a user can fix become one line on stderr and exit status 1."""
    expected = user_errors()  # before the command: an import failing here must not mask its error
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except expected as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
