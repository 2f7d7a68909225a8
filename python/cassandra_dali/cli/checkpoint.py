"""``cassandra-dali checkpoint show FILE|STRING``: what a checkpoint of a pipeline reading with
``fn.crs4.cassandra`` holds (:mod:`cassandra_dali.checkpoints`), for a person debugging a
resume: each reader's epoch and position, what is left of a resumed epoch, the shard count and
batch size it was taken with, the list it depends on, and its rank's delivered digest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .. import checkpoints


def _load(source: str) -> list[tuple[str, bytes]]:
    """(label, DALI checkpoint or reader string) for each checkpoint in `source`: a reader
    string, a file written by ``pipe.checkpoint(FILE)``, or a trainer checkpoint (every rank's
    pipeline)."""
    if source.startswith(checkpoints.contents.READER_TAG):
        return [("", source.encode())]
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{source}: no such file, and not a reader checkpoint string")
    data = path.read_bytes()
    if data[:2] == b"PK" or path.suffix in (".tar", ".pth"):  # torch.save's zip
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
        pipelines = (state.get("data") or {}).get("pipelines") or []
        if not pipelines:
            raise checkpoints.contents.FormatError(f"{source} holds no pipeline checkpoints")
        return [(f"rank {r}", p) for r, p in enumerate(pipelines)]
    return [("", data)]


def _lines(state: dict[str, Any]) -> list[str]:
    rest = state["rest"]
    left = "the whole epoch" if not rest else (
        f"{sum(e - b for b, e in rest)} samples left of it after a resume, in "
        f"{len(rest)} intervals of the permutation")
    lines = [f"epoch {state['epoch']}, batch {state['batch']}: {left}"]
    if state["version"] < 2:
        lines.append("version 1: no record of shards, batch size, list or seed (it resumes "
                     "only where those are unchanged)")
        return lines
    lines += [
        f"taken by shard {state['shard_id']} of {state['num_shards']}, batch size "
        f"{state['batch_size']} ({state['batches_in_epoch']} batches in this epoch)",
        f"table {state['table']}; list of {state['list_size']} UUIDs, digest "
        f"{state['list_digest']:016x}",
        f"order: shuffle_seed {state['shuffle_seed']}, shuffle_every_epoch "
        f"{state['shuffle_every_epoch']}, loop_forever {state['loop_forever']}; on_bad_sample "
        f"{state.get('on_bad_sample', 'error')}",
        f"delivered by this rank of epoch {state['delivered_epoch']}: "
        f"{state['delivered'].count} samples (hash {state['delivered'].hash:016x})",
    ]
    return lines


def _show(args: argparse.Namespace) -> int:
    for label, data in _load(args.checkpoint):
        info = checkpoints.describe(data)
        if args.json:
            for state in info["readers"].values():
                state["delivered"] = list(vars(state.get("delivered", checkpoints.Digest())).values())
            print(json.dumps({"source": label, **info}, default=str))
            continue
        prefix = f"{label}: " if label else ""
        if "pipeline" in info:
            print(f"{prefix}DALI pipeline checkpoint, iteration {info['pipeline'].get('iter')}, "
                  f"{len(info['operators'])} operators"
                  + (", with DALI iterator data" if info.get("iterator") else ""))
        for name, state in info["readers"].items():
            print(f"{prefix}reader {name or '(string)'}:")
            for line in _lines(state):
                print(f"  {line}")
    return 0


def add_parser(subparsers: Any) -> None:
    group = subparsers.add_parser("checkpoint", help="inspect checkpoints of the reader")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    show = commands.add_parser(
        "show", help="what a checkpoint holds: epoch, position, world size, batch, list, history")
    show.add_argument("checkpoint", metavar="FILE|STRING",
                      help="a file from pipe.checkpoint(FILE), a trainer checkpoint, or a "
                      "reader checkpoint string (cassandra-reader-v...)")
    show.add_argument("--json", action="store_true", help="one JSON object per checkpoint")
    show.set_defaults(func=_show)
