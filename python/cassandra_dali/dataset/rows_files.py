"""Sample UUIDs: derived from paths at ingest, kept in rows files.

A *rows file* is what ``fn.crs4.cassandra(source_uuids_file=...)`` reads: text, one UUID per
line, blank lines and ``#`` comments ignored. Files written here are sorted, so the same table
always gives the same file (the reader shuffles by itself). The UUIDs of a table are listed
with :func:`cassandra_dali.client.token_scan.scan_ids`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

from .. import _native
from .._files import write_atomically

# Fixed forever: sample ids are uuid5(NAMESPACE, "split/class/file"), so re-ingesting the same
# file rewrites the same row instead of adding a duplicate. Changing it changes every id.
NAMESPACE = uuid.UUID("5f0c2a36-7d4e-5b1a-9c3e-2b8f6d1e4a70")


def sample_uuid(relative_path: str) -> uuid.UUID:
    """The id of the sample at ``split/class/file`` (relative to the dataset root)."""
    parts = [p for p in relative_path.replace(os.sep, "/").split("/") if p not in ("", ".")]
    if len(parts) < 2:
        raise ValueError(f"{relative_path!r} is not a dataset-relative path like split/class/file")
    return uuid.uuid5(NAMESPACE, "/".join(parts))


def write_rows_file(path: Path | str, ids: Iterable[uuid.UUID | str], comment: str = "") -> int:
    """Write ids (sorted, one per line) atomically; returns how many were written."""
    path = Path(path)
    unique = sorted({str(uuid.UUID(str(u))) for u in ids})
    lines = [f"# {line}" for line in comment.splitlines()] if comment else []
    lines += unique
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, ("\n".join(lines) + "\n").encode())
    return len(unique)


def read_rows_file(path: Path | str) -> list[str]:
    """The UUIDs of a rows file, in file order, parsed exactly as ``fn.crs4.cassandra`` does."""
    return list(_native.read_uuid_file(str(path)))
