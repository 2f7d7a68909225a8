"""Reader telemetry (issue 11): the counters of an fn.crs4.cassandra operator, found by its
name, and of a Reader, checked against what was read; errors counted; the Prometheus text."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import cassandra_dali
import pytest
from cassandra_dali import server, telemetry
from cassandra_dali.sources import cassandra_node
from nvidia.dali import pipeline_def
from reader_helpers import Dataset, reader_kwargs, run_batches, write_dataset

SIZE, BATCH = 120, 8
DEPTH = 2  # the operator's read-ahead, fixed (prefetch_buffers = max_prefetch_buffers)


@pytest.fixture(scope="module")
def dataset(cql_session: Any, keyspace: str) -> Iterator[Dataset]:
    yield write_dataset(cql_session, keyspace, SIZE, seed=4)


def test_operator_counters_by_name(cassandra_server: server.ServerInfo, dataset: Dataset) -> None:
    table = f"{dataset.keyspace}.data_int"
    args = reader_kwargs(cassandra_server, table, source_uuids=dataset.ids,
                         prefetch_buffers=DEPTH, max_prefetch_buffers=DEPTH)

    @pipeline_def(batch_size=BATCH, num_threads=1, device_id=None, prefetch_queue_depth=2)
    def pipe() -> Any:
        return cassandra_node(args, name="CountedReader")

    started = time.monotonic()
    p = pipe()
    p.build()
    outputs = run_batches(p, 20)
    (stats,) = telemetry.readers("CountedReader")
    wall = time.monotonic() - started
    consumed = sum(len(data) for data, _ in outputs)
    served = sum(len(blob) for data, _ in outputs for blob in data)
    assert stats.table == table
    # DALI runs ahead of the user (its prefetch queue) and the reader ahead of DALI.
    assert consumed <= stats.batches * BATCH and stats.batches >= 20
    assert stats.rows >= consumed and stats.reads >= stats.rows
    assert stats.bytes >= served > 0
    assert stats.errors == 0 and stats.retries == 0
    # Reads in flight belong to the batches being read ahead: at most the fixed depth's (plus
    # the one the consumer waits for), a row each.
    assert 0 <= stats.in_flight <= (DEPTH + 1) * BATCH
    assert 0 < stats.latency_p50_seconds <= stats.latency_p99_seconds < 10
    # The reader started after `started`: its own clock cannot have run longer.
    assert stats.prefetch_depth == DEPTH and 0 < stats.seconds <= wall
    assert stats.rows_per_s == pytest.approx(stats.rows / stats.seconds)
    assert stats.rows_per_s >= stats.rows / wall
    # Every row read is counted to one node (its primary replica in the token ring). The two
    # counters are read one after the other while the read-ahead goes on: equal to within the
    # reads in flight (the Reader's test, at rest, checks equality).
    assert stats.reads_by_host, stats.token_ring
    assert abs(sum(stats.reads_by_host.values()) - stats.rows) <= (DEPTH + 1) * BATCH
    run_batches(p, 5)
    later = telemetry.readers("CountedReader")[0]
    rate = telemetry.rates(stats, later)["rows_per_s"]
    assert later.rows >= stats.rows and later.seconds > stats.seconds
    assert rate == pytest.approx((later.rows - stats.rows) / (later.seconds - stats.seconds))
    del p
    assert telemetry.readers("CountedReader") == []  # gone with its pipeline


def test_reader_counters_and_errors(cassandra_server: server.ServerInfo,
                                    dataset: Dataset) -> None:
    started = time.monotonic()
    reader = cassandra_dali.Reader(f"{dataset.keyspace}.data_int",
                                   cassandra_port=cassandra_server.port)
    before = telemetry.of(reader)
    reader.read(dataset.ids[:10])
    stats = telemetry.of(reader)
    wall = time.monotonic() - started
    assert (stats.rows, stats.batches, stats.errors, stats.in_flight) == (10, 1, 0, 0)
    assert (before.rows, before.in_flight) == (0, 0)
    assert 0 < stats.seconds <= wall and stats.rows_per_s >= 10 / wall
    assert stats.rows_per_s == pytest.approx(10 / stats.seconds)
    assert telemetry.rates(before, stats)["rows_per_s"] == pytest.approx(
        10 / (stats.seconds - before.seconds))
    assert stats.bytes == sum(len(b) for b in dataset.blobs[:10])
    assert sum(stats.reads_by_host.values()) == 10
    assert stats.consumer_waits == 1 and stats.consumer_wait_seconds > 0
    with pytest.raises(cassandra_dali.MissingRowError):
        reader.read([str(uuid.uuid4())])
    assert telemetry.of(reader).errors == 1
    assert "1 errors" in telemetry.summary(telemetry.of(reader))
    # One node: a second try would have nowhere to go, and the driver would then drop the
    # read's timeout, so reads are not hedged (docs/reader.md, "Hedged reads").
    assert (stats.hedge_delay_seconds, stats.hedges_sent, stats.driver_hedges_aborted) == (0, 0, 0)


def test_reads_in_flight_rise_during_a_read_and_fall_to_zero(
        cassandra_server: server.ServerInfo, dataset: Dataset) -> None:
    """Watched from another thread (the process-wide list, not the Reader, which is busy):
    every row of a batch is one read in flight until it completes."""
    table = f"{dataset.keyspace}.data_int"
    reader = cassandra_dali.Reader(table, cassandra_port=cassandra_server.port)
    seen = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal seen
        while not done.is_set():
            seen = max([seen, *(s.in_flight for s in telemetry.readers(table))])

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        deadline = time.monotonic() + 10
        while seen == 0 and time.monotonic() < deadline:
            reader.read(dataset.ids)
    finally:
        done.set()
        watcher.join()
    assert 0 < seen <= SIZE
    assert telemetry.of(reader).in_flight == 0


def test_prometheus_text() -> None:
    stats = telemetry.ReaderStats(
        name='Re"ader', table="ks.t", seconds=2.0, rows=10, bytes=2048, reads=11, in_flight=3,
        retries=1, errors=1, batches=2, consumer_waits=1, consumer_wait_seconds=0.5,
        prefetch_depth=4, latency_p50_seconds=0.001, latency_p99_seconds=0.01)
    text = telemetry.prometheus_text([stats], rank="0")
    sample = re.compile(r'^[a-z_][a-z0-9_]*\{([a-z]+="(\\.|[^"\\])*",?)+\} [0-9.e-]+$')
    for line in text.splitlines():
        assert line.startswith("# ") or sample.match(line), line
    assert 'cassandra_dali_rows_total{rank="0",reader="Re\\"ader",table="ks.t"} 10' in text
    assert "# TYPE cassandra_dali_reads_in_flight gauge" in text
    assert "reads_by_host" not in text  # no ring known: no per-host series


def test_reads_by_host_in_summary_and_prometheus_text() -> None:
    stats = telemetry.ReaderStats(
        name="Reader", table="ks.t", seconds=2.0, rows=300, bytes=2048, reads=300, in_flight=0,
        retries=0, errors=0, batches=2, consumer_waits=1, consumer_wait_seconds=0.5,
        prefetch_depth=4, latency_p50_seconds=0.001, latency_p99_seconds=0.01,
        reads_by_host={"127.0.0.1": 99, "127.0.0.2": 102, "127.0.0.3": 99},
        token_ring="3 hosts, 48 tokens, SimpleStrategy RF 1")
    assert telemetry.summary(stats).endswith(
        "; reads by replica host: 127.0.0.1 33%, 127.0.0.2 34%, 127.0.0.3 33%")
    text = telemetry.prometheus_text([stats], rank="1")
    assert "# TYPE cassandra_dali_reads_by_host_total counter" in text
    assert ('cassandra_dali_reads_by_host_total{host="127.0.0.2",rank="1",reader="Reader",'
            'table="ks.t"} 102') in text
    sample = re.compile(r'^[a-z_][a-z0-9_]*\{([a-z]+="(\\.|[^"\\])*",?)+\} [0-9.e-]+$')
    for line in text.splitlines():
        assert line.startswith("# ") or sample.match(line), line
