"""Elastic resume through DALI's checkpoint API, against the real server: a run of S1 ranks in
lock-step, cut mid-epoch, continued by S2 ranks each given the checkpoint of any one old rank.
Over the ranks, the rest of the interrupted epoch holds every sample not yet delivered, once
(padding aside), every new rank runs the same number of batches, and the next epoch is the
global permutation for S2 ranks; the delivered digests prove it (docs/reader.md, "Checkpoints
and elastic resume")."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def

from cassandra_dali import _native, checkpoints, server
from reader_helpers import Dataset, reader_kwargs, write_dataset

SIZE = 203
SEED = 1234


@pytest.fixture(scope="module")
def dataset(cql_session: Any, keyspace: str) -> Iterator[Dataset]:
    yield write_dataset(cql_session, keyspace, SIZE, seed=3)


@dataclasses.dataclass
class Run:
    """One run of `shards` ranks (a pipeline each, in this process) in lock-step."""

    pipes: list[Any]
    batch: int

    def step(self) -> list[list[int]] | None:
        """One batch from every rank (their labels: dataset indices); None at StopIteration."""
        out = []
        for p in self.pipes:
            try:
                _, labels = p.run()
            except StopIteration:
                out.append(None)
                continue
            out.append([int(np.array(labels[i])[0]) for i in range(len(labels))])
        if all(o is None for o in out):
            return None
        assert all(o is not None for o in out), "ranks did not stop together"
        return out  # type: ignore[return-value]

    def checkpoints(self) -> list[bytes]:
        return [p.checkpoint() for p in self.pipes]

    def reader_states(self) -> list[dict[str, Any]]:
        return [checkpoints.reader_checkpoints(c)["Reader"] for c in self.checkpoints()]


def start(server_info: server.ServerInfo, ds: Dataset, shards: int, batch: int,
          resume: list[bytes] | None = None, *, table: str = "data_int", **extra: Any) -> Run:
    pipes = []
    for j in range(shards):
        args = reader_kwargs(server_info, f"{ds.keyspace}.{table}", source_uuids=ds.ids,
                             shard_id=j, num_shards=shards, loop_forever=False, **extra)

        @pipeline_def(batch_size=batch, num_threads=1, device_id=None,
                      enable_checkpointing=True)
        def pipe() -> tuple[Any, Any]:
            return tuple(fn.crs4.cassandra(name="Reader", **args))

        p = pipe(checkpoint=resume[j % len(resume)]) if resume else pipe()
        p.build()
        pipes.append(p)
    return Run(pipes, batch)


def real_samples(rank_batches: list[list[int]], count: int) -> list[int]:
    """A rank's first `count` samples of an epoch: the rest of its batches is padding."""
    flat = [i for b in rank_batches for i in b]
    assert len(flat) >= count
    return flat[:count]


