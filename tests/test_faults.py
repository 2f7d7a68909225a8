"""Faults the reader rides through, against a real server of its own: the Cassandra JVM killed
(SIGKILL) and restarted mid-epoch, frozen (SIGSTOP) for a while, and frozen for longer than the
retry budget. Every epoch still delivers every sample exactly once, checked by checksum."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nvidia.dali import fn, pipeline_def

import cassandra_dali
from cassandra_dali import _native, server
from reader_helpers import Dataset, check_batch, reader_kwargs, write_dataset

pytestmark = pytest.mark.slow

SIZE = 150
BATCH = 16
HEAP = "768M"


class OwnServer:
    def __init__(self, directory: Path, info: server.ServerInfo) -> None:
        self.dir = directory
        self.info = info

    def pid(self) -> int:
        state = server.status(self.dir)
        assert state.running and state.pid, f"the server in {self.dir} is not running"
        return state.pid

    def start(self) -> None:
        self.info = server.start(server.ServerConfig(dir=self.dir, heap=HEAP))


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnServer]:
    """A server these tests may kill; its data flushed to SSTables (a clean restart), so a
    SIGKILL loses nothing the commit log had not synced yet."""
    directory = tmp_path_factory.mktemp("faulty-cassandra")
    own = OwnServer(directory, server.start(server.ServerConfig(dir=directory, heap=HEAP)))
    try:
        yield own
    finally:
        if server.status(directory).running:
            os.kill(own.pid(), signal.SIGCONT)  # a failed test may have left it frozen
        server.stop(directory)


@pytest.fixture(scope="module")
def dataset(own_server: OwnServer) -> Dataset:
    session = own_server.info.connect()
    try:
        session.execute("CREATE KEYSPACE faults WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        ds = write_dataset(session, "faults", SIZE, seed=4)
    finally:
        session.cluster.shutdown()
    server.stop(own_server.dir)  # Cassandra drains on SIGTERM: the rows go to SSTables
    own_server.start()
    return ds


def _pipeline(info: server.ServerInfo, ds: Dataset, pipe_args: dict[str, Any] | None = None,
              **extra: Any) -> Any:
    @pipeline_def(batch_size=BATCH, num_threads=2, device_id=None, prefetch_queue_depth=2,
                  **(pipe_args or {}))
    def pipe() -> tuple[Any, Any]:
        return tuple(fn.crs4.cassandra(  # type: ignore[attr-defined]
            name="Reader", **reader_kwargs(info, "faults.data_int", source_uuids=ds.ids, **extra)))

    p = pipe()
    p.build()
    return p


def _wait_until_answering(info: server.ServerInfo, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.query_release_version(info, timeout=5.0)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _epoch(size: int, epoch: int) -> list[int]:
    return _native.epoch_indices(size, 1, 0, BATCH, epoch, True, 1234)


def test_a_server_restart_mid_epoch_loses_nothing(own_server: OwnServer, dataset: Dataset) -> None:
    pipe = _pipeline(own_server.info, dataset, request_timeout_ms=2000, retry_budget_ms=180000)
    expected = _epoch(SIZE, 0) + _epoch(SIZE, 1)
    batches = len(expected) // BATCH
    seen: list[int] = []
    for _ in range(3):
        seen += check_batch(dataset, pipe.run())
    os.kill(own_server.pid(), signal.SIGKILL)
    killed = time.monotonic()
    restart = threading.Thread(target=lambda: (time.sleep(2), own_server.start()))
    restart.start()
    try:
        stalls = []
        for _ in range(batches - 3):
            started = time.monotonic()
            seen += check_batch(dataset, pipe.run())
            stalls.append(time.monotonic() - started)
    finally:
        restart.join()
    print(f"server killed, restarted after 2 s; longest run(): {max(stalls):.1f} s; "
          f"back to full speed {time.monotonic() - killed:.1f} s after the kill")
    assert seen == expected  # every sample of both epochs, once each, in order


def test_a_frozen_server_is_ridden_through(own_server: OwnServer, dataset: Dataset) -> None:
    pipe = _pipeline(own_server.info, dataset, request_timeout_ms=1000, retry_budget_ms=60000)
    expected = _epoch(SIZE, 0)
    seen = check_batch(dataset, pipe.run())
    pid = own_server.pid()
    os.kill(pid, signal.SIGSTOP)
    thaw = threading.Timer(4.0, os.kill, (pid, signal.SIGCONT))
    thaw.start()
    stalls = []
    try:
        for _ in range(len(expected) // BATCH - 1):
            started = time.monotonic()
            seen += check_batch(dataset, pipe.run())
            stalls.append(time.monotonic() - started)
    finally:
        thaw.join()
    print(f"server frozen for 4 s: longest run() {max(stalls):.1f} s")
    assert max(stalls) >= 1.0, "no run() waited: the freeze came after the reads (nothing tested)"
    assert seen == expected


def test_past_the_budget_the_error_says_what_to_do_and_no_sample_is_lost(
    own_server: OwnServer, dataset: Dataset
) -> None:
    settings = {"request_timeout_ms": 500, "retry_budget_ms": 3000}
    pipe = _pipeline(own_server.info, dataset, {"enable_checkpointing": True}, **settings)
    expected = _epoch(SIZE, 0)
    seen = check_batch(dataset, pipe.run())
    pid = own_server.pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(Exception) as caught:
            for _ in range(len(expected) // BATCH):
                seen += check_batch(dataset, pipe.run())
        elapsed = time.monotonic() - started
        checkpoint = pipe.checkpoint()
    finally:
        os.kill(pid, signal.SIGCONT)
    _wait_until_answering(own_server.info)  # the thawed JVM first, then the 3 s budget again
    message = str(caught.value)
    print(f"server frozen: run() raised after {elapsed:.1f} s (budget 3 s): {message[-600:]}")
    assert "faults.data_int" in message and "retry_budget_ms=3000" in message, message
    assert "resume from the last checkpoint" in message, message
    # The budget, one request timeout, and the batches DALI had prefetched before the fault.
    assert elapsed < 3 + 0.5 + 10, f"run() blocked {elapsed:.1f} s past a 3 s budget"
    rest = len(expected) // BATCH - len(seen) // BATCH
    # What the error says: a pipeline resumed from the checkpoint starts at the failed batch...
    resumed = _pipeline(own_server.info, dataset,
                        {"enable_checkpointing": True, "checkpoint": checkpoint}, **settings)
    assert [i for _ in range(rest) for i in check_batch(dataset, resumed.run())] == expected[len(seen):]
    # ...and so does the same pipeline, asked again once the server is back.
    for _ in range(rest):
        seen += check_batch(dataset, pipe.run())
    assert seen == expected
