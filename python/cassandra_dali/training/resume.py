"""How a resumed training run's data continues, decided before its pipelines are built: the
per-rank batch on another number of ranks (the global batch kept where it divides), and
whether each rank continues its saved pipeline ("restored"), a resharded one ("resharded":
another number of ranks or per-rank batch, Cassandra only) or new ones ("reseeded")."""

from __future__ import annotations

import dataclasses
from typing import Any

from .. import checkpoints
from . import checkpoint

def order_seed(seed: int, start_epoch: int) -> int:
    """The sample-order seed, the same on every rank, of a pipeline that starts afresh.

    A resumed run normally continues the saved pipelines (same seeds, restored positions). When
    it cannot (see ``checkpoint.data_mismatch``), its new readers count epochs from 0, so the
    seed is offset by the first epoch: they then draw new orders rather than replaying those of
    epochs 0, 1, ..."""
    return seed + start_epoch


def augment_seed(seed: int, start_epoch: int, rank: int) -> int:
    """The DALI pipeline seed (crops, flips) of a pipeline that starts afresh: different on
    every rank, and offset like ``order_seed`` after a resume that cannot continue the saved
    pipelines."""
    return (seed * 100_003 + start_epoch * 1_009 + rank) % (2**31 - 1)


@dataclasses.dataclass(frozen=True)
class DataStart:
    """How this rank's training pipeline starts: afresh, or continuing a saved one."""

    order_seed: int
    augment_seed: int
    checkpoint: bytes | None = None  # this rank's saved pipeline state
    reseeded_because: str | None = None  # a resume that could not continue: why
    resharded_from: int | None = None  # the saved run's world size, when it was another


def batch_for(saved: dict[str, Any] | None, world_size: int, batch_size: int) -> tuple[int, str]:
    """The per-rank batch of a run resuming `saved` on `world_size` ranks, and what to log.

    On another number of ranks the saved global batch is kept when `world_size` divides it
    (per-rank batch = global / ranks: the learning rate, scaled by the global batch, is
    unchanged); otherwise `batch_size` (--b) applies and the learning rate follows the new
    global batch (TRAINING.md)."""
    if not saved or saved.get("world_size") in (None, world_size):
        return batch_size, ""
    old_world = int(saved["world_size"])
    global_batch = old_world * int(saved["batch_size"])
    if global_batch % world_size == 0:
        per_rank = global_batch // world_size
        return per_rank, (f"resuming {old_world} ranks' run on {world_size}: per-rank batch "
                          f"{per_rank} keeps the global batch of {global_batch} (learning rate "
                          "unchanged)")
    return batch_size, (f"resuming {old_world} ranks' run on {world_size}: the global batch "
                        f"{global_batch} is not divisible by {world_size}; per-rank batch "
                        f"{batch_size} (global {batch_size * world_size}) with the learning "
                        "rate scaled to it")


def data_start(saved: dict[str, Any] | None, current: dict[str, Any], *, rank: int,
               world_size: int, batch_size: int, seed: int, start_epoch: int,
               elastic: bool) -> tuple[DataStart, str]:
    """This rank's DataStart and how: "restored" (the run matches the saved pipelines),
    "resharded" (only the number of ranks or the per-rank batch differs, and `elastic`: the
    reader can resume on another split), else "reseeded" (new pipelines, seeds offset by the
    epoch; `reseeded_because` says why). `current`: this run's values of the keys
    checkpoint.data_state records."""
    problem = checkpoint.data_mismatch(saved, **current)
    if problem is None:
        assert saved is not None
        return DataStart(int(saved["order_seed"]), int(saved["augment_seeds"][rank]),
                         checkpoint=saved["pipelines"][rank]), "restored"
    if elastic and saved and checkpoint.data_mismatch(
            saved, **{**current, "world_size": saved.get("world_size"),
                      "batch_size": saved.get("batch_size")}) is None:
        pipelines = checkpoints.reshard(saved["pipelines"], world_size, batch_size,
                                        last_batch_policy="DROP")
        return DataStart(int(saved["order_seed"]), augment_seed(seed, start_epoch, rank),
                         checkpoint=pipelines[rank],
                         resharded_from=int(saved["world_size"])), "resharded"
    return DataStart(order_seed(seed, start_epoch), augment_seed(seed, start_epoch, rank),
                     reseeded_because=problem), "reseeded"
