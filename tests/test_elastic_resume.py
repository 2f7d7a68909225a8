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
    cut = first.checkpoints()
    resumed = start(cassandra_server, dataset, 3, 16, resume=cut)
    got += [resumed.step() for _ in range(5)]
    assert got == reference
    # 5 batches a rank an epoch: 2 more end it. The digests at the cut and at the end cover it
    # once (a resume counts afresh).
    again = start(cassandra_server, dataset, 3, 16, resume=cut)
    again.step()
    again.step()
    digests = [checkpoints.reader_checkpoints(c)["Reader"]["delivered"] for c in cut]
    ends = again.reader_states()
    assert {s["delivered_epoch"] for s in ends} == {0}
    assert checkpoints.exactly_once(digests + [s["delivered"] for s in ends], SIZE)
    assert checkpoints.reshard(cut, 3) == cut  # the same split: nothing to rewrite


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
    # docs/reader.md: with DALI's dynamic executor (its default) the run after StopIteration
    # starts the next epoch; the legacy one (exec_dynamic=False) prefetches into the operator's
    # StopIteration and treats it as a critical error, sometimes before the epoch's last batch
    # is handed out, and the pipeline is dead after it.
    args = reader_kwargs(cassandra_server, f"{dataset.keyspace}.data_int",
                         source_uuids=dataset.ids[:40], loop_forever=False)

    def build(dynamic: bool) -> Any:
        @pipeline_def(batch_size=16, num_threads=1, device_id=None, exec_dynamic=dynamic)
        def pipe() -> tuple[Any, Any]:
            return tuple(fn.crs4.cassandra(name="Reader", **args))

        p = pipe()
        p.build()
        return p

    dynamic = build(True)
    for _ in range(3):
        dynamic.run()
    with pytest.raises(StopIteration):
        dynamic.run()
    dynamic.run()  # the next epoch

    legacy = build(False)
    errors = []
    for _ in range(6):
        try:
            legacy.run()
        except (StopIteration, RuntimeError) as error:
            errors.append(str(error))
            legacy.reset()
    assert errors and all("Critical error" in e or "no longer valid" in e for e in errors[1:])
    assert len(errors) >= 2, "the legacy executor went on after StopIteration: update the docs"


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


def _iterators(server_info: server.ServerInfo, ds: Dataset, shards: int, batch: int,
               policy: Any, resume: list[bytes] | None = None) -> list[Any]:
    from nvidia.dali.plugin.pytorch import DALIGenericIterator

    iterators = []
    for j in range(shards):
        args = reader_kwargs(server_info, f"{ds.keyspace}.data_int", source_uuids=ds.ids,
                             shard_id=j, num_shards=shards)

        @pipeline_def(batch_size=batch, num_threads=1, device_id=None,
                      enable_checkpointing=True)
        def pipe() -> Any:
            _, labels = fn.crs4.cassandra(name="Reader", **args)
            return labels  # the samples' bytes vary in size: no tensor for torch

        p = pipe(checkpoint=resume[j]) if resume else pipe()
        iterators.append(checkpoints.follow_epochs(DALIGenericIterator(
            [p], ["label"], reader_name="Reader", last_batch_policy=policy,
            auto_reset=True)))
    return iterators


def _epoch(iterator: Any, steps: int | None = None) -> list[int]:
    """The labels an iterator hands out: `steps` batches, or to the end of its epoch."""
    out: list[int] = []
    for step, batch in enumerate(iterator):
        out += [int(x) for x in batch[0]["label"].flatten()]
        if steps is not None and step + 1 == steps:
            break
    return out


