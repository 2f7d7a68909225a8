"""Helpers shared by the reader tests: a small dataset written with the Python driver, and
pipelines around fn.crs4.cassandra."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import cassandra_dali  # noqa: F401  (loads the plugin)
import numpy as np
from cassandra.concurrent import execute_concurrent_with_args
from cassandra_dali import server
from cassandra_dali.sources import cassandra_node
from nvidia.dali import pipeline_def


def sha(data: bytes | np.ndarray) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()


@dataclass
class Dataset:
    """Rows written to three tables (int, blob and no labels) of one keyspace."""

    keyspace: str
    ids: list[str] = field(default_factory=list)
    blobs: list[bytes] = field(default_factory=list)

    def index_of(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.ids)}

    def by_hash(self) -> dict[str, int]:
        return {sha(b): i for i, b in enumerate(self.blobs)}


def write_dataset(
    session: Any, keyspace: str, size: int, seed: int = 0, blobs: list[bytes] | None = None
) -> Dataset:
    """``size`` random blobs (or the given ``blobs``, e.g. JPEGs) in tables data_int (label: the
    index), data_blob (label: the data's SHA-256) and data_none."""
    rng = np.random.default_rng(seed)
    ds = Dataset(keyspace)
    for i in range(size if blobs is None else len(blobs)):
        ds.ids.append(str(uuid.UUID(bytes=rng.bytes(16), version=4)))
        ds.blobs.append(rng.bytes(int(rng.integers(1_000, 30_000))) if blobs is None else blobs[i])
    for table, columns in [
        ("data_int", "id uuid PRIMARY KEY, label int, data blob"),
        ("data_blob", "id uuid PRIMARY KEY, label blob, data blob"),
        ("data_none", "id uuid PRIMARY KEY, data blob"),
        ("wrong_types", "id uuid PRIMARY KEY, label text, data text"),
    ]:
        session.execute(f"CREATE TABLE {keyspace}.{table} ({columns})")
    rows = [(uuid.UUID(u), i, b) for i, (u, b) in enumerate(zip(ds.ids, ds.blobs))]
    for statement, params in [
        (f"INSERT INTO {keyspace}.data_int (id, label, data) VALUES (?, ?, ?)", rows),
        (
            f"INSERT INTO {keyspace}.data_blob (id, label, data) VALUES (?, ?, ?)",
            [(u, hashlib.sha256(b).digest(), b) for u, _, b in rows],
        ),
        (f"INSERT INTO {keyspace}.data_none (id, data) VALUES (?, ?)", [(u, b) for u, _, b in rows]),
    ]:
        results = execute_concurrent_with_args(
            session, session.prepare(statement), params, concurrency=64, raise_on_first_error=True
        )
        assert all(ok for ok, _ in results)
    return ds


def check_batch(ds: Dataset, outputs: Any) -> list[int]:
    """The dataset indexes of a batch of ``data_int`` (label: the index), each sample's bytes
    checked against what was written."""
    data, labels = outputs
    seen = []
    for i in range(len(labels)):
        index = int(np.array(labels[i])[0])
        assert sha(np.array(data[i])) == sha(ds.blobs[index]), f"sample {index} is corrupt"
        seen.append(index)
    return seen


def reader_kwargs(info: server.ServerInfo, table: str, **extra: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(
        table=table, cassandra_ips=[info.host], cassandra_port=info.port, connect_timeout_ms=5000
    )
    kwargs.update(extra)
    return kwargs


def cassandra_pipeline(batch_size: int, **reader_args: Any) -> Any:
    @pipeline_def(batch_size=batch_size, num_threads=1, device_id=None, prefetch_queue_depth=2)
    def pipe() -> tuple[Any, Any]:
        return cassandra_node(reader_args)

    p = pipe()
    p.build()
    return p


def run_batches(pipe: Any, batches: int) -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
    out = []
    for _ in range(batches):
        data, label = pipe.run()
        out.append(
            ([np.array(data[i]) for i in range(len(data))],
             [np.array(label[i]) for i in range(len(label))])
        )
    return out
