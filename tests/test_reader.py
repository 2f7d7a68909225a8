"""fn.crs4.cassandra, fn.crs4.cassandra_interactive and Reader against the real server."""

from __future__ import annotations

import concurrent.futures
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def

import cassandra_dali
from cassandra_dali import _native, server

from reader_helpers import (
    Dataset,
    cassandra_pipeline,
    reader_kwargs,
    run_batches,
    sha,
    write_dataset,
)

SIZE = 203  # divisible by none of the batch sizes and shard counts used below
BATCH = 16


@pytest.fixture(scope="module")
def dataset(cql_session: Any, keyspace: str) -> Iterator[Dataset]:
    yield write_dataset(cql_session, keyspace, SIZE)


def _epoch_indices(ds: Dataset, outputs: list[tuple[list[np.ndarray], list[np.ndarray]]]) -> list[int]:
    """Dataset indices of an int-label run (labels are the indices), checking every sample's bytes."""
    seen = []
    for data, labels in outputs:
        for blob, label in zip(data, labels):
            assert label.dtype == np.int32 and label.shape == (1,)
            index = int(label[0])
            assert sha(blob) == sha(ds.blobs[index]), f"bytes of sample {index} differ"
            assert blob.dtype == np.uint8 and blob.ndim == 1
            seen.append(index)
    return seen


def test_driver_info_names_the_library() -> None:
    info = cassandra_dali.driver_info()
    assert info["loaded"] is True
    assert info["provider"] in {"explicit", "environment", "system", "acsylla"}
    assert info["path"]


def test_int_labels_cover_the_list_each_epoch(
    cassandra_server: server.ServerInfo, dataset: Dataset
) -> None:
    layout = _native.shard_layout(SIZE, 1, 0, BATCH)
    pipe = cassandra_pipeline(
        BATCH, **reader_kwargs(cassandra_server, f"{dataset.keyspace}.data_int", source_uuids=dataset.ids)
    )
    meta = pipe.reader_meta("Reader")
    assert meta["epoch_size"] == SIZE
    assert meta["epoch_size_padded"] == layout["padded_epoch_size"] == 13 * BATCH
    orders = []
    for _ in range(2):
        seen = _epoch_indices(dataset, run_batches(pipe, layout["batches_per_epoch"]))
        assert len(seen) == layout["padded_shard_size"]
        assert sorted(seen[:SIZE]) == list(range(SIZE))
        assert set(seen[SIZE:]) == {seen[SIZE - 1]}  # padding repeats the shard's last sample
        orders.append(seen[:SIZE])
    assert orders[0] != orders[1], "shuffle_every_epoch must reshuffle"


def test_steady_state_reuses_buffers(cassandra_server: server.ServerInfo, dataset: Dataset) -> None:
    # A fixed read-ahead: an adaptive one may add a batch slot whenever the server slows down
    # (bounded by max_prefetch_buffers), which is growth, not a failure to reuse.
    pipe = cassandra_pipeline(
        BATCH, **reader_kwargs(cassandra_server, f"{dataset.keyspace}.data_int", source_uuids=dataset.ids,
                               prefetch_buffers=2, max_prefetch_buffers=2)
    )
    run_batches(pipe, 8 * 13)  # slots grow until they fit the samples they are given
    before = _native.sample_buffer_allocations()["buffers"]
    run_batches(pipe, 3 * 13)
    later = _native.sample_buffer_allocations()["buffers"] - before
    # Not one allocation per batch: at most a few slots meeting a sample larger than any before.
    assert later <= 0.02 * 3 * 13 * BATCH, f"{later} buffers allocated in the steady state"


def test_blob_labels(cassandra_server: server.ServerInfo, dataset: Dataset) -> None:
    by_hash = dataset.by_hash()
    pipe = cassandra_pipeline(
        BATCH,
        **reader_kwargs(
            cassandra_server, f"{dataset.keyspace}.data_blob", label_type="blob",
            source_uuids=dataset.ids,
        ),
    )
    seen = set()
    for data, labels in run_batches(pipe, 13):
        for blob, label in zip(data, labels):
            assert label.dtype == np.uint8
            assert bytes(label) == bytes.fromhex(sha(blob))  # the label is the data's digest
            seen.add(by_hash[sha(blob)])
    assert seen == set(range(SIZE))


def test_no_labels_give_empty_tensors(cassandra_server: server.ServerInfo, dataset: Dataset) -> None:
    by_hash = dataset.by_hash()
    pipe = cassandra_pipeline(
        BATCH,
        **reader_kwargs(
            cassandra_server, f"{dataset.keyspace}.data_none", label_type="none",
            source_uuids=dataset.ids, shuffle_every_epoch=False,
        ),
    )
    (data, labels), = run_batches(pipe, 1)
    assert [by_hash[sha(b)] for b in data] == list(range(BATCH))  # no shuffle: list order
    assert all(label.shape == (0,) and label.dtype == np.int32 for label in labels)


