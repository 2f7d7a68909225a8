"""The Imagenette workflow of examples/imagenette against the real server: generate, create the
tables, ingest, list the UUIDs, read back through DALI, and the bad inputs along the way.

The example scripts are run as a user runs them (subprocesses, flags as in the README), each
pointed at this session's server with --port; the library is called directly where a test needs
to look inside (summaries, failure injection)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cassandra_dali
import numpy as np
import pytest
from cassandra_dali import connection, dataset, ingest, schema, server, uuids
from conftest import unique_keyspace_name
from nvidia.dali import fn, pipeline_def
from PIL import Image
from tcp_proxy import TcpProxy

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "imagenette"
TRAIN_PER_CLASS, VAL_PER_CLASS, SEED = 4, 2, 7
N_TRAIN = TRAIN_PER_CLASS * len(dataset.IMAGENETTE_CLASSES)


def sha(data: bytes | np.ndarray) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()


def script_env() -> dict[str, str]:
    # The scripts run with this interpreter; its bin/ (torchrun, cqlsh) comes first on PATH.
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_script(
    *args: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=EXAMPLES,
        env=env or script_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{args[0]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("imagenette")
    dataset.generate(path, TRAIN_PER_CLASS, VAL_PER_CLASS, SEED, workers=2)
    return path


@pytest.fixture(scope="module")
def ks(cassandra_server: server.ServerInfo, cql_session: Any) -> Iterator[str]:
    """create_tables.cql applied under a keyspace of this module's own."""
    name = unique_keyspace_name("workflow")
    schema.apply(cql_session, EXAMPLES / "create_tables.cql", keyspace=name)
    try:
        yield name
    finally:
        cql_session.execute(f"DROP KEYSPACE IF EXISTS {name}")


@pytest.fixture(scope="module")
def conn(cassandra_server: server.ServerInfo) -> connection.Connection:
    return connection.Connection(host=cassandra_server.host, port=cassandra_server.port)


def conn_flags(conn: connection.Connection) -> list[str]:
    return ["--host", conn.host, "--port", str(conn.port)]


def expected_train(root: Path) -> dict[uuid.UUID, tuple[int, str, str]]:
    """id -> (label, sha256, class) for every train file, from the files themselves."""
    out = {}
    for label, wnid in enumerate(sorted(dataset.IMAGENETTE_CLASSES)):
        for path in sorted((root / "train" / wnid).iterdir()):
            out[uuids.sample_uuid(f"train/{wnid}/{path.name}")] = (
                label,
                sha(path.read_bytes()),
                wnid,
            )
    return out


@pytest.fixture(scope="module")
def ingested(root: Path, ks: str, conn: connection.Connection) -> str:
    """The train split stored with extract_serial.py, as the README does it."""
    result = run_script(
        "extract_serial.py",
        str(root),
        "--split-subdir=train",
        "--data-table",
        f"{ks}.data_train",
        "--metadata-table",
        f"{ks}.metadata_train",
        "--no-progress",
        *conn_flags(conn),
    )
    assert f"{N_TRAIN} written" in result.stdout, result.stdout
    return ks


