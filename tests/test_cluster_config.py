"""The pure parts of the local cluster, contact point lists, --replication-factor and the ingest
write consistency: no server, no JVM (tests/test_cluster.py runs a real 3-node cluster).

Every test that could reach a launcher has it replaced by one that fails the test, so a check
that came too late would show up as a failure, never as a JVM started by accident.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml
from cassandra_dali import cli, server
from cassandra_dali.cli import ingest as ingest_cli
from cassandra_dali.client import Connection, cql_files
from cassandra_dali.dataset.ingest import IngestConfig, IngestError
from cassandra_dali.server import cluster

RING = 2**64
CREATE_TABLES = (Path(cluster.__file__).parents[1] / "dataset" / "create_tables.cql").read_text()
TABLES = {"data_table": "imagenette.data_train", "metadata_table": "imagenette.metadata_train"}


@pytest.fixture
def no_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting a JVM (a node or a single server) fails the test instead."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a server was about to be started: {args} {kwargs}")

    monkeypatch.setattr(cluster, "launch", refuse)
    monkeypatch.setattr(server.process, "_spawn", refuse)
    monkeypatch.setattr(server, "start", refuse)


def _write_cluster_json(directory: Path, nodes: int, port: int = 9042) -> None:
    data = {"host": ",".join(f"127.0.0.{k}" for k in range(1, nodes + 1)), "port": port,
            "username": None, "protocol_version": 5, "dir": str(directory), "nodes": nodes,
            "storage_port": 7000, "heap": "512M", "cluster_name": "c", "version": "5.0.6",
            "num_tokens": 16, "startup_seconds": 12.5, "written_by_a_later_version": True}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / cluster.CLUSTER_FILE).write_text(json.dumps(data))


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# Tokens and addresses
@pytest.mark.parametrize(("nodes", "num_tokens"), [(1, 1), (1, 16), (2, 1), (3, 16), (5, 7),
                                                   (254, 16)])
def test_node_tokens_split_the_ring_evenly(nodes: int, num_tokens: int) -> None:
    per_node = {k: cluster.node_tokens(k, nodes, num_tokens) for k in range(1, nodes + 1)}
    total = nodes * num_tokens
    ring = sorted(t for tokens in per_node.values() for t in tokens)
    assert all(len(tokens) == num_tokens for tokens in per_node.values())
    assert all(tokens == sorted(tokens) for tokens in per_node.values())
    assert len(set(ring)) == total
    assert -(2**63) <= ring[0] and ring[-1] <= 2**63 - 1
    gaps = [b - a for a, b in zip(ring, ring[1:])] + [ring[0] + RING - ring[-1]]
    assert all(abs(gap - RING // total) <= 1 for gap in gaps), (min(gaps), max(gaps))
    # Interleaved: node k's i-th token lies between node k-1's and node k+1's i-th, and node
    # N's i-th before node 1's (i+1)-th: around the ring the owners go 1, 2 ... N, 1, 2 ...
    owner = {t: k for k, tokens in per_node.items() for t in tokens}
    assert [owner[t] for t in ring] == [i % nodes + 1 for i in range(total)]
    # A token owns the range (previous token, token]; the first one wraps around the ring.
    owned = dict.fromkeys(per_node, 0)
    for token, gap in zip(ring, [gaps[-1], *gaps[:-1]]):
        owned[owner[token]] += gap
    assert sum(owned.values()) == RING
    for k, share in owned.items():
        assert abs(Fraction(share) - Fraction(RING, nodes)) <= num_tokens, (k, share)


def test_node_address() -> None:
    assert [server.node_address(k) for k in (1, 3, 254)] == ["127.0.0.1", "127.0.0.3",
                                                             "127.0.0.254"]
    for bad in (0, 255, -1):
        with pytest.raises(server.ServerError, match=f"not {bad}"):
            server.node_address(bad)


# Node settings and cassandra.yaml
def _render(config: server.ServerConfig, storage_port: int = 17000) -> dict[str, Any]:
    assert config.dir is not None
    text = server.render_cassandra_yaml(
        config.dir, cluster_name=config.cluster_name, host=config.host,
        native_port=config.native_port or 19042, storage_port=storage_port, auth=False,
        seeds=config.seeds, num_tokens=config.num_tokens, initial_token=config.initial_token)
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def test_node_config_and_yaml(tmp_path: Path) -> None:
    info = server.ClusterInfo(host="127.0.0.1,127.0.0.2,127.0.0.3", port=19042, dir=tmp_path,
                              nodes=3, storage_port=17000, heap="512M", cluster_name="ring")
    for k in (1, 2, 3):
        config = cluster.node_config(info, k)
        assert (config.dir, config.host) == (tmp_path / f"node{k}", f"127.0.0.{k}")
        assert (config.native_port, config.storage_port) == (19042, 17000)
        assert config.seeds == "127.0.0.1:17000"
        assert config.announce_shutdown is True and config.jmx_port is None
        assert (config.heap, config.cluster_name, config.num_tokens) == ("512M", "ring", 16)
        tokens = [int(t) for t in (config.initial_token or "").split(",")]
        assert tokens == cluster.node_tokens(k, 3, 16)
        data = _render(config)
        assert (data["num_tokens"], data["initial_token"]) == (16, config.initial_token)
        assert data["auto_bootstrap"] is False
        assert data["seed_provider"][0]["parameters"][0]["seeds"] == "127.0.0.1:17000"
        assert data["listen_address"] == data["rpc_address"] == f"127.0.0.{k}"
        assert (data["native_transport_port"], data["storage_port"]) == (19042, 17000)


def test_lone_node_yaml(tmp_path: Path) -> None:
    config = server.ServerConfig(dir=tmp_path, native_port=19042)
    data = _render(config, storage_port=17001)
    assert data["num_tokens"] == 1
    assert "initial_token" not in data and "auto_bootstrap" not in data
    assert data["seed_provider"][0]["parameters"][0]["seeds"] == f"{config.host}:17001"


# cluster.json
def test_cluster_info_json_round_trip(tmp_path: Path) -> None:
    info = server.ClusterInfo(host="127.0.0.1,127.0.0.2", port=9043, dir=tmp_path, nodes=2,
                              storage_port=7001, num_tokens=4, startup_seconds=3.5)
    data = json.loads(json.dumps(info.to_json()))
    assert data["dir"] == str(tmp_path) and "password" not in data
    assert server.ClusterInfo.from_json(data) == info
    assert info.connection() == Connection(host="127.0.0.1,127.0.0.2", port=9043)


def test_cluster_info_from_file(tmp_path: Path) -> None:
    assert not server.is_cluster_dir(tmp_path) and server.cluster_info(tmp_path) is None
    _write_cluster_json(tmp_path, 3, port=9100)
    assert server.is_cluster_dir(tmp_path) and server.is_cluster_dir(str(tmp_path))
    info = server.cluster_info(tmp_path)
    assert info is not None
    assert (info.nodes, info.port, info.storage_port, info.num_tokens) == (3, 9100, 7000, 16)
    assert info.dir == tmp_path and info.startup_seconds == 12.5
    assert info.hosts == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert info.node_dir(2) == tmp_path / "node2"
    assert not server.is_cluster_dir(tmp_path / "node1")


# start_cluster's refusals: before any port, address or JVM is touched
@pytest.mark.parametrize("nodes", [0, 255])
def test_start_cluster_refuses_node_count(tmp_path: Path, nodes: int, no_launch: None) -> None:
    directory = tmp_path / "c"
    with pytest.raises(server.ServerError, match=f"between 1 and 254, not {nodes}"):
        server.start_cluster(server.ClusterConfig(dir=directory, nodes=nodes))
    assert not directory.exists()


def test_start_cluster_refuses_single_server_dir(tmp_path: Path, no_launch: None) -> None:
    state = server.ServerInfo(host="127.0.0.1", port=9042, dir=tmp_path, storage_port=7000)
    (tmp_path / server.STATE_FILE).write_text(json.dumps(state.to_json()))
    with pytest.raises(server.ServerError, match="single-node server"):
        server.start_cluster(server.ClusterConfig(dir=tmp_path, nodes=3))
    assert not (tmp_path / cluster.CLUSTER_FILE).exists()
    assert not (tmp_path / "node1").exists()


def test_start_cluster_refuses_other_node_count(tmp_path: Path, no_launch: None) -> None:
    _write_cluster_json(tmp_path, 5)
    before = (tmp_path / cluster.CLUSTER_FILE).read_bytes()
    with pytest.raises(server.ServerError, match="5-node cluster: start it with --nodes 5"):
        server.start_cluster(server.ClusterConfig(dir=tmp_path, nodes=3))
    assert (tmp_path / cluster.CLUSTER_FILE).read_bytes() == before
    assert not any(p.name.startswith("node") for p in tmp_path.iterdir())


# The CLI
@pytest.mark.parametrize(("flags", "message"), [
    (["--auth"], "--auth cannot"), (["--tls"], "--tls cannot"),
    (["--jmx-port", "0"], "--jmx-port cannot"), (["--host", "127.0.0.2"], "--host cannot"),
    (["--auth", "--tls"], "--auth, --tls cannot be used with --nodes"),
    (["--nodes", "0"], "--nodes must be between 1 and 254, not 0"),
])
def test_cli_start_nodes_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  no_launch: None, flags: list[str], message: str) -> None:
    directory = tmp_path / "c"
    code, out, err = _cli(capsys, "server", "start", "--nodes", "3", *flags,
                          "--dir", str(directory))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("cassandra-dali: error: ")
    assert message in err
    assert not directory.exists()


def test_cli_status_of_stopped_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_cluster_json(tmp_path, 3, port=9100)
    # A PID file naming a live process that is not this node's Cassandra (this one): stale.
    (tmp_path / "node2").mkdir()
    (tmp_path / "node2" / server.PID_FILE).write_text(f"{os.getpid()}\n")
    code, out, _ = _cli(capsys, "server", "status", "--dir", str(tmp_path))
    assert code == 3
    lines = out.splitlines()
    assert lines[0].startswith(f"cluster of 3 nodes in {tmp_path}: 0 running, CQL port 9100")
    assert lines[0].endswith("contact points 127.0.0.1,127.0.0.2,127.0.0.3")
    assert lines[1:] == [f"  node{k} 127.0.0.{k}: stopped" for k in (1, 2, 3)]
    assert not (tmp_path / "node2" / server.PID_FILE).exists()


def test_cli_stop_node_out_of_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_cluster_json(tmp_path, 3)
    code, out, err = _cli(capsys, "server", "stop-node", "--node", "4", "--dir", str(tmp_path))
    assert code == 1 and out == "" and err.count("\n") == 1
    assert f"the cluster in {tmp_path} has nodes 1 to 3, not 4" in err
    code, _, err = _cli(capsys, "server", "stop-node", "--node", "1", "--dir",
                        str(tmp_path / "none"))
    assert code == 1 and "no cluster in" in err and "--nodes 3" in err


# Contact points, replication factor, write consistency
def test_connection_contact_points() -> None:
    conn = Connection(host="127.0.0.1, 127.0.0.2,127.0.0.3", port=9042)
    assert conn.hosts == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert conn.contact_point == "127.0.0.1,127.0.0.2,127.0.0.3:9042"
    kwargs = conn.reader_kwargs()
    assert kwargs["cassandra_ips"] == conn.hosts and kwargs["cassandra_port"] == 9042
    single = Connection(host="10.0.0.5", port=9043)
    assert single.hosts == ["10.0.0.5"] and single.contact_point == "10.0.0.5:9043"
    assert Connection(host="127.0.0.1,,127.0.0.2,").hosts == ["127.0.0.1", "127.0.0.2"]
    env = Connection.from_env({"CASSANDRA_HOST": "127.0.0.1,127.0.0.2 ,127.0.0.3",
                               "CASSANDRA_PORT": "9100"})
    assert env.hosts == ["127.0.0.1", "127.0.0.2", "127.0.0.3"] and env.port == 9100
    assert env.reader_kwargs()["cassandra_ips"] == env.hosts
    assert Connection.from_env({}).hosts == ["127.0.0.1"]


@pytest.mark.parametrize("keyspace", [None, "other_ks"])
def test_with_replication_factor(keyspace: str | None) -> None:
    statements = cql_files.split_statements(CREATE_TABLES, keyspace)
    changed = cql_files.with_replication_factor(statements, 3)
    assert len(changed) == len(statements) == 5
    name = f'"{keyspace}"' if keyspace else "imagenette"  # renamed: quoted
    assert changed[0].startswith(f"CREATE KEYSPACE IF NOT EXISTS {name}\n")
    assert cql_files._REPLICATION.findall(changed[0]) == [
        "replication = {'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"]
    assert "SimpleStrategy" not in changed[0] and "SimpleStrategy" in statements[0]
    before, after = cql_files._REPLICATION.split(statements[0])
    assert changed[0].startswith(before) and changed[0].endswith(after)
    assert changed[1:] == statements[1:]  # the tables, byte for byte
    assert statements == cql_files.split_statements(CREATE_TABLES, keyspace)  # input unchanged
    # The first CREATE KEYSPACE only.
    two = [*statements, statements[0].replace(name, "second")]
    assert cql_files.with_replication_factor(two, 2)[-1] == two[-1]


def test_with_replication_factor_refusals() -> None:
    statements = cql_files.split_statements(CREATE_TABLES)
    for factor in (0, -1):
        with pytest.raises(cql_files.CqlSyntaxError, match=f"not {factor}"):
            cql_files.with_replication_factor(statements, factor)
    with pytest.raises(cql_files.CqlSyntaxError, match="no CREATE KEYSPACE"):
        cql_files.with_replication_factor(statements[1:], 3)
    with pytest.raises(cql_files.CqlSyntaxError, match="no replication"):
        cql_files.with_replication_factor(["CREATE KEYSPACE ks WITH durable_writes = true"], 3)


def test_ingest_consistency() -> None:
    assert IngestConfig(**TABLES).consistency == "LOCAL_QUORUM"
    assert IngestConfig(**TABLES, consistency="local_quorum").consistency == "LOCAL_QUORUM"
    assert IngestConfig(**TABLES, consistency="One").consistency == "ONE"
    for bad in ("serial", "quorom", ""):
        with pytest.raises(ValueError, match=repr(bad.upper())):
            IngestConfig(**TABLES, consistency=bad)


def _ingest_args(monkeypatch: pytest.MonkeyPatch, *extra: str) -> argparse.Namespace:
    for name in ("CASSANDRA_HOST", "CASSANDRA_PORT", "CASSANDRA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    parser = argparse.ArgumentParser()
    ingest_cli.add_arguments(parser)
    return parser.parse_args(["root", "--data-table", TABLES["data_table"],
                              "--metadata-table", TABLES["metadata_table"], *extra])


def test_ingest_cli_consistency(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ingest_cli.config_from_args(_ingest_args(monkeypatch)).consistency == "LOCAL_QUORUM"
    config = ingest_cli.config_from_args(_ingest_args(
        monkeypatch, "--consistency", "each_quorum", "--host", "127.0.0.1,127.0.0.2"))
    assert config.consistency == "EACH_QUORUM"
    assert config.connection.hosts == ["127.0.0.1", "127.0.0.2"]
    with pytest.raises(IngestError, match="'BOGUS' is not a write consistency"):
        ingest_cli.config_from_args(_ingest_args(monkeypatch, "--consistency", "bogus"))


# What the first review of this file found
@pytest.mark.parametrize("text", ["{trunc", "[]"])
def test_a_damaged_cluster_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         text: str) -> None:
    (tmp_path / cluster.CLUSTER_FILE).write_text(text)
    with pytest.raises(server.ServerError, match="cluster.json is damaged"):
        cluster.cluster_info(tmp_path)
    code, _, err = _cli(capsys, "server", "status", "--dir", str(tmp_path))
    assert code == 1 and "damaged" in err and "Traceback" not in err


def test_a_single_server_start_refuses_a_cluster_dir(tmp_path: Path, no_launch: None) -> None:
    _write_cluster_json(tmp_path, 3)
    with pytest.raises(server.ServerError, match="holds a local cluster"):
        server.process.start(server.ServerConfig(dir=tmp_path))


def test_one_port_given_the_other_never_takes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster, "port_in_use", lambda address, port: False)
    addresses = ["127.0.0.1", "127.0.0.2"]
    # --storage-port 9042: CQL must not take its own default, 9042.
    native = cluster._pick_port(addresses, None, None, 9042, "CQL", taken=9042)
    assert native != 9042
    assert cluster._pick_port(addresses, None, None, 7000, "storage", taken=native) == 7000
    with pytest.raises(server.ServerError, match="must differ"):
        cluster._pick_port(addresses, 9042, None, 7000, "storage", taken=9042)


def test_cli_names_tls_client_auth_and_checks_log_nodes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], no_launch: None) -> None:
    code, _, err = _cli(capsys, "server", "start", "--nodes", "3", "--tls-client-auth",
                        "--dir", str(tmp_path / "c"))
    assert code == 1 and "--tls-client-auth cannot" in err, err
    _write_cluster_json(tmp_path, 3)
    for node in ("4", "0"):
        code, _, err = _cli(capsys, "server", "logs", "--node", node, "--dir", str(tmp_path))
        assert code == 1 and f"has nodes 1 to 3, not {node}" in err, err


def test_an_empty_contact_point_list_is_refused() -> None:
    from cassandra_dali.client import ConnectionFailed

    with pytest.raises(ConnectionFailed, match="no contact point"):
        Connection(host=" , ")


def test_settings_fixed_at_creation_are_kept(tmp_path: Path) -> None:
    _write_cluster_json(tmp_path, 3)
    previous = cluster.cluster_info(tmp_path)
    assert previous is not None
    previous = dataclasses.replace(previous, version="5.0.5", cluster_name="mine")
    config = cluster.ClusterConfig(dir=tmp_path, nodes=3)
    assert cluster._fixed_settings(config, previous, set()) == {
        "cluster_name": "mine", "version": "5.0.5", "num_tokens": 16}
    assert cluster._fixed_settings(cluster.ClusterConfig(dir=tmp_path), None, set()) == {
        "cluster_name": server.DEFAULT_CLUSTER_NAME, "version": server.DEFAULT_VERSION,
        "num_tokens": 16}
    upgrade = cluster.ClusterConfig(dir=tmp_path, nodes=3, version="5.0.6")
    assert cluster._fixed_settings(upgrade, previous, set())["version"] == "5.0.6"
    with pytest.raises(server.ServerError, match="stop the cluster before moving it to 5.0.6"):
        cluster._fixed_settings(upgrade, previous, {2})
    with pytest.raises(server.ServerError, match="created with cluster_name 'mine'"):
        cluster._fixed_settings(cluster.ClusterConfig(dir=tmp_path, cluster_name="other"),
                                previous, set())
