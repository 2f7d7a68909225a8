"""Exactly-once, provably: each reader's checkpoint carries the digest (count, sum of per-sample
hashes mod 2**64) of the samples its rank delivered of an epoch, built from what it emitted.
Digests of disjoint deliveries add up, so the ranks' digests of an epoch, across any number of
resumes on any shard counts, sum to the epoch's own exactly when every sample came once."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from .. import _native

_MOD = 1 << 64


@dataclasses.dataclass(frozen=True)
class Digest:
    count: int = 0
    hash: int = 0

    def __add__(self, other: Digest) -> Digest:
        return Digest(self.count + other.count, (self.hash + other.hash) % _MOD)


def epoch_digest(dataset_size: int) -> Digest:
    """The digest of a whole epoch of a list of ``dataset_size`` samples."""
    count, value = _native.epoch_digest(dataset_size)
    return Digest(count, value)


def exactly_once(deliveries: Iterable[Digest], dataset_size: int) -> bool:
    """Whether ``deliveries`` (each rank's delivered digest of one epoch: from its last
    checkpoint before a resume, and at the epoch's end) together are the epoch, each sample
    once. A sample missing or delivered twice makes it False."""
    total = sum(deliveries, Digest())
    return total == epoch_digest(dataset_size)
