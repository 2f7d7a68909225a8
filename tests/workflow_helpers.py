"""What the workflow tests share: the generated dataset, its keyspace, the example scripts run
as a user runs them, and the train split ingested and listed once per test session."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cassandra_dali import server
from cassandra_dali.client import Connection, cql_files
from cassandra_dali.dataset import images, rows_files
from conftest import unique_keyspace_name

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "imagenette"
TRAIN_PER_CLASS, VAL_PER_CLASS, SEED = 4, 2, 7
N_TRAIN = TRAIN_PER_CLASS * len(images.IMAGENETTE_CLASSES)


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


@pytest.fixture(scope="session")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("imagenette")
    images.generate(path, TRAIN_PER_CLASS, VAL_PER_CLASS, SEED, workers=2)
    return path


@pytest.fixture(scope="session")
def ks(cassandra_server: server.ServerInfo, cql_session: Any) -> Iterator[str]:
    """create_tables.cql applied under a keyspace of the workflow tests' own."""
    name = unique_keyspace_name("workflow")
    cql_files.apply(cql_session, EXAMPLES / "create_tables.cql", keyspace=name)
    try:
        yield name
    finally:
        cql_session.execute(f"DROP KEYSPACE IF EXISTS {name}")


@pytest.fixture(scope="session")
def conn(cassandra_server: server.ServerInfo) -> Connection:
    return Connection(host=cassandra_server.host, port=cassandra_server.port)


def conn_flags(conn: Connection) -> list[str]:
    return ["--host", conn.host, "--port", str(conn.port)]


def expected_train(root: Path) -> dict[uuid.UUID, tuple[int, str, str]]:
    """id -> (label, sha256, class) for every train file, from the files themselves."""
    out = {}
    for label, wnid in enumerate(sorted(images.IMAGENETTE_CLASSES)):
        for path in sorted((root / "train" / wnid).iterdir()):
            out[rows_files.sample_uuid(f"train/{wnid}/{path.name}")] = (
                label,
                sha(path.read_bytes()),
                wnid,
            )
    return out


@pytest.fixture(scope="session")
def ingested(root: Path, ks: str, conn: Connection) -> str:
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


@pytest.fixture(scope="session")
def rows_file(
    ingested: str, conn: Connection, tmp_path_factory: pytest.TempPathFactory
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

