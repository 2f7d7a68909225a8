"""Against a real 3-node cluster on 127.0.0.1-3 (``server start --nodes 3``): reads spread over
the ring and go to a replica of each row; a node SIGKILLed mid-epoch costs no sample at RF 3
and is used again once it is back, without restarting the pipeline; at RF 1 the error names the
rows' node; an ingest at the default LOCAL_QUORUM survives a node down.

The cluster is this module's own (about 30 s to start on 2 cores, 1 GiB of memory per node);
every test leaves all three nodes running.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cassandra_dali
import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.query import SimpleStatement
from cassandra_dali import _native, server, telemetry
from cassandra_dali.client import nodes
from cassandra_dali.dataset import images
from cassandra_dali.sources import cassandra_node
from nvidia.dali import pipeline_def
from reader_helpers import Dataset, check_batch, sha, write_dataset

pytestmark = pytest.mark.slow

NODES = 3
SIZE = 240
BATCH = 16
SEED = 1234
CLI = [sys.executable, "-m", "cassandra_dali.cli"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.ClusterInfo]:
    directory = tmp_path_factory.mktemp("cluster")
    info = server.start_cluster(server.ClusterConfig(dir=directory, nodes=NODES, heap="512M",
                                                     cluster_name="cassandra-dali-cluster"))
    try:
        yield info
    finally:
        server.stop_cluster(directory)


@pytest.fixture(scope="module")
def session(cluster: server.ClusterInfo) -> Iterator[Any]:
    session = cluster.connect()
    # Every replica acknowledges the test data: a node killed later cannot hold the only copy.
    profile = session.cluster.profile_manager.profiles[EXEC_PROFILE_DEFAULT]
    profile.consistency_level = ConsistencyLevel.ALL
    try:
        yield session
    finally:
        session.cluster.shutdown()


def _dataset(session: Any, keyspace: str, rf: int, seed: int) -> Dataset:
    session.execute(f"CREATE KEYSPACE {keyspace} WITH replication = "
                    f"{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}")
    return write_dataset(session, keyspace, SIZE, seed=seed)


@pytest.fixture(scope="module")
def rf3(session: Any) -> Dataset:
    return _dataset(session, "rf3", 3, seed=31)


@pytest.fixture(scope="module")
def rf1(session: Any) -> Dataset:
    return _dataset(session, "rf1", 1, seed=11)


def _pipeline(cluster: server.ClusterInfo, ds: Dataset, name: str, **extra: Any) -> Any:
    args = dict(cluster.connection().reader_kwargs(), table=f"{ds.keyspace}.data_int",
                source_uuids=ds.ids, shuffle_every_epoch=True, shuffle_seed=SEED,
                connect_timeout_ms=5000, **extra)

    @pipeline_def(batch_size=BATCH, num_threads=2, device_id=None, prefetch_queue_depth=2)
    def pipe() -> Any:
        return cassandra_node(args, name=name)

    p = pipe()
    p.build()
    return p


def _epoch(epoch: int) -> list[int]:
    return _native.epoch_indices(SIZE, 1, 0, BATCH, epoch, True, SEED)


def _node_reads(cluster: server.ClusterInfo, keyspace: str) -> dict[str, tuple[int, int]]:
    return nodes.node_read_counts(cluster, keyspace, "data_int")


def _quiet(name: str) -> telemetry.ReaderStats:
    """The reader's counters once its reads ahead have landed (nothing in flight, rows steady)."""
    deadline = time.monotonic() + 30
    last = telemetry.readers(name)[0]
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = telemetry.readers(name)[0]
        if now.in_flight == 0 and now.rows == last.rows:
            return now
        last = now
    raise AssertionError(f"reader {name} still reading after 30 s: {last}")


