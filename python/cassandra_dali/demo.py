"""``python -m cassandra_dali.demo``: a local Cassandra and a CQL round trip, step by step.

Starts a server in a fresh temporary directory (or ``--dir``), writes a few rows of random
bytes keyed by UUID, reads them back, checks them and stops the server, printing each step and
its duration.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import server

if TYPE_CHECKING:
    from cassandra.cluster import Session


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    print(f"-> {title} ...", flush=True)
    started = time.monotonic()
    yield
    print(f"   done in {time.monotonic() - started:.1f} s", flush=True)


def run(directory: Path, rows: int, heap: str) -> None:
    with step("fetching the Cassandra jars (once per machine, then cached)"):
        print(f"   {server.installation().source}")
    with step(f"starting Cassandra in {directory}"):
        info = server.start(server.ServerConfig(dir=directory, heap=heap, cluster_name="demo"))
        print(f"   listening at {info.contact_point}, pid {info.pid}")
    try:
        session = info.connect()
        try:
            round_trip(session, rows)
        finally:
            session.cluster.shutdown()
    finally:
        with step("stopping Cassandra"):
            server.stop(directory)


def round_trip(session: Session, rows: int) -> None:
    version = session.execute("SELECT release_version FROM system.local").one()[0]
    print(f"   connected: Cassandra {version}")
    with step("creating keyspace demo and table demo.samples (id uuid, label int, data blob)"):
        session.execute("CREATE KEYSPACE IF NOT EXISTS demo WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        session.execute("CREATE TABLE IF NOT EXISTS demo.samples "
                        "(id uuid PRIMARY KEY, label int, data blob)")
    samples = {uuid.uuid4(): (i % 10, os.urandom(64 * 1024)) for i in range(rows)}
    with step(f"writing {rows} rows of 64 KiB"):
        insert = session.prepare("INSERT INTO demo.samples (id, label, data) VALUES (?, ?, ?)")
        for key, (label, data) in samples.items():
            session.execute(insert, (key, label, data))
    with step(f"reading the {rows} rows back by id and comparing"):
        select = session.prepare("SELECT label, data FROM demo.samples WHERE id = ?")
        for key, (label, data) in samples.items():
            row = session.execute(select, (key,)).one()
            if row is None or row.label != label or row.data != data:
                raise SystemExit(f"row {key} came back different")
    print(f"   all {rows} rows identical")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cassandra_dali.demo", description=__doc__)
    parser.add_argument("--dir", type=Path,
                        help="server directory (default: a temporary one, removed afterwards)")
    parser.add_argument("--rows", type=int, default=100,
                        help="rows to write and read (%(default)s)")
    parser.add_argument("--heap", default=server.DEFAULT_HEAP, help="server heap (%(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="   %(message)s")
    started = time.monotonic()
    temporary = args.dir is None
    directory = args.dir or Path(tempfile.mkdtemp(prefix="cassandra-dali-demo-"))
    try:
        run(directory.resolve(), args.rows, args.heap)
    except server.ServerError as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
    finally:
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)
    print(f"demo finished in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
