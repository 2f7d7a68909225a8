"""A server's settings: how to start it (:class:`ServerConfig`), how to reach it
(:class:`ServerInfo`, kept in ``DIR/server.json``), the files it is started with
(``cassandra.yaml``, ``logback.xml``) and its ports."""

from __future__ import annotations

import dataclasses
import json
import socket
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from ..client import Connection
from .layout import (
    DEFAULT_CLUSTER_NAME,
    DEFAULT_HEAP,
    DEFAULT_HOST,
    DEFAULT_START_TIMEOUT,
    DEFAULT_VERSION,
    STATE_FILE,
    SYSTEM_LOG,
    ServerError,
    default_server_dir,
)


@dataclasses.dataclass
class ServerConfig:
    """How to start one server. Ports left at None are reused from the last run, else picked."""

    dir: Path = dataclasses.field(default_factory=default_server_dir)
    host: str = DEFAULT_HOST
    native_port: int | None = None
    storage_port: int | None = None
    jmx_port: int | None = None  # None: no JMX at all (nodetool will not work); 0: pick one
    heap: str = DEFAULT_HEAP
    auth: bool = False
    tls: bool = False
    client_auth: bool = False  # with tls: clients must show a certificate signed by the CA
    cluster_name: str = DEFAULT_CLUSTER_NAME
    version: str = DEFAULT_VERSION
    start_timeout: float = DEFAULT_START_TIMEOUT
    # Ring membership, set by :mod:`.cluster` for its nodes; the defaults make a lone node.
    seeds: str | None = None  # "host:storage_port" of the seed nodes; None: this node alone
    num_tokens: int = 1
    initial_token: str | None = None  # comma-separated, num_tokens of them; None: picked
    announce_shutdown: bool = False  # tell peers at stop (costs 2 s): only a cluster has peers


