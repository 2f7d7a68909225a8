"""Sample checksums: the ingest's ``--checksum`` stores the CRC32C of each sample in an ``int``
column of the data table (added if missing), and the reader, given ``checksum_col``, checks
every sample it reads against it and fails naming the UUID when they differ. CRC32C because
the reader computes it with one CPU instruction per 8 bytes (SSE4.2), the same C++ code that
:func:`crc32c` runs here, so writer and reader cannot disagree."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .. import _native
from ..client import cql_table, qualified_table, quote_identifier

if TYPE_CHECKING:
    from cassandra.cluster import Session

log = logging.getLogger(__name__)

CHECKSUM_COLUMN = "crc32c"


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """The CRC32C of a sample as stored: Cassandra's ``int`` is signed, so values of 2**31 and
    above are kept as their two's complement (the reader compares the 32 bits)."""
    value = _native.crc32c(data)
    return value - (1 << 32) if value >= 1 << 31 else value


def ensure_column(session: Session, data_table: str, column: str = CHECKSUM_COLUMN) -> None:
    """Adds ``column int`` to the data table unless it is there (an ``int``, else an error)."""
    keyspace, table = qualified_table(data_table)
    name = _native.canonical_identifier(column, "checksum column")
    row = session.execute(
        "SELECT type FROM system_schema.columns WHERE keyspace_name = %s AND table_name = %s "
        "AND column_name = %s", (keyspace, table, name),
    ).one()
    if row is not None:
        if row.type != "int":
            raise ValueError(f"column {name!r} of {data_table} is {row.type}, not int: it cannot "
                             "hold the samples' CRC32C")
        return
    log.info("adding column %s int to %s for the samples' CRC32C", name, data_table)
    session.execute(f"ALTER TABLE {cql_table(data_table)} ADD {quote_identifier(name)} int")
