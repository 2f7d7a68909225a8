"""The reader's token ring: Murmur3 tokens as Cassandra computes them, replicas as the Python
driver places them (SimpleStrategy, NetworkTopologyStrategy with one rack per data center), the
ring loaded from a live server, reads counted per host, and read errors that name the replicas."""

from __future__ import annotations

import bisect
import random
import uuid
from collections import Counter
from collections.abc import Iterator
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

SIZE = 64


@pytest.fixture(scope="module")
def dataset(cql_session: Any, keyspace: str) -> Iterator[Dataset]:
    yield write_dataset(cql_session, keyspace, SIZE, seed=9)


def _reader(info: server.ServerInfo, ds: Dataset, **kwargs: Any) -> cassandra_dali.Reader:
    kwargs.setdefault("cassandra_port", info.port)
    return cassandra_dali.Reader(f"{ds.keyspace}.data_int", cassandra_ips=[info.host], **kwargs)


def test_tokens_match_the_server(cql_session: Any, dataset: Dataset) -> None:
    query = cql_session.prepare(f"SELECT token(id) FROM {dataset.keyspace}.data_int WHERE id = ?")
    for u in dataset.ids:
        assert cql_session.execute(query, (uuid.UUID(u),)).one()[0] == _native.murmur3_token(u)


def _single_host(cql_session: Any) -> Any:
    """The server's one node; these checks need a single-node cluster (the session's own)."""
    hosts = cql_session.cluster.metadata.all_hosts()
    if len(hosts) != 1:
        pytest.skip("a single-node check; the cluster has several nodes")
    return hosts[0]


def test_the_ring_matches_the_python_driver(cassandra_server: server.ServerInfo,
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


def test_replicas_of_other_keyspaces(cassandra_server: server.ServerInfo, cql_session: Any,
                                     dataset: Dataset) -> None:
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
            reader = cassandra_dali.Reader(f"{keyspace}.t", cassandra_ips=[cassandra_server.host],
                                           cassandra_port=cassandra_server.port)
            ring = reader.token_ring()
            assert ring.error == "", ring.error
            # More replicas asked for than nodes: the one node holds everything.
            assert reader.replicas(dataset.ids[0]) == [host.address]
            assert ("SimpleStrategy RF 3" if name == "ring_simple3"
                    else f"NetworkTopologyStrategy RF {host.datacenter}:2") == ring.replication
        finally:
            cql_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


def test_every_read_is_counted_to_its_host(cassandra_server: server.ServerInfo,
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
    assert ("reads by replica host" in telemetry.summary(stats)) == (len(stats.reads_by_host) > 1)
    # A failed read is not counted.
    with pytest.raises(cassandra_dali.MissingRowError):
        reader.read([str(uuid.uuid4())])
    assert telemetry.of(reader).reads_by_host == stats.reads_by_host


def test_an_unavailable_row_names_its_replicas(cassandra_server: server.ServerInfo,
                                               cql_session: Any, dataset: Dataset) -> None:
    host = _single_host(cql_session)  # behind the proxy: the driver finds no other node
    proxy = TcpProxy(cassandra_server.host, cassandra_server.port)
    try:
        reader = _reader(cassandra_server, dataset, cassandra_port=proxy.port,
                         request_timeout_ms=400, max_retries=1, retry_backoff_ms=50)
        assert len(reader.read(dataset.ids[:4])[0]) == 4
        proxy.stalled.set()
        with pytest.raises(cassandra_dali.ReadError) as caught:
            reader.read(dataset.ids[:4])
        proxy.stalled.clear()
    finally:
        proxy.close()
    message = str(caught.value)
    assert f"{dataset.keyspace}.data_int" in message and "after 1 retries" in message, message
    assert (f"the row's replicas (RF 1): {host.address}: the data is unavailable while they "
            "are down") in message, message
    # The UUID named is the row whose replicas are named.
    named = message.split("reading id ", 1)[1].split(" ", 1)[0]
    assert named in dataset.ids[:4] and reader.replicas(named) == [host.address]
