"""Distributed ImageNet-style training from DALI pipelines (issue 5).

DALI's "ImageNet training in PyTorch" example, on ``torch.amp`` and DDP instead of apex, with
its data read either from files (``FileSource``) or from Cassandra (``CassandraSource``). The
scripts ``examples/imagenette/distrib_train_from_{file,cassandra}.py`` are thin over this:

- ``options``: the shared command line (``-a``, ``--b``, ``--lr``, ``--opt-level``, ...);
- ``data``: the DALI pipelines and the sources they read from;
- ``precision``: ``--opt-level``/``--loss-scale`` on autocast and GradScaler;
- ``schedule``: the learning-rate schedule; ``distributed``: NCCL or gloo under torchrun;
- ``checkpoint``: atomic save, resume; ``trainer``: the loop itself.
"""

from __future__ import annotations

from .data import CassandraSource, FileSource, Source
from .options import TrainOptions, add_training_arguments, options_from_args
from .precision import Precision
from .trainer import Trainer, build_model, run

__all__ = [
    "CassandraSource",
    "FileSource",
    "Precision",
    "Source",
    "TrainOptions",
    "Trainer",
    "add_training_arguments",
    "build_model",
    "options_from_args",
    "run",
]
