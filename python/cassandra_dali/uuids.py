"""Sample UUIDs: derived from paths at ingest, scanned back from a table, kept in rows files.

A *rows file* is what ``fn.crs4.cassandra(source_uuids_file=...)`` reads: text, one UUID per
line, blank lines and ``#`` comments ignored. Files written here are sorted, so the same table
always gives the same file (the reader shuffles by itself).

Scanning a whole table with one ``SELECT id FROM t`` makes a single coordinator walk every
node's data in one paged query: slow and fragile on a big table. :func:`scan_ids` splits the
Murmur3 token ring into ranges instead and queries them concurrently, which also spreads the
work over the replicas that own each range.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from . import _native
from ._files import write_atomically
from .connection import cql_table, quote_identifier

if TYPE_CHECKING:
    from cassandra.cluster import Session

log = logging.getLogger(__name__)

# Fixed forever: sample ids are uuid5(NAMESPACE, "split/class/file"), so re-ingesting the same
# file rewrites the same row instead of adding a duplicate. Changing it changes every id.
NAMESPACE = uuid.UUID("5f0c2a36-7d4e-5b1a-9c3e-2b8f6d1e4a70")

# The Murmur3Partitioner's token range. No key hashes to MIN_TOKEN (the partitioner maps it to
# MAX_TOKEN), so the ranges (MIN, t1], (t1, t2], ..., (tn, MAX] cover every row exactly once.
MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1
DEFAULT_SPLITS = 64
DEFAULT_CONCURRENCY = 8
DEFAULT_FETCH_SIZE = 5000


def sample_uuid(relative_path: str) -> uuid.UUID:
    """The id of the sample at ``split/class/file`` (relative to the dataset root)."""
    parts = [p for p in relative_path.replace(os.sep, "/").split("/") if p not in ("", ".")]
    if len(parts) < 2:
        raise ValueError(f"{relative_path!r} is not a dataset-relative path like split/class/file")
    return uuid.uuid5(NAMESPACE, "/".join(parts))


def token_ranges(splits: int = DEFAULT_SPLITS) -> list[tuple[int, int]]:
    """``splits`` contiguous (start, end] ranges covering the whole Murmur3 ring."""
    if splits < 1:
        raise ValueError("splits must be >= 1")
    span = MAX_TOKEN - MIN_TOKEN
    bounds = [MIN_TOKEN + span * i // splits for i in range(splits)] + [MAX_TOKEN]
    return list(zip(bounds[:-1], bounds[1:]))


def scan_ids(
    session: Session,
    table: str,
    *,
    id_col: str = "id",
    splits: int = DEFAULT_SPLITS,
    concurrency: int = DEFAULT_CONCURRENCY,
    fetch_size: int = DEFAULT_FETCH_SIZE,
) -> list[uuid.UUID]:
    """Every id in ``keyspace.table``, by token ranges, sorted."""
    from cassandra.concurrent import execute_concurrent_with_args

    column = quote_identifier(_native.canonical_identifier(id_col, "id column"))
    statement = session.prepare(
        f"SELECT {column} FROM {cql_table(table)} WHERE token({column}) > ? AND token({column}) <= ?"
    )
    statement.fetch_size = fetch_size
    statement.is_idempotent = True  # a read: let the retry policy retry it
    ids: set[uuid.UUID] = set()
    results = execute_concurrent_with_args(
        session,
        statement,
        token_ranges(splits),
        concurrency=concurrency,
        raise_on_first_error=True,
    )
    for _, rows in results:
        # Iterating a ResultSet fetches its further pages synchronously.
        ids.update(row[0] for row in rows)
    return sorted(ids, key=str)


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
