"""Shared fixtures: one real Cassandra server for the whole test session.

Set CASSANDRA_HOST (and CASSANDRA_PORT, default 9042; CASSANDRA_USERNAME/CASSANDRA_PASSWORD and
CASSANDRA_CA for auth/TLS) to run the tests against an existing cluster instead; otherwise a
server is started from the cached jars (``cassandra-dali server fetch``) in the session's
temporary directory and stopped at the end, also when tests fail or the run is interrupted.
CASSANDRA_DALI_TEST_HEAP sets that server's heap (default 1G).
"""

from __future__ import annotations

import os
import re
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import pytest
from cassandra_dali import server
from cassandra_dali.gpus import dali_gpu_count

# The workflow tests' dataset, keyspace and ingested split, shared by their two modules.
pytest_plugins = ("workflow_helpers",)

if TYPE_CHECKING:
    from cassandra.cluster import Session


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` are skipped where DALI sees no GPU, unless the run asked for a GPU
    (``CASSANDRA_DALI_REQUIRE_GPU=1``, as ``make gpu-check`` does): then that is an error, since
    a GPU check that skips everything checks nothing."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    count, why = dali_gpu_count()
    if count:
        return
    detail = f" ({why})" if why else ""
    if os.environ.get("CASSANDRA_DALI_REQUIRE_GPU") == "1":
        raise pytest.UsageError(f"CASSANDRA_DALI_REQUIRE_GPU=1, but DALI sees no GPU{detail}")
    skip = pytest.mark.skip(reason=f"needs a GPU: DALI sees none{detail}")
    for item in gpu_items:
        item.add_marker(skip)


def _external_server() -> server.ServerInfo | None:
    host = os.environ.get("CASSANDRA_HOST")
    if not host:
        return None
    ca = os.environ.get("CASSANDRA_CA")
    return server.ServerInfo(
        host=host,
        port=int(os.environ.get("CASSANDRA_PORT", "9042")),
        username=os.environ.get("CASSANDRA_USERNAME"),
        password=os.environ.get("CASSANDRA_PASSWORD"),
        ca_cert=Path(ca) if ca else None,
        protocol_version=None,  # unknown cluster: let the driver negotiate
    )


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def cassandra_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.ServerInfo]:
    """The session's Cassandra: ``.host``, ``.port``, ``.cluster()``, ``.connect()``."""
    external = _external_server()
    if external is not None:
        yield external
        return
    # A CI timeout sends SIGTERM, which would end pytest without running finalizers and leave
    # the JVM behind; as a KeyboardInterrupt it unwinds through the teardown below.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    directory = tmp_path_factory.mktemp("cassandra")
    info = server.start(
        server.ServerConfig(
            dir=directory,
            heap=os.environ.get("CASSANDRA_DALI_TEST_HEAP", "1G"),
            cluster_name="cassandra-dali-tests",
        )
    )
    try:
        yield info
    finally:
        server.stop(directory)


@pytest.fixture(scope="session")
def cql_session(cassandra_server: server.ServerInfo) -> Iterator[Session]:
    """A driver session on the session's server, shared by all tests (no keyspace set)."""
    session = cassandra_server.connect()
    try:
        yield session
    finally:
        session.cluster.shutdown()


def unique_keyspace_name(hint: str) -> str:
    """A fresh keyspace name: letters, digits and _, at most 48 characters (Cassandra's limit)."""
    cleaned = re.sub(r"[^a-z0-9_]+", "_", hint.lower()).strip("_")[:30]
    return f"t_{cleaned}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def keyspace(request: pytest.FixtureRequest, cql_session: Session) -> Iterator[str]:
    """A fresh keyspace (replication factor 1) for one test module, dropped afterwards."""
    name = unique_keyspace_name(request.module.__name__.rsplit(".", 1)[-1])
    cql_session.execute(
        f"CREATE KEYSPACE {name} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    try:
        yield name
    finally:
        cql_session.execute(f"DROP KEYSPACE IF EXISTS {name}")
