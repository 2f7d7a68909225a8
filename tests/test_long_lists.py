"""Lists of any length (issue 11): the epoch permutation is computed (a keyed bijection), and a
binary rows file is read where it lies instead of being loaded. Both are checked against the
real server: the same samples, in the same order, as the same list given as text."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cassandra_dali import ArgumentError, _native, server
from cassandra_dali.dataset import rows_files
from reader_helpers import Dataset, cassandra_pipeline, reader_kwargs, run_batches, sha, write_dataset

SIZE = 157
BATCH = 16


@pytest.fixture(scope="module")
def dataset(cql_session: Any, keyspace: str) -> Iterator[Dataset]:
    yield write_dataset(cql_session, keyspace, SIZE, seed=3)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 16, 17, 1000, 65_537, (1 << 20) + 3])
def test_permutation_is_a_bijection(size: int) -> None:
    for seed in (0, 1, 2**64 - 1):
        for epoch in (0, 5):
            indices = _native.epoch_indices(size, 1, 0, size, epoch, True, seed)
            assert sorted(indices) == list(range(size))
    if size >= 1000:  # shuffled for real: few fixed points, different per epoch and seed
        a = np.array(_native.epoch_indices(size, 1, 0, size, 0, True, 7))
        assert (a == np.arange(size)).mean() < 0.01
        assert a.tolist() != _native.epoch_indices(size, 1, 0, size, 1, True, 7)
        assert a.tolist() != _native.epoch_indices(size, 1, 0, size, 0, True, 8)


def test_binary_rows_file_round_trip(tmp_path: Path) -> None:
    ids = [uuid.uuid4() for _ in range(50)]
    text, binary = tmp_path / "a.rows", tmp_path / "a.rowsb"
    assert rows_files.write_rows_file(text, ids) == 50
    assert rows_files.write_rows_file(binary, ids, binary=True) == 50
    assert rows_files.read_rows_file(binary) == rows_files.read_rows_file(text)
    assert binary.stat().st_size == 16 + 50 * 16
    # In the order given, from an (n, 16) array as a bench writes a hundred million.
    array = np.frombuffer(b"".join(u.bytes for u in ids), dtype=np.uint8).reshape(-1, 16)
    rows_files.write_binary_rows_file(binary, array)
    assert rows_files.read_rows_file(binary) == [str(u) for u in ids]


def test_damaged_binary_rows_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "cut.rowsb"
    rows_files.write_rows_file(path, [uuid.uuid4() for _ in range(4)], binary=True)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ArgumentError, match=f"rows file '{path}' says it holds 4 UUIDs but is 75 "
                       "bytes long"):
        rows_files.read_rows_file(path)


def test_reader_over_a_binary_rows_file(cassandra_server: server.ServerInfo, dataset: Dataset,
                                        tmp_path: Path) -> None:
    """The same epochs, sample for sample, from a text and a binary file of the same list, two
    shards each; every sample's bytes checked."""
    text, binary = tmp_path / "list.rows", tmp_path / "list.rowsb"
    text.write_text("\n".join(dataset.ids) + "\n")
    rows_files.write_binary_rows_file(binary, [uuid.UUID(u).bytes for u in dataset.ids])
    by_id = dict(zip(dataset.ids, dataset.blobs, strict=True))
    layout = _native.shard_layout(SIZE, 2, 1, BATCH)
    runs = {}
    for name, path in (("text", text), ("binary", binary)):
        pipe = cassandra_pipeline(BATCH, **reader_kwargs(
            cassandra_server, f"{dataset.keyspace}.data_int", source_uuids_file=str(path),
            shard_id=1, num_shards=2))
        outputs = run_batches(pipe, 2 * layout["batches_per_epoch"])
        runs[name] = [(sha(blob), int(label[0])) for data, labels in outputs
                      for blob, label in zip(data, labels, strict=True)]
    assert runs["binary"] == runs["text"]
    expected = [_native.epoch_indices(SIZE, 2, 1, BATCH, epoch) for epoch in (0, 1)]
    assert [label for _, label in runs["binary"]] == expected[0] + expected[1]
    for digest, label in runs["binary"]:
        assert digest == sha(by_id[dataset.ids[label]])
