"""A local Apache Cassandra 5.0 server for tests, demos and benchmarks.

Cassandra is in no Debian or PyPI package and Docker is not assumed, so the server is run as its
own JVM from the ``cassandra-all`` jars on Maven Central (fetched once per machine into a cache),
or from an existing installation named by ``CASSANDRA_HOME``.

Everything one server needs lives in one directory (``DIR``): its ``cassandra.yaml``,
``logback.xml``, data, logs, TLS material, the PID file and ``server.json`` (ports and options,
so that ``status`` and clients can find it again). Two servers in two directories never collide:
their ports are picked free, and JMX is off unless a port is asked for.

A local cluster (``server start --nodes N``, :mod:`.cluster`) is N such servers of one ring on
127.0.0.1 ... 127.0.0.N, in ``DIR/node1`` ... ``DIR/nodeN``.

Parts: :mod:`.layout` (defaults, files, cache), :mod:`.jars` (classes and JDK), :mod:`.config`
(settings, rendered config files, ports), :mod:`.tls` (keytool material), :mod:`.process`
(start, status, stop, logs). The library logs progress on ``cassandra_dali.server.*`` loggers
and raises :class:`ServerError` for every failure a user can act on (the CLI prints those
without a traceback).
"""

from __future__ import annotations

from .cluster import (
    ClusterConfig,
    ClusterInfo,
    NodeStatus,
    cluster_info,
    cluster_status,
    is_cluster_dir,
    node_address,
    start_cluster,
    start_node,
    stop_cluster,
    stop_node,
)
from .config import (
    ServerConfig,
    ServerInfo,
    ServerStatus,
    port_in_use,
    render_cassandra_yaml,
    render_logback_xml,
)
from .jars import (
    JAVA_MAX,
    JAVA_MIN,
    Installation,
    fetch_jars,
    find_java_home,
    installation,
    jar_cache_dir,
    java_major_version,
    parse_jvm_options,
    spark_java_home,
)
from .layout import (
    DEFAULT_CLUSTER_NAME,
    DEFAULT_HEAP,
    DEFAULT_HOST,
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    DEFAULT_VERSION,
    PID_FILE,
    STATE_FILE,
    ServerError,
    cache_root,
    default_server_dir,
)
from .process import (
    cpu_seconds,
    java_command,
    log_tail,
    query_release_version,
    start,
    status,
    stop,
    wait_ready,
)
from .tls import TlsMaterial, ensure_tls, make_ca

__all__ = [
    "DEFAULT_CLUSTER_NAME",
    "DEFAULT_HEAP",
    "DEFAULT_HOST",
    "DEFAULT_START_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "DEFAULT_VERSION",
    "JAVA_MAX",
    "JAVA_MIN",
    "PID_FILE",
    "STATE_FILE",
    "ClusterConfig",
    "ClusterInfo",
    "Installation",
    "NodeStatus",
    "ServerConfig",
    "ServerError",
    "ServerInfo",
    "ServerStatus",
    "TlsMaterial",
    "cache_root",
    "cluster_info",
    "cluster_status",
    "cpu_seconds",
    "default_server_dir",
    "ensure_tls",
    "fetch_jars",
    "find_java_home",
    "spark_java_home",
    "installation",
    "is_cluster_dir",
    "jar_cache_dir",
    "java_command",
    "java_major_version",
    "log_tail",
    "make_ca",
    "node_address",
    "parse_jvm_options",
    "port_in_use",
    "query_release_version",
    "render_cassandra_yaml",
    "render_logback_xml",
    "start",
    "start_cluster",
    "start_node",
    "status",
    "stop",
    "stop_cluster",
    "stop_node",
    "wait_ready",
]
