"""Readers measured against each other the one way this project reports a throughput: each a
fresh read loop per round, the rounds interleaved (A B, A B, ...: a load change on a shared
machine hits every reader alike), the first rounds and each loop's epoch 0 left out as warm-up
(a new JVM serves reads several times slower until its JIT has compiled the read path; a new
loop fills its read-ahead), and the figure is all images over all the time they took, with the
spread of the per-round rates. Not per-epoch rates: an epoch of a few batches, read ahead by
the reader, takes anything from nothing to a stall, and its rate is noise.

Used by ``bench/compare_readers.py`` and by ``cassandra-dali demo``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from .readloop import EpochStat, Rate


class EpochLoop(Protocol):
    """A built reader that runs whole epochs (readloop.Loop, or a bench's own loader)."""

    def run_epoch(self, epoch: int) -> EpochStat: ...

    def close(self) -> None: ...

# Student's t for a two-sided 95 % interval, by degrees of freedom (1..10; about 1.96 past).
_T95 = (12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23)


@dataclasses.dataclass(frozen=True)
class Throughput(Rate):
    """One reader over its measured rounds: all their images over all their time."""

    images: int
    bytes: int
    seconds: float
    round_images_per_s: tuple[float, ...]

    @property
    def spread(self) -> float:
        """Half the 95 % interval of the mean per-round rate (Student's t): 0 with one round."""
        rates = self.round_images_per_s
        if len(rates) < 2:
            return 0.0
        t = _T95[len(rates) - 2] if len(rates) - 1 <= len(_T95) else 1.96
        return t * statistics.stdev(rates) / math.sqrt(len(rates))

    def format(self) -> str:
        """``"2,345 ± 120 images/s (95 % interval over 3 rounds)"``"""
        rounds = len(self.round_images_per_s)
        return (f"{self.images_per_s:,.0f} ± {self.spread:,.0f} images/s (95 % interval over "
                f"{rounds} round{'s' if rounds != 1 else ''})")


def of_rounds(rounds: Sequence[Sequence[EpochStat]]) -> Throughput:
    """The throughput of measured rounds, each a list of its measured epochs."""
    rates = tuple(sum(e.images for e in r) / sum(e.seconds for e in r) for r in rounds if r)
    epochs = [e for r in rounds for e in r]
    return Throughput(sum(e.images for e in epochs), sum(e.bytes for e in epochs),
                      sum(e.seconds for e in epochs), rates)


# Called after each epoch: (reader, round, epoch, its figures, whether it is measured).
EpochObserver = Callable[[str, int, int, EpochStat, bool], None]


def run_rounds(loops: Mapping[str, Callable[[], EpochLoop]], *, rounds: int, warmup_rounds: int,
               epochs: int, observe: EpochObserver | None = None) -> dict[str, list[list[EpochStat]]]:
    """Runs every reader's loop (a new one per round: ``loops`` makes it) for ``epochs`` epochs,
    round after round, the readers in turn; returns each reader's measured rounds (the epochs
    past 0 of the rounds past the warm-up ones)."""
    if rounds < 1 or epochs < 2 or warmup_rounds < 0:
        raise ValueError("rounds >= 1, epochs >= 2 (epoch 0 is warm-up), warmup_rounds >= 0")
    measured: dict[str, list[list[EpochStat]]] = {name: [] for name in loops}
    for round_ in range(warmup_rounds + rounds):
        for name, make in loops.items():
            loop = make()
            kept: list[EpochStat] = []
            try:
                for epoch in range(epochs):
                    stat = loop.run_epoch(epoch)
                    counted = epoch > 0 and round_ >= warmup_rounds
                    if counted:
                        kept.append(stat)
                    if observe is not None:
                        observe(name, round_, epoch, stat, counted)
            finally:
                loop.close()
            if kept:
                measured[name].append(kept)
    return measured
