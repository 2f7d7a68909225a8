"""The loader a user would otherwise write: the Python cassandra-driver feeding a DALI
pipeline through ``external_source`` (bench/compare_readers.py's baseline)."""

from __future__ import annotations

import queue
import random
import threading
import time
import uuid
from typing import Any

import numpy as np
from cassandra_dali.benchmark import readloop
from cassandra_dali.client import Connection
from cassandra_dali.sharding import shard_layout
from nvidia.dali import types as dali_types


class DriverBatches:
    """Batches of (encoded image, label) read with the Python driver, one batch ahead.

    Each batch is read with ``concurrency`` queries in flight; a background thread keeps up to
    ``prefetch`` batches ready so DALI does not wait for the whole round trip every step."""

    def __init__(
        self,
        conn: Connection,
        table: str,
        ids: list[str],
        batch_size: int,
        concurrency: int,
        prefetch: int = 2,
        seed: int = 1234,
    ) -> None:
        from cassandra.concurrent import execute_concurrent_with_args

        self._execute = execute_concurrent_with_args
        self._session = conn.connect()
        self._select = self._session.prepare(f"SELECT data, label FROM {table} WHERE id = ?")
        self._ids = [uuid.UUID(u) for u in ids]
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._rng = random.Random(seed)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, daemon=True)
        self._thread.start()

    def _batches(self) -> Any:
        while True:  # endless epochs, reshuffled each time, padded by wrapping around
            order = self._ids[:]
            self._rng.shuffle(order)
            for start in range(0, len(order), self._batch_size):
                batch = order[start : start + self._batch_size]
                yield batch + order[: self._batch_size - len(batch)]

    def _produce(self) -> None:
        try:
            for batch in self._batches():
                if self._stop.is_set():
                    return
                results = self._execute(
                    self._session,
                    self._select,
                    [(u,) for u in batch],
                    concurrency=self._concurrency,
                    raise_on_first_error=True,
                )
                rows = [result.one() for _, result in results]
                data = [np.frombuffer(row.data, dtype=np.uint8) for row in rows]
                labels = [np.array([row.label], dtype=np.int32) for row in rows]
                self._put((data, labels))
        except BaseException as error:  # handed to the pipeline thread
            self._put(error)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __call__(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._session.cluster.shutdown()


class DriverLoop:
    """The driver loader in a DALI pipeline, with the interface of ``readloop.Loop``."""

    def __init__(
        self, conn: Connection, table: str, ids: list[str], batch_size: int, concurrency: int
    ) -> None:
        from nvidia.dali import fn, pipeline_def

        self.source = DriverBatches(conn, table, ids, batch_size, concurrency)
        self.batch_size = batch_size

        @pipeline_def(  # type: ignore[call-overload]  # device_id=None: CPU-only pipeline
            batch_size=batch_size, num_threads=2, device_id=None, prefetch_queue_depth=2
        )
        def pipe() -> Any:
            data, labels = fn.external_source(
                source=self.source,
                num_outputs=2,
                batch=True,
                dtype=[dali_types.UINT8, dali_types.INT32],  # type: ignore[attr-defined]
            )
            return data, labels

        self.pipe = pipe()
        self.pipe.build()
        # The count fn.crs4.cassandra runs with one shard: ceil(N / batch) batches.
        self.batches = shard_layout(len(ids), shard_id=0, num_shards=1,
                                    batch_size=batch_size)["batches_per_epoch"]

    def run_epoch(self, epoch: int) -> readloop.EpochStat:
        total, started = 0, time.perf_counter()
        for _ in range(self.batches):
            data, _labels = self.pipe.run()
            total += int(sum(shape[0] for shape in data.shape()))
        return readloop.EpochStat(
            epoch, self.batches * self.batch_size, total, time.perf_counter() - started
        )

    def close(self) -> None:
        del self.pipe
        self.source.close()
