"""Sample UUIDs: derived from paths at ingest, kept in rows files.

A *rows file* is what ``fn.crs4.cassandra(source_uuids_file=...)`` reads: text, one UUID per
line, blank lines and ``#`` comments ignored; or binary (``binary=True``: a 16-byte header, then
16 bytes per UUID), which the reader does not load but reads where it lies, so a list of a
hundred million rows costs a rank no memory and the ranks of a node share it through the page
cache. Files written here are sorted, so the same table always gives the same file (the reader
shuffles by itself). The UUIDs of a table are listed
with :func:`cassandra_dali.client.token_scan.scan_ids`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

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


BINARY_MAGIC = b"CDROWS01"  # then the count (uint64, little-endian), then 16 bytes per UUID


def write_rows_file(path: Path | str, ids: Iterable[uuid.UUID | str], comment: str = "", *,
                    binary: bool = False) -> int:
    """Write ids (sorted, one per line; or binary) atomically; returns how many were written."""
    path = Path(path)
    if binary:
        return write_binary_rows_file(path, sorted({uuid.UUID(str(u)).bytes for u in ids}))
    unique = sorted({str(uuid.UUID(str(u))) for u in ids})
    lines = [f"# {line}" for line in comment.splitlines()] if comment else []
    lines += unique
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, ("\n".join(lines) + "\n").encode())
    return len(unique)


def write_binary_rows_file(path: Path | str, ids: Sequence[bytes] | np.ndarray) -> int:
    """A binary rows file from UUIDs as 16-byte strings, or as a ``uint8`` array of shape
    ``(n, 16)`` (written in one go: how a list of a hundred million is made); in the order
    given."""
    array = (np.asarray(ids, dtype=np.uint8).reshape(-1, 16) if isinstance(ids, np.ndarray)
             else np.frombuffer(b"".join(ids), dtype=np.uint8).reshape(-1, 16))
    header = BINARY_MAGIC + len(array).to_bytes(8, "little")

    def write(out: BinaryIO) -> None:
        out.write(header)
        out.write(memoryview(np.ascontiguousarray(array)).cast("B"))

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomically(Path(path), write)
    return len(array)


def read_rows_file(path: Path | str) -> list[str]:
    """The UUIDs of a rows file (text or binary), in file order, read exactly as
    ``fn.crs4.cassandra`` reads them."""
    return list(_native.read_uuid_file(str(path)))
