"""Files the tools write: where by default (the per-user cache, never inside a checkout or the
current directory) and how (whole or not at all: what the launcher, the dataset generator, the
rows files and the trainer's checkpoints all need, so a reader never sees half a file)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def cache_root() -> Path:
    """Per-machine cache for jars, default server directories and runs (outside any
    repository); ``CASSANDRA_DALI_CACHE`` moves it."""
    override = os.environ.get("CASSANDRA_DALI_CACHE")
    if override:
        return Path(override).expanduser().resolve()
    return Path.home() / ".cache" / "cassandra-dali"


def new_run_dir(name: str) -> Path:
    """A directory name for a new run's outputs, ``CACHE/runs/NAME-YYYYmmdd-HHMMSS-PID`` (the
    process id keeps two runs started in the same second apart); not created here."""
    return cache_root() / "runs" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def write_atomically(path: Path, write: Callable[[BinaryIO], None] | bytes, *,
                     mode: int = 0o644, durable: bool = False) -> None:
    """Writes ``path`` through a temporary file in its directory, renamed over it once complete.

    ``write`` is the content, or a function writing it to the open file. The file has ``mode``
    from its creation (0600 for secrets: never readable by others, not even briefly). With
    ``durable``, the data and the rename are synced to disk before returning (checkpoints)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        os.fchmod(fd, mode)  # a leftover temporary file keeps its old mode through O_CREAT
        with os.fdopen(fd, "wb") as out:
            if isinstance(write, bytes):
                out.write(write)
            else:
                write(out)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:  # the rename is durable only once the directory entry is
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
