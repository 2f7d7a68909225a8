"""Whole-job resume on another number of ranks: the checkpoints of every rank of a run, turned
into one per rank of the new run.

The reader continues from any one old rank's state by itself (an elastic resume); a pipeline
checkpoint holds more, which this rewrites:

- DALI's iterator data (``reader_name=`` iterators restore ``_counter``, ``_size``, the
  per-shard sizes as an S1-long list, and do not recompute them): rewritten for the new rank's
  part of the rest of the epoch, under the iterator's last-batch policy;
- the random operators' states: rank j of the new run gets old rank j mod S1's, re-keyed for
  rank j (DALI's Philox generators: key, counter), so no two new ranks draw the same
  augmentations.

An iterator built on a resharded pipeline sizes the shortened epoch from the reader; wrap it
with :func:`follow_epochs` so it sizes the full epochs after it again (DALI's iterators read the
reader's sizes once, when built)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ._dali_format import FormatError, PipelineCheckpoint, parse, serialize
from .contents import READER_TAG, decode_reader_state, resume_point

# DALI's Philox state: key, counter (high:low), phase.
_PHILOX = re.compile(r"^Philox_([0-9A-Fa-f]{16})_([0-9A-Fa-f]{16}:[0-9A-Fa-f]{16}_\d+)$")
_MASK = (1 << 64) - 1


class ReshardError(FormatError):
    """Checkpoints that cannot be resharded (not one run in lock-step, a reader missing)."""


def _mix(value: int) -> int:
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def rekeyed(state: str, rank: int, world_size: int) -> str:
    """A random operator's state for `rank` of a run of `world_size`: the same counter, its own
    key (a Philox key mixed with both). States of other kinds cannot be re-keyed: ValueError."""
    match = _PHILOX.match(state)
    if not match:
        raise ValueError(f"not a Philox state: {state[:60]!r}")
    key = _mix(int(match.group(1), 16) ^ _mix(rank << 32 | world_size))
    return f"Philox_{key:016X}_{match.group(2)}"


def _reader_states(pipelines: list[PipelineCheckpoint], reader_name: str) -> list[str]:
    states = []
    for rank, pipeline in enumerate(pipelines):
        try:
            state = pipeline.operator(reader_name)
        except KeyError:
            raise ReshardError(f"checkpoint {rank} holds no operator {reader_name!r}") from None
        if not state.startswith(READER_TAG + "2"):
            raise ReshardError(f"checkpoint {rank}'s {reader_name!r} is not a version 2 reader "
                               "checkpoint (an older one resumes only on the same ranks)")
        states.append(state)
    return states


def _check_lock_step(states: list[dict[str, Any]]) -> None:
    """Every old rank present once, all at one position of one run."""
    world = len(states)
    if sorted(s["shard_id"] for s in states) != list(range(world)) or \
            any(s["num_shards"] != world for s in states):
        raise ReshardError(
            f"give the checkpoints of every rank of the run, once: got shards "
            f"{sorted(s['shard_id'] for s in states)} of {states[0]['num_shards']}")
    keys = ("epoch", "batch", "rest", "batch_size", "list_size", "list_digest", "table",
            "shuffle_seed", "shuffle_every_epoch", "loop_forever", "on_bad_sample")
    for key in keys:
        values = {json.dumps(s[key]) for s in states}
        if len(values) > 1:
            raise ReshardError(f"the ranks were not in lock-step: their {key} differ "
                               f"({', '.join(sorted(values))})")


def _at_epoch_end(text: str) -> str:
    """A reader checkpoint moved to the end of its epoch (its last batch consumed)."""
    state = decode_reader_state(text)
    return re.sub(r" batch=\d+ ", f" batch={state['batches_in_epoch']} ", text, count=1)


def _policy(data: dict[str, Any], state: dict[str, Any]) -> str:
    """The last-batch policy the old iterator ran under, told by its epoch size: DROP's is the
    floor of the shard, PARTIAL's and FILL's the padded shard."""
    drop = state["remaining"] // state["num_shards"]
    padded = state["batches_in_epoch"] * state["batch_size"]
    if drop == padded:
        raise ReshardError("the iterator's last-batch policy cannot be told from its data "
                           "(its shards hold whole batches): pass last_batch_policy")
    if data.get("_size") == drop:
        return "DROP"
    if data.get("_size") == padded:
        return "PARTIAL"
    raise ReshardError(f"the iterator's epoch size {data.get('_size')} is neither the padded "
                       f"({padded}) nor the dropped ({drop}) shard: was it built with "
                       f"reader_name= on this reader?")


def _iterator_data(old: str, plan: dict[str, Any], world_size: int, rank: int,
                   batch_size: int, policy: str) -> str:
    """DALI iterator data for `rank` at the start of what is left of the epoch: the sizes an
    iterator computes from the reader's (shortened) epoch, its counters at zero."""
    data = json.loads(old)
    remaining = plan["remaining"]
    data.update({
        "_counter": 0,
        "_counter_per_gpu": [0] * world_size,
        "_shard_sizes_per_gpu": [remaining * (i + 1) // world_size - remaining * i // world_size
                                 for i in range(world_size)],
        "_shards_id": [rank],
        "_size": remaining // world_size if policy == "DROP"
        else plan["batches_in_epoch"] * batch_size,
    })
    return json.dumps(data)


