"""The reader's token ring: Murmur3 tokens as Cassandra computes them, replicas as the Python
driver places them (SimpleStrategy, NetworkTopologyStrategy with one rack per data center), the
ring loaded from a live server, reads counted per host, read errors that name the replicas and
why they did not serve the row, and a driver without the ring's functions (optional ones)."""

from __future__ import annotations

import bisect
import json
import os
import random
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cassandra_dali
import pytest
from cassandra.connection import DefaultEndPoint
from cassandra.metadata import Murmur3Token, NetworkTopologyStrategy, SimpleStrategy
from cassandra.murmur3 import _murmur3 as python_murmur3
from cassandra.murmur3 import murmur3 as driver_murmur3
from cassandra.policies import SimpleConvictionPolicy
from cassandra.pool import Host
from cassandra_dali import _native, server, telemetry
from reader_helpers import Dataset, write_dataset
from tcp_proxy import TcpProxy

MIN_TOKEN, MAX_TOKEN = -(2**63), 2**63 - 1


def driver_token(key: bytes) -> int:
    """The Python driver's Murmur3Partitioner token (Murmur3Token.hash_fn), for non-empty keys."""
    return Murmur3Token.hash_fn(key)


# --- Murmur3 ---------------------------------------------------------------------------------


def test_murmur3_token_matches_the_python_driver_for_uuids() -> None:
    rng = random.Random(7)
    keys = [uuid.uuid4().bytes for _ in range(3000)]
    keys += [rng.randbytes(16) for _ in range(3000)]
    keys += [bytes(16), b"\xff" * 16, b"\x80" * 16, b"\x7f" * 16, bytes(15) + b"\x01",
             b"\x01" + bytes(15), bytes(range(16)), bytes(range(255, 239, -1))]
    for key in keys:
        token = _native.murmur3_token(key)
        assert token == driver_token(key) == driver_murmur3(key), key.hex()
        assert _native.murmur3_token(str(uuid.UUID(bytes=key))) == token


def test_murmur3_token_tails_are_sign_extended_as_cassandra_does() -> None:
    # Keys of every length up to 3 blocks, tail bytes with the sign bit set included: the
    # pure-Python reference reads tails as signed bytes, as Cassandra's (long) key.get(i).
    rng = random.Random(11)
    for length in range(1, 49):
        for _ in range(40):
            key = bytes(rng.choice([0x00, 0x7F, 0x80, 0xFF, rng.randrange(256)])
                        for _ in range(length))
            expected = python_murmur3(key)
            expected = MAX_TOKEN if expected == MIN_TOKEN else expected
            assert _native.murmur3_token(key) == expected == driver_token(key), key.hex()
    # Murmur3Partitioner gives the empty key the ring's minimum token.
    assert _native.murmur3_token(b"") == MIN_TOKEN


def test_murmur3_token_rejects_what_is_not_a_uuid() -> None:
    with pytest.raises(ValueError, match="not a UUID"):
        _native.murmur3_token("not-a-uuid")


# --- Replica placement, against the Python driver --------------------------------------------


def _driver_replicas(nodes: list[tuple[str, str, list[int]]], strategy: Any,
                     tokens: list[int]) -> list[tuple[str | None, list[str]]]:
    """(owner, replicas) of each token as the Python driver's TokenMap computes them."""
    hosts = {}
    owner_of = {}
    for address, dc, node_tokens in nodes:
        host = hosts.setdefault(address, Host(DefaultEndPoint(address), SimpleConvictionPolicy,
                                              datacenter=dc, rack="rack1"))
        for t in node_tokens:
            owner_of.setdefault(Murmur3Token(t), host)
    ring = sorted(owner_of)
    replica_map = strategy.make_token_replica_map(owner_of, ring)
    out = []
    for t in tokens:
        at = bisect.bisect_left(ring, Murmur3Token(t))
        ring_token = ring[at if at < len(ring) else 0]
        out.append((owner_of[ring_token].address,
                    [h.address for h in replica_map.get(ring_token, [])]))
    return out


