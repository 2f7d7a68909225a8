"""Cassandra 4.x as a first-class server (issue 22): a compatibility subset of the reader's tests
against a 4.1 server (and 4.0, with CASSANDRA_DALI_COMPAT_VERSIONS=4.0.17,4.1.7), each started by
the launcher on the Java it needs (4.x runs on Java 11: a runtime from PyPI when the
machine has none) with a config valid for that release: reads byte-exact through
fn.crs4.cassandra and Reader, a checksum mismatch and a missing row named, over TLS, and a
checkpoint restored mid-epoch. The full suite runs against 5.0."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import cassandra_dali
import numpy as np
import pytest
from cassandra.concurrent import execute_concurrent_with_args
from cassandra_dali import server
from cassandra_dali.dataset import checksums
from nvidia.dali import fn, pipeline_def
from reader_helpers import Dataset, check_batch, write_dataset
from servers import extra_server

pytestmark = pytest.mark.slow

VERSIONS = os.environ.get("CASSANDRA_DALI_COMPAT_VERSIONS", "4.1.7").split(",")
SIZE = 48
BATCH = 8


@pytest.fixture(scope="module", params=VERSIONS)
def old_server(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.ServerInfo]:
    """A TLS server of that release (the reader connects over TLS in every test here)."""
    directory = tmp_path_factory.mktemp(f"cassandra-{request.param}")
    with extra_server(directory, version=request.param, heap="512M", tls=True) as info:
        yield info


@pytest.fixture(scope="module")
def old_dataset(old_server: server.ServerInfo) -> Iterator[Dataset]:
    session = old_server.connect()
    try:
        session.execute("CREATE KEYSPACE compat WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        ds = write_dataset(session, "compat", SIZE, seed=4)
        session.execute("CREATE TABLE compat.checked (id uuid PRIMARY KEY, label int, data blob, "
                        "crc32c int)")
        insert = session.prepare("INSERT INTO compat.checked (id, label, data, crc32c) "
                                 "VALUES (?, ?, ?, ?)")
        rows = [(uuid.UUID(u), i, b, checksums.crc32c(b))
                for i, (u, b) in enumerate(zip(ds.ids, ds.blobs))]
        assert all(ok for ok, _ in execute_concurrent_with_args(session, insert, rows))
        session.execute("UPDATE compat.checked SET data = %s WHERE id = %s",
                        (b"not the ingested bytes", uuid.UUID(ds.ids[3])))
        yield ds
    finally:
        session.cluster.shutdown()


def _tls(info: server.ServerInfo) -> dict[str, Any]:
    return dict(cassandra_ips=[info.host], cassandra_port=info.port, use_ssl=True,
                ssl_certificate=str(info.ca_cert), connect_timeout_ms=10000)


def _pipeline(info: server.ServerInfo, ds: Dataset, table: str, checkpoint: bytes | None = None,
              **extra: Any) -> Any:
    @pipeline_def(batch_size=BATCH, num_threads=1, device_id=None, enable_checkpointing=True)
    def pipe() -> Any:
        return tuple(fn.crs4.cassandra(name="Reader", table=f"compat.{table}",
                                       source_uuids=ds.ids, **_tls(info), **extra))

    p = pipe(checkpoint=checkpoint) if checkpoint is not None else pipe()
    p.build()
    return p


def test_the_release_runs(old_server: server.ServerInfo) -> None:
    session = old_server.connect()
    try:
        release = session.execute("SELECT release_version FROM system.local").one()[0]
    finally:
        session.cluster.shutdown()
    assert any(release == v for v in VERSIONS), release


def test_reads_byte_exact(old_server: server.ServerInfo, old_dataset: Dataset) -> None:
    p = _pipeline(old_server, old_dataset, "data_int")
    seen = [i for _ in range(SIZE // BATCH) for i in check_batch(old_dataset, p.run())]
    assert sorted(seen) == list(range(SIZE))
    reader = cassandra_dali.Reader("compat.data_blob", **_tls(old_server), label_type="blob")
    data, labels, _ = reader.read(old_dataset.ids[:5])
    assert [bytes(d) for d in data] == old_dataset.blobs[:5]


def test_a_checksum_mismatch_and_a_missing_row_are_named(old_server: server.ServerInfo,
                                                         old_dataset: Dataset) -> None:
    reader = cassandra_dali.Reader("compat.checked", **_tls(old_server), checksum_col="crc32c")
    with pytest.raises(cassandra_dali.ReadError, match=old_dataset.ids[3]):
        reader.read(old_dataset.ids[:5])
    missing = str(uuid.uuid4())
    with pytest.raises(cassandra_dali.MissingRowError, match=missing):
        reader.read([old_dataset.ids[0], missing])


def test_a_checkpoint_resumes_mid_epoch(old_server: server.ServerInfo,
                                        old_dataset: Dataset) -> None:
    def labels(p: Any) -> list[int]:
        _, out = p.run()
        return [int(np.array(out[i])[0]) for i in range(len(out))]

    whole = _pipeline(old_server, old_dataset, "data_int")
    reference = [labels(whole) for _ in range(5)]
    first = _pipeline(old_server, old_dataset, "data_int")
    got = [labels(first) for _ in range(2)]
    resumed = _pipeline(old_server, old_dataset, "data_int", checkpoint=first.checkpoint())
    got += [labels(resumed) for _ in range(3)]
    assert got == reference
