"""Checkpoints of pipelines that read with ``fn.crs4.cassandra``: what they hold
(:func:`describe`), where a reader continues from them (:func:`resume_point`), and the proof
that an epoch was delivered exactly once across ranks and resumes (:func:`exactly_once`).

A DALI pipeline checkpoint (``pipe.checkpoint()``) holds one string per operator; the reader's
(``cassandra-reader-v2 ...``) records its position, what was left of an epoch resumed on
another shard count, what the order depends on (list, table, seed, settings) and a digest of
the samples its rank delivered. :func:`reshard` turns the pipeline checkpoints of every rank of
a run into those of a run on another number of ranks (the iterator's data and the random
operators' states too). See docs/reader.md, "Checkpoints and elastic resume".
"""

from . import contents
from ._dali_format import FormatError
from .digest import Digest, epoch_digest, exactly_once
from .contents import describe, reader_checkpoints, resume_point
from .reshard import ReshardError, follow_epochs, reshard

__all__ = [
    "Digest", "FormatError", "ReshardError", "contents", "describe", "follow_epochs", "reshard", "epoch_digest", "exactly_once", "reader_checkpoints", "resume_point",
]