def _random_nodes(rng: random.Random, count: int, vnodes: int,
                  dcs: list[str]) -> list[tuple[str, str, list[int]]]:
    return [(f"10.0.{i // 250}.{i % 250 + 1}", dcs[i % len(dcs)],
             [rng.randrange(MIN_TOKEN, MAX_TOKEN) for _ in range(vnodes)])
            for i in range(count)]


def _probe_tokens(rng: random.Random, nodes: list[tuple[str, str, list[int]]]) -> list[int]:
    ring_tokens = [t for _, _, tokens in nodes for t in tokens]
    # Random tokens, the ring's own tokens (a token owns itself), their neighbours, the ends.
    probes = [rng.randrange(MIN_TOKEN, MAX_TOKEN) for _ in range(300)]
    probes += ring_tokens[:50] + [t + 1 for t in ring_tokens[:50] if t < MAX_TOKEN]
    return probes + [MIN_TOKEN, MAX_TOKEN, max(ring_tokens), max(ring_tokens) + 1]


@pytest.mark.parametrize("count,vnodes,rf", [(1, 1, 1), (3, 1, 1), (3, 1, 2), (3, 16, 3),
                                             (5, 8, 3), (4, 4, 6)])
def test_simple_strategy_replicas_match_the_python_driver(count: int, vnodes: int,
                                                          rf: int) -> None:
    rng = random.Random(count * 100 + vnodes * 10 + rf)
    nodes = _random_nodes(rng, count, vnodes, ["dc1"])
    ring = _native.TokenRing(nodes, {"class": "org.apache.cassandra.locator.SimpleStrategy",
                                     "replication_factor": str(rf)})
    assert ring.replication == f"SimpleStrategy RF {rf}" and ring.error == ""
    assert ring.token_count == count * vnodes and len(ring.hosts) == count
    probes = _probe_tokens(rng, nodes)
    expected = _driver_replicas(nodes, SimpleStrategy({"replication_factor": str(rf)}), probes)
    for token, (owner, replicas) in zip(probes, expected):
        assert ring.primary_host(token) == owner, token
        assert ring.replicas(token) == replicas, token  # ring order: the same list
        assert len(replicas) == min(rf, count)


@pytest.mark.parametrize("dc_rf", [{"dc1": 1}, {"dc1": 3, "dc2": 2}, {"dc1": 2, "dc2": 0},
                                   {"dc2": 5}, {"dc1": 1, "dc3": 2}])
def test_network_topology_replicas_match_the_python_driver(dc_rf: dict[str, int]) -> None:
    rng = random.Random(len(dc_rf) * 7 + sum(dc_rf.values()))
    nodes = _random_nodes(rng, 7, 8, ["dc1", "dc2"])  # dc1: 4 nodes, dc2: 3; no dc3
    options = {"class": "NetworkTopologyStrategy", **{dc: str(n) for dc, n in dc_rf.items()}}
    ring = _native.TokenRing(nodes, options)
    probes = _probe_tokens(rng, nodes)
    strategy = NetworkTopologyStrategy({dc: str(n) for dc, n in dc_rf.items()})
    expected = _driver_replicas(nodes, strategy, probes)
    dc_of = {address: dc for address, dc, _ in nodes}
    for token, (owner, replicas) in zip(probes, expected):
        ours = ring.replicas(token)
        assert ring.primary_host(token) == owner
        # The driver lists replicas data center by data center; ours are in ring order.
        assert sorted(ours) == sorted(replicas), token
        assert len(set(ours)) == len(ours)
        for dc, n in dc_rf.items():
            assert sum(dc_of[h] == dc for h in ours) == min(n, sum(d == dc for d in
                                                                   dc_of.values()))


