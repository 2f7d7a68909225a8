"""The learning-rate schedule of DALI's ImageNet example (after Goyal et al., 2017).

The base rate is scaled linearly with the global batch (``lr * batch * world / 256``), reached
by a linear warm-up over the first epochs (per iteration), then divided by 10 at each
milestone epoch. With the defaults (5 warm-up epochs, milestones 30, 60, 80) this is exactly
the example's ``adjust_learning_rate``.
"""

from __future__ import annotations

from collections.abc import Sequence

REFERENCE_BATCH = 256
WARMUP_EPOCHS = 5
MILESTONES: tuple[int, ...] = (30, 60, 80)


def scaled_lr(lr: float, batch_size: int, world_size: int) -> float:
    """The linear scaling rule: ``lr`` is the rate for a global batch of 256."""
    return lr * batch_size * world_size / REFERENCE_BATCH


def learning_rate(
    base_lr: float,
    epoch: int,
    step: int,
    steps_per_epoch: int,
    *,
    warmup_epochs: int = WARMUP_EPOCHS,
    milestones: Sequence[int] = MILESTONES,
) -> float:
    """The rate for iteration ``step`` (0-based) of ``epoch``; ``base_lr`` is already scaled."""
    decays = sum(1 for m in milestones if epoch >= m)
    lr = base_lr * 0.1**decays
    if epoch < warmup_epochs:
        done = 1 + step + epoch * steps_per_epoch
        lr *= done / (warmup_epochs * max(1, steps_per_epoch))
    return lr