@dataclasses.dataclass(frozen=True)
class ServerInfo(Connection):
    """How to reach a server, as any client does (a :class:`Connection`), and what the launcher
    knows of it: ``dir`` set for ours, None for an external one."""

    dir: Path | None = None
    pid: int | None = None
    startup_seconds: float | None = None
    storage_port: int | None = None
    jmx_port: int | None = None

    def to_json(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in fields.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerInfo:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("dir", "ca_cert", "client_cert", "client_key"):
            if values.get(key) is not None:
                values[key] = Path(values[key])
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class ServerStatus:
    running: bool
    dir: Path
    info: ServerInfo | None  # the last start's settings, when known
    pid: int | None = None  # of the running server
    message: str = ""  # e.g. that a stale PID file was removed


def read_state(directory: Path) -> ServerInfo | None:
    try:
        return ServerInfo.from_json(json.loads((directory / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None



def _yaml_str(value: str | Path) -> str:
    # JSON strings are valid YAML scalars: safe for any path or password.
    return json.dumps(str(value))


def render_cassandra_yaml(
    directory: Path,
    *,
    cluster_name: str,
    host: str,
    native_port: int,
    storage_port: int,
    auth: bool,
    seeds: str | None = None,
    num_tokens: int = 1,
    initial_token: str | None = None,
    tls_keystore: Path | None = None,
    tls_password: str | None = None,
    tls_truststore: Path | None = None,
    version: str = DEFAULT_VERSION,
) -> str:
    """A minimal cassandra.yaml for one node (alone, or in a ring with ``seeds``), valid for the
    release ``version`` (4.0 knows only the ``_in_ms`` names of durations; 4.1 and 5.0 take
    ``10000ms``). Cassandra rejects unknown keys: keep it small."""
    old_names = version.startswith("4.0")
    data = directory / "data"
    lines = [
        "# Written by cassandra_dali.server at each start; edits are overwritten.",
        f"cluster_name: {_yaml_str(cluster_name)}",
        # One node: a single token keeps start-up and token ranges simple.
        f"num_tokens: {num_tokens}",
        "partitioner: org.apache.cassandra.dht.Murmur3Partitioner",
        "endpoint_snitch: SimpleSnitch",
        "seed_provider:",
        "  - class_name: org.apache.cassandra.locator.SimpleSeedProvider",
        "    parameters:",
        # The port matters: a seed without one means port 7000, i.e. some other node.
        f"      - seeds: {_yaml_str(seeds or f'{host}:{storage_port}')}",
        f"listen_address: {_yaml_str(host)}",
        f"rpc_address: {_yaml_str(host)}",
        f"storage_port: {storage_port}",
        f"native_transport_port: {native_port}",
        "data_file_directories:",
        f"  - {_yaml_str(data / 'data')}",
        f"commitlog_directory: {_yaml_str(data / 'commitlog')}",
        f"saved_caches_directory: {_yaml_str(data / 'saved_caches')}",
        f"hints_directory: {_yaml_str(data / 'hints')}",
        f"cdc_raw_directory: {_yaml_str(data / 'cdc_raw')}",
        "commitlog_sync: periodic",
        "commitlog_sync_period_in_ms: 10000" if old_names else "commitlog_sync_period: 10000ms",
        "auto_snapshot: false",  # dropping test keyspaces must not keep their data as snapshots
        "authenticator: " + ("PasswordAuthenticator" if auth else "AllowAllAuthenticator"),
        "authorizer: " + ("CassandraAuthorizer" if auth else "AllowAllAuthorizer"),
        "role_manager: CassandraRoleManager",
    ]
    if initial_token is not None:
        # Tokens given (evenly spaced by .cluster): a fresh ring is balanced from its first
        # start, and nodes can join together, without streaming (nothing to stream yet).
        lines += [f"initial_token: {_yaml_str(initial_token)}", "auto_bootstrap: false"]
    if tls_keystore is not None:
        assert tls_password is not None
        lines += [
            "client_encryption_options:",
            "  enabled: true",
            "  optional: false",  # CQL only over TLS: a plaintext client is refused
            f"  keystore: {_yaml_str(tls_keystore)}",
            f"  keystore_password: {_yaml_str(tls_password)}",
            "  store_type: PKCS12",
        ]
        if tls_truststore is not None:  # mutual TLS: a client without a CA-signed cert is refused
            lines += [
                "  require_client_auth: true",
                f"  truststore: {_yaml_str(tls_truststore)}",
                f"  truststore_password: {_yaml_str(tls_password)}",
            ]
    return "\n".join(lines) + "\n"


def render_logback_xml(log_dir: Path) -> str:
    """Logging to DIR/logs/system.log at INFO (the jar ships no logback.xml: DEBUG to stdout)."""
    log_file = xml_escape(str(log_dir / SYSTEM_LOG))
    return f"""<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>{log_file}</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.FixedWindowRollingPolicy">
      <fileNamePattern>{log_file}.%i</fileNamePattern>
      <minIndex>1</minIndex>
      <maxIndex>3</maxIndex>
    </rollingPolicy>
    <triggeringPolicy class="ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy">
      <maxFileSize>50MB</maxFileSize>
    </triggeringPolicy>
    <encoder>
      <pattern>%-5level [%thread] %date{{ISO8601}} %logger{{0}} - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="FILE"/>
  </root>
</configuration>
"""



def port_in_use(host: str, port: int) -> bool:
    """True if something listens on host:port (SO_REUSEADDR: TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _free_ports(host: str, count: int, taken: set[int]) -> list[int]:
    """Ports the OS says are free, distinct from each other and from ``taken``."""
    # Hold the sockets until every port is chosen: the OS then hands out distinct ports.
    sockets: list[socket.socket] = []
    try:
        while len([s for s in sockets if s.getsockname()[1] not in taken]) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [s.getsockname()[1] for s in sockets if s.getsockname()[1] not in taken][:count]
    finally:
        for sock in sockets:
            sock.close()


def choose_ports(config: ServerConfig, previous: ServerInfo | None) -> tuple[int, int, int | None]:
    """(native, storage, jmx) ports: given ones must be free; others are reused or picked."""
    wanted: dict[str, int | None] = {
        "native transport (CQL)": config.native_port,
        "storage": config.storage_port,
    }
    if config.jmx_port is not None:
        wanted["JMX"] = config.jmx_port or None
    if previous is not None:  # same ports as last time when free: clients keep their settings
        fallback = {"native transport (CQL)": previous.port, "storage": previous.storage_port,
                    "JMX": previous.jmx_port}
        for name, port in wanted.items():
            last = fallback.get(name)
            if port is None and last and not port_in_use(config.host, last):
                wanted[name] = last
    for name, port in wanted.items():
        if port is not None and port_in_use(config.host, port):
            raise ServerError(
                f"{name} port {config.host}:{port} is already in use; choose another port "
                "or leave it out to have a free one picked"
            )
    chosen = [p for p in wanted.values() if p is not None]
    if len(set(chosen)) != len(chosen):
        raise ServerError(f"the ports must differ: {wanted}")
    missing = [name for name, port in wanted.items() if port is None]
    free = _free_ports(config.host, len(missing), set(chosen))
    for name, port in zip(missing, free, strict=True):
        wanted[name] = port
    native, storage = wanted["native transport (CQL)"], wanted["storage"]
    assert native is not None and storage is not None
    return native, storage, wanted.get("JMX")

