"""The Imagenette workflow of examples/imagenette against the real server: generate, create the
tables, ingest, list the UUIDs, read back through DALI, and the bad inputs along the way.

The example scripts are run as a user runs them (subprocesses, flags as in the README), each
pointed at this session's server with --port; the library is called directly where a test needs
to look inside (summaries, failure injection)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cassandra_dali import server
from cassandra_dali.client import Connection, cql_files
from cassandra_dali.dataset import TABLES_CQL, images, ingest
from conftest import unique_keyspace_name
from PIL import Image
from tcp_proxy import TcpProxy
from workflow_helpers import (
    EXAMPLES,
    N_TRAIN,
    TRAIN_PER_CLASS,
    VAL_PER_CLASS,
    conn_flags,
    expected_train,
    run_script,
    script_env,
    sha,
)

# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------


def test_generator_layout_and_sizes(root: Path) -> None:
    assert sorted(p.name for p in root.iterdir()) == ["train", "val"]
    for split, per_class in (("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)):
        assert sorted(p.name for p in (root / split).iterdir()) == sorted(
            images.IMAGENETTE_CLASSES
        )
        for wnid in images.IMAGENETTE_CLASSES:
            files = sorted((root / split / wnid).iterdir())
            assert len(files) == per_class
            for path in files:
                assert path.suffix == ".JPEG"
                data = path.read_bytes()
                assert data[:3] == ingest.JPEG_MAGIC
                assert 12_000 < len(data) < 120_000, (
                    path,
                    len(data),
                )  # tens of KB, like the real set
                with Image.open(path) as image:
                    assert image.format == "JPEG" and min(image.size) == images.SHORT_SIDE
    assert (root / "val" / "n01440764" / "ILSVRC2012_val_00000001.JPEG").is_file()
    assert (root / "train" / "n03888605" / "n03888605_10000.JPEG").is_file()


def test_generator_is_deterministic(tmp_path: Path) -> None:
    classes = images.IMAGENETTE_CLASSES[:2]
    for name, seed, workers in (("a", 3, 1), ("b", 3, 2), ("c", 4, 1)):
        images.generate(tmp_path / name, 1, 1, seed, classes=classes, workers=workers)

    def contents(name: str) -> dict[str, str]:
        base = tmp_path / name
        return {str(p.relative_to(base)): sha(p.read_bytes()) for p in base.rglob("*.JPEG")}

    assert contents("a") == contents("b")  # same seed: same bytes, whatever the worker count
    assert len(contents("a")) == 4
    assert set(contents("a").values()).isdisjoint(contents("c").values())  # another seed


def test_cli_generate(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cassandra_dali.cli",
            "data",
            "generate",
            str(tmp_path / "g"),
            "--train-per-class",
            "1",
            "--val-per-class",
            "0",
            "--seed",
            "1",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "10 JPEGs" in result.stdout
    assert len(list((tmp_path / "g" / "train").rglob("*.JPEG"))) == 10


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------


def test_create_tables_cql(ks: str, cql_session: Any) -> None:
    tables = {
        row.table_name: row.compression
        for row in cql_session.execute(
            "SELECT table_name, compression FROM system_schema.tables WHERE keyspace_name = %s",
            (ks,),
        )
    }
    assert set(tables) == {"data_train", "data_val", "metadata_train", "metadata_val"}
    assert tables["data_train"]["enabled"] == "false" and tables["data_val"]["enabled"] == "false"
    columns = {
        (row.table_name, row.column_name): row.type
        for row in cql_session.execute(
            "SELECT table_name, column_name, type FROM system_schema.columns "
            "WHERE keyspace_name = %s",
            (ks,),
        )
    }
    assert columns[("data_train", "data")] == "blob" and columns[("data_train", "id")] == "uuid"
    assert columns[("metadata_val", "or_split")] == "text"
    strategy = cql_session.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (ks,)
    ).one()
    assert strategy.replication["class"].endswith("SimpleStrategy")
    assert strategy.replication["replication_factor"] == "1"
    # The example's file is the one the package ships (and the demo applies).
    assert (EXAMPLES / "create_tables.cql").resolve() == TABLES_CQL.resolve()
    assert cql_files.created_keyspace(TABLES_CQL.read_text()) == "imagenette"


def test_cqlsh_runs_the_file(conn: Connection, cql_session: Any, tmp_path: Path) -> None:
    cqlsh = shutil.which("cqlsh", path=script_env()["PATH"])
    if cqlsh is None:
        pytest.skip("cqlsh is not installed (pip install cqlsh)")
    name = unique_keyspace_name("cqlsh")
    script = tmp_path / "create_tables.cql"
    script.write_text(
        ";\n".join(
            cql_files.split_statements((EXAMPLES / "create_tables.cql").read_text(), keyspace=name)
        )
        + ";\n"
    )
    try:
        for _ in range(2):  # and again: IF NOT EXISTS makes it a no-op
            subprocess.run(
                [cqlsh, conn.host, str(conn.port), "-f", str(script)],
                check=True,
                capture_output=True,
                text=True,
                timeout=120,
            )
        count = len(
            list(
                cql_session.execute(
                    "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (name,)
                )
            )
        )
        assert count == 4
    finally:
        cql_session.execute(f"DROP KEYSPACE IF EXISTS {name}")


def test_cli_schema_apply(conn: Connection, cql_session: Any) -> None:
    name = unique_keyspace_name("cli_schema")
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cassandra_dali.cli",
                "schema",
                "apply",
                str(EXAMPLES / "create_tables.cql"),
                "--keyspace",
                name,
                *conn_flags(conn),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "5 statements" in result.stdout
        tables = cql_session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (name,)
        )
        assert len(list(tables)) == 4
    finally:
        cql_session.execute(f"DROP KEYSPACE IF EXISTS {name}")


def test_statement_splitting() -> None:
    text = (
        "-- a; comment\nCREATE KEYSPACE k WITH r = {'a': 'x;y'};"
        "/* ; */ INSERT INTO k.t (a) VALUES ('it''s');"
    )
    assert cql_files.split_statements(text) == [
        "CREATE KEYSPACE k WITH r = {'a': 'x;y'}",
        "INSERT INTO k.t (a) VALUES ('it''s')",
    ]
    assert (
        cql_files.split_statements(text, keyspace="other")[1]
        == "INSERT INTO \"other\".t (a) VALUES ('it''s')"
    )
    # A renamed keyspace is always quoted (a quoted name keeps its case), and checked by
    # Cassandra's rule, quoted or not: nothing but letters, digits and '_' gets into the CQL.
    assert cql_files.split_statements(text, keyspace='"Other_2"')[1].startswith(
        'INSERT INTO "Other_2".t'
    )
    with pytest.raises(ValueError, match="only letters, digits and '_'"):
        cql_files.split_statements(text, keyspace='"k; DROP KEYSPACE k"')
    with pytest.raises(cql_files.CqlSyntaxError, match="unterminated"):
        cql_files.split_statements("SELECT 'abc")


# --------------------------------------------------------------------------------------------
# Ingest
# --------------------------------------------------------------------------------------------


def test_serial_ingest_rows(root: Path, ingested: str, cql_session: Any) -> None:
    expected = expected_train(root)
    data = {
        row.id: (row.label, sha(row.data))
        for row in cql_session.execute(f"SELECT id, label, data FROM {ingested}.data_train")
    }
    assert data == {k: (label, digest) for k, (label, digest, _) in expected.items()}
    metadata = {
        row.id: (row.label, row.or_label, row.or_split)
        for row in cql_session.execute(
            f"SELECT id, label, or_label, or_split FROM {ingested}.metadata_train"
        )
    }
    assert metadata == {k: (label, wnid, "train") for k, (label, _, wnid) in expected.items()}


def test_rerun_adds_nothing(
    root: Path, ingested: str, conn: Connection, cql_session: Any
) -> None:
    config = ingest.IngestConfig(
        f"{ingested}.data_train", f"{ingested}.metadata_train", connection=conn
    )
    again = ingest.ingest_split(root, "train", config)
    assert (again.written, again.existing, again.failed) == (N_TRAIN, 0, [])  # rewritten in place
    resumed = ingest.ingest_split(
        root,
        "train",
        ingest.IngestConfig(
            f"{ingested}.data_train",
            f"{ingested}.metadata_train",
            connection=conn,
            skip_existing=True,
        ),
    )
    assert (resumed.written, resumed.existing) == (0, N_TRAIN)
    for table in ("data_train", "metadata_train"):
        assert cql_session.execute(f"SELECT count(*) FROM {ingested}.{table}").one()[0] == N_TRAIN


def test_val_split_and_labels(
    root: Path, ingested: str, conn: Connection, cql_session: Any
) -> None:
    config = ingest.IngestConfig(
        f"{ingested}.data_val", f"{ingested}.metadata_val", connection=conn
    )
    summary = ingest.ingest_split(root, "val", config)
    assert summary.written == VAL_PER_CLASS * len(images.IMAGENETTE_CLASSES)
    rows = list(
        cql_session.execute(f"SELECT label, or_label, or_split FROM {ingested}.metadata_val")
    )
    # Same class folders, same labels as train: sorted WordNet ids numbered from 0.
    assert {(r.label, r.or_label) for r in rows} == set(
        enumerate(sorted(images.IMAGENETTE_CLASSES))
    )
    assert {r.or_split for r in rows} == {"val"}


@pytest.fixture()
def bad_root(tmp_path: Path, root: Path) -> Path:
    """Two classes: good JPEGs and a PNG, plus every kind of bad input."""
    base = tmp_path / "bad"
    good, other = base / "train" / "a_class", base / "train" / "b_class"
    good.mkdir(parents=True)
    other.mkdir()
    (base / "train" / "c_empty").mkdir()
    sources = sorted((root / "train" / "n01440764").iterdir())
    shutil.copy(sources[0], good / "ok1.JPEG")
    shutil.copy(sources[1], other / "ok2.JPEG")
    Image.new("RGB", (8, 8), (1, 2, 3)).save(other / "ok3.png")
    (good / "notes.txt").write_text("not an image")
    (good / "empty.JPEG").write_bytes(b"")
    (good / "huge.JPEG").write_bytes(ingest.JPEG_MAGIC + bytes(300_000))
    (other / "dangling.JPEG").symlink_to(tmp_path / "nowhere.JPEG")
    (base / "train" / "stray.JPEG").write_bytes(sources[2].read_bytes())
    return base


@pytest.fixture()
def bad_tables(ks: str, cql_session: Any) -> Iterator[tuple[str, str]]:
    for table in ("data_bad", "metadata_bad"):
        cql_session.execute(f"DROP TABLE IF EXISTS {ks}.{table}")
    cql_session.execute(f"CREATE TABLE {ks}.data_bad (id uuid PRIMARY KEY, label int, data blob)")
    cql_session.execute(
        f"CREATE TABLE {ks}.metadata_bad "
        "(id uuid PRIMARY KEY, label int, or_label text, or_split text)"
    )
    yield f"{ks}.data_bad", f"{ks}.metadata_bad"


def test_bad_inputs_skipped(
    bad_root: Path, bad_tables: tuple[str, str], conn: Connection, cql_session: Any
) -> None:
    config = ingest.IngestConfig(
        *bad_tables, connection=conn, on_error=ingest.OnError.SKIP, max_size=200_000
    )
    summary = ingest.ingest_split(bad_root, "train", config)
    reasons = {p.what: p.reason for p in summary.skipped}
    assert set(reasons) == {
        "train/c_empty",
        "train/stray.JPEG",
        "train/a_class/notes.txt",
        "train/a_class/empty.JPEG",
        "train/a_class/huge.JPEG",
        "train/b_class/dangling.JPEG",
    }
    assert reasons["train/c_empty"] == "empty class folder"
    assert reasons["train/stray.JPEG"] == "not in a class folder"
    assert "not a JPEG or PNG" in reasons["train/a_class/notes.txt"]
    assert reasons["train/a_class/empty.JPEG"] == "empty file"
    assert "over the --max-size limit of 200000" in reasons["train/a_class/huge.JPEG"]
    assert "cannot read" in reasons["train/b_class/dangling.JPEG"]
    assert summary.written == 3 and summary.complete
    labels = {
        row.or_label: row.label
        for row in cql_session.execute(f"SELECT label, or_label FROM {bad_tables[1]}")
    }
    assert labels == {"a_class": 0, "b_class": 1}  # the empty c_empty still has its place: 2
    assert "3 written" in summary.format() and "skipped: train/c_empty" in summary.format()


def test_bad_inputs_fail(
    bad_root: Path, bad_tables: tuple[str, str], conn: Connection
) -> None:
    args = [
        str(bad_root),
        "--split-subdir=train",
        "--data-table",
        bad_tables[0],
        "--metadata-table",
        bad_tables[1],
        "--no-progress",
        *conn_flags(conn),
    ]
    result = run_script("extract_serial.py", *args, check=False)
    assert result.returncode == 1
    assert "extract_serial.py: error: train/stray.JPEG: not in a class folder" in result.stderr
    assert "Traceback" not in result.stderr
    (bad_root / "train" / "stray.JPEG").unlink()
    (bad_root / "train" / "c_empty").rmdir()
    config = ingest.IngestConfig(*bad_tables, connection=conn, max_size=200_000)
    with pytest.raises(ingest.IngestError, match=r"train/a_class/empty.JPEG: empty file"):
        ingest.ingest_split(bad_root, "train", config)


def test_unknown_table_and_host(root: Path, ks: str, conn: Connection) -> None:
    result = run_script(
        "extract_serial.py",
        str(root),
        "--data-table",
        f"{ks}.nope",
        "--metadata-table",
        f"{ks}.metadata_train",
        "--no-progress",
        *conn_flags(conn),
        check=False,
    )
    assert (
        result.returncode == 1 and "nope" in result.stderr and "create_tables.cql" in result.stderr
    )
    result = run_script(
        "extract_serial.py",
        str(root),
        "--data-table",
        f"{ks}.data_train",
        "--metadata-table",
        f"{ks}.metadata_train",
        "--port",
        "1",
        check=False,
    )
    assert result.returncode == 1
    assert "cannot connect to Cassandra at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


class _CutAfter(list):  # type: ignore[type-arg]
    """The samples, with the server lost (proxy closed) once `after` of them were handed out."""

    def __init__(self, items: list[Any], after: int, proxy: TcpProxy) -> None:
        super().__init__(items)
        self.after, self.proxy = after, proxy

    def __iter__(self) -> Iterator[Any]:
        for i, item in enumerate(super().__iter__()):
            if i == self.after:
                self.proxy.cut()
                self.proxy.close()
            yield item


def test_server_lost_mid_ingest(
    root: Path, bad_tables: tuple[str, str], cassandra_server: server.ServerInfo
) -> None:
    proxy = TcpProxy(cassandra_server.host, cassandra_server.port)
    via_proxy = Connection(host="127.0.0.1", port=proxy.port)
    # A server gone for good: each write is retried for its budget (3 s here), then reported.
    config = ingest.IngestConfig(*bad_tables, connection=via_proxy, on_error=ingest.OnError.SKIP,
                                 retry_budget_s=3.0)
    samples = _CutAfter(list(ingest.list_split(root, "train").samples), 10, proxy)
    session = via_proxy.connect(request_timeout=5.0)
    try:
        with pytest.raises(ingest.IngestError) as raised:
            ingest.write_samples(session, samples, config)
    finally:
        session.cluster.shutdown()
        proxy.close()
    message = str(raised.value)
    assert f"Cassandra at 127.0.0.1:{proxy.port}" in message and "unreachable" in message
    assert "Run the same command again" in message
    assert "retries over" in message and "retry budget 3 s" in message
