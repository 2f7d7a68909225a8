"""The server a bench reads: the one at --host/--port, or one started for the run (in the
cache's servers/bench-NAME, so its jars and JIT-friendly settings are reused) and stopped after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from cassandra_dali import server
from cassandra_dali.client import Connection


@contextlib.contextmanager
def server_for(host: str, port: int | None, name: str, heap: str = "2G") -> Iterator[Connection]:
    if port is not None:
        yield Connection(host, port)
        return
    directory = server.cache_root() / "servers" / f"bench-{name}"
    info = server.start(server.ServerConfig(dir=directory, heap=heap, cluster_name="bench"))
    try:
        yield info
    finally:
        server.stop(directory)
