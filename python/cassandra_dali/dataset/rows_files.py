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
from ..errors import UserError

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
_BINARY_HEADER = 16
# UUIDs compared at once when filtering a binary file: 16 MiB, whatever the file's length.
_FILTER_CHUNK = 1 << 20


class RowsFileError(UserError, ValueError):
    """A rows file that cannot be read or written as asked (the message names the file)."""


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
        if len(array):  # memoryview cannot cast an empty (0, 16) array
            out.write(memoryview(np.ascontiguousarray(array)).cast("B"))

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomically(Path(path), write)
    return len(array)


def read_rows_file(path: Path | str) -> list[str]:
    """The UUIDs of a rows file (text or binary), in file order, read exactly as
    ``fn.crs4.cassandra`` reads them."""
    return list(_native.read_uuid_file(str(path)))


def is_binary_rows_file(path: Path | str) -> bool:
    """Whether ``path`` starts with :data:`BINARY_MAGIC`: how the reader tells the formats apart
    (anything else is read as text)."""
    with open(path, "rb") as file:
        return file.read(len(BINARY_MAGIC)) == BINARY_MAGIC


def map_binary_rows_file(path: Path | str) -> np.ndarray:
    """The UUIDs of a binary rows file as a read-only ``uint8`` array of shape ``(n, 16)``,
    mapped, not loaded (a list of any length); checked as the reader checks it."""
    with open(path, "rb") as file:
        header = file.read(_BINARY_HEADER)
        size = os.fstat(file.fileno()).st_size
    if len(header) < _BINARY_HEADER or header[: len(BINARY_MAGIC)] != BINARY_MAGIC:
        raise RowsFileError(f"rows file '{path}' is not a binary rows file")
    count = int.from_bytes(header[len(BINARY_MAGIC):], "little")
    if size != _BINARY_HEADER + 16 * count:
        raise RowsFileError(f"rows file '{path}' says it holds {count} UUIDs but is {size} "
                            "bytes long (truncated or corrupt)")
    if count == 0:  # mmap refuses an empty mapping
        return np.empty((0, 16), dtype=np.uint8)
    return np.memmap(path, dtype=np.uint8, mode="r", offset=_BINARY_HEADER, shape=(count, 16))


def write_rows_file_without(source: Path | str, out: Path | str,
                            drop: Iterable[uuid.UUID]) -> tuple[int, int]:
    """Write ``out``: the rows of ``source`` except the ``drop`` ones, in the format of
    ``source`` (text or binary) and in its order, duplicates kept, so nothing changes but the
    dropped rows. Returns (kept, dropped), counted in rows of ``source``."""
    source, out = Path(source), Path(out)
    if not source.exists():
        raise RowsFileError(f"rows file '{source}' does not exist")
    if out.resolve() == source.resolve() or (out.exists() and os.path.samefile(source, out)):
        raise RowsFileError(f"rows file '{out}' is the input itself: write a new file (a "
                            "running training keeps reading the list it started with)")
    if is_binary_rows_file(source):
        return _filter_binary(source, out, drop)
    try:
        ids = read_rows_file(source)
    except ValueError as error:  # the native parser's ArgumentError names the file and line
        raise RowsFileError(str(error)) from error
    dropped = {str(u) for u in drop}
    kept = [u for u in ids if u not in dropped]
    header = f"# {source.name} without {len(ids) - len(kept)} excluded rows\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, (header + "".join(f"{u}\n" for u in kept)).encode())
    return len(kept), len(ids) - len(kept)


def _filter_binary(source: Path, out: Path, drop: Iterable[uuid.UUID]) -> tuple[int, int]:
    rows = map_binary_rows_file(source)
    dropped = np.array([u.bytes for u in drop], dtype="V16")
    keep = np.ones(len(rows), dtype=bool)
    for start in range(0, len(rows), _FILTER_CHUNK):  # bounded temporaries for np.isin
        chunk = np.ascontiguousarray(rows[start:start + _FILTER_CHUNK]).view("V16").ravel()
        keep[start:start + _FILTER_CHUNK] = ~np.isin(chunk, dropped)
    kept = write_binary_rows_file(out, rows[keep])
    return kept, len(rows) - kept
