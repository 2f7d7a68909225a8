"""Servers that some tests need beside the session's (auth, TLS, ...)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cassandra_dali import server


@contextlib.contextmanager
def extra_server(directory: Path, **options: Any) -> Iterator[server.ServerInfo]:
    """A server of its own in ``directory``, stopped on leaving (also on failure)."""
    info = server.start(server.ServerConfig(dir=directory, **options))
    try:
        yield info
    finally:
        server.stop(directory)