def reshard(checkpoints: Sequence[bytes], world_size: int, batch_size: int | None = None, *,
            reader_name: str = "Reader", last_batch_policy: str | None = None) -> list[bytes]:
    """The pipeline checkpoints of every rank of a run (index = rank), turned into
    `world_size` checkpoints (index = new rank) that continue it: the rest of the interrupted
    epoch, each sample once, then full epochs of the global permutation for `world_size`
    ranks. `batch_size`: the new per-rank batch (default: the old one). `last_batch_policy`
    ("DROP", "PARTIAL", "FILL"; the iterator's) is told from the iterator's data when not
    given. Checks that the ranks were in lock-step (ReshardError otherwise)."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, not {world_size}")
    if not checkpoints:
        raise ReshardError("no checkpoints given")
    pipelines = [parse(c) for c in checkpoints]
    texts = _reader_states(pipelines, reader_name)
    states = [decode_reader_state(t) for t in texts]
    _check_lock_step(states)
    old_world = len(states)
    batch = batch_size or states[0]["batch_size"]
    if world_size == old_world and batch == states[0]["batch_size"]:
        return [bytes(c) for c in checkpoints]  # the same split: each rank continues its own
    policy = last_batch_policy
    if policy is None and pipelines[0].iterator_data:
        policy = _policy(json.loads(pipelines[0].iterator_data), states[0])
    out = []
    for rank in range(world_size):
        source = rank % old_world
        pipeline = pipelines[source]
        text = texts[source]
        plan = resume_point(text, world_size, rank, batch)
        if policy == "DROP" and plan["remaining"] // world_size < batch and plan["remaining"]:
            # No whole batch left for DROP to hand out: the epoch is over for training (its
            # last samples dropped, as DROP drops every epoch's tail); go on with the next.
            text = _at_epoch_end(text)
            plan = resume_point(text, world_size, rank, batch)
        operators = []
        for name, state in pipeline.operators:
            if name == reader_name:
                state = text
            elif state and world_size != old_world:
                try:
                    state = rekeyed(state, rank, world_size)
                except ValueError:
                    raise ReshardError(
                        f"operator {name!r} keeps a random state this function cannot give each "
                        f"new rank its own of ({state[:40]!r}...): reshard only pipelines whose "
                        "random operators use DALI's Philox generators") from None
            operators.append((name, state))
        out.append(serialize(PipelineCheckpoint(
            operators=operators, pipeline_data=pipeline.pipeline_data,
            iterator_data=_iterator_data(pipeline.iterator_data, plan, world_size, rank, batch,
                                         policy or "PARTIAL") if pipeline.iterator_data else "",
            other=pipeline.other)))
    return out


def follow_epochs(iterator: Any) -> Any:
    """Makes a DALI ``reader_name=`` iterator size every epoch from the reader, not only the
    first: after each reset it reads the reader's sizes again (the epoch resumed on another
    split is shorter than the ones after it). For PARTIAL and DROP; FILL is left as DALI runs
    it. Returns the iterator."""
    from nvidia.dali.plugin.base_iterator import LastBatchPolicy

    reset = iterator.reset

    def reset_and_resize() -> None:
        reset()
        # A reset at an epoch's end, not one DALI ignored. FILL carries counters across epochs
        # that re-reading the sizes would zero: it keeps DALI's own behaviour.
        if iterator._counter == 0 and iterator._last_batch_policy != LastBatchPolicy.FILL:
            iterator._extract_from_reader_and_validate()

    iterator.reset = reset_and_resize
    return iterator
