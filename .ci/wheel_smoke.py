"""Run inside a fresh venv where only the built wheel (and its dependencies) is installed:
start a local server, write a few rows, read them back through fn.crs4.cassandra (and through
cassandra_dali.Reader); the demo's tables file, the jar lock and the command line must be there
too (they ship in the package).

    python wheel_smoke.py             # a DALI extra installed ([cuda12] or [cuda13])
    python wheel_smoke.py --no-dali   # no DALI: the package imports, Reader reads, and the DALI
                                      # operators say what to install
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import uuid
from importlib import metadata
from pathlib import Path

import numpy as np

import cassandra_dali
from cassandra_dali import server
from cassandra_dali.dataset import TABLES_CQL
from cassandra_dali.server import jar_lock


def read_through_dali(port: int, rows: dict[str, tuple[int, bytes]]) -> None:
    from nvidia.dali import fn, pipeline_def

    @pipeline_def(batch_size=8, num_threads=1, device_id=None)
    def pipe():  # type: ignore[no-untyped-def]
        return tuple(fn.crs4.cassandra(table="smoke.data", cassandra_port=port,
                                       source_uuids=list(rows)))

    p = pipe()
    p.build()
    by_label = {label: blob for label, blob in rows.values()}
    seen = set()
    for _ in range(3):
        data, labels = p.run()
        for i in range(8):
            label = int(np.array(labels[i])[0])
            got = hashlib.sha256(bytes(np.array(data[i]))).hexdigest()
            assert got == hashlib.sha256(by_label[label]).hexdigest(), label
            seen.add(label)
    assert seen == set(range(24)), seen
    print("wheel smoke test: 24 rows read back byte-exact through fn.crs4.cassandra")


def main(no_dali: bool) -> None:
    print("cassandra_dali from", Path(cassandra_dali.__file__).parent)
    print("driver:", cassandra_dali.driver_info())
    dalis = {d: metadata.version(d) for d in ("nvidia-dali-cuda120", "nvidia-dali-cuda130")
             if any(x.metadata["Name"] == d for x in metadata.distributions())}
    print("DALI:", dalis or "none", "plugin:", cassandra_dali.PLUGIN_PATH)
    if no_dali:
        assert not dalis and cassandra_dali.PLUGIN_PATH is None
        try:
            cassandra_dali.require_dali()
        except ImportError as error:
            assert "cassandra-dali[cuda12]" in str(error), error
            print("without DALI:", error)
        else:
            raise AssertionError("require_dali() passed without DALI")
    else:
        assert len(dalis) == 1 and cassandra_dali.PLUGIN_PATH is not None, dalis
    assert TABLES_CQL.is_file() and "CREATE TABLE" in TABLES_CQL.read_text(), TABLES_CQL
    # The jar lock ships too: the server's jars come without Maven.
    assert server.DEFAULT_VERSION in jar_lock.locked_versions(), jar_lock.LOCK_DIR
    print("java:", server.find_java_home())
    help_text = subprocess.run([sys.executable, "-m", "cassandra_dali.cli", "--help"],
                               check=True, capture_output=True, text=True).stdout
    assert all(group in help_text for group in ("server", "data", "schema", "demo")), help_text
    with tempfile.TemporaryDirectory(prefix="wheel-smoke-") as directory:
        info = server.start(server.ServerConfig(dir=Path(directory), heap="768M"))
        try:
            session = info.connect()
            session.execute("CREATE KEYSPACE smoke WITH replication = "
                            "{'class': 'SimpleStrategy', 'replication_factor': 1}")
            session.execute("CREATE TABLE smoke.data (id uuid PRIMARY KEY, label int, data blob)")
            rng = np.random.default_rng(0)
            rows = {str(uuid.uuid4()): (i, rng.bytes(5000 + i)) for i in range(24)}
            insert = session.prepare("INSERT INTO smoke.data (id, label, data) VALUES (?, ?, ?)")
            for u, (label, blob) in rows.items():
                session.execute(insert, (uuid.UUID(u), label, blob))
            reader = cassandra_dali.Reader("smoke.data", cassandra_port=info.port)
            data, labels, _ = reader.read(list(rows))
            assert [bytes(d) for d in data] == [blob for _, blob in rows.values()]
            print("wheel smoke test: 24 rows read back byte-exact through cassandra_dali.Reader")
            if not no_dali:
                read_through_dali(info.port, rows)
        finally:
            server.stop(Path(directory))


if __name__ == "__main__":
    main("--no-dali" in sys.argv[1:])
