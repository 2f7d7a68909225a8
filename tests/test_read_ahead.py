"""The adaptive read-ahead (issue 11): across a link with a real round-trip time (the benches'
delay proxy) the depth grows and every epoch still holds each sample exactly once with its own
bytes; the limits are checked up front. Throughput is the bench's business (bench/latency.py),
not asserted here."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cassandra_dali import _native, server, telemetry
from reader_helpers import Dataset, cassandra_pipeline, reader_kwargs, run_batches, sha, write_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from delay_proxy import DelayProxy  # noqa: E402

SIZE, BATCH = 300, 16


@pytest.fixture(scope="module")
def dataset(cql_session: Any, keyspace: str) -> Iterator[Dataset]:
    yield write_dataset(cql_session, keyspace, SIZE, seed=9)


def test_every_sample_once_across_a_long_link(cassandra_server: server.ServerInfo,
                                              dataset: Dataset) -> None:
    proxy = DelayProxy(cassandra_server.host, cassandra_server.port, rtt_ms=60)
    try:
        pipe = cassandra_pipeline(BATCH, **reader_kwargs(
            proxy, f"{dataset.keyspace}.data_int", source_uuids=dataset.ids))
        layout = _native.shard_layout(SIZE, 1, 0, BATCH)
        outputs = run_batches(pipe, 2 * layout["batches_per_epoch"])
        (stats,) = [s for s in telemetry.readers("Reader")
                    if s.table == f"{dataset.keyspace}.data_int"]
        # The link, not the server, made the consumer wait: the read-ahead went past its start.
        assert stats.consumer_waits > 0 and stats.prefetch_depth > 2, stats
    finally:
        proxy.close()
    labels = [int(label[0]) for _, batch_labels in outputs for label in batch_labels]
    per_epoch = layout["padded_shard_size"]
    for epoch in range(2):
        seen = labels[epoch * per_epoch:(epoch + 1) * per_epoch]
        assert sorted(seen[:SIZE]) == list(range(SIZE))
        assert seen == _native.epoch_indices(SIZE, 1, 0, BATCH, epoch)
    for data, batch_labels in outputs:
        for blob, label in zip(data, batch_labels, strict=True):
            assert sha(blob) == sha(dataset.blobs[int(label[0])])


def test_limits_are_checked(cassandra_server: server.ServerInfo, dataset: Dataset) -> None:
    with pytest.raises((RuntimeError, ValueError), match=r"max_prefetch_buffers \(2\) must be >= "
                       r"prefetch_buffers \(4\)"):
        cassandra_pipeline(BATCH, **reader_kwargs(
            cassandra_server, f"{dataset.keyspace}.data_int", source_uuids=dataset.ids,
            prefetch_buffers=4, max_prefetch_buffers=2))