@pytest.mark.parametrize("policy_name", ["PARTIAL", "DROP"])
@pytest.mark.parametrize(("s1", "s2", "b2"), [(3, 2, 16), (2, 3, 16), (2, 5, 8)])
def test_reshard_with_dali_iterators(
    cassandra_server: server.ServerInfo, dataset: Dataset, policy_name: str, s1: int, s2: int,
    b2: int,
) -> None:
    from nvidia.dali.plugin.base_iterator import LastBatchPolicy

    policy = getattr(LastBatchPolicy, policy_name)
    first = _iterators(cassandra_server, dataset, s1, 16, policy)
    before = [i for it in first for i in _epoch(it, 2)]
    old = [it.checkpoints()[0] for it in first]
    new = checkpoints.reshard(old, s2, b2)
    assert len(new) == s2
    states = [checkpoints.reader_checkpoints(c)["Reader"] for c in new]
    assert len({s["text"] for s in states}) <= s1  # a new rank continues from an old rank's
    resumed = _iterators(cassandra_server, dataset, s2, b2, policy, resume=new)
    rest = [_epoch(it) for it in resumed]
    remaining = SIZE - len(before)
    shares = shard_counts(remaining, s2)
    if policy_name == "PARTIAL":  # every sample once, the padding trimmed
        assert [len(r) for r in rest] == shares
        assert sorted(before + [i for r in rest for i in r]) == list(range(SIZE))
    else:  # each rank drops its last partial batch
        assert [len(r) for r in rest] == [n // b2 * b2 for n in shares]
        seen = before + [i for r in rest for i in r]
        assert len(seen) == len(set(seen))
    # Then full epochs of the global permutation for the new ranks, sized by the reader again.
    for j, it in enumerate(resumed):
        expected = _native.epoch_indices(SIZE, s2, j, b2, 1, True, SEED)
        share = shard_counts(SIZE, s2)[j]
        got = _epoch(it)
        assert got == (expected[:share] if policy_name == "PARTIAL"
                       else expected[:SIZE // s2 // b2 * b2])


def test_reshard_refuses_what_is_not_one_run_in_lock_step(
    cassandra_server: server.ServerInfo, dataset: Dataset
) -> None:
    run = start(cassandra_server, dataset, 3, 16)
    run.step()
    cut = run.checkpoints()
    with pytest.raises(checkpoints.ReshardError, match="every rank of the run"):
        checkpoints.reshard(cut[:2], 2)
    run.pipes[0].run()  # rank 0 one batch ahead
    with pytest.raises(checkpoints.ReshardError, match="not in lock-step: their batch differ"):
        checkpoints.reshard([run.pipes[0].checkpoint()] + cut[1:], 2)


def test_reshard_gives_each_new_rank_its_own_random_state(
    cassandra_server: server.ServerInfo, dataset: Dataset
) -> None:
    args = reader_kwargs(cassandra_server, f"{dataset.keyspace}.data_int",
                         source_uuids=dataset.ids, num_shards=1)

    @pipeline_def(batch_size=8, num_threads=1, device_id=None, enable_checkpointing=True, seed=5)
    def pipe() -> tuple[Any, Any, Any]:
        data, label = fn.crs4.cassandra(name="Reader", **args)
        return data, label, fn.random.uniform(range=[0.0, 1.0])

    p = pipe()
    p.build()
    p.run()
    new = checkpoints.reshard([p.checkpoint()], 3, 8)
    draws = []
    for cp in new:
        q = pipe(checkpoint=cp)
        q.build()
        draws.append(tuple(float(np.array(x)) for x in q.run()[2]))
    assert len(set(draws)) == 3, "two new ranks draw the same augmentations"


def test_reshard_under_drop_with_no_whole_batch_left_goes_on_with_the_next_epoch(
    cassandra_server: server.ServerInfo, dataset: Dataset
) -> None:
    from nvidia.dali.plugin.base_iterator import LastBatchPolicy

    drop = LastBatchPolicy.DROP
    first = _iterators(cassandra_server, dataset, 2, 16, drop)
    for it in first:
        _epoch(it, 6)  # 6 of the 6 whole batches DROP hands out: 11 samples left in the epoch
    new = checkpoints.reshard([it.checkpoints()[0] for it in first], 2, 16,
                              last_batch_policy="DROP")
    resumed = _iterators(cassandra_server, dataset, 2, 16, drop, resume=new)
    for j, it in enumerate(resumed):  # the next epoch, whole, not an empty one
        expected = _native.epoch_indices(SIZE, 2, j, 16, 1, True, SEED)
        assert _epoch(it) == expected[:SIZE // 2 // 16 * 16]
