"""Checksums verified on read (issue 13): the CRC32C itself, the ingest's --checksum column,
and a stored value corrupted behind the reader's back, seen by fn.crs4.cassandra and Reader
with the UUID named; a null checksum and a checksum column of the wrong type are refused."""

from __future__ import annotations

import random
import uuid
from typing import Any

import cassandra_dali
import pytest
from cassandra_dali import _native, server
from cassandra_dali.client import token_scan
from cassandra_dali.dataset import checksums, images, ingest
from reader_helpers import cassandra_pipeline, reader_kwargs, run_batches, sha


def crc32c_bitwise(data: bytes) -> int:
    """The definition, one bit at a time (reflected Castagnoli polynomial)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c() -> None:
    assert _native.crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert _native.crc32c(b"") == 0
    rng = random.Random(1)
    for size in (1, 7, 8, 9, 63, 64, 1000, 4099):  # around the 8-byte steps
        data = rng.randbytes(size)
        assert _native.crc32c(data) == crc32c_bitwise(data)
        assert _native.crc32c(memoryview(data)[3:]) == crc32c_bitwise(data[3:])
    # Cassandra's int is signed: the stored form is the same 32 bits.
    assert checksums.crc32c(b"123456789") == 0xE3069283 - (1 << 32)


@pytest.fixture(scope="module")
def ingested(keyspace: str, cql_session: Any, cassandra_server: server.ServerInfo,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """A generated split ingested with --checksum: its data table and UUIDs."""
    root = tmp_path_factory.mktemp("checksummed")
    images.generate(root, 2, 1, seed=4, workers=1)
    for name, columns in (("data", "id uuid PRIMARY KEY, label int, data blob"),
                          ("metadata", "id uuid PRIMARY KEY, label int, or_label text, "
                                       "or_split text")):
        cql_session.execute(f"CREATE TABLE {keyspace}.{name} ({columns})")
    config = ingest.IngestConfig(f"{keyspace}.data", f"{keyspace}.metadata", checksum=True,
                                 connection=cassandra_server.connection())
    summary = ingest.ingest_split(root, "train", config)
    assert summary.complete and summary.written == 2 * len(images.IMAGENETTE_CLASSES)
    ids = [str(u) for u in token_scan.scan_ids(cql_session, f"{keyspace}.metadata")]
    return f"{keyspace}.data", ids


def test_ingest_stores_the_checksum(ingested: tuple[str, list[str]], cql_session: Any) -> None:
    table, ids = ingested
    rows = list(cql_session.execute(f"SELECT data, crc32c FROM {table}"))
    assert len(rows) == len(ids)
    assert all(row.crc32c == checksums.crc32c(row.data) for row in rows)


def test_corrupted_sample_is_named(ingested: tuple[str, list[str]], cql_session: Any,
                                   cassandra_server: server.ServerInfo) -> None:
    table, ids = ingested
    args = reader_kwargs(cassandra_server, table, source_uuids=ids, checksum_col="crc32c",
                         shuffle_every_epoch=False)
    batches = run_batches(cassandra_pipeline(len(ids), **args), 1)
    stored = {sha(row.data) for row in cql_session.execute(f"SELECT data FROM {table}")}
    assert {sha(d) for d in batches[0][0]} == stored  # verified, and all there

    victim = ids[len(ids) // 2]
    (data,) = cql_session.execute(f"SELECT data FROM {table} WHERE id = %s",
                                  (uuid.UUID(victim),)).one()
    flipped = bytes([data[0] ^ 0x01]) + data[1:]  # one bit, the checksum column untouched
    cql_session.execute(f"UPDATE {table} SET data = %s WHERE id = %s",
                        (flipped, uuid.UUID(victim)))
    with pytest.raises(RuntimeError, match=f"checksum mismatch for .*{victim}"):
        run_batches(cassandra_pipeline(len(ids), **args), 1)
    reader = cassandra_dali.Reader(table, cassandra_port=cassandra_server.port,
                                   checksum_col="crc32c")
    with pytest.raises(cassandra_dali.ReadError, match=f"checksum mismatch for .*{victim}.*"
                       "the stored sample is not the one ingested"):
        reader.read([victim])
    # Without checksum_col nothing is checked: the corrupted bytes come back as stored.
    plain = cassandra_dali.Reader(table, cassandra_port=cassandra_server.port)
    assert bytes(plain.read([victim])[0][0]) == flipped


def test_null_and_mistyped_checksums(keyspace: str, cql_session: Any,
                                     cassandra_server: server.ServerInfo) -> None:
    table = f"{keyspace}.unchecked"
    cql_session.execute(f"CREATE TABLE {table} (id uuid PRIMARY KEY, label int, data blob, "
                        "crc32c int, crc_text text)")
    sample = uuid.uuid4()
    cql_session.execute(f"INSERT INTO {table} (id, label, data) VALUES (%s, 1, 0x00)", (sample,))
    reader = cassandra_dali.Reader(table, cassandra_port=cassandra_server.port,
                                   checksum_col="crc32c")
    with pytest.raises(cassandra_dali.ReadError, match=f"'crc32c' is null for .*{sample}"):
        reader.read([str(sample)])
    with pytest.raises(cassandra_dali.SchemaError, match="checksum_col .*crc_text.* is text"):
        cassandra_dali.Reader(table, cassandra_port=cassandra_server.port,
                              checksum_col="crc_text")
    mistyped = f"{keyspace}.mistyped"
    cql_session.execute(f"CREATE TABLE {mistyped} (id uuid PRIMARY KEY, data blob, crc32c text)")
    with pytest.raises(ValueError, match="'crc32c' of .*mistyped is text, not int"):
        checksums.ensure_column(cql_session, mistyped)  # the ingest's --checksum stops there
