"""The reader node of a DALI pipeline, built one way for the read loop, the trainer, the benches
and the tests: ``fn.crs4.cassandra`` (:class:`CassandraSource`, a table and the UUIDs to read)
or DALI's own ``fn.readers.file`` (:class:`FileSource`, class folders), each giving (encoded
sample, int32 label) for one shard, named :data:`READER_NAME` so iterators and ``reader_meta``
find it.

Call ``read()`` inside a ``pipeline_def``. Both readers pad their shards (``pad_last_batch``), so
every shard runs the same number of batches per epoch (see :mod:`cassandra_dali.sharding`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import _native
from .client import Connection

READER_NAME = "Reader"


def reader_default(name: str) -> Any:
    """The default of ``fn.crs4.cassandra``'s argument ``name``, read from the engine's one
    declaration of the reader's arguments rather than written again here."""
    for argument in _native.reader_arguments():
        if argument["name"] == name:
            return argument["default"]
    raise KeyError(f"fn.crs4.cassandra declares no argument {name!r}")


def cassandra_node(arguments: Mapping[str, Any], name: str = READER_NAME) -> tuple[Any, Any]:
    """``fn.crs4.cassandra(**arguments)``: the one place the operator is instantiated."""
    from ._loading import require_dali

    require_dali()  # without DALI: what to install, not an AttributeError on fn.crs4
    import nvidia.dali.fn as fn  # the package's import loaded the plugin: fn.crs4 exists

    # The operator is not told its name= by DALI: passed again, its telemetry is found by it.
    arguments = {"telemetry_name": name, **arguments}
    data, labels = fn.crs4.cassandra(name=name, **arguments)  # type: ignore[attr-defined]
    return data, labels


@dataclasses.dataclass(frozen=True)
class CassandraSource:
    """Rows of a data table, by UUID: listed in ``rows_file`` (from ``cache_uuids.py``) or given
    as ``uuids``. ``options`` are further ``fn.crs4.cassandra`` arguments (``io_threads``,
    ``prefetch_buffers``, ``label_type``, ``loop_forever``...); one set to None is not passed,
    so the operator's own default applies."""

    table: str
    rows_file: str | Path | None = None
    uuids: Sequence[str] | None = None
    connection: Connection = dataclasses.field(default_factory=Connection)
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def arguments(self, *, shard_id: int = 0, num_shards: int = 1, shuffle: bool = True,
                  seed: int | None = None) -> dict[str, Any]:
        """The operator's arguments for one shard. Every rank draws the same permutation from
        ``seed`` (None: the operator's ``shuffle_seed``) each epoch and takes its slice: a
        global reshuffle, shards never overlapping."""
        if (self.rows_file is None) == (self.uuids is None):
            raise ValueError(f"{self.table}: give either rows_file or uuids")
        listed: dict[str, Any] = (
            {"source_uuids_file": str(self.rows_file)} if self.rows_file is not None
            else {"source_uuids": list(self.uuids or ())}
        )
        arguments = {
            "table": self.table, **listed, "shard_id": shard_id, "num_shards": num_shards,
            "shuffle_every_epoch": shuffle, "shuffle_seed": seed,
            **self.connection.reader_kwargs(), **self.options,
        }
        # Left out rather than passed as a copy of the default: the engine declares it once.
        return {key: value for key, value in arguments.items() if value is not None}

    def read(self, *, shard_id: int = 0, num_shards: int = 1, shuffle: bool = True,
             seed: int | None = None, name: str = READER_NAME) -> tuple[Any, Any]:
        return cassandra_node(
            self.arguments(shard_id=shard_id, num_shards=num_shards, shuffle=shuffle, seed=seed),
            name,
        )

    def describe(self) -> str:
        listed = self.rows_file if self.rows_file is not None else f"{len(self.uuids or ())} ids"
        return f"{self.table} at {self.connection.contact_point} ({listed})"


@dataclasses.dataclass(frozen=True)
class FileSource:
    """An image-folder split (``ROOT/train``): class folders sorted by name give the labels, as
    the Cassandra ingest numbers them.

    ``global_shuffle``: one permutation of the whole split per epoch, each shard taking its
    slice (``shuffle_after_epoch``), which is what ``fn.crs4.cassandra`` does; otherwise DALI's
    ImageNet example: a shuffle buffer within the shard, and shards that move on every epoch
    (``stick_to_shard=False``), so each rank sees other images next epoch."""

    root: str | Path
    global_shuffle: bool = False

    def read(self, *, shard_id: int = 0, num_shards: int = 1, shuffle: bool = True,
             seed: int | None = None, name: str = READER_NAME) -> tuple[Any, Any]:
        """``seed`` None: ``fn.crs4.cassandra``'s default, so both readers start alike."""
        import nvidia.dali.fn as fn

        if seed is None:
            seed = reader_default("shuffle_seed")

        order = ({"shuffle_after_epoch": shuffle} if self.global_shuffle
                 else {"random_shuffle": shuffle})
        data, labels = fn.readers.file(
            file_root=str(self.root), shard_id=shard_id, num_shards=num_shards,
            pad_last_batch=True, seed=seed, name=name, **order,
        )
        return data, labels

    def describe(self) -> str:
        return f"files under {self.root}"