@pytest.mark.parametrize("num_shards", [2, 3])
def test_shards_partition_each_epoch(
    cassandra_server: server.ServerInfo, dataset: Dataset, num_shards: int
) -> None:
    per_epoch: list[list[list[int]]] = [[], []]
    batch_counts = set()
    for shard_id in range(num_shards):
        layout = _native.shard_layout(SIZE, num_shards, shard_id, BATCH)
        batch_counts.add(layout["batches_per_epoch"])
        pipe = cassandra_pipeline(
            BATCH,
            **reader_kwargs(
                cassandra_server, f"{dataset.keyspace}.data_int", source_uuids=dataset.ids,
                shard_id=shard_id, num_shards=num_shards, prefetch_buffers=3,
            ),
        )
        assert pipe.reader_meta("Reader")["shard_id"] == shard_id
        for epoch in range(2):
            seen = _epoch_indices(dataset, run_batches(pipe, layout["batches_per_epoch"]))
            expected = _native.epoch_indices(SIZE, num_shards, shard_id, BATCH, epoch)
            assert seen == [int(i) for i in expected]
            per_epoch[epoch].append(seen[: layout["size"]])
    assert len(batch_counts) == 1, "every rank must run the same number of batches"
    for shards in per_epoch:
        union = [i for shard in shards for i in shard]
        assert sorted(union) == list(range(SIZE)), "shards must cover the list exactly once"
    assert per_epoch[0] != per_epoch[1]


def test_shuffle_is_deterministic_for_a_seed(
    cassandra_server: server.ServerInfo, dataset: Dataset
) -> None:
    def first_epoch(seed: int) -> list[int]:
        pipe = cassandra_pipeline(
            BATCH,
            **reader_kwargs(
                cassandra_server, f"{dataset.keyspace}.data_int", source_uuids=dataset.ids,
                shuffle_seed=seed,
            ),
        )
        return _epoch_indices(dataset, run_batches(pipe, 13))

    assert first_epoch(7) == first_epoch(7)
    assert first_epoch(7) != first_epoch(8)


def test_rows_file_and_out_of_order(
    cassandra_server: server.ServerInfo, dataset: Dataset, tmp_path: Any
) -> None:
    rows = tmp_path / "train.rows"
    rows.write_text("# written by the test\n" + "\n".join(dataset.ids) + "\n")
    assert _native.read_uuid_file(str(rows)) == dataset.ids
    pipe = cassandra_pipeline(
        BATCH,
        **reader_kwargs(
            cassandra_server, f"{dataset.keyspace}.data_int", source_uuids_file=str(rows),
            ooo=True, shuffle_every_epoch=False,
        ),
    )
    seen = _epoch_indices(dataset, run_batches(pipe, 13))  # labels still match their data
    # Arrival order mixes the padding into the last batch: check the epoch as a multiset.
    assert len(seen) == 13 * BATCH and set(seen) == set(range(SIZE))


def test_loop_forever_false_stops_at_epoch_end(
    cassandra_server: server.ServerInfo, dataset: Dataset
) -> None:
    pipe = cassandra_pipeline(
        BATCH,
        **reader_kwargs(
            cassandra_server, f"{dataset.keyspace}.data_int", source_uuids=dataset.ids[:40],
            loop_forever=False,
        ),
    )
    assert len(run_batches(pipe, 3)) == 3
    with pytest.raises(StopIteration):
        pipe.run()


def test_reader_name_with_dali_iterator(
    cassandra_server: server.ServerInfo, dataset: Dataset
) -> None:
    torch_iter = pytest.importorskip("nvidia.dali.plugin.pytorch")
    from nvidia.dali.plugin.base_iterator import LastBatchPolicy

    for shard_id in range(2):
        # Encoded samples differ in size, so a torch batch carries their sizes, not the bytes.
        @pipeline_def(batch_size=BATCH, num_threads=1, device_id=None)
        def pipe_def() -> tuple[Any, Any]:
            data, label = fn.crs4.cassandra(
                name="Reader",
                **reader_kwargs(
                    cassandra_server, f"{dataset.keyspace}.data_int", source_uuids=dataset.ids,
                    shard_id=shard_id, num_shards=2,
                ),
            )
            return data.shape(), label

        pipe = pipe_def()
        pipe.build()
        it = torch_iter.DALIGenericIterator(
            [pipe], ["size", "label"], reader_name="Reader",
            last_batch_policy=LastBatchPolicy.PARTIAL, dynamic_shape=True,
        )
        size = _native.shard_layout(SIZE, 2, shard_id, BATCH)["size"]
        for _ in range(2):
            labels, sizes = [], []
            for batch in it:
                labels += [int(x) for x in batch[0]["label"].flatten()]
                sizes += [int(x) for x in batch[0]["size"].flatten()]
            assert len(labels) == size
            assert sizes == [len(dataset.blobs[i]) for i in labels]
            assert len(set(labels)) == size
            it.reset()