def test_replication_options() -> None:
    nodes = [("127.0.0.1", "dc1", [-100, 100]), ("127.0.0.2", "dc1", [0]),
             ("127.0.0.10", "dc1", [50])]
    simple = _native.TokenRing(nodes, {"class": "SimpleStrategy", "replication_factor": "3/1"})
    # Hosts ordered by address, numerically; transient replicas ("3/1") left out.
    assert simple.hosts == ["127.0.0.1", "127.0.0.2", "127.0.0.10"]
    assert simple.replication == "SimpleStrategy RF 2"
    assert simple.replicas(1) == ["127.0.0.10", "127.0.0.1"]
    assert simple.replicas(101) == simple.replicas(-100) == ["127.0.0.1", "127.0.0.2"]
    assert simple.describe() == "3 hosts, 4 tokens, SimpleStrategy RF 2"
    for options in [{"class": "LocalStrategy"}, {"class": "com.example.OddStrategy"}, {}]:
        ring = _native.TokenRing(nodes, options)
        assert ring.replicas(1) == [] and ring.primary_host(1) == "127.0.0.10"
    assert "OddStrategy not understood" in _native.TokenRing(nodes, {
        "class": "com.example.OddStrategy"}).replication
    empty = _native.TokenRing([("127.0.0.1", "dc1", [])], {"class": "SimpleStrategy",
                                                          "replication_factor": "1"})
    assert empty.hosts == [] and empty.replicas(0) == [] and empty.primary_host(0) is None
    assert empty.describe().startswith("not loaded")
    # A UUID's text and its 16 bytes are the same key.
    key = uuid.uuid4()
    assert simple.replicas(str(key)) == simple.replicas(key.bytes) == simple.replicas(
        _native.murmur3_token(key.bytes))


# --- A live server ---------------------------------------------------------------------------
# The tests below need the session's Cassandra server (the `cassandra_server` fixture, a single
# node); they are grouped in TestAgainstAServer, so `-k "not TestAgainstAServer"` runs the pure
# ones above without starting one. Each takes about a second: none is marked slow.

SIZE = 64


@pytest.fixture(scope="module")
def dataset(cql_session: Any, keyspace: str) -> Iterator[Dataset]:
    yield write_dataset(cql_session, keyspace, SIZE, seed=9)


def _reader(info: server.ServerInfo, ds: Dataset, **kwargs: Any) -> cassandra_dali.Reader:
    kwargs.setdefault("cassandra_port", info.port)
    return cassandra_dali.Reader(f"{ds.keyspace}.data_int", cassandra_ips=[info.host], **kwargs)


def _single_host(cql_session: Any) -> Any:
    """The server's one node; these checks need a single-node cluster (the session's own)."""
    hosts = cql_session.cluster.metadata.all_hosts()
    if len(hosts) != 1:
        pytest.skip("a single-node check; the cluster has several nodes")
    return hosts[0]


def _driver_without(tmp_path: Path, *symbols: str) -> Path:
    """A copy of the loaded driver library whose dynamic symbol table lacks `symbols` (each
    renamed in place, same length: dlsym no longer finds it), as an older driver would."""
    original = Path(cassandra_dali.driver_info()["path"])
    if not original.is_file():
        pytest.skip(f"the loaded driver '{original}' is not a file this test can copy")
    data = original.read_bytes()
    for symbol in symbols:
        name = symbol.encode() + b"\0"
        if name not in data:
            pytest.skip(f"the loaded driver has no {symbol} to hide")
        data = data.replace(name, name[:-2] + b"X\0")
    # Two levels down, beside a link to the libraries the original finds through its RPATH
    # ($ORIGIN/../../acsylla.libs for the acsylla wheel's copy).
    copy = tmp_path / "lib" / "driver" / original.name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(data)
    libs = original.parent.parent.parent / "acsylla.libs"
    if libs.is_dir():
        (tmp_path / "acsylla.libs").symlink_to(libs)
    return copy


