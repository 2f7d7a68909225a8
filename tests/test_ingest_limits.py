"""The ingest at the sizes real datasets have: ImageNet-size files (1-3 MB) and one near the
server's 16 MiB limit at default settings, byte-exact; a file over the server's limit named with
the limit; table names that carry CQL are quoted, never executed."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cassandra_dali import server
from cassandra_dali.client import Connection, token_scan
from cassandra_dali.dataset import ingest, rows_files

NEAR_16_MIB = 16 * 1024 * 1024 - 2048


def _jpeg_like(path: Path, size: int, rng: np.random.Generator) -> bytes:
    data = ingest.JPEG_MAGIC + b"\xe0" + rng.bytes(size - 4)
    path.write_bytes(data)
    return data


def _one_class(root: Path, sizes: dict[str, int], seed: int) -> None:
    """ROOT/train/a/NAME of each size (the split the ingest reads)."""
    rng = np.random.default_rng(seed)
    (root / "train" / "a").mkdir(parents=True)
    for name, size in sizes.items():
        _jpeg_like(root / "train" / "a" / name, size, rng)


def _tables(session: Any, keyspace: str, suffix: str) -> tuple[str, str]:
    data, meta = f"{keyspace}.data_{suffix}", f"{keyspace}.metadata_{suffix}"
    session.execute(f"CREATE TABLE {data} (id uuid PRIMARY KEY, label int, data blob)")
    session.execute(
        f"CREATE TABLE {meta} (id uuid PRIMARY KEY, label int, or_label text, or_split text)"
    )
    return data, meta


def _conn(info: server.ServerInfo) -> Connection:
    return Connection(host=info.host, port=info.port)


@pytest.mark.slow
def test_big_files_at_default_settings_byte_exact(
    tmp_path: Path, cassandra_server: server.ServerInfo, cql_session: Any, keyspace: str
) -> None:
    rng = np.random.default_rng(9)
    files: dict[str, bytes] = {}
    for name in ("a", "b"):
        (tmp_path / "train" / name).mkdir(parents=True)
        for i in range(12):
            size = int(rng.integers(1_000_000, 3_000_000))
            files[f"train/{name}/{i}.jpg"] = _jpeg_like(tmp_path / "train" / name / f"{i}.jpg",
                                                        size, rng)
    files["train/a/huge.jpg"] = _jpeg_like(tmp_path / "train" / "a" / "huge.jpg", NEAR_16_MIB, rng)
    data_table, meta_table = _tables(cql_session, keyspace, "big")
    config = ingest.IngestConfig(data_table, meta_table, connection=_conn(cassandra_server))
    summary = ingest.ingest_split(tmp_path, "train", config)
    assert summary.complete and summary.written == len(files), summary.format()
    select = cql_session.prepare(f"SELECT data FROM {data_table} WHERE id = ?")
    for relative, data in files.items():
        row = cql_session.execute(select, (rows_files.sample_uuid(relative),), timeout=60).one()
        assert row is not None, f"{relative} was not stored"
        assert hashlib.sha256(row.data).digest() == hashlib.sha256(data).digest(), relative


def test_a_file_over_the_servers_limit_is_named_with_the_limit(
    tmp_path: Path, cassandra_server: server.ServerInfo, cql_session: Any, keyspace: str
) -> None:
    _one_class(tmp_path, {"ok.jpg": 10_000, "too_big.jpg": 16 * 1024 * 1024 + 10}, seed=10)
    data_table, meta_table = _tables(cql_session, keyspace, "limit")
    config = ingest.IngestConfig(data_table, meta_table, connection=_conn(cassandra_server),
                                 max_size=64 * 1024 * 1024, on_error=ingest.OnError.SKIP)
    summary = ingest.ingest_split(tmp_path, "train", config)
    (problem,) = summary.skipped
    assert problem.what == "train/a/too_big.jpg"
    limit = 16 * 1024 * 1024 - ingest.ROW_OVERHEAD
    assert f"{16 * 1024 * 1024 + 10} bytes, over the largest sample the server at" in problem.reason
    assert f"accepts ({limit} bytes" in problem.reason, problem.reason
    assert summary.written == 1


def test_table_names_carrying_cql_are_quoted(
    tmp_path: Path, cassandra_server: server.ServerInfo, cql_session: Any, keyspace: str
) -> None:
    """The issue's example: unquoted, this name made the ingest write rows that expire in 60 s.
    Quoted, it is refused before any CQL is sent: Cassandra allows only letters, digits and '_'
    in table names, quoted or not."""
    _one_class(tmp_path, {"x.jpg": 1000}, seed=11)
    _tables(cql_session, keyspace, "inj")
    sneaky = f'{keyspace}."data_inj (id, label, data) VALUES (?, ?, ?) USING TTL 60 --"'
    with pytest.raises(ValueError, match="only letters, digits and '_'"):
        ingest.IngestConfig(sneaky, f"{keyspace}.metadata_inj", connection=_conn(cassandra_server))
    assert cql_session.execute(f"SELECT count(*) FROM {keyspace}.data_inj").one()[0] == 0
    with pytest.raises(ValueError, match="only letters, digits and '_'"):
        token_scan.scan_ids(cql_session, f'{keyspace}."metadata_inj WHERE id = id --"')
