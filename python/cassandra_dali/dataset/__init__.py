"""Datasets in Cassandra: a synthetic Imagenette stand-in (:mod:`.images`), the tables they go
in (:data:`TABLES_CQL`), the serial ingest (:mod:`.ingest`, writing through
:mod:`.row_writer`, with optional CRC32C checksums: :mod:`.checksums`) and the Spark one
(:mod:`.spark`), rows files, the UUID lists the reader takes (:mod:`.rows_files`), and splits
and folds drawn from the metadata (:mod:`.splits`)."""

from __future__ import annotations

from pathlib import Path

# The data and metadata tables of examples/imagenette (linked there as create_tables.cql);
# ``cassandra-dali schema apply FILE --keyspace K`` makes them under another keyspace.
TABLES_CQL = Path(__file__).with_name("create_tables.cql")