@pytest.fixture(scope="module")
def rows_file(
    ingested: str, conn: connection.Connection, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("rows") / "train.rows"
    result = run_script(
        "cache_uuids.py",
        f"--metadata-table={ingested}.metadata_train",
        "--rows-fn",
        str(path),
        *conn_flags(conn),
    )
    assert f"{N_TRAIN} UUIDs" in result.stdout
    return path


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------


def test_generator_layout_and_sizes(root: Path) -> None:
    assert sorted(p.name for p in root.iterdir()) == ["train", "val"]
    for split, per_class in (("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)):
        assert sorted(p.name for p in (root / split).iterdir()) == sorted(
            dataset.IMAGENETTE_CLASSES
        )
        for wnid in dataset.IMAGENETTE_CLASSES:
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
                    assert image.format == "JPEG" and min(image.size) == dataset.SHORT_SIDE
    assert (root / "val" / "n01440764" / "ILSVRC2012_val_00000001.JPEG").is_file()
    assert (root / "train" / "n03888605" / "n03888605_10000.JPEG").is_file()


def test_generator_is_deterministic(tmp_path: Path) -> None:
    classes = dataset.IMAGENETTE_CLASSES[:2]
    for name, seed, workers in (("a", 3, 1), ("b", 3, 2), ("c", 4, 1)):
        dataset.generate(tmp_path / name, 1, 1, seed, classes=classes, workers=workers)

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
    # Both files differ only in the keyspace.
    assert (
        schema.created_keyspace((EXAMPLES / "create_tables.imagenet.cql").read_text()) == "imagenet"
    )
    assert schema.created_keyspace((EXAMPLES / "create_tables.cql").read_text()) == "imagenette"


def test_cqlsh_runs_the_file(conn: connection.Connection, cql_session: Any, tmp_path: Path) -> None:
    cqlsh = shutil.which("cqlsh", path=script_env()["PATH"])
    if cqlsh is None:
        pytest.skip("cqlsh is not installed (pip install cqlsh)")
    name = unique_keyspace_name("cqlsh")
    script = tmp_path / "create_tables.cql"
    script.write_text(
        ";\n".join(
            schema.split_statements((EXAMPLES / "create_tables.cql").read_text(), keyspace=name)
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


def test_cli_schema_apply(conn: connection.Connection, cql_session: Any) -> None:
    name = unique_keyspace_name("cli_schema")
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cassandra_dali.cli",
                "schema",
                "apply",
                str(EXAMPLES / "create_tables.imagenet.cql"),
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
    assert schema.split_statements(text) == [
        "CREATE KEYSPACE k WITH r = {'a': 'x;y'}",
        "INSERT INTO k.t (a) VALUES ('it''s')",
    ]
    assert (
        schema.split_statements(text, keyspace="other")[1]
        == "INSERT INTO \"other\".t (a) VALUES ('it''s')"
    )
    # A renamed keyspace is always quoted: whatever the name holds stays a name.
    assert schema.split_statements(text, keyspace='"k; DROP KEYSPACE k"')[1].startswith(
        'INSERT INTO "k; DROP KEYSPACE k".t'
    )
    with pytest.raises(schema.CqlSyntaxError, match="unterminated"):
        schema.split_statements("SELECT 'abc")


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
    root: Path, ingested: str, conn: connection.Connection, cql_session: Any
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
    root: Path, ingested: str, conn: connection.Connection, cql_session: Any
) -> None:
    config = ingest.IngestConfig(
        f"{ingested}.data_val", f"{ingested}.metadata_val", connection=conn
    )
    summary = ingest.ingest_split(root, "val", config)
    assert summary.written == VAL_PER_CLASS * len(dataset.IMAGENETTE_CLASSES)
    rows = list(
        cql_session.execute(f"SELECT label, or_label, or_split FROM {ingested}.metadata_val")
    )
    # Same class folders, same labels as train: sorted WordNet ids numbered from 0.
    assert {(r.label, r.or_label) for r in rows} == set(
        enumerate(sorted(dataset.IMAGENETTE_CLASSES))
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
    bad_root: Path, bad_tables: tuple[str, str], conn: connection.Connection, cql_session: Any
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
    bad_root: Path, bad_tables: tuple[str, str], conn: connection.Connection
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


def test_unknown_table_and_host(root: Path, ks: str, conn: connection.Connection) -> None:
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
    via_proxy = connection.Connection(host="127.0.0.1", port=proxy.port)
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


# --------------------------------------------------------------------------------------------
# UUIDs and reading back
# --------------------------------------------------------------------------------------------


def test_rows_file_round_trip(root: Path, rows_file: Path, tmp_path: Path) -> None:
    ids = uuids.read_rows_file(rows_file)
    assert ids == sorted(str(u) for u in expected_train(root))  # sorted, complete, no comments
    assert rows_file.read_text().startswith("# ")
    copy = tmp_path / "copy.rows"
    assert uuids.write_rows_file(copy, reversed(ids)) == len(ids)
    assert uuids.read_rows_file(copy) == ids


def test_token_ranges_cover_the_ring() -> None:
    for splits in (1, 3, 64):
        ranges = uuids.token_ranges(splits)
        assert len(ranges) == splits
        assert ranges[0][0] == uuids.MIN_TOKEN and ranges[-1][1] == uuids.MAX_TOKEN
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert all(lo < hi for lo, hi in ranges)


def test_scan_with_few_and_many_ranges(ingested: str, cql_session: Any) -> None:
    one = uuids.scan_ids(cql_session, f"{ingested}.metadata_train", splits=1)
    many = uuids.scan_ids(cql_session, f"{ingested}.metadata_train", splits=1000, fetch_size=3)
    assert one == many and len(one) == N_TRAIN


def test_every_file_reads_back_byte_exact(
    root: Path, rows_file: Path, ingested: str, conn: connection.Connection
) -> None:
    expected = expected_train(root)
    batch_size = 16

    @pipeline_def(batch_size=batch_size, num_threads=1, device_id=None)
    def pipe() -> Any:
        data, labels = fn.crs4.cassandra(
            name="Reader",
            table=f"{ingested}.data_train",
            source_uuids_file=str(rows_file),
            **conn.reader_kwargs(),
        )
        return data, labels

    p = pipe()
    p.build()
    layout = cassandra_dali._native.shard_layout(N_TRAIN, 1, 0, batch_size)
    seen: dict[str, int] = {}
    for _ in range(layout["batches_per_epoch"]):
        data, labels = p.run()
        for i in range(len(data)):
            seen[sha(np.array(data[i]))] = int(np.array(labels[i])[0])
    assert seen == {digest: label for label, digest, _ in expected.values()}


# --------------------------------------------------------------------------------------------
# loop_read.py
# --------------------------------------------------------------------------------------------


def test_loop_read_both_readers(
    root: Path, rows_file: Path, ingested: str, conn: connection.Connection, tmp_path: Path
) -> None:
    out = run_script(
        "loop_read.py",
        "--data-table",
        f"{ingested}.data_train",
        "--rows-fn",
        str(rows_file),
        "--bs",
        "8",
        "--epochs",
        "2",
        "--json",
        str(tmp_path / "c.json"),
        *conn_flags(conn),
    ).stdout
    assert "epoch 0:" in out and "epoch 1:" in out and "images/s" in out and "MB/s" in out
    assert "epoch 0 left out as warm-up" in out
    out = run_script(
        "loop_read.py",
        "--reader=file",
        f"--file-root={root / 'train'}",
        "--bs",
        "8",
        "--epochs",
        "1",
    ).stdout
    assert "file:" in out and "images/s" in out
    import json

    figures = json.loads((tmp_path / "c.json").read_text())
    assert figures["batches_per_epoch"] == 5 and figures["images_per_s"] > 0


def test_loop_read_use_gpu_without_gpu(root: Path) -> None:
    from nvidia.dali.backend import GetCUDADeviceCount

    if GetCUDADeviceCount() > 0:
        pytest.skip("this machine has a GPU")
    result = run_script(
        "loop_read.py", "--reader=file", f"--file-root={root / 'train'}", "--use-gpu", check=False
    )
    assert result.returncode == 1
    assert "--use-gpu needs an NVIDIA GPU" in result.stderr and "Traceback" not in result.stderr


def test_loop_read_with_the_server_down(rows_file: Path) -> None:
    result = run_script(
        "loop_read.py", "--data-table=ks.t", f"--rows-fn={rows_file}", "--port=1", check=False
    )
    assert result.returncode == 1, result.stderr
    assert "loop_read.py: error: fn.crs4.cassandra: cannot connect to Cassandra at 127.0.0.1:1" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr and "pipeline" not in result.stderr


def _two_ranks(args: list[str], record: Path) -> None:
    """loop_read.py with 2 ranks: torchrun when installed, else the variables torchrun sets."""
    torchrun = shutil.which("torchrun", path=script_env()["PATH"])
    if torchrun is not None:
        result = subprocess.run(
            [
                torchrun,
                "--standalone",
                "--nproc_per_node=2",
                "loop_read.py",
                *args,
                "--record",
                str(record),
            ],
            cwd=EXAMPLES,
            env=script_env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return
    processes = []
    for rank in range(2):
        env = dict(
            script_env(),
            RANK=str(rank),
            WORLD_SIZE="2",
            LOCAL_RANK=str(rank),
            LOCAL_WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT="29500",
        )
        processes.append(
            subprocess.Popen(
                [sys.executable, "loop_read.py", *args, "--record", str(record)],
                cwd=EXAMPLES,
                env=env,
            )
        )
    assert [p.wait(timeout=180) for p in processes] == [0, 0]


@pytest.mark.parametrize("reader", ["cassandra", "file"])
def test_two_ranks_see_disjoint_samples(
    reader: str,
    root: Path,
    rows_file: Path,
    ingested: str,
    conn: connection.Connection,
    tmp_path: Path,
) -> None:
    if reader == "cassandra":
        args = [
            "--data-table",
            f"{ingested}.data_train",
            "--rows-fn",
            str(rows_file),
            *conn_flags(conn),
        ]
    else:
        args = ["--reader=file", f"--file-root={root / 'train'}"]
    _two_ranks([*args, "--bs", "4", "--epochs", "1"], tmp_path / "seen")
    per_rank = [
        {line.split()[0] for line in (tmp_path / f"seen.{rank}").read_text().splitlines()}
        for rank in range(2)
    ]
    everything = {digest for _, digest, _ in expected_train(root).values()}
    assert per_rank[0].isdisjoint(per_rank[1])
    assert per_rank[0] | per_rank[1] == everything
    assert abs(len(per_rank[0]) - len(per_rank[1])) <= 1