def _in_a_new_process(driver: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Runs `script` in a Python process of its own (the driver is loaded once per process)
    with CASSANDRA_DALI_DRIVER set to `driver`."""
    env = {**os.environ, "CASSANDRA_DALI_DRIVER": str(driver)}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=120)


class TestAgainstAServer:
    """The ring a reader loads from the single-node server, reads per host, errors naming
    replicas, and a driver without the ring's functions."""

    def test_tokens_match_the_server(self, cql_session: Any, dataset: Dataset) -> None:
        query = cql_session.prepare(
            f"SELECT token(id) FROM {dataset.keyspace}.data_int WHERE id = ?")
        for u in dataset.ids:
            assert (cql_session.execute(query, (uuid.UUID(u),)).one()[0]
                    == _native.murmur3_token(u))

    def test_the_ring_matches_the_python_driver(self, cassandra_server: server.ServerInfo,
                                                cql_session: Any, dataset: Dataset) -> None:
        reader = _reader(cassandra_server, dataset)
        ring = reader.token_ring()
        metadata = cql_session.cluster.metadata
        assert ring.error == "", ring.error
        assert sorted(ring.hosts) == sorted(h.address for h in metadata.all_hosts())
        assert ring.replication == "SimpleStrategy RF 1"  # conftest's keyspace
        assert ring.token_count == len(metadata.token_map.ring)
        for u in dataset.ids:
            expected = metadata.get_replicas(dataset.keyspace, uuid.UUID(u).bytes)
            assert reader.replicas(u) == [h.address for h in expected]

    def test_replicas_of_other_keyspaces(self, cassandra_server: server.ServerInfo,
                                         cql_session: Any, dataset: Dataset) -> None:
        host = _single_host(cql_session)
        for name, replication in [
            ("ring_simple3", "{'class': 'SimpleStrategy', 'replication_factor': 3}"),
            ("ring_nts", f"{{'class': 'NetworkTopologyStrategy', '{host.datacenter}': 2}}"),
        ]:
            keyspace = f"{dataset.keyspace[:30]}_{name}"
            cql_session.execute(f"CREATE KEYSPACE {keyspace} WITH replication = {replication}")
            try:
                cql_session.execute(f"CREATE TABLE {keyspace}.t (id uuid PRIMARY KEY, label int, "
                                    "data blob)")
                reader = cassandra_dali.Reader(f"{keyspace}.t",
                                               cassandra_ips=[cassandra_server.host],
                                               cassandra_port=cassandra_server.port)
                ring = reader.token_ring()
                assert ring.error == "", ring.error
                # More replicas asked for than nodes: the one node holds everything.
                assert reader.replicas(dataset.ids[0]) == [host.address]
                assert ("SimpleStrategy RF 3" if name == "ring_simple3"
                        else f"NetworkTopologyStrategy RF {host.datacenter}:2") == ring.replication
            finally:
                cql_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")

    def test_every_read_is_counted_to_its_host(self, cassandra_server: server.ServerInfo,
                                               dataset: Dataset) -> None:
        reader = _reader(cassandra_server, dataset)
        reader.read(dataset.ids)
        reader.read(dataset.ids[:10])
        stats = telemetry.of(reader)
        expected = Counter(reader.replicas(u)[0] for u in dataset.ids + dataset.ids[:10])
        assert stats.reads_by_host == {h: expected[h] for h in reader.token_ring().hosts}
        assert sum(stats.reads_by_host.values()) == stats.rows == SIZE + 10
        assert stats.token_ring == reader.token_ring().describe()
        text = telemetry.prometheus_text([stats])
        for host, count in stats.reads_by_host.items():
            assert f'cassandra_dali_reads_by_host_total{{host="{host}",' in text
        assert (("reads by replica host" in telemetry.summary(stats))
                == (len(stats.reads_by_host) > 1))
        # A failed read is not counted.
        with pytest.raises(cassandra_dali.MissingRowError):
            reader.read([str(uuid.uuid4())])
        assert telemetry.of(reader).reads_by_host == stats.reads_by_host

    @pytest.mark.parametrize("fault", ["stall", "close"])
    def test_an_unserved_row_names_its_replicas_and_why(
        self, cassandra_server: server.ServerInfo, cql_session: Any, dataset: Dataset, fault: str
    ) -> None:
        host = _single_host(cql_session)  # behind the proxy: the driver finds no other node
        proxy = TcpProxy(cassandra_server.host, cassandra_server.port)
        try:
            reader = _reader(cassandra_server, dataset, cassandra_port=proxy.port,
                             request_timeout_ms=400, max_retries=1, retry_backoff_ms=50)
            assert len(reader.read(dataset.ids[:4])[0]) == 4
            if fault == "stall":  # a frozen node: reads time out
                proxy.stalled.set()
            else:  # a dead one: connections reset, new ones refused
                proxy.close()
            with pytest.raises(cassandra_dali.ReadError) as caught:
                reader.read(dataset.ids[:4])
            proxy.stalled.clear()
        finally:
            proxy.close()
        message = str(caught.value)
        assert f"{dataset.keyspace}.data_int" in message and "after 1 retries" in message, message
        why = ("no replica answered within request_timeout_ms=400 (down or overloaded)"
               if fault == "stall" else "the data is unavailable while they are down")
        assert f"the row's replicas (RF 1): {host.address}: {why}" in message, message
        # The UUID named is the row whose replicas are named.
        named = message.split("reading id ", 1)[1].split(" ", 1)[0]
        assert named in dataset.ids[:4] and reader.replicas(named) == [host.address]

    def test_a_driver_without_the_ring_functions_still_reads(
        self, cassandra_server: server.ServerInfo, dataset: Dataset, tmp_path: Path
    ) -> None:
        # cass_future_coordinator and cass_statement_set_node came with driver 2.16.
        driver = _driver_without(tmp_path, "cass_future_coordinator", "cass_statement_set_node")
        script = f"""
import json, cassandra_dali
from cassandra_dali import telemetry
reader = cassandra_dali.Reader("{dataset.keyspace}.data_int",
                               cassandra_ips=["{cassandra_server.host}"],
                               cassandra_port={cassandra_server.port})
data, labels, _ = reader.read({dataset.ids[:8]!r})
stats = telemetry.of(reader)
print(json.dumps(dict(rows=len(data), labels=[int(x) for x in labels],
                      info=cassandra_dali.driver_info(), error=reader.token_ring().error,
                      token_ring=stats.token_ring, reads_by_host=stats.reads_by_host)))
"""
        done = _in_a_new_process(driver, script)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout.strip().splitlines()[-1])
        assert out["info"]["path"] == str(driver)
        assert out["info"]["missing_optional"] == ["cass_statement_set_node",
                                                   "cass_future_coordinator"]
        assert out["rows"] == 8 and out["labels"] == list(range(8))
        missing = "the Cassandra driver lacks cass_statement_set_node, cass_future_coordinator"
        assert out["error"].startswith(missing), out["error"]
        assert missing in out["token_ring"] and out["reads_by_host"] == {}
        assert "is not fully known" in done.stderr and "cass_future_coordinator" in done.stderr


def test_a_driver_without_a_required_function_is_refused(tmp_path: Path) -> None:
    # No server needed. (A function the acsylla module itself calls cannot be hidden this way:
    # its own reference would fail the load first.)
    driver = _driver_without(tmp_path, "cass_column_meta_data_type")
    done = _in_a_new_process(driver, "import cassandra_dali; cassandra_dali.driver_info()")
    assert done.returncode != 0
    assert (f"the Cassandra driver at '{driver}' has no symbol 'cass_column_meta_data_type'"
            in done.stderr), done.stderr
