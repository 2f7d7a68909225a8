"""What an elastic resume costs on a long list (issue 20): the time to build a pipeline that
resumes another world size's checkpoint on a 10 M-row binary rows file (the list's digest is
read whole to check it is the same list), against building a fresh one, and the size of a
reader checkpoint after several resumes within one epoch (it keeps only what is left of the
epoch: intervals, not a history).

    python bench/elastic_resume.py [--rows 10000000] [--port P]

Starts its own server without --port. The list cycles over --real rows that exist, so the
resumed pipelines read real rows.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_server import server_for, write_cycled_rows_file, write_random_rows

KEYSPACE = "bench_elastic"
BATCH = 128


def build(conn: Any, rows_file: Path, shard: int, shards: int, checkpoint: bytes | None) -> Any:
    from cassandra_dali.client import Connection
    from cassandra_dali.sources import CassandraSource
    from nvidia.dali import pipeline_def

    source = CassandraSource(f"{KEYSPACE}.data", rows_file=rows_file,
                             connection=Connection(conn.host, conn.port))

    @pipeline_def(batch_size=BATCH, num_threads=2, device_id=None, enable_checkpointing=True)
    def pipe() -> Any:
        return source.read(shard_id=shard, num_shards=shards)

    p = pipe(checkpoint=checkpoint) if checkpoint else pipe()
    p.build()
    return p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--real", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from cassandra_dali import checkpoints

    with server_for(args.host, args.port, "elastic") as conn, \
            tempfile.TemporaryDirectory(prefix="elastic-") as work:
        session = conn.connect()
        real_ids, _ = write_random_rows(session, KEYSPACE, args.real, 512)
        session.cluster.shutdown()
        rows = Path(work) / "long.rowsb"
        write_cycled_rows_file(rows, real_ids, args.rows)
        print(f"list: {args.rows:,} UUIDs, {rows.stat().st_size / 1e6:.0f} MB; batch {BATCH}")

        # A run of 4 ranks, 5 batches each, then their checkpoints.
        ranks = [build(conn, rows, j, 4, None) for j in range(4)]
        for _ in range(5):
            for p in ranks:
                p.run()
        cut = [p.checkpoint() for p in ranks]
        del ranks

        fresh, resumed = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            p = build(conn, rows, 0, 6, None)
            p.run()
            fresh.append(time.perf_counter() - started)
            del p
            started = time.perf_counter()
            p = build(conn, rows, 0, 6, cut[0])
            p.run()
            resumed.append(time.perf_counter() - started)
            del p
        print(f"build + first batch, 6 ranks' rank 0, median of {args.repeats}: fresh "
              f"{statistics.median(fresh):.2f} s, resuming the 4 ranks' checkpoint "
              f"{statistics.median(resumed):.2f} s "
              f"({statistics.median(resumed) / statistics.median(fresh):.2f}x)")

        # Several resumes in one epoch: 4 -> 6 -> 5 -> 3 -> 7 ranks, 3 batches between.
        state = cut[0]
        for shards in (6, 5, 3, 7):
            p = build(conn, rows, 0, shards, state)
            for _ in range(3):
                p.run()
            state = p.checkpoint()
            reader = checkpoints.reader_checkpoints(state)["Reader"]
            print(f"after resuming on {shards} ranks: reader checkpoint {len(reader['text'])} "
                  f"bytes ({len(reader['rest'])} intervals left of the epoch), pipeline "
                  f"checkpoint {len(state)} bytes")
            del p


if __name__ == "__main__":
    main()