@pytest.mark.parametrize("layout", ["bytes", "cass_uuid_words"])
def test_interactive_reads_what_it_is_fed(
    cassandra_server: server.ServerInfo, dataset: Dataset, layout: str
) -> None:
    picks = (5, 17, 3, 200)
    chosen = [uuid.UUID(dataset.ids[i]) for i in picks]

    @pipeline_def(batch_size=len(chosen), num_threads=1, device_id=None, prefetch_queue_depth=1)
    def pipe() -> tuple[Any, Any]:
        ids = fn.external_source(name="UUID")
        return tuple(
            fn.crs4.cassandra_interactive(
                ids, **reader_kwargs(cassandra_server, f"{dataset.keyspace}.data_int")
            )
        )

    p = pipe()
    p.build()
    if layout == "bytes":
        fed = [np.frombuffer(u.bytes, dtype=np.uint8) for u in chosen]
    else:  # the reference project's: the driver's CassUuid as two uint64
        fed = [np.array(_cass_uuid_words(u), dtype=np.uint64) for u in chosen]
    for _ in range(2):
        p.feed_input("UUID", fed)
        data, labels = p.run()
        assert [int(np.array(labels[i])[0]) for i in range(len(chosen))] == list(picks)
        assert [sha(np.array(data[i])) for i in range(len(chosen))] == [
            sha(dataset.blobs[i]) for i in picks
        ]


def _cass_uuid_words(u: uuid.UUID) -> tuple[int, int]:
    time_and_version = u.time_low | u.time_mid << 32 | u.time_hi_version << 48
    return time_and_version, int.from_bytes(u.bytes[8:], "big")


def test_python_reader_matches_the_operator(
    cassandra_server: server.ServerInfo, dataset: Dataset
) -> None:
    reader = cassandra_dali.Reader(
        f"{dataset.keyspace}.data_int", cassandra_ips=[cassandra_server.host],
        cassandra_port=cassandra_server.port,
    )
    pipe = cassandra_pipeline(
        BATCH,
        **reader_kwargs(
            cassandra_server, f"{dataset.keyspace}.data_int", source_uuids=dataset.ids,
            shuffle_every_epoch=False,
        ),
    )
    (op_data, op_labels), = run_batches(pipe, 1)
    data, labels, ids = reader.read(dataset.ids[:BATCH])
    assert ids == dataset.ids[:BATCH]
    assert [int(x) for x in labels] == [int(x[0]) for x in op_labels]
    assert [sha(x) for x in data] == [sha(x) for x in op_data]


def test_one_python_reader_serves_many_threads(
    cassandra_server: server.ServerInfo, dataset: Dataset
) -> None:
    # 8 threads on disjoint ids, round after round through the reader's ring of batches: each
    # gets its own rows, whole, while the others read.
    reader = cassandra_dali.Reader(
        f"{dataset.keyspace}.data_int", cassandra_port=cassandra_server.port
    )
    threads, per_batch, rounds = 8, 5, 6
    barrier = threading.Barrier(threads)

    def work(t: int) -> int:
        mine = dataset.ids[t::threads]
        barrier.wait()
        checked = 0
        for _ in range(rounds):
            for at in range(0, len(mine), per_batch):
                ids = mine[at:at + per_batch]
                data, labels, got = reader.read(ids)
                assert got == ids
                for blob, label, u in zip(data, labels, got):
                    index = dataset.ids.index(u)
                    assert int(label) == index
                    assert sha(blob) == sha(dataset.blobs[index]), f"thread {t}: {u} corrupt"
                    checked += 1
        return checked

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        counts = list(pool.map(work, range(threads)))
    assert sum(counts) == SIZE * rounds


@pytest.mark.parametrize("steps_before", [5, 11])  # 11 + 6 crosses the epoch boundary (13)
def test_checkpoint_resumes_sample_by_sample(
    cassandra_server: server.ServerInfo, dataset: Dataset, steps_before: int
) -> None:
    args = reader_kwargs(
        cassandra_server, f"{dataset.keyspace}.data_int", source_uuids=dataset.ids,
        shard_id=1, num_shards=2, prefetch_buffers=3,
    )

    def build(**pipe_args: Any) -> Any:
        @pipeline_def(batch_size=BATCH, num_threads=1, device_id=None, **pipe_args)
        def pipe() -> tuple[Any, Any]:
            return tuple(fn.crs4.cassandra(name="Reader", **args))

        p = pipe()
        p.build()
        return p

    def labels(outputs: list[tuple[list[np.ndarray], list[np.ndarray]]]) -> list[int]:
        return _epoch_indices(dataset, outputs)

    first = build(enable_checkpointing=True)
    run_batches(first, steps_before)
    checkpoint = first.checkpoint()
    expected = labels(run_batches(first, 6))
    resumed = build(enable_checkpointing=True, checkpoint=checkpoint)
    assert labels(run_batches(resumed, 6)) == expected
