"""extract_spark.py gives the same rows as extract_serial.py: under spark-submit with local[2],
and on a standalone Spark master and worker started from the installed pyspark.

Slow (JVM starts): deselect with ``-m "not slow"`` (or ``--deselect tests/test_spark.py``).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cassandra_dali import server
from cassandra_dali.dataset import images
from conftest import unique_keyspace_name

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from spark_standalone import StandaloneSpark, spark_env  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.spark]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "imagenette"
SPARK_HOME = Path(pyspark.__file__).parent
TRAIN_PER_CLASS = 3
TARGETS = ("serial", "local", "standalone")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("imagenette_spark")
    images.generate(path, TRAIN_PER_CLASS, 0, seed=11, workers=2)
    return path


@pytest.fixture(scope="module")
def ks(cql_session: Any) -> Iterator[str]:
    name = unique_keyspace_name("spark")
    cql_session.execute(
        f"CREATE KEYSPACE {name} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    for target in TARGETS:
        cql_session.execute(
            f"CREATE TABLE {name}.data_{target} (id uuid PRIMARY KEY, label int, "
            "data blob) WITH compression = {'enabled': 'false'}"
        )
        cql_session.execute(
            f"CREATE TABLE {name}.metadata_{target} (id uuid PRIMARY KEY, "
            "label int, or_label text, or_split text)"
        )
    try:
        yield name
    finally:
        cql_session.execute(f"DROP KEYSPACE IF EXISTS {name}")


def ingest_args(root: Path, ks: str, target: str, info: server.ServerInfo) -> list[str]:
    return [
        str(root),
        "--split-subdir=train",
        "--data-table",
        f"{ks}.data_{target}",
        "--metadata-table",
        f"{ks}.metadata_{target}",
        "--no-progress",
        "--host",
        info.host,
        "--port",
        str(info.port),
    ]


def spark_submit(master: str, args: list[str], log: Path) -> str:
    command = [
        str(SPARK_HOME / "bin" / "spark-submit"),
        "--master",
        master,
        "--conf",
        "spark.default.parallelism=10",
        "--conf",
        "spark.driver.host=127.0.0.1",
        "--conf",
        "spark.executor.memory=1g",
        "--conf",
        "spark.ui.enabled=false",
        "extract_spark.py",
        *args,
    ]
    result = subprocess.run(
        command, cwd=EXAMPLES, env=spark_env(), capture_output=True, text=True, timeout=240
    )
    log.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"spark-submit failed, see {log}:\n{result.stderr[-4000:]}"
    return result.stdout


def table_contents(session: Any, ks: str, target: str) -> tuple[dict[Any, Any], dict[Any, Any]]:
    data = {
        r.id: (r.label, hashlib.sha256(r.data).hexdigest())
        for r in session.execute(f"SELECT id, label, data FROM {ks}.data_{target}")
    }
    metadata = {
        r.id: (r.label, r.or_label, r.or_split)
        for r in session.execute(
            f"SELECT id, label, or_label, or_split FROM {ks}.metadata_{target}"
        )
    }
    return data, metadata


def test_serial_and_spark_give_the_same_tables(
    root: Path, ks: str, cassandra_server: server.ServerInfo, cql_session: Any, tmp_path: Path
) -> None:
    n = TRAIN_PER_CLASS * len(images.IMAGENETTE_CLASSES)
    serial = subprocess.run(
        [sys.executable, "extract_serial.py", *ingest_args(root, ks, "serial", cassandra_server)],
        cwd=EXAMPLES,
        env=spark_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert serial.returncode == 0, serial.stderr
    assert f"{n} written" in serial.stdout

    out = spark_submit(
        "local[2]", ingest_args(root, ks, "local", cassandra_server), tmp_path / "local.log"
    )
    assert f"{n} written" in out and "0 failed" in out

    spark = StandaloneSpark(tmp_path)
    try:
        spark.start()
        out = spark_submit(
            spark.url,
            ingest_args(root, ks, "standalone", cassandra_server),
            tmp_path / "standalone.log",
        )
    finally:
        spark.stop()
    assert f"{n} written" in out
    # The job ran on the worker's executor, not in the driver.
    assert any((tmp_path / "work").glob("app-*/*/stderr"))

    serial_tables = table_contents(cql_session, ks, "serial")
    assert len(serial_tables[0]) == n and len(serial_tables[1]) == n
    assert table_contents(cql_session, ks, "local") == serial_tables
    assert table_contents(cql_session, ks, "standalone") == serial_tables