def test_cli_lists_each_node(cluster: server.ClusterInfo) -> None:
    result = subprocess.run([*CLI, "server", "status", "--dir", str(cluster.dir)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"{NODES} running" in result.stdout
    for k in range(1, NODES + 1):
        assert f"node{k} 127.0.0.{k}: running" in result.stdout, result.stdout
    tokens = [t for k in range(1, NODES + 1) for t in server.cluster.node_tokens(k, NODES, 16)]
    assert len(set(tokens)) == NODES * 16  # evenly spaced, no token shared


@pytest.mark.parametrize("rf", [1, 3])
def test_reads_go_to_the_rows_replica_and_spread_over_the_ring(
    cluster: server.ClusterInfo, request: pytest.FixtureRequest, rf: int
) -> None:
    ds: Dataset = request.getfixturevalue(f"rf{rf}")
    name = f"spread-rf{rf}"
    before = _node_reads(cluster, ds.keyspace)
    pipe = _pipeline(cluster, ds, name)
    seen = [i for _ in range(SIZE // BATCH) for i in check_batch(ds, pipe.run())]
    assert sorted(seen) == list(range(SIZE))
    stats = _quiet(name)
    after = _node_reads(cluster, ds.keyspace)
    coordinated = {a: after[a][0] - before[a][0] for a in cluster.hosts}
    local = {a: after[a][1] - before[a][1] for a in cluster.hosts}
    print(f"reads per node (RF {rf}, {stats.rows} rows read): coordinated {coordinated}, "
          f"served {local}, reader's count per replica host {stats.reads_by_host}, "
          f"hedges {stats.hedges_sent}, retries {stats.retries}")
    # Every row read (the epoch, and what was read ahead of the next) was sent to one node and
    # served (at RF 3 a slow replica can make the coordinator ask a second one: speculative
    # retry), and the ring's thirds share the load. At RF 3 a read slower than the hedge delay
    # is also sent to a second replica: the reader counts those (hedges_sent counts a read whose
    # latency passed its delay, so it bounds what the driver sent from above)...
    assert stats.rows >= SIZE
    if rf == 1:
        assert stats.hedges_sent == 0
    extra = stats.hedges_sent + stats.retries
    assert stats.rows <= sum(coordinated.values()) <= stats.rows + extra, (coordinated, stats)
    assert sum(local.values()) == stats.rows if rf == 1 else sum(local.values()) >= stats.rows
    assert sum(stats.reads_by_host.values()) == stats.rows
    # (Which replica serves a read at RF 3 is the coordinator's choice, by latency: not checked.)
    for counts in (coordinated, stats.reads_by_host) if rf > 1 else (coordinated, local):
        assert all(counts[a] > stats.rows * 0.2 for a in cluster.hosts), counts
    assert "127.0.0.2" in telemetry.summary(stats)
    if rf == 1:
        # ...token-aware: each read went to the node holding its row, none was forwarded, and
        # the reader's count per primary replica is exactly what each node served. (At RF 3
        # each driver I/O thread picks a replica position, and a coordinator may read from
        # another replica: the shares hold, the counts per node move.)
        assert coordinated == local
        assert stats.reads_by_host == local, (stats.reads_by_host, local)


def test_the_local_datacenter_is_used_or_refused(cluster: server.ClusterInfo, rf3: Dataset
                                                ) -> None:
    connection = dataclasses.replace(cluster.connection(), datacenter="datacenter1")
    reader = cassandra_dali.Reader(f"{rf3.keyspace}.data_int", **connection.reader_kwargs())
    data, labels, _ = reader.read(rf3.ids[:8])
    assert [sha(d) for d in data] == [sha(rf3.blobs[i]) for i in range(8)]
    wrong = dataclasses.replace(connection, datacenter="dc-on-the-moon")
    with pytest.raises(Exception, match="local datacenter is valid"):
        cassandra_dali.Reader(f"{rf3.keyspace}.data_int", **wrong.reader_kwargs())


def test_a_node_killed_mid_epoch_costs_no_sample_at_rf3(
    cluster: server.ClusterInfo, rf3: Dataset
) -> None:
    # Read-ahead held to 2 batches: most reads of these epochs are issued after the kill.
    pipe = _pipeline(cluster, rf3, "rf3-kill", request_timeout_ms=2000, prefetch_buffers=2,
                     max_prefetch_buffers=2)
    batches = SIZE // BATCH
    expected = _epoch(0) + _epoch(1) + _epoch(2)
    seen = [i for _ in range(3) for i in check_batch(rf3, pipe.run())]
    assert server.stop_node(cluster.dir, 2, kill=True)
    killed = time.monotonic()
    rows_at_kill = telemetry.readers("rf3-kill")[0].rows
    try:
        # The rest of epoch 0 and all of epoch 1 with node 2 dead.
        stalls = []
        for _ in range(2 * batches - 3):
            started = time.monotonic()
            seen += check_batch(rf3, pipe.run())
            stalls.append(time.monotonic() - started)
        read_while_down = telemetry.readers("rf3-kill")[0].rows - rows_at_kill
        print(f"node 2 SIGKILLed: longest run() {max(stalls):.2f} s, "
              f"{time.monotonic() - killed:.1f} s for the rest of two epochs, "
              f"{read_while_down} rows read with node 2 dead")
        assert read_while_down >= SIZE  # the kill came before most of these reads
    finally:
        server.start_node(cluster.dir, 2)
    # Node 2 is back: the same pipeline sends reads to it again (its counts start at 0).
    reads_before = _node_reads(cluster, "rf3")["127.0.0.2"]
    deadline = time.monotonic() + 60
    epoch = 2
    while True:
        for _ in range(batches):
            seen += check_batch(rf3, pipe.run())
        served = _node_reads(cluster, "rf3")["127.0.0.2"][1] - reads_before[1]
        if served > 0 or time.monotonic() > deadline:
            break
        epoch += 1
        expected += _epoch(epoch)
    assert seen == expected  # every sample of every epoch, once each, in order
    assert served > 0, "node 2 is back but the pipeline never read from it again"
    stats = telemetry.readers("rf3-kill")[0]
    print(f"retries {stats.retries}, errors {stats.errors}; node 2 served {served} reads "
          "after its restart")


def _node_pid(cluster: server.ClusterInfo, node: int) -> int:
    pid = server.cluster_status(cluster.dir)[node - 1].status.pid
    assert pid is not None, f"node {node} is not running"
    return pid


FREEZE_S = 15.0


def test_a_frozen_node_stalls_no_batch_at_rf3(cluster: server.ClusterInfo, rf3: Dataset) -> None:
    """A node alive to the driver but answering nothing (SIGSTOP: a long GC pause, a stuck
    disk) for 15 s mid-epoch: hedged reads go to the other replicas after the learned delay,
    so no run() waits for it, and every epoch still holds each row once."""
    pipe = _pipeline(cluster, rf3, "rf3-freeze")
    batches = SIZE // BATCH
    seen = [i for _ in range(batches + 3) for i in check_batch(rf3, pipe.run())]
    settled = telemetry.readers("rf3-freeze")[0]
    assert 0 < settled.hedge_delay_seconds < 2  # learned from the reads, below the ceiling
    pid = _node_pid(cluster, 2)
    os.kill(pid, signal.SIGSTOP)
    frozen = time.monotonic()
    run_seconds: list[float] = []
    try:
        while time.monotonic() - frozen < FREEZE_S:
            started = time.monotonic()
            seen += check_batch(rf3, pipe.run())
            run_seconds.append(time.monotonic() - started)
    finally:
        os.kill(pid, signal.SIGCONT)
    epochs = -(-len(seen) // SIZE)  # read on to the end of the epoch the freeze ended in
    while len(seen) < epochs * SIZE:
        seen += check_batch(rf3, pipe.run())
    assert seen == [i for e in range(epochs) for i in _epoch(e)]  # each row once per epoch
    stats = telemetry.readers("rf3-freeze")[0]
    print(f"node 2 frozen {FREEZE_S:.0f} s: {len(run_seconds)} run()s, longest "
          f"{max(run_seconds):.3f} s, median {sorted(run_seconds)[len(run_seconds) // 2]:.4f} s; "
          f"hedge delay {settled.hedge_delay_seconds * 1e3:g} ms before, "
          f"{stats.hedge_delay_seconds * 1e3:g} ms after; hedges sent "
          f"{stats.hedges_sent - settled.hedges_sent}, won {stats.hedges_won - settled.hedges_won}"
          f", of {stats.reads - settled.reads} reads; {epochs} epochs")
    assert max(run_seconds) <= 2.0
    assert stats.hedges_sent > settled.hedges_sent


def test_reads_are_hedged_only_where_a_second_try_has_somewhere_to_go(
    cluster: server.ClusterInfo, rf3: Dataset, rf1: Dataset
) -> None:
    """At RF 3 reads are hedged; hedge_reads=False turns it off; at RF 1 a second try could only
    go through another coordinator to the same replica, so reads are not hedged."""
    for ds, name, extra, hedged in ((rf3, "hedge-rf3", {}, True),
                                    (rf3, "hedge-off", {"hedge_reads": False}, False),
                                    (rf1, "hedge-rf1", {}, False)):
        pipe = _pipeline(cluster, ds, name, **extra)
        check_batch(ds, pipe.run())
        stats = telemetry.readers(name)[0]
        assert (stats.hedge_delay_seconds > 0) == hedged, (name, stats.hedge_delay_seconds)
        del pipe


def test_an_intermittently_slow_node_is_hedged_around(
    cluster: server.ClusterInfo, rf3: Dataset
) -> None:
    """Node 3 stops for 0.4 s of every second (a swapping host): reads sent to it first are
    answered by their hedges, counted as sent and won."""
    pipe = _pipeline(cluster, rf3, "rf3-slow")
    batches = SIZE // BATCH
    seen = [i for _ in range(batches) for i in check_batch(rf3, pipe.run())]
    before = telemetry.readers("rf3-slow")[0]
    pid = _node_pid(cluster, 3)
    stop = threading.Event()

    def duty_cycle() -> None:
        while not stop.is_set():
            os.kill(pid, signal.SIGSTOP)
            stop.wait(0.4)
            os.kill(pid, signal.SIGCONT)
            stop.wait(0.6)

    cycler = threading.Thread(target=duty_cycle)
    cycler.start()
    run_seconds: list[float] = []
    try:
        started_all = time.monotonic()
        while time.monotonic() - started_all < 8:
            started = time.monotonic()
            seen += check_batch(rf3, pipe.run())
            run_seconds.append(time.monotonic() - started)
    finally:
        stop.set()
        cycler.join()
        os.kill(pid, signal.SIGCONT)
    epochs = -(-len(seen) // SIZE)
    while len(seen) < epochs * SIZE:
        seen += check_batch(rf3, pipe.run())
    assert seen == [i for e in range(epochs) for i in _epoch(e)]
    after = telemetry.readers("rf3-slow")[0]
    sent, won = after.hedges_sent - before.hedges_sent, after.hedges_won - before.hedges_won
    print(f"node 3 stopped 0.4 s of every 1 s for 8 s: hedges sent {sent}, won {won}, of "
          f"{after.reads - before.reads} reads; longest run() {max(run_seconds):.3f} s; "
          f"driver's aborted executions {after.driver_hedges_aborted}")
    assert sent > 0 and won > 0


def test_at_rf1_a_dead_node_is_named_in_the_error(
    cluster: server.ClusterInfo, rf1: Dataset
) -> None:
    pipe = _pipeline(cluster, rf1, "rf1-kill", request_timeout_ms=1000, retry_budget_ms=3000)
    assert server.stop_node(cluster.dir, 3, kill=True)
    try:
        with pytest.raises(Exception) as caught:
            for _ in range(SIZE // BATCH):
                pipe.run()
    finally:
        server.start_node(cluster.dir, 3)
    message = str(caught.value)
    print(message[-800:])
    assert "rf1.data_int" in message, message
    assert "127.0.0.3" in message, message
    assert "unavailable" in message or "no replica answered" in message, message
    named = [u for u in rf1.ids if u in message]
    assert named, "the error names no UUID"
    # The named row's replica is node 3, as the driver's own token map says.
    meta = _native_replicas(cluster, "rf1", named[0])
    assert meta == ["127.0.0.3"], meta


def _native_replicas(cluster: server.ClusterInfo, keyspace: str, sample: str) -> list[str]:
    probe = cluster.cluster()
    try:
        probe.connect()
        key = uuid.UUID(sample).bytes
        return sorted(str(h.address) for h in probe.metadata.get_replicas(keyspace, key))
    finally:
        probe.shutdown()


def test_at_rf1_a_node_back_within_the_budget_costs_nothing(
    cluster: server.ClusterInfo, rf1: Dataset
) -> None:
    pipe = _pipeline(cluster, rf1, "rf1-back", request_timeout_ms=1000, prefetch_buffers=2,
                     max_prefetch_buffers=2)
    batches = SIZE // BATCH
    seen = [i for _ in range(2) for i in check_batch(rf1, pipe.run())]
    assert server.stop_node(cluster.dir, 3, kill=True)
    restart = threading.Thread(target=server.start_node, args=(cluster.dir, 3))
    restart.start()  # back in about 10 s, well within the default 60 s budget
    try:
        seen += [i for _ in range(2 * batches - 2) for i in check_batch(rf1, pipe.run())]
    finally:
        restart.join()
    assert seen == _epoch(0) + _epoch(1)
    assert telemetry.readers("rf1-back")[0].retries > 0  # the rows on node 3 waited for it


def test_ingest_at_local_quorum_survives_a_node_killed_mid_ingest(
    cluster: server.ClusterInfo, session: Any, tmp_path: Path
) -> None:
    root = tmp_path / "imagenette"
    images.generate(root, 40, 0, seed=5, workers=1)
    files = 40 * 10
    schema = Path(__file__).resolve().parents[1] / "python/cassandra_dali/dataset/create_tables.cql"
    conn = ["--host", cluster.host, "--port", str(cluster.port)]
    applied = subprocess.run([*CLI, "schema", "apply", str(schema), "--keyspace", "ingest3",
                              "--replication-factor", "3", *conn],
                             capture_output=True, text=True, timeout=120)
    assert applied.returncode == 0, applied.stderr
    tables = ["--data-table", "ingest3.data_train", "--metadata-table", "ingest3.metadata_train"]
    ingest = [*CLI, "data", "ingest", str(root), "--split-subdir", "train", *tables,
              "--no-progress", *conn]
    first_row = SimpleStatement("SELECT id FROM ingest3.metadata_train LIMIT 1",
                                consistency_level=ConsistencyLevel.ONE)
    with subprocess.Popen(ingest, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as running:
        try:
            deadline = time.monotonic() + 120
            # A metadata row is written only after its data row: the ingest is under way.
            while session.execute(first_row).one() is None:
                assert running.poll() is None, "the ingest ended before any row was seen"
                assert time.monotonic() < deadline, "no row written in 120 s"
                time.sleep(0.02)
            assert server.stop_node(cluster.dir, 3, kill=True)
            mid_ingest = running.poll() is None
            out, err = running.communicate(timeout=300)
        except BaseException:
            running.kill()
            raise
    try:
        assert running.returncode == 0, out + err
        assert mid_ingest, "the ingest had ended before node 3 was killed (nothing tested)"
        assert f"{files} written" in out and "0 failed" in out, out
        assert server.cluster_status(cluster.dir)[2].status.running is False
        # ALL needs node 3: the write fails, naming the file and what the server said (a
        # timeout waiting for node 3 until gossip has marked it down, then "unavailable").
        strict = subprocess.run([*ingest, "--consistency", "ALL", "--retry-budget", "2"],
                                capture_output=True, text=True, timeout=300)
        assert strict.returncode != 0
        said = strict.stderr
        assert "train/n" in said and "'consistency': 'ALL'" in said, said
        assert "received only 2" in said or "unavailable" in said.lower(), said
    finally:
        server.start_node(cluster.dir, 3)
    # Every row is there (read at ALL: every replica answers, node 3 included).
    assert len(list(session.execute("SELECT id FROM ingest3.data_train"))) == files
    assert len(list(session.execute("SELECT id FROM ingest3.metadata_train"))) == files


CLOSE_WHILE_RESTARTING = """
import random, sys, threading, time
from pathlib import Path
import cassandra_dali
from cassandra_dali import server

directory, table, ids = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
info = server.cluster_info(directory)
rng = random.Random(7)
for _ in range(2):
    readers = [cassandra_dali.Reader(table, **info.connection().reader_kwargs())
               for _ in range(8)]
    for reader in readers:
        reader.read(ids)
    server.stop_node(directory, 3, kill=True)
    restart = threading.Thread(target=server.start_node, args=(directory, 3))
    restart.start()
    while readers:  # each closed while node 3 is down, coming back, or just back
        time.sleep(rng.uniform(0.2, 1.5))
        readers.pop()
    restart.join()
print("closed every reader")
"""


def test_readers_closed_while_a_node_restarts_do_not_crash(
    cluster: server.ClusterInfo, rf3: Dataset
) -> None:
    # The driver's prepare-on-up handler used to call into a session closed meanwhile and
    # abort the process ("pure virtual method called"); the reader turns that handler off.
    result = subprocess.run(
        [sys.executable, "-c", CLOSE_WHILE_RESTARTING, str(cluster.dir),
         f"{rf3.keyspace}.data_int", *rf3.ids[:8]],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "closed every reader" in result.stdout, \
        result.stderr[-3000:]
    assert server.cluster_status(cluster.dir)[2].status.running
