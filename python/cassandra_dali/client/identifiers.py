"""Keyspace, table and column names as CQL text: checked as the reader checks them (the same
native function, with Cassandra's rules: keyspace and table names only letters, digits and '_',
at most 48 characters, quoted or not; column names any length), then always double-quoted, so
no name can be read as CQL."""

from __future__ import annotations

from .. import _native


def quote_identifier(canonical: str) -> str:
    """A canonical identifier (from ``canonical_identifier``) as CQL text: always double-quoted,
    so nothing in it can be read as CQL. Quoting a lower-case name keeps its meaning."""
    return '"' + canonical.replace('"', '""') + '"'


def cql_table(name: str) -> str:
    """``keyspace.table`` as CQL text, both parts checked and quoted."""
    keyspace, table = qualified_table(name)
    return f"{quote_identifier(keyspace)}.{quote_identifier(table)}"


def qualified_table(name: str) -> tuple[str, str]:
    """Split and check ``keyspace.table``: unquoted parts are lower-cased, quoted ones
    (``ks."Table"``) keep their case."""
    parts = name.split(".")
    if len(parts) != 2:
        raise ValueError(f"table {name!r} must be given as keyspace.table")
    keyspace = _native.canonical_identifier(parts[0], "keyspace", "keyspace_or_table")
    table = _native.canonical_identifier(parts[1], "table", "keyspace_or_table")
    return keyspace, table
