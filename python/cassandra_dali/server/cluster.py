"""A local multi-node Cassandra cluster: N real nodes of one ring on 127.0.0.1 ... 127.0.0.N.

Each node is a server of :mod:`.process` in its own directory ``DIR/nodeK`` (config, data,
logs, ``cassandra.pid``) on its own loopback address; all listen on the same CQL and storage
ports, as nodes of a real cluster do. ``DIR/cluster.json`` says how many nodes and which ports,
so ``status``, ``stop``, ``stop-node`` and ``start-node`` find them again, and clients get the
contact points from :func:`cluster_info`.

Start-up: node 1 (the seed) first, then the others together. Each node is given evenly spaced
tokens (``initial_token``) and does not bootstrap: a fresh ring has nothing to stream, so the
nodes join at once and own equal shares from their first start.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import ipaddress
import json
import logging
import socket
import time
from pathlib import Path
from typing import Any

from .._files import write_atomically
from ..client import Connection, ConnectionFailed
from ..client.nodes import hosts_not_up
from .config import ServerConfig, ServerInfo, ServerStatus, port_in_use
from .layout import (
    CLUSTER_FILE,
    DEFAULT_CLUSTER_NAME,
    DEFAULT_HEAP,
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    DEFAULT_VERSION,
    STATE_FILE,
    ServerError,
    locked,
    server_dir,
)
from .process import Launched, await_ready, launch, start_lock, status, stop

log = logging.getLogger(__name__)

FIRST_ADDRESS = "127.0.0.1"
DEFAULT_CQL_PORT = 9042
DEFAULT_STORAGE_PORT = 7000
# Cassandra 5.0's default number of vnodes per node: a token range scan then has 16 ranges per
# node, as on a real cluster.
DEFAULT_NUM_TOKENS = 16
MAX_NODES = 254  # addresses 127.0.0.1 ... 127.0.0.254


@dataclasses.dataclass
class ClusterConfig:
    """How to start a local cluster. Ports left at None are the last run's, else 9042 and 7000
    when free on every node's address, else free ones."""

    dir: Path
    nodes: int = 3
    heap: str = DEFAULT_HEAP
    native_port: int | None = None
    storage_port: int | None = None
    # Fixed when the cluster is created (its nodes refuse another name or other tokens later):
    # None takes the existing cluster's, else the default.
    cluster_name: str | None = None
    version: str | None = None
    num_tokens: int | None = None
    start_timeout: float = DEFAULT_START_TIMEOUT  # per wave: the seed, then the other nodes


