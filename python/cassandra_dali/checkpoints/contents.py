"""What a checkpoint holds, for a person debugging a resume (``cassandra-dali checkpoint
show``) and for code that checks one: the readers' states decoded, the DALI iterator's data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import _native
from ._dali_format import FormatError, PipelineCheckpoint, parse
from .digest import Digest

READER_TAG = "cassandra-reader-v"


def _as_bytes(checkpoint: bytes | str | Path) -> bytes:
    if isinstance(checkpoint, Path):
        return checkpoint.read_bytes()
    if isinstance(checkpoint, str):
        return checkpoint.encode()
    return checkpoint


def reader_checkpoints(checkpoint: bytes | str | Path) -> dict[str, dict[str, Any]]:
    """The decoded state of every ``fn.crs4.cassandra`` in a pipeline checkpoint (by operator
    name), or of a bare reader checkpoint string (under ``""``)."""
    data = _as_bytes(checkpoint)
    if data.startswith(READER_TAG.encode()):
        return {"": decode_reader_state(data.decode())}
    pipeline = parse(data)
    readers = {name: decode_reader_state(state) for name, state in pipeline.operators
               if state.startswith(READER_TAG)}
    if not readers:
        raise FormatError("the pipeline checkpoint holds no fn.crs4.cassandra state")
    return readers


def decode_reader_state(text: str) -> dict[str, Any]:
    """One reader checkpoint string, decoded (``delivered`` as a :class:`Digest`)."""
    try:
        state = dict(_native.parse_reader_checkpoint(text))
    except ValueError as error:
        raise FormatError(str(error)) from None
    if "delivered" in state:
        state["delivered"] = Digest(*state["delivered"])
    state["text"] = text
    return state


def describe(checkpoint: bytes | str | Path) -> dict[str, Any]:
    """The readers' states, and for a pipeline checkpoint its pipeline and iterator data."""
    data = _as_bytes(checkpoint)
    out: dict[str, Any] = {"readers": reader_checkpoints(data)}
    if not data.startswith(READER_TAG.encode()):
        pipeline: PipelineCheckpoint = parse(data)
        out["pipeline"] = json.loads(pipeline.pipeline_data) if pipeline.pipeline_data else {}
        out["iterator"] = json.loads(pipeline.iterator_data) if pipeline.iterator_data else None
        out["operators"] = [name for name, _ in pipeline.operators]
    return out


def resume_point(reader_state: str, num_shards: int, shard_id: int,
                 batch_size: int) -> dict[str, Any]:
    """Where a reader of ``num_shards`` shards and ``batch_size`` continues the run that
    ``reader_state`` (a reader checkpoint string) was taken in."""
    return dict(_native.resume_point(reader_state, num_shards, shard_id, batch_size))
