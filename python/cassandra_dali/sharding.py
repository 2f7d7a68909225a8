"""Which part of an epoch a process reads: its rank from torchrun's environment, and the shard
arithmetic DALI's readers (and ``fn.crs4.cassandra``) use, in one place for the read loop, the
trainer and the benches."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from . import _native


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process's place among its peers, as torchrun sets RANK, WORLD_SIZE and LOCAL_RANK;
    without them, one process (rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Ranks:
        env = os.environ if env is None else env
        try:
            ranks = cls(rank=_int(env, "RANK", 0), world_size=_int(env, "WORLD_SIZE", 1),
                        local_rank=_int(env, "LOCAL_RANK", 0))
        except ValueError as error:
            raise ValueError(f"torchrun's environment: {error}") from None
        if ranks.world_size < 1 or not 0 <= ranks.rank < ranks.world_size:
            raise ValueError(f"RANK={ranks.rank} is outside WORLD_SIZE={ranks.world_size}")
        return ranks

    @property
    def prefix(self) -> str:
        """``[rank R/N] `` when there are several ranks, for lines several ranks print."""
        return f"[rank {self.rank}/{self.world_size}] " if self.world_size > 1 else ""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not an integer") from None


def shard_layout(epoch_size: int, *, shard_id: int, num_shards: int,
                 batch_size: int) -> dict[str, int]:
    """Shard ``shard_id`` of ``num_shards`` over ``[0, epoch_size)``: contiguous slices whose
    sizes differ by at most one, each padded to the largest (DALI's ``pad_last_batch``). Keys:
    ``begin``, ``end``, ``size``, ``padded_shard_size``, ``padded_epoch_size``,
    ``batches_per_epoch``. The reader's own arithmetic (one C++ implementation)."""
    return dict(_native.shard_layout(epoch_size, num_shards, shard_id, batch_size))


def batches_per_epoch(meta: Mapping[str, Any], batch_size: int) -> int:
    """Batches every shard runs per epoch, for a reader (``reader_meta``) padding its shards."""
    return _layout(meta, batch_size)["batches_per_epoch"]


def shard_batches(meta: Mapping[str, Any], batch_size: int, *, drop_last: bool) -> int:
    """Batches of this reader's own shard (``reader_meta``): whole ones only with ``drop_last``,
    else the last partial one too."""
    size = _layout(meta, batch_size)["size"]
    return size // batch_size if drop_last else -(-size // batch_size)


def _layout(meta: Mapping[str, Any], batch_size: int) -> dict[str, int]:
    return shard_layout(meta["epoch_size"], shard_id=meta["shard_id"],
                        num_shards=meta["number_of_shards"], batch_size=batch_size)