@dataclasses.dataclass(frozen=True)
class ClusterInfo(Connection):
    """How to reach the cluster (every node a contact point) and what the launcher knows."""

    dir: Path | None = None
    nodes: int = 0
    storage_port: int = DEFAULT_STORAGE_PORT
    heap: str = DEFAULT_HEAP
    cluster_name: str = DEFAULT_CLUSTER_NAME
    version: str = DEFAULT_VERSION
    num_tokens: int = DEFAULT_NUM_TOKENS
    startup_seconds: float | None = None

    def node_dir(self, node: int) -> Path:
        assert self.dir is not None
        return node_dir(self.dir, node)

    def to_json(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        fields.pop("password", None)  # no auth on local clusters; never written anyway
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in fields.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterInfo:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("dir") is not None:
            values["dir"] = Path(values["dir"])
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class NodeStatus:
    node: int
    address: str
    status: ServerStatus


def node_address(node: int) -> str:
    """Node K's address: 127.0.0.K (Linux routes all of 127/8 to the loopback device)."""
    if not 1 <= node <= MAX_NODES:
        raise ServerError(f"node numbers go from 1 to {MAX_NODES}, not {node}")
    return str(ipaddress.IPv4Address(FIRST_ADDRESS) + node - 1)


def node_dir(directory: Path, node: int) -> Path:
    return directory / f"node{node}"


def node_tokens(node: int, nodes: int, num_tokens: int) -> list[int]:
    """Node K's share of ``nodes * num_tokens`` Murmur3 tokens spaced evenly over the ring,
    interleaved (node 1 the first, node 2 the second...): every node owns 1/N of the ring."""
    total = nodes * num_tokens
    return [-(2**63) + (i * 2**64) // total for i in range(node - 1, total, nodes)]


def is_cluster_dir(directory: Path | str | None) -> bool:
    return (server_dir(directory) / CLUSTER_FILE).is_file()


def cluster_info(directory: Path | str | None) -> ClusterInfo | None:
    """The cluster of a directory as last started; None if there is none. A damaged
    ``cluster.json`` is an error that names it."""
    path = server_dir(directory) / CLUSTER_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ServerError(f"cannot read {path}: {error.strerror}") from None
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        return ClusterInfo.from_json(data)
    except (ValueError, TypeError, ConnectionFailed) as error:
        raise ServerError(f"{path} is damaged ({error}); the nodes' own files are in "
                          f"{path.parent}/node*: stop them with cassandra-dali server stop "
                          "--dir on each node directory, then start the cluster anew") from None


def _require_cluster(directory: Path | str | None) -> ClusterInfo:
    info = cluster_info(directory)
    if info is None:
        raise ServerError(f"no cluster in {server_dir(directory)} (no {CLUSTER_FILE}); start one: "
                          f"cassandra-dali server start --nodes 3 --dir {server_dir(directory)}")
    return info


def _pick_port(addresses: list[str], wanted: int | None, last: int | None, default: int,
               what: str, taken: int | None = None) -> int:
    """A port free on every address and other than ``taken``: the one asked for (or fail),
    else the last, else the default, else one the OS picks that is free on every address."""
    if wanted is not None:
        if wanted == taken:
            raise ServerError(f"the CQL and storage ports must differ (both {wanted})")
        for address in addresses:
            if port_in_use(address, wanted):
                raise ServerError(f"{what} port {address}:{wanted} is already in use; choose "
                                  "another port or leave it out to have a free one picked")
        return wanted
    for candidate in (last, default):
        if candidate and candidate != taken and not any(port_in_use(a, candidate)
                                                        for a in addresses):
            return candidate
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind((addresses[0], 0))
            port = int(sock.getsockname()[1])
        if port != taken and not any(port_in_use(a, port) for a in addresses):
            return port
    raise ServerError(f"found no {what} port free on all of {', '.join(addresses)}")


def _check_addresses(addresses: list[str]) -> None:
    for address in addresses:
        with socket.socket() as sock:
            try:
                sock.bind((address, 0))
            except OSError as error:
                raise ServerError(
                    f"cannot use the loopback address {address} ({error.strerror}): a local "
                    "cluster needs 127.0.0.1 ... 127.0.0.N (Linux routes all of 127/8 to the "
                    f"loopback device; elsewhere add aliases, e.g. ifconfig lo0 alias {address})"
                ) from None


def node_config(info: ClusterInfo, node: int) -> ServerConfig:
    """Node K's server settings: derived from the cluster's, the same at every start."""
    assert info.dir is not None
    seed = f"{node_address(1)}:{info.storage_port}"
    tokens = node_tokens(node, info.nodes, info.num_tokens)
    return ServerConfig(
        dir=node_dir(info.dir, node), host=node_address(node), native_port=info.port,
        storage_port=info.storage_port, jmx_port=None, heap=info.heap,
        cluster_name=info.cluster_name, version=info.version, seeds=seed,
        num_tokens=info.num_tokens, initial_token=",".join(str(t) for t in tokens),
        announce_shutdown=True,
    )


def start_cluster(config: ClusterConfig) -> ClusterInfo:
    """Start ``config.nodes`` nodes and wait until each answers CQL and sees every other one
    up; return how to reach them. Nodes already running are kept; on failure, the nodes this
    call started are stopped again and the error carries the failing node's log tail."""
    if not 1 <= config.nodes <= MAX_NODES:
        raise ServerError(f"--nodes must be between 1 and {MAX_NODES}, not {config.nodes}")
    directory = server_dir(config.dir)
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / STATE_FILE).is_file():
        raise ServerError(f"{directory} holds a single-node server's files ({STATE_FILE}); "
                          "give the cluster another --dir")
    with locked(directory / ".cluster.lock",  # no cluster.json yet: not _cluster_lock
                busy_message=f"another start or stop is in progress in {directory}"):
        return _start_cluster_locked(config, directory)


def _start_cluster_locked(config: ClusterConfig, directory: Path) -> ClusterInfo:
    previous = cluster_info(directory)
    if previous is not None and previous.nodes != config.nodes:
        raise ServerError(
            f"{directory} holds a {previous.nodes}-node cluster: start it with --nodes "
            f"{previous.nodes}, or give a new cluster another --dir (nodes are not added to or "
            "removed from an existing local cluster)")
    addresses = [node_address(k) for k in range(1, config.nodes + 1)]
    _check_addresses(addresses)
    running = {k for k in range(1, config.nodes + 1)
               if status(node_dir(directory, k)).running}
    if previous is not None and running:  # a partly running cluster: keep its ports
        native, storage = previous.port, previous.storage_port
        for asked, used, what in ((config.native_port, native, "CQL"),
                                  (config.storage_port, storage, "storage")):
            if asked is not None and asked != used:
                raise ServerError(f"nodes of the cluster in {directory} already run with "
                                  f"{what} port {used}, not {asked}: stop it first to change it")
    else:
        # A port asked for is reserved first, so the other one never picks it.
        native = _pick_port(addresses, config.native_port,
                            previous.port if previous else None, DEFAULT_CQL_PORT, "CQL",
                            taken=config.storage_port)
        storage = _pick_port(addresses, config.storage_port,
                             previous.storage_port if previous else None, DEFAULT_STORAGE_PORT,
                             "storage", taken=native)
    fixed = _fixed_settings(config, previous, running)
    info = ClusterInfo(
        host=",".join(addresses), port=native, dir=directory, nodes=config.nodes,
        storage_port=storage, heap=config.heap, **fixed,
    )
    _write_cluster_file(info)
    started = time.monotonic()
    mine: list[int] = []
    try:
        # The seed first: the others learn the ring from it.
        waves = [[1], list(range(2, config.nodes + 1))]
        for wave in waves:
            todo = [k for k in wave if k not in running]
            launched = _launch_nodes(info, todo, mine)
            for k, node in launched.items():
                await_ready(node, config.start_timeout)
        wait_for_ring(info, timeout=config.start_timeout)
    except BaseException:
        for k in reversed(mine):
            stop(node_dir(directory, k), timeout=DEFAULT_STOP_TIMEOUT)
        raise
    info = dataclasses.replace(info, startup_seconds=time.monotonic() - started)
    _write_cluster_file(info)
    log.info("cluster of %d nodes ready at %s after %.1f s", info.nodes, info.contact_point,
             info.startup_seconds)
    return info


def _fixed_settings(config: ClusterConfig, previous: ClusterInfo | None,
                    running: set[int]) -> dict[str, Any]:
    """cluster_name, version and num_tokens: as asked, else as the existing cluster has them,
    else the defaults. Another name or token count than the existing cluster's is refused (its
    nodes would not start with them); another version is an upgrade, allowed only while no node
    runs (a ring of mixed versions is not something to start by accident)."""
    defaults: dict[str, Any] = {"cluster_name": DEFAULT_CLUSTER_NAME, "version": DEFAULT_VERSION,
                                "num_tokens": DEFAULT_NUM_TOKENS}
    fixed = {}
    for name, default in defaults.items():
        asked = getattr(config, name)
        existing = getattr(previous, name) if previous is not None else None
        if asked is not None and existing is not None and asked != existing:
            if name != "version":
                raise ServerError(f"the cluster in {config.dir} was created with {name} "
                                  f"{existing!r}, not {asked!r}; give a new cluster another --dir")
            if running:
                raise ServerError(f"nodes {sorted(running)} of the cluster in {config.dir} run "
                                  f"Cassandra {existing}: stop the cluster before moving it to "
                                  f"{asked}")
        fixed[name] = asked if asked is not None else existing if existing is not None else default
    return fixed


def _launch_nodes(info: ClusterInfo, nodes: list[int], mine: list[int]) -> dict[int, Launched]:
    launched: dict[int, Launched] = {}
    for k in nodes:
        config = node_config(info, k)
        assert config.dir is not None
        config.dir.mkdir(parents=True, exist_ok=True)
        with start_lock(config.dir):
            launched[k] = launch(config, config.dir)
        mine.append(k)
    return launched


def wait_for_ring(info: ClusterInfo, *, timeout: float, expect_down: set[int] | None = None,
                  ) -> None:
    """Until every node that should be up has every such node in its gossip state as a NORMAL
    member of the ring at that node's current generation (a restarted node has a new one, so
    its peers have heard from it since its restart), and a client connected to all of them
    sees each one up."""
    down = expect_down or set()
    wanted = {node_address(k) for k in range(1, info.nodes + 1) if k not in down}
    deadline = time.monotonic() + timeout
    last = "not checked yet"
    while True:
        try:
            missing = hosts_not_up(wanted, info.port)
            if not missing:
                return
            last = f"not seen up yet: {', '.join(sorted(missing))}"
        except Exception as error:  # noqa: BLE001  # driver errors vary: retried until the deadline
            last = f"{type(error).__name__}: {error}"
        if time.monotonic() > deadline:
            raise ServerError(f"the cluster in {info.dir} did not form a ring of "
                              f"{len(wanted)} up nodes within {timeout:.0f} s ({last})")
        time.sleep(1.0)


def cluster_status(directory: Path | str | None) -> list[NodeStatus]:
    info = _require_cluster(directory)
    return [NodeStatus(k, node_address(k), status(info.node_dir(k)))
            for k in range(1, info.nodes + 1)]


def stop_cluster(directory: Path | str | None, timeout: float = DEFAULT_STOP_TIMEOUT) -> list[int]:
    """Stop every node (together); return the nodes that were running."""
    info = _require_cluster(directory)
    assert info.dir is not None
    with _cluster_lock(info):
        nodes = list(range(1, info.nodes + 1))
        with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
            stopped = list(pool.map(lambda k: stop(info.node_dir(k), timeout=timeout), nodes))
    return [k for k, was in zip(nodes, stopped, strict=True) if was]


def stop_node(directory: Path | str | None, node: int, *, kill: bool = False,
              timeout: float = DEFAULT_STOP_TIMEOUT) -> bool:
    """Take node K down: SIGTERM (it drains and tells its peers), or SIGKILL with ``kill``
    (a crash: peers find out by failure detection). True if it was running."""
    info = _require_cluster(directory)
    check_node(info, node)
    with _cluster_lock(info):
        return stop(info.node_dir(node), timeout=timeout, kill=kill)


def start_node(directory: Path | str | None, node: int,
               timeout: float = DEFAULT_START_TIMEOUT) -> ServerInfo:
    """Bring node K back (same address, ports and tokens) and wait until the other running
    nodes see it up."""
    info = _require_cluster(directory)
    check_node(info, node)
    config = node_config(info, node)
    config.start_timeout = timeout
    assert config.dir is not None
    with _cluster_lock(info):
        if status(config.dir).running:
            raise ServerError(f"node{node} ({node_address(node)}) of the cluster in {info.dir} "
                              "already runs")
        with start_lock(config.dir):
            launched = launch(config, config.dir)
            ready = await_ready(launched, timeout)
        down = {k for k in range(1, info.nodes + 1)
                if k != node and not status(info.node_dir(k)).running}
        try:
            wait_for_ring(info, timeout=timeout, expect_down=down)
        except BaseException:  # as start_cluster: no node left half-joined
            stop(config.dir)
            raise
    return ready


def _cluster_lock(info: ClusterInfo) -> Any:
    assert info.dir is not None
    return locked(info.dir / ".cluster.lock",
                  busy_message=f"another start or stop is in progress in {info.dir}")


def check_node(info: ClusterInfo, node: int) -> None:
    if not 1 <= node <= info.nodes:
        raise ServerError(f"the cluster in {info.dir} has nodes 1 to {info.nodes}, not {node}")


def _write_cluster_file(info: ClusterInfo) -> None:
    assert info.dir is not None
    text = json.dumps(info.to_json(), indent=2) + "\n"
    write_atomically(info.dir / CLUSTER_FILE, text.encode())
