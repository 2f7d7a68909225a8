"""Talking to Cassandra from Python: one :class:`Connection` for every tool (ingest, scans,
schema files, readers, the launcher's readiness checks), cassandra-driver clusters set up the
same way everywhere (:mod:`.cluster`), identifiers checked and quoted (:mod:`.identifiers`),
CQL files applied without cqlsh (:mod:`.cql_files`), whole-table scans by token ranges
(:mod:`.token_scan`), and what each node of a cluster says about itself (:mod:`.nodes`)."""

from __future__ import annotations

from .connection import Connection, ConnectionFailed
from .identifiers import cql_table, qualified_table, quote_identifier

__all__ = ["Connection", "ConnectionFailed", "cql_table", "qualified_table", "quote_identifier"]
