"""Whole-table scans split over the Murmur3 token ring.

Scanning a whole table with one ``SELECT id FROM t`` makes a single coordinator walk every
node's data in one paged query: slow and fragile on a big table. :func:`scan_ids` splits the
ring into ranges instead and queries them concurrently, which also spreads the work over the
replicas that own each range.
"""

from __future__ import annotations

import collections
import itertools
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .. import _native
from .identifiers import cql_table, quote_identifier

if TYPE_CHECKING:
    from cassandra.cluster import Session

# The Murmur3Partitioner's token range. No key hashes to MIN_TOKEN (the partitioner maps it to
# MAX_TOKEN), so the ranges (MIN, t1], (t1, t2], ..., (tn, MAX] cover every row exactly once.
MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1
DEFAULT_SPLITS = 64
DEFAULT_CONCURRENCY = 8
DEFAULT_FETCH_SIZE = 5000


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
    statement = prepare_range_scan(session, table, id_col, fetch_size=fetch_size)
    ids = {row[0] for row in scan_in_ring_order(session, statement, splits=splits,
                                                concurrency=concurrency)}
    return sorted(ids, key=str)


def prepare_range_scan(session: Session, table: str, id_col: str, columns: Sequence[str] = (),
                       where: str | None = None, fetch_size: int = DEFAULT_FETCH_SIZE) -> Any:
    """``SELECT id_col, columns... FROM table WHERE token(id_col) > ? AND token(id_col) <= ?``
    (``AND where ... ALLOW FILTERING`` if given), prepared, paged, idempotent. Names are checked
    and quoted; ``where`` is the caller's CQL."""
    ident = quote_identifier(_native.canonical_identifier(id_col, "id column"))
    selected = ", ".join([ident, *(quote_identifier(_native.canonical_identifier(c, "column"))
                                   for c in columns)])
    query = (f"SELECT {selected} FROM {cql_table(table)} "
             f"WHERE token({ident}) > ? AND token({ident}) <= ?")
    if where is not None:
        query += f" AND {where} ALLOW FILTERING"
    statement = session.prepare(query)
    statement.fetch_size = fetch_size
    statement.is_idempotent = True  # a read: let the retry policy retry it
    return statement


def scan_in_ring_order(
    session: Session,
    statement: Any,
    *,
    splits: int = DEFAULT_SPLITS,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> Iterator[Any]:
    """The rows of a prepared ``... WHERE token(k) > ? AND token(k) <= ?`` over every range, in
    ring order. At most ``concurrency`` ranges are fetched ahead, one page each, so memory is
    bounded by pages, not by the table (the driver's concurrent helpers run ahead of a slow
    consumer and keep every finished range's first page)."""
    ranges = iter(token_ranges(splits))
    ahead = collections.deque(
        session.execute_async(statement, bounds)
        for bounds in itertools.islice(ranges, concurrency)
    )
    while ahead:
        rows = ahead.popleft().result()
        following = next(ranges, None)
        if following is not None:
            ahead.append(session.execute_async(statement, following))
        yield from rows  # further pages of this range are fetched as they are reached