def shard_counts(remaining: int, shards: int) -> list[int]:
    return [remaining * (j + 1) // shards - remaining * j // shards for j in range(shards)]


def run_epoch_rest(run: Run) -> list[list[list[int]]]:
    """Every rank's batches until StopIteration."""
    per_rank: list[list[list[int]]] = [[] for _ in run.pipes]
    while (got := run.step()) is not None:
        for j, labels in enumerate(got):
            per_rank[j].append(labels)
    return per_rank


@pytest.mark.parametrize(("s1", "s2", "b1", "b2", "steps"), [
    (4, 2, 16, 16, 2),   # shrink
    (2, 3, 16, 16, 3),   # grow, coprime
    (3, 5, 16, 16, 2),   # grow, coprime
    (5, 2, 8, 16, 4),    # shrink and a larger batch
    (2, 2, 16, 10, 3),   # the batch size alone
])
def test_elastic_resume_delivers_the_rest_of_the_epoch_once(
    cassandra_server: server.ServerInfo, dataset: Dataset, s1: int, s2: int, b1: int, b2: int,
    steps: int,
) -> None:
    first = start(cassandra_server, dataset, s1, b1)
    before: list[list[int]] = [[] for _ in range(s1)]
    for _ in range(steps):
        for j, labels in enumerate(first.step() or []):
            before[j] += labels
    cut = first.checkpoints()
    states = [checkpoints.reader_checkpoints(c)["Reader"] for c in cut]
    assert {(s["epoch"], s["batch"]) for s in states} == {(0, steps)}
    delivered_before = [real_samples([b], min(len(b), n))
                        for b, n in zip(before, shard_counts(SIZE, s1))]
    seen_before = [i for rank in delivered_before for i in rank]
    assert len(seen_before) == len(set(seen_before))

    # Each new rank gets the checkpoint of old rank j mod S1: any one rank's would do.
    second = start(cassandra_server, dataset, s2, b2, resume=cut)
    plan = checkpoints.resume_point(states[0]["text"], s2, 0, b2)
    remaining = plan["remaining"]
    assert remaining == SIZE - len(seen_before)
    rest = run_epoch_rest(second)
    assert len({len(r) for r in rest}) == 1, "every new rank runs the same number of batches"
    assert len(rest[0]) == plan["batches_in_epoch"]
    after = [real_samples(r, n) for r, n in zip(rest, shard_counts(remaining, s2))]
    seen = seen_before + [i for rank in after for i in rank]
    assert sorted(seen) == list(range(SIZE)), "the interrupted epoch is not every sample once"

    # The digests, from what each rank emitted, prove the same.
    digests = [s["delivered"] for s in states] + \
        [s["delivered"] for s in second.reader_states()]
    assert checkpoints.exactly_once(digests, SIZE)
    assert not checkpoints.exactly_once(digests[:-1], SIZE)  # a rank's samples missing
    assert not checkpoints.exactly_once(digests + digests[-1:], SIZE)  # delivered twice

    # The next epoch is the global permutation for S2 ranks.
    for j, p in enumerate(second.pipes):
        expected = _native.epoch_indices(SIZE, s2, j, b2, 1, True, SEED)
        got = []
        for _ in range(len(expected) // b2):
            _, labels = p.run()
            got += [int(np.array(labels[i])[0]) for i in range(len(labels))]
        assert got == expected


def test_same_split_resumes_bit_identically(
    cassandra_server: server.ServerInfo, dataset: Dataset
) -> None:
    whole = start(cassandra_server, dataset, 3, 16)
    reference = [whole.step() for _ in range(8)]
    first = start(cassandra_server, dataset, 3, 16)
    got = [first.step() for _ in range(3)]
    resumed = start(cassandra_server, dataset, 3, 16, resume=first.checkpoints())
    got += [resumed.step() for _ in range(5)]
    assert got == reference


def test_two_resumes_in_one_epoch(cassandra_server: server.ServerInfo, dataset: Dataset) -> None:
    digests: list[checkpoints.Digest] = []
    seen: list[int] = []
    run = start(cassandra_server, dataset, 4, 8)
    size = SIZE
    for shards, batch, steps in [(3, 8, 2), (2, 16, 2)]:  # 4 ranks, then 3, then 2
        per_rank: list[list[int]] = [[] for _ in run.pipes]
        for _ in range(2):
            for j, labels in enumerate(run.step() or []):
                per_rank[j] += labels
        counts = shard_counts(size, len(run.pipes))
        seen += [i for r, n in zip(per_rank, counts) for i in r[:n]]
        states = run.reader_states()
        digests += [s["delivered"] for s in states]
        plan = checkpoints.resume_point(states[0]["text"], shards, 0, batch)
        size = plan["remaining"]
        run = start(cassandra_server, dataset, shards, batch, resume=run.checkpoints())
    rest = run_epoch_rest(run)
    seen += [i for r, n in zip(rest, shard_counts(size, len(run.pipes)))
             for i in real_samples(r, n)]
    assert sorted(seen) == list(range(SIZE))
    digests += [s["delivered"] for s in run.reader_states()]
    assert checkpoints.exactly_once(digests, SIZE)
    # The checkpoint keeps only what is left of the epoch: a few intervals, not a history.
    text = run.reader_states()[0]["text"]
    assert len(text) < 600, text


def test_resume_after_stop_iteration_starts_the_next_epoch(
    cassandra_server: server.ServerInfo, dataset: Dataset
) -> None:
    run = start(cassandra_server, dataset, 2, 16)
    rest = run_epoch_rest(run)  # the whole epoch, then StopIteration
    assert len(rest[0]) == 7
    for shards in (2, 3):  # the same split, and another
        resumed = start(cassandra_server, dataset, shards, 16, resume=run.checkpoints())
        got = resumed.step()
        assert got is not None, "resumed into another empty epoch"
        for j, labels in enumerate(got):
            assert labels == _native.epoch_indices(SIZE, shards, j, 16, 1, True, SEED)[:16]


def test_a_changed_list_is_taken_at_an_epoch_boundary(
    cassandra_server: server.ServerInfo, dataset: Dataset
) -> None:
    run = start(cassandra_server, dataset, 2, 16)
    run_epoch_rest(run)
    shorter = dataclasses.replace(dataset, ids=dataset.ids[:150])
    resumed = start(cassandra_server, shorter, 2, 16, resume=run.checkpoints())
    got = resumed.step()
    assert got is not None
    assert got[0] == _native.epoch_indices(150, 2, 0, 16, 1, True, SEED)[:16]


@pytest.mark.parametrize(("change", "field"), [
    ({"ids": 150}, "UUID list is 203 UUIDs"),
    ({"table": "data_none", "label_type": "none"}, "table is"),
    ({"shuffle_seed": 99}, "shuffle_seed is 1234, this reader's is 99"),
    ({"shuffle_every_epoch": False}, "shuffle_every_epoch is True"),
])
def test_a_mid_epoch_resume_that_would_read_another_order_is_refused(
    cassandra_server: server.ServerInfo, dataset: Dataset, change: dict[str, Any], field: str
) -> None:
    run = start(cassandra_server, dataset, 2, 16)
    run.step()
    cut = run.checkpoints()
    change = dict(change)
    ds = dataset
    if "ids" in change:
        ds = dataclasses.replace(dataset, ids=dataset.ids[:change.pop("ids")])
    table = change.pop("table", "data_int")
    with pytest.raises(Exception) as caught:
        start(cassandra_server, ds, 2, 16, resume=cut, table=table, **change)
    message = str(caught.value)
    assert "cannot resume this checkpoint mid-epoch" in message and field in message, message


def test_interactive_reader_builds_with_checkpointing(
    cassandra_server: server.ServerInfo, dataset: Dataset
) -> None:
    ids = np.stack([np.frombuffer(_native.parse_uuid(u), dtype=np.uint8) for u in dataset.ids[:4]])

    @pipeline_def(batch_size=4, num_threads=1, device_id=None, enable_checkpointing=True)
    def pipe() -> tuple[Any, Any]:
        uuids = fn.external_source(source=lambda iteration: list(ids), batch=True)
        return tuple(fn.crs4.cassandra_interactive(
            uuids, **{k: v for k, v in reader_kwargs(
                cassandra_server, f"{dataset.keyspace}.data_int").items()}))

    p = pipe()
    p.build()
    _, labels = p.run()
    assert [int(np.array(labels[i])[0]) for i in range(4)] == [0, 1, 2, 3]
    assert p.checkpoint()


def test_loop_forever_false_needs_the_dynamic_executor(
    cassandra_server: server.ServerInfo, dataset: Dataset
) -> None:
    # docs/reader.md: DALI's legacy executor (exec_dynamic=False) cannot go on after an
    # operator's StopIteration; the dynamic one (DALI's default) starts the next epoch.
    args = reader_kwargs(cassandra_server, f"{dataset.keyspace}.data_int",
                         source_uuids=dataset.ids[:40], loop_forever=False)
    outcomes = {}
    for dynamic in (True, False):
        @pipeline_def(batch_size=16, num_threads=1, device_id=None, exec_dynamic=dynamic)
        def pipe() -> tuple[Any, Any]:
            return tuple(fn.crs4.cassandra(name="Reader", **args))

        p = pipe()
        p.build()
        for _ in range(3):
            p.run()
        with pytest.raises(StopIteration):
            p.run()
        p.reset()
        try:
            p.run()
            outcomes[dynamic] = "next epoch"
        except RuntimeError as error:
            outcomes[dynamic] = str(error)
    assert outcomes[True] == "next epoch"
    assert "Critical error" in outcomes[False]


def test_checkpoint_show(cassandra_server: server.ServerInfo, dataset: Dataset, tmp_path: Any,
                         capsys: pytest.CaptureFixture[str]) -> None:
    from cassandra_dali.cli import main

    run = start(cassandra_server, dataset, 2, 16)
    run.step()
    path = tmp_path / "rank1.cpt"
    run.pipes[1].checkpoint(str(path))
    assert main(["checkpoint", "show", str(path)]) == 0
    out = capsys.readouterr().out
    for expected in ["DALI pipeline checkpoint, iteration 1", "epoch 0, batch 1: the whole epoch",
                     "taken by shard 1 of 2, batch size 16 (7 batches in this epoch)",
                     f"table {dataset.keyspace}.data_int; list of 203 UUIDs",
                     "shuffle_seed 1234", "delivered by this rank of epoch 0: 16 samples"]:
        assert expected in out, out
    resumed = start(cassandra_server, dataset, 3, 16, resume=run.checkpoints())
    resumed.step()
    text = checkpoints.reader_checkpoints(resumed.checkpoints()[0])["Reader"]["text"]
    assert main(["checkpoint", "show", text]) == 0
    out = capsys.readouterr().out
    assert "epoch 0, batch 1: 171 samples left of it after a resume" in out, out
    assert main(["checkpoint", "show", "--json", str(path)]) == 0
    assert '"num_shards": 2' in capsys.readouterr().out
    assert main(["checkpoint", "show", str(tmp_path / "missing")]) == 1
    assert "no such file" in capsys.readouterr().err
