"""Accuracy, running averages and the JSON-lines run log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


def correct_topk(output: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...]) -> list[torch.Tensor]:
    """How many samples have their label among the top-k logits, for each k (0-d tensors).

    Counts rather than percentages, so that they add up over batches and ranks of any size.
    A k above the number of classes counts every sample (the label is always in the top-k)."""
    maxk = min(max(ks), output.shape[1])
    _, pred = output.topk(maxk, dim=1)
    hits = pred.eq(target.view(-1, 1))
    return [hits[:, : min(k, maxk)].any(dim=1).sum() for k in ks]


class JsonLog:
    """Events, one JSON object per line, for tests and benchmarks to read (rank 0 only).

    Every event is flushed: a run that crashes still leaves what it logged."""

    def __init__(self, path: Path | str | None, enabled: bool) -> None:
        self._file = None
        if path is not None and enabled:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def write(self, event: str, **fields: Any) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps({"event": event, **fields}) + "\n")
        self._file.flush()

    def write_many(self, event: str, rows: list[dict[str, Any]]) -> None:
        if self._file is None:
            return
        self._file.writelines(json.dumps({"event": event, **row}) + "\n" for row in rows)
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
