"""What the benches share: the server they read (the one at --host/--port, or one started for
the run in the cache's servers/bench-NAME and stopped after) and a table of random rows."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
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


def add_cluster_arguments(parser: Any) -> None:
    """The flags of a bench that runs on a local 3-node cluster (:func:`cluster_for`)."""
    from pathlib import Path

    parser.add_argument("--heap", default="512M", help="per node")
    parser.add_argument("--cluster-dir", type=Path,
                        default=server.cache_root() / "servers" / "bench-cluster")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")


@contextlib.contextmanager
def cluster_for(args: Any) -> Iterator[server.ClusterInfo]:
    """The 3-node cluster in ``args.cluster_dir``: started if it does not run, and then stopped
    on leaving unless ``args.keep``; one already running is used and left running."""
    running = server.is_cluster_dir(args.cluster_dir) and all(
        n.status.running for n in server.cluster_status(args.cluster_dir))
    info = server.start_cluster(server.ClusterConfig(dir=args.cluster_dir, nodes=3,
                                                     heap=args.heap, cluster_name="bench"))
    print(f"cluster: {info.contact_point} ({'already running' if running else 'started'})")
    try:
        yield info
    finally:
        if not args.keep and not running:
            server.stop_cluster(args.cluster_dir)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat: how busy its
    cores were between two calls is (busy1 - busy0) / (total1 - total0)."""
    import os
    from pathlib import Path

    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, sum(fields) / tick


def write_random_rows(session: Any, keyspace: str, rows: int, row_bytes: int | tuple[int, int],
                      seed: int = 0, replication_factor: int = 1) -> tuple[list[uuid.UUID], int]:
    """A fresh ``keyspace.data (id uuid, label int, data blob, crc32c int)`` (compression off)
    holding ``rows`` rows of random bytes (nothing compresses), ``row_bytes`` each or drawn in
    [low, high); labels ``i % 10``, the CRC32C filled. Returns the ids and the bytes written.
    A new keyspace gets ``replication_factor`` copies of each row."""
    from cassandra.concurrent import execute_concurrent_with_args
    from cassandra_dali.dataset import checksums

    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
                    f"{{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}")
    session.execute(f"DROP TABLE IF EXISTS {keyspace}.data")
    session.execute(f"CREATE TABLE {keyspace}.data (id uuid PRIMARY KEY, label int, data blob, "
                    "crc32c int) WITH compression = {'enabled': 'false'}")
    insert = session.prepare(
        f"INSERT INTO {keyspace}.data (id, label, data, crc32c) VALUES (?, ?, ?, ?)")
    rng = np.random.default_rng(seed)
    ids = [uuid.UUID(bytes=rng.bytes(16), version=4) for _ in range(rows)]
    total = 0

    def values() -> Iterator[tuple[Any, ...]]:
        nonlocal total
        for i, sample_id in enumerate(ids):
            size = row_bytes if isinstance(row_bytes, int) else int(rng.integers(*row_bytes))
            blob = rng.bytes(size)
            total += size
            yield sample_id, i % 10, blob, checksums.crc32c(blob)

    for ok, result in execute_concurrent_with_args(session, insert, values(), concurrency=32,
                                                   results_generator=True):
        assert ok, result
    return ids, total


def write_cycled_rows_file(path: Any, ids: list[uuid.UUID], rows: int) -> None:
    """A binary rows file of `rows` entries cycling over `ids` (a rows file may repeat a UUID),
    written in chunks: never the whole list in memory."""
    from cassandra_dali.dataset import rows_files

    real = np.frombuffer(b"".join(u.bytes for u in ids), dtype=np.uint8).reshape(-1, 16)
    with open(path, "wb") as out:
        out.write(rows_files.BINARY_MAGIC + rows.to_bytes(8, "little"))
        for begin in range(0, rows, 1 << 22):
            positions = np.arange(begin, min(rows, begin + (1 << 22))) % len(real)
            out.write(real[positions].tobytes())
