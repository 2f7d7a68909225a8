"""What every part of the launcher agrees on: defaults, the files of a server directory, where
its default directories are (in the package's cache), and the one error type a user can act
on."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from .._files import cache_root
from ..errors import UserError

DEFAULT_VERSION = "5.0.6"
DEFAULT_HEAP = "1G"
# Generous: a cold 5.0 start on 2 cores takes tens of seconds, more when the machine is busy.
DEFAULT_START_TIMEOUT = 180.0
DEFAULT_STOP_TIMEOUT = 60.0
DEFAULT_CLUSTER_NAME = "cassandra-dali"
DEFAULT_HOST = "127.0.0.1"
# Created by Cassandra itself when PasswordAuthenticator is on and no role exists yet.
SUPERUSER = "cassandra"
SUPERUSER_PASSWORD = "cassandra"

# Files inside a server directory.
PID_FILE = "cassandra.pid"
STATE_FILE = "server.json"
CLUSTER_FILE = "cluster.json"  # a local cluster's directory: nodes in node1 ... nodeN
YAML_FILE = "cassandra.yaml"
LOGBACK_FILE = "logback.xml"
LOG_DIR = "logs"
SYSTEM_LOG = "system.log"
STDOUT_LOG = "stdout.log"
TLS_DIR = "tls"
START_HEADER = "==== cassandra-dali start at "
CA_PEM = "ca.pem"


class ServerError(UserError, RuntimeError):
    """A failure the user can act on (bad setup, port in use, server did not start...)."""


def default_server_dir() -> Path:
    return cache_root() / "servers" / "default"


def server_dir(directory: Path | str | None) -> Path:
    """A server directory as an absolute path; None is the default one."""
    return Path(directory).expanduser().resolve() if directory is not None else default_server_dir()


@contextlib.contextmanager
def locked(path: Path, busy_message: str | None = None) -> Iterator[None]:
    """An exclusive lock on a file; with ``busy_message``, fail with it instead of waiting."""
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (fcntl.LOCK_NB if busy_message else 0))
        except BlockingIOError:
            raise ServerError(busy_message or "") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tail_text(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])
