"""Training checkpoints: written by rank 0 atomically, read by every rank to resume.

A checkpoint holds what a run needs to continue where it stopped: the model's weights (without
DDP's ``module.`` prefix, so a single-process run can load it), the optimizer (SGD's momentum
buffers), the GradScaler, the next epoch to run and the best validation top-1 so far, plus the
arguments that must match on resume (architecture and number of classes).

It also holds where the training data stands (``"data"``): every rank's DALI pipeline checkpoint
(reader position, random generators, iterator), gathered to rank 0, with what they depend on.
A run that matches it (``data_mismatch`` is None) builds rank ``r``'s pipeline from
``pipelines[r]`` and draws exactly the batches an uninterrupted run would have drawn.

Writes go to a temporary file in the same directory, are flushed to disk and then renamed over
the old checkpoint: a job killed mid-write leaves the previous checkpoint intact, never a torn
one.

Without ``--checkpoint-dir`` a run writes into a directory of its own under the per-user cache
(:func:`directory`), never into the current directory (a checkout would fill with 90 MB
files); the log names each file written.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from .._files import new_run_dir, write_atomically

log = logging.getLogger(__name__)

FORMAT = 1
LATEST = "checkpoint.pth.tar"
BEST = "model_best.pth.tar"
DATA_FORMAT = 1

# What a saved data position depends on, and how the user would recognise it.
_DATA_KEYS = {
    "world_size": "ranks",
    "batch_size": "--b (batch per rank)",
    "max_iters": "--max-iters",
    "source": "source",
    "seed": "--seed",
    "dali": "DALI version",
}


def directory(chosen: Path | None, arch: str) -> Path:
    """Where a run's checkpoints go: ``chosen`` (``--checkpoint-dir``), else a new run
    directory ``CACHE/runs/ARCH-DATE-TIME-PID`` in the per-user cache (``~/.cache/cassandra-dali``
    or ``$CASSANDRA_DALI_CACHE``)."""
    return chosen if chosen is not None else new_run_dir(arch)


def save(state: dict[str, Any], directory: Path | str, *, is_best: bool = False) -> Path:
    """Write ``directory/checkpoint.pth.tar`` (and ``model_best.pth.tar`` when best), and say
    where in the log."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LATEST
    _atomic_save({"format": FORMAT, **state}, path)
    if is_best:
        with open(path, "rb") as latest:
            write_atomically(directory / BEST, lambda out: shutil.copyfileobj(latest, out),
                             durable=True)
    log.info("checkpoint written: %s%s", path.resolve(),
             f" (and {BEST}: best top-1 so far)" if is_best else "")
    return path


def _atomic_save(obj: Any, path: Path) -> None:
    write_atomically(path, lambda out: torch.save(obj, out), durable=True)


def load(path: Path | str, device: torch.device) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / LATEST
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (check --resume)")
    # Our own files hold tensors, dicts and plain values only: the safe loader reads them.
    state: dict[str, Any] = torch.load(path, map_location=device, weights_only=True)
    if state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a checkpoint of this trainer (format {state.get('format')!r})")
    return state


def check_compatible(state: dict[str, Any], arch: str, num_classes: int, path: Path | str) -> None:
    for key, expected in (("arch", arch), ("num_classes", num_classes)):
        if state.get(key) != expected:
            raise ValueError(
                f"checkpoint {path} was written with {key}={state.get(key)!r}, this run has "
                f"{key}={expected!r}: resume with the same -a/--arch and --num-classes"
            )


def data_state(pipelines: list[bytes], augment_seeds: list[int], *, order_seed: int,
               **depends_on: Any) -> dict[str, Any]:
    """The ``"data"`` entry: rank ``r``'s pipeline checkpoint and augmentation seed at index
    ``r``, the shared order seed, and the ``depends_on`` values (``world_size``, ``batch_size``,
    ``max_iters``, ``source``, ``seed``, ``dali``)."""
    missing = set(_DATA_KEYS) - set(depends_on)
    if missing:
        raise ValueError(f"data_state needs {sorted(missing)}")
    return {"format": DATA_FORMAT, **depends_on, "order_seed": order_seed,
            "augment_seeds": list(augment_seeds), "pipelines": list(pipelines)}


def data_mismatch(saved: dict[str, Any] | None, **current: Any) -> str | None:
    """Why this run cannot continue the saved data position (a sentence), or None if it can.

    ``current`` holds this run's values of the keys ``data_state`` records."""
    if not saved:
        return "the checkpoint holds no data position (it was written by an older version)"
    if saved.get("format") != DATA_FORMAT:
        return f"its data position has format {saved.get('format')!r}, this version reads {DATA_FORMAT}"
    if saved.get("world_size") != current["world_size"]:
        return (f"it was written by {saved.get('world_size')} ranks, this run has "
                f"{current['world_size']}; start {saved.get('world_size')} processes to continue "
                "exactly")
    for key, label in _DATA_KEYS.items():
        if saved.get(key) != current[key]:
            return (f"it was written with {label} {_shown(saved.get(key))}, this run has "
                    f"{_shown(current[key])}")
    if len(saved["pipelines"]) != saved["world_size"]:
        return f"it holds {len(saved['pipelines'])} pipeline states for {saved['world_size']} ranks"
    return None


def _shown(value: Any) -> str:
    return "unset" if value is None else repr(value) if isinstance(value, str) else str(value)
