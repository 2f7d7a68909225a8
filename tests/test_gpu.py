"""The reader on a GPU, byte-exact: every way its outputs are consumed (Python, a CPU operator,
.gpu(), the mixed decoder, the CPU decoder then .gpu()), labels int, blob and none, both
operators, with DALI checkpointing, and two ranks. Marked ``gpu``: skipped where DALI sees no
GPU; ``make gpu-check`` (or ``python3 -m pytest -m gpu tests``) runs them."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from cassandra_dali import _native, server
from cassandra_dali.dataset import images
from cassandra_dali.sources import reader_default
from gpu_pipelines import CONSUMERS, LABEL_TYPES, OPERATORS, reader_pipeline
from PIL import Image
from reader_helpers import Dataset, reader_kwargs, sha, write_dataset

pytestmark = pytest.mark.gpu

BATCH = 16
BYTE_CONSUMERS = ("python", "cpu_operator", "gpu")
DECODE_CONSUMERS = ("mixed_decode", "cpu_decode_gpu")


@pytest.fixture(scope="module")
def jpegs(cql_session: Any, keyspace: str) -> Iterator[Dataset]:
    """60 generated Imagenette-like JPEGs in data_int, data_blob and data_none."""
    blobs = [images.render_jpeg(spec) for spec in images.image_specs(6, 0, seed=3)]
    yield write_dataset(cql_session, keyspace, 0, blobs=blobs)


def _host(batch: Any) -> list[np.ndarray]:
    if hasattr(batch, "as_cpu"):
        batch = batch.as_cpu()
    return [np.array(batch[i]) for i in range(len(batch))]


_decoded: dict[int, np.ndarray] = {}


def _pil(ds: Dataset, index: int) -> np.ndarray:
    if index not in _decoded:
        _decoded[index] = np.asarray(Image.open(io.BytesIO(ds.blobs[index])).convert("RGB"))
    return _decoded[index]


def _check_batch(ds: Dataset, consumer: str, label_type: str, expected: list[int],
                 outputs: tuple[Any, ...]) -> None:
    first, labels = _host(outputs[0]), _host(outputs[1])
    assert len(first) == len(labels) == len(expected)
    for i, index in enumerate(expected):
        if label_type == "int":
            assert labels[i].dtype == np.int32 and labels[i].tolist() == [index]
        elif label_type == "blob":
            assert bytes(labels[i]) == hashlib.sha256(ds.blobs[index]).digest()
        else:
            assert labels[i].shape == (0,)
        if consumer in BYTE_CONSUMERS:
            assert first[i].dtype == np.uint8 and sha(first[i]) == sha(ds.blobs[index]), (
                f"sample {i} (dataset index {index}) differs from the stored bytes"
            )
            continue
        reference = _pil(ds, index)
        decoded = _host(outputs[2])[i] if consumer == "mixed_decode" else first[i]
        assert decoded.shape == reference.shape
        # nvJPEG and libjpeg-turbo may round differently; a wrong or torn image is far off.
        assert np.abs(decoded.astype(np.int16) - reference).mean() < 3.0
        if consumer == "mixed_decode":
            assert first[i].shape == (64, 64, 3)


def _self_fed_order(size: int, epoch: int, num_shards: int = 1, shard_id: int = 0) -> list[int]:
    # The reader is given no shuffle_seed: its declared default applies.
    seed = reader_default("shuffle_seed")
    return _native.epoch_indices(size, num_shards, shard_id, BATCH, epoch, True, seed)


@pytest.mark.parametrize("label_type", LABEL_TYPES)
@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize("operator", OPERATORS)
def test_every_consumer_reads_exact_samples(
    cassandra_server: server.ServerInfo, jpegs: Dataset, operator: str, consumer: str,
    label_type: str,
) -> None:
    table = f"{jpegs.keyspace}.data_{label_type}"
    args = reader_kwargs(cassandra_server, table, source_uuids=jpegs.ids, label_type=label_type)
    pipe = reader_pipeline(operator, consumer, args, batch_size=BATCH, device_id=0)
    pipe.build()
    size = len(jpegs.ids)
    batches = -(-size // BATCH)
    rng = np.random.default_rng(5)
    for epoch in range(2):  # the second epoch runs on reused buffers
        order = _self_fed_order(size, epoch) if operator == "cassandra" else [
            int(i) for i in rng.permutation(batches * BATCH) % size]
        for b in range(batches):
            expected = order[b * BATCH:(b + 1) * BATCH]
            if operator != "cassandra":
                pipe.feed_input("UUID", [np.frombuffer(_native.parse_uuid(jpegs.ids[i]),
                                                       dtype=np.uint8) for i in expected])
            _check_batch(jpegs, consumer, label_type, expected, pipe.run())


@pytest.mark.parametrize(
    ("consumer", "device_id"),
    # (python, None): the CPU pipeline whose restored build() crashed (SIGSEGV) on an H200 only.
    [("python", None), ("python", 0), ("gpu", 0), ("mixed_decode", 0), ("cpu_decode_gpu", 0)],
)
def test_checkpoint_resumes_on_a_gpu(
    cassandra_server: server.ServerInfo, jpegs: Dataset, consumer: str, device_id: int | None
) -> None:
    args = reader_kwargs(cassandra_server, f"{jpegs.keyspace}.data_int", source_uuids=jpegs.ids,
                         prefetch_buffers=3)

    def labels(pipe: Any, steps: int) -> list[int]:
        return [int(x[0]) for _ in range(steps) for x in _host(pipe.run()[1])]

    first = reader_pipeline("cassandra", consumer, args, batch_size=BATCH, device_id=device_id,
                            enable_checkpointing=True)
    first.build()
    labels(first, 3)  # crosses into the second epoch after 4 batches below
    checkpoint = first.checkpoint()
    expected = labels(first, 4)
    resumed = reader_pipeline("cassandra", consumer, args, batch_size=BATCH,
                              device_id=device_id, enable_checkpointing=True,
                              checkpoint=checkpoint)
    resumed.build()
    assert labels(resumed, 4) == expected
    assert expected == (_self_fed_order(len(jpegs.ids), 0) + _self_fed_order(len(jpegs.ids), 1))[
        3 * BATCH:7 * BATCH]


def test_two_ranks_partition_each_epoch_on_a_gpu(
    cassandra_server: server.ServerInfo, jpegs: Dataset
) -> None:
    size = len(jpegs.ids)
    seen: list[list[int]] = []
    for shard in range(2):
        args = reader_kwargs(cassandra_server, f"{jpegs.keyspace}.data_int",
                             source_uuids=jpegs.ids, shard_id=shard, num_shards=2)
        pipe = reader_pipeline("cassandra", "gpu", args, batch_size=BATCH, device_id=0)
        pipe.build()
        expected = _self_fed_order(size, 0, 2, shard)
        got: list[int] = []
        for b in range(len(expected) // BATCH):
            batch = expected[b * BATCH:(b + 1) * BATCH]
            outputs = pipe.run()
            _check_batch(jpegs, "gpu", "int", batch, outputs)
            got += batch
        seen.append(sorted(set(got)))
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(size))
