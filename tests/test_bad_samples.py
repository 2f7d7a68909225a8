"""on_bad_sample (issue 21) against the real server: a row deleted, a null value and a corrupt
sample (CRC32C mismatch) raise under "error", and under "replace" each position delivers the
next good sample of the list, the same substitute on every rank, across a checkpoint and on
another number of ranks; each bad sample is quarantined once (a JSON line) and counted, and
`cassandra-dali data exclude` writes the list without them."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cassandra.concurrent import execute_concurrent_with_args
from nvidia.dali import fn, pipeline_def

import cassandra_dali
from cassandra_dali import _native, checkpoints, server, telemetry
from cassandra_dali.dataset import checksums, quarantine, rows_files
from reader_helpers import reader_kwargs

SIZE = 64
SEED = 77
BATCH = 8
# Positions in the list (the order of `ids`): 5 deleted and 6 null (5's substitute is then 7),
# 20 corrupt, 63 deleted (the last: its substitute wraps to 0).
BAD = {5: "missing_row", 6: "null_value", 20: "checksum_mismatch", 63: "missing_row"}
SUBSTITUTE = {5: 7, 6: 7, 20: 21, 63: 0}


@pytest.fixture(scope="module")
def table(cql_session: Any, keyspace: str) -> tuple[str, list[str]]:
    """keyspace.bad: label = the list position, a crc32c column; then the damage of BAD."""
    rng = np.random.default_rng(21)
    ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(SIZE)]
    blobs = [rng.bytes(int(rng.integers(500, 4000))) for _ in range(SIZE)]
    cql_session.execute(f"CREATE TABLE {keyspace}.bad "
                        "(id uuid PRIMARY KEY, label int, data blob, crc32c int)")
    insert = cql_session.prepare(
        f"INSERT INTO {keyspace}.bad (id, label, data, crc32c) VALUES (?, ?, ?, ?)")
    results = execute_concurrent_with_args(
        cql_session, insert,
        [(uuid.UUID(u), i, b, checksums.crc32c(b)) for i, (u, b) in enumerate(zip(ids, blobs))])
    assert all(ok for ok, _ in results)
    for position in (5, 63):
        cql_session.execute(f"DELETE FROM {keyspace}.bad WHERE id = %s", (uuid.UUID(ids[position]),))
    cql_session.execute(f"UPDATE {keyspace}.bad SET data = null WHERE id = %s",
                        (uuid.UUID(ids[6]),))
    cql_session.execute(f"UPDATE {keyspace}.bad SET data = %s WHERE id = %s",
                        (b"flipped" + blobs[20][7:], uuid.UUID(ids[20])))
    return f"{keyspace}.bad", ids


def expected_label(position: int) -> int:
    return SUBSTITUTE.get(position, position)


def pipelines(info: server.ServerInfo, tbl: tuple[str, list[str]], shards: int,
              resume: list[bytes] | None = None, **extra: Any) -> list[Any]:
    name, ids = tbl
    pipes = []
    for j in range(shards):
        args = reader_kwargs(info, name, source_uuids=ids, checksum_col="crc32c", shard_id=j,
                             num_shards=shards, shuffle_seed=SEED,
                             **{"loop_forever": False, "telemetry_name": f"bad-{shards}-{j}",
                                **extra})

        @pipeline_def(batch_size=BATCH, num_threads=1, device_id=None, enable_checkpointing=True)
        def pipe() -> tuple[Any, Any]:
            return tuple(fn.crs4.cassandra(name="Reader", **args))

        p = pipe(checkpoint=resume[j % len(resume)]) if resume else pipe()
        p.build()
        pipes.append(p)
    return pipes


def labels_of(pipe: Any) -> list[int]:
    _, labels = pipe.run()
    return [int(np.array(labels[i])[0]) for i in range(len(labels))]


def epoch_positions(shards: int, shard: int, epoch: int) -> list[int]:
    return _native.epoch_indices(SIZE, shards, shard, BATCH, epoch, True, SEED)


def test_error_policy_raises_naming_the_sample(cassandra_server: server.ServerInfo,
                                               table: tuple[str, list[str]]) -> None:
    pipe = pipelines(cassandra_server, table, 1)[0]
    with pytest.raises(RuntimeError) as raised:
        for _ in range(SIZE // BATCH):
            pipe.run()
    bad_ids = {table[1][p] for p in BAD}
    assert any(i in str(raised.value) for i in bad_ids), str(raised.value)


def test_replace_delivers_the_next_good_sample(cassandra_server: server.ServerInfo,
                                               table: tuple[str, list[str]],
                                               tmp_path: Path) -> None:
    quarantine_file = tmp_path / "q.jsonl"
    name = "bad-replace-two-epochs"
    pipe = pipelines(cassandra_server, table, 1, on_bad_sample="replace",
                     quarantine_file=str(quarantine_file), loop_forever=True,
                     telemetry_name=name)[0]
    for epoch in range(2):  # met again in the second epoch: replaced again, quarantined once
        got = [i for _ in range(SIZE // BATCH) for i in labels_of(pipe)]
        assert got == [expected_label(p) for p in epoch_positions(1, 0, epoch)]
    entries = quarantine.read_quarantine([quarantine_file])
    assert {table[1].index(str(e.uuid)): e.reason for e in entries} == BAD
    assert all(e.table == table[0] for e in entries)
    # Each bad position met in each epoch, and 6 once more as 5's first candidate if 5 came
    # first in epoch 0; in epoch 1 5's substitute is known.
    assert 2 * len(BAD) <= telemetry.readers(name)[0].bad_samples <= 2 * len(BAD) + 1
    # The quarantine gives the list for the next epochs.
    rows = tmp_path / "rows.txt"
    rows_files.write_rows_file(rows, table[1])
    kept = tmp_path / "kept.txt"
    result = subprocess.run([sys.executable, "-m", "cassandra_dali.cli", "data", "exclude",
                             "--rows-fn", str(rows), "--quarantine", str(quarantine_file),
                             "--out", str(kept)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert set(rows_files.read_rows_file(kept)) == \
        {u for i, u in enumerate(table[1]) if i not in BAD}


@pytest.mark.parametrize(("s1", "s2"), [(2, 3), (4, 1)])
def test_replace_is_the_same_across_a_checkpoint_and_other_ranks(
    cassandra_server: server.ServerInfo, table: tuple[str, list[str]], tmp_path: Path,
    s1: int, s2: int,
) -> None:
    extra = dict(on_bad_sample="replace", quarantine_file=str(tmp_path / "q.jsonl"))
    first = pipelines(cassandra_server, table, s1, **extra)
    delivered = {j: labels_of(p) for j, p in enumerate(first)}  # one batch each
    cut = [p.checkpoint() for p in first]
    state = checkpoints.reader_checkpoints(cut[0])["Reader"]
    assert state["on_bad_sample"] == "replace"
    # The positions each old rank delivered, and what the new ranks deliver of the rest.
    before = {j: epoch_positions(s1, j, 0)[:BATCH] for j in range(s1)}
    for j in range(s1):
        assert delivered[j] == [expected_label(p) for p in before[j]]
    second = pipelines(cassandra_server, table, s2, resume=cut, **extra)
    plan = checkpoints.resume_point(state["text"], s2, 0, BATCH)
    after: list[int] = []
    for p in second:
        labels: list[int] = []
        for _ in range(plan["batches_in_epoch"]):
            labels += labels_of(p)
        after += labels
    # Every position not delivered before the cut, once, each as its substitute where bad
    # (64 samples split into whole batches here: no padding).
    rest = set(range(SIZE)) - {q for b in before.values() for q in b}
    assert Counter(after) == Counter(expected_label(p) for p in rest)


def test_the_python_reader_still_raises(cassandra_server: server.ServerInfo,
                                        table: tuple[str, list[str]]) -> None:
    reader = cassandra_dali.Reader(table[0], cassandra_ips=[cassandra_server.host],
                                   cassandra_port=cassandra_server.port, checksum_col="crc32c")
    with pytest.raises(cassandra_dali.MissingRowError, match=table[1][5]):
        reader.read([table[1][4], table[1][5]])
