"""Run inside a fresh venv where only the built wheel (and its dependencies) is installed:
start a local server, write a few rows, read them back through fn.crs4.cassandra; the demo's
tables file and the command line must be there too (they ship in the package)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
from nvidia.dali import fn, pipeline_def

import cassandra_dali
from cassandra_dali import server
from cassandra_dali.dataset import TABLES_CQL


def main() -> None:
    print("cassandra_dali from", Path(cassandra_dali.__file__).parent)
    print("driver:", cassandra_dali.driver_info())
    assert TABLES_CQL.is_file() and "CREATE TABLE" in TABLES_CQL.read_text(), TABLES_CQL
    # The jar lock ships too: the server's jars come without Maven.
    from cassandra_dali.server import jar_lock
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

            @pipeline_def(batch_size=8, num_threads=1, device_id=None)
            def pipe():  # type: ignore[no-untyped-def]
                return tuple(fn.crs4.cassandra(table="smoke.data", cassandra_port=info.port,
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
        finally:
            server.stop(Path(directory))


if __name__ == "__main__":
    main()
