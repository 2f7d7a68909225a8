"""Run a local Apache Cassandra 5.0 server for tests, demos and benchmarks.

Cassandra is in no Debian or PyPI package and Docker is not assumed, so the server is run as its
own JVM from the ``cassandra-all`` jars on Maven Central (fetched once per machine into a cache),
or from an existing installation named by ``CASSANDRA_HOME``.

Everything one server needs lives in one directory (``DIR``): its ``cassandra.yaml``,
``logback.xml``, data, logs, TLS material, the PID file and ``server.json`` (ports and options,
so that ``status`` and clients can find it again). Two servers in two directories never collide:
their ports are picked free, and JMX is off unless a port is asked for.

The library logs progress on the ``cassandra_dali.server`` logger and raises :class:`ServerError`
for every failure a user can act on (the CLI prints those without a traceback).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape as xml_escape

from .client_cert import PASS_ARGS as _PASS_ARGS
from .client_cert import PASSWORD_ENV as _PASS_ENV
from ._files import write_atomically
from .client_cert import ensure_client_material, ensure_truststore

if TYPE_CHECKING:  # the driver is imported lazily: only readiness checks and clients need it
    from cassandra.cluster import Cluster, Session

log = logging.getLogger(__name__)

DEFAULT_VERSION = "5.0.6"
DEFAULT_HEAP = "1G"
# Generous: a cold 5.0 start on 2 cores takes tens of seconds, more when the machine is busy.
DEFAULT_START_TIMEOUT = 180.0
DEFAULT_STOP_TIMEOUT = 60.0
DEFAULT_CLUSTER_NAME = "cassandra-dali"
DEFAULT_HOST = "127.0.0.1"
# Created by Cassandra itself when PasswordAuthenticator is on and no role exists yet.
SUPERUSER = "cassandra"
SUPERUSER_PASSWORD = "cassandra"

MAIN_CLASS = "org.apache.cassandra.service.CassandraDaemon"
# Cassandra 5.0 supports JDK 11 and 17; newer JDKs fail at start (it calls the security manager,
# which JDK 24 removed). 18..23 run but are not supported upstream.
JAVA_MIN, JAVA_MAX = 11, 23

# The JPMS flags Cassandra 5.0 ships in conf/jvm17-server.options. The Maven jars carry no conf/,
# so they are kept here; a missing one kills the JVM early (IllegalAccessError and friends).
JVM17_MODULE_FLAGS: tuple[str, ...] = (
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
)
# The rest of what jvm17-server.options sets that matters here: G1 as upstream tunes it, and
# netty's pooled direct buffers (without these netty falls back to slower allocateDirect).
JVM17_OTHER_FLAGS: tuple[str, ...] = (
    "-XX:+UseG1GC",
    "-XX:+ParallelRefProcEnabled",
    "-XX:MaxTenuringThreshold=1",
    "-XX:MaxGCPauseMillis=300",
    "-XX:InitiatingHeapOccupancyPercent=70",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
)

# Files inside a server directory.
PID_FILE = "cassandra.pid"
STATE_FILE = "server.json"
YAML_FILE = "cassandra.yaml"
LOGBACK_FILE = "logback.xml"
LOG_DIR = "logs"
SYSTEM_LOG = "system.log"
STDOUT_LOG = "stdout.log"
TLS_DIR = "tls"
_START_HEADER = "==== cassandra-dali start at "
CA_PEM = "ca.pem"


class ServerError(RuntimeError):
    """A failure the user can act on (bad setup, port in use, server did not start...)."""


# --------------------------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """Per-machine cache for jars and default server directories (outside any repository)."""
    override = os.environ.get("CASSANDRA_DALI_CACHE")
    if override:
        return Path(override).expanduser().resolve()
    return Path.home() / ".cache" / "cassandra-dali"


def default_server_dir() -> Path:
    return cache_root() / "servers" / "default"


# --------------------------------------------------------------------------------------------
# Jars: Maven Central or CASSANDRA_HOME
# --------------------------------------------------------------------------------------------

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by cassandra_dali.server.fetch_jars: its only purpose is to let Maven resolve
     the runtime classpath of the Cassandra server. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cassandra-dali</groupId>
  <artifactId>cassandra-server-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""

_COMPLETE_MARKER = ".complete"


def jar_cache_dir(version: str = DEFAULT_VERSION) -> Path:
    return cache_root() / f"cassandra-{version}"


def fetch_jars(version: str = DEFAULT_VERSION) -> Path:
    """Return the directory holding the server's runtime jars, fetching them once per machine.

    Maven resolves ``cassandra-all`` and its runtime dependencies into a fresh temporary folder
    that is renamed into place only when complete, and a marker is written last; an interrupted
    fetch therefore leaves no half-filled ``lib/`` that would be taken for a good one.
    """
    if not re.fullmatch(r"[0-9A-Za-z.\-]+", version):
        raise ServerError(f"invalid Cassandra version {version!r}")
    base = jar_cache_dir(version)
    lib = base / "lib"
    if (base / _COMPLETE_MARKER).is_file() and lib.is_dir():
        return lib
    base.mkdir(parents=True, exist_ok=True)
    # Two processes (e.g. two test runs) may fetch at once: serialise them on a lock file.
    with _locked(base / ".lock"):
        if (base / _COMPLETE_MARKER).is_file() and lib.is_dir():
            return lib
        _run_maven(base, version, lib)
    return lib


@contextlib.contextmanager
def _locked(path: Path, busy_message: str | None = None) -> Iterator[None]:
    """An exclusive lock on a file; with ``busy_message``, fail with it instead of waiting."""
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (fcntl.LOCK_NB if busy_message else 0))
        except BlockingIOError:
            raise ServerError(busy_message or "") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_maven(base: Path, version: str, lib: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServerError(
            "Maven (mvn) is not on PATH: it is needed once to fetch the Cassandra jars "
            "(or set CASSANDRA_HOME to an existing Cassandra 5.0 installation)"
        )
    (base / _COMPLETE_MARKER).unlink(missing_ok=True)
    (base / "pom.xml").write_text(_POM.format(version=version))
    staging = base / f"lib.partial-{os.getpid()}"
    for stale in (lib, *base.glob("lib.partial-*")):  # leftovers of an interrupted fetch
        shutil.rmtree(stale, ignore_errors=True)
    cmd = [
        mvn, "-B", "-q", "-f", str(base / "pom.xml"),
        "dependency:copy-dependencies", "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    log.info("fetching Cassandra %s jars with Maven into %s", version, lib)
    started = time.monotonic()
    env = {**os.environ, "JAVA_HOME": str(find_java_home())}  # Maven itself needs a JDK too
    proc = subprocess.run(cmd, cwd=base, env=env, check=False, capture_output=True, text=True)
    if proc.returncode != 0 or not any(staging.glob("cassandra-all-*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        # Maven 3.8 colours some lines even in batch mode: strip the escape codes.
        output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr).strip()
        raise ServerError(
            f"Maven could not fetch org.apache.cassandra:cassandra-all:{version} "
            f"(exit {proc.returncode}); command: {' '.join(cmd)}\n{_tail_text(output, 60)}"
        )
    staging.rename(lib)
    (base / _COMPLETE_MARKER).write_text(f"{len(list(lib.glob('*.jar')))} jars\n")
    log.info("fetched %d jars in %.1f s", len(list(lib.glob("*.jar"))), time.monotonic() - started)


@dataclasses.dataclass(frozen=True)
class Installation:
    """Where the server's classes come from and the JVM options that go with them."""

    classpath: str
    jvm_options: tuple[str, ...]
    source: str  # for messages: "maven:<lib dir>" or "CASSANDRA_HOME=<dir>"


def installation(version: str = DEFAULT_VERSION) -> Installation:
    """CASSANDRA_HOME when set (the user's own tarball), else the Maven jars, fetched if needed."""
    home = os.environ.get("CASSANDRA_HOME")
    if home:
        return _home_installation(Path(home).expanduser().resolve())
    lib = fetch_jars(version)
    return Installation(
        classpath=f"{lib}/*",
        jvm_options=JVM17_MODULE_FLAGS + JVM17_OTHER_FLAGS,
        source=f"maven:{lib}",
    )


def _home_installation(home: Path) -> Installation:
    lib, options_file = home / "lib", home / "conf" / "jvm17-server.options"
    if not any(lib.glob("apache-cassandra-*.jar")) and not any(lib.glob("cassandra-all-*.jar")):
        raise ServerError(f"CASSANDRA_HOME={home}: no Cassandra jar in {lib}")
    if not options_file.is_file():
        raise ServerError(
            f"CASSANDRA_HOME={home}: {options_file} is missing (a Cassandra 5.0 install is needed)"
        )
    return Installation(
        classpath=f"{lib}/*",
        jvm_options=tuple(parse_jvm_options(options_file.read_text())),
        source=f"CASSANDRA_HOME={home}",
    )


def parse_jvm_options(text: str) -> list[str]:
    """Options from a Cassandra ``jvm*.options`` file: one per line, ``#`` starts a comment.

    ``--add-opens a=b`` lines hold two arguments; heap sizes are left to the launcher.
    """
    options: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-Xms", "-Xmx", "-Xmn")):
            continue
        options.extend(line.split(None, 1))
    return options


# --------------------------------------------------------------------------------------------
# Java
# --------------------------------------------------------------------------------------------


def java_major_version(java_home: Path) -> int | None:
    """The feature version of a JDK (17 for 17.0.15), from its ``release`` file or ``-version``."""
    release = java_home / "release"
    text = release.read_text(errors="replace") if release.is_file() else ""
    match = re.search(r'^JAVA_VERSION="([^"]+)"', text, re.MULTILINE)
    if not match:
        java = java_home / "bin" / "java"
        if not java.is_file():
            return None
        try:
            proc = subprocess.run(
                [str(java), "-version"], check=False, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        match = re.search(r'version "([^"]+)"', proc.stderr)
        if not match:
            return None
    parts = match.group(1).split(".")
    if parts[0] == "1" and len(parts) > 1:  # "1.8.0_392": the pre-JDK 9 scheme
        return int(parts[1])
    major = re.match(r"\d+", parts[0])
    return int(major.group()) if major else None


def _java_ok(java_home: Path) -> bool:
    version = java_major_version(java_home)
    in_range = version is not None and JAVA_MIN <= version <= JAVA_MAX
    return in_range and (java_home / "bin" / "java").is_file()


def find_java_home() -> Path:
    """A JDK that can run Cassandra 5.0: JAVA_HOME if 11..23, else a system JDK 17, else PATH's.

    Never a newer JDK even when it is the default one: Cassandra 5.0 does not start on JDK > 23.
    """
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        java_home = Path(os.environ["JAVA_HOME"])
        if not _java_ok(java_home):
            log.info("JAVA_HOME=%s (JDK %s) cannot run Cassandra 5.0: looking for JDK 17",
                     java_home, java_major_version(java_home))
        candidates.append(java_home)
    candidates += sorted(Path("/usr/lib/jvm").glob("java-17-openjdk*"))
    candidates += sorted(Path("/usr/lib/jvm").glob("*17*"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    for home in candidates:
        if _java_ok(home):
            return home.resolve()
    seen = ", ".join(f"{c} (JDK {java_major_version(c)})" for c in candidates) or "none"
    raise ServerError(
        f"no JDK {JAVA_MIN}..{JAVA_MAX} found for Cassandra 5.0 (install JDK 17 and/or set "
        f"JAVA_HOME to it); looked at: {seen}"
    )


# --------------------------------------------------------------------------------------------
# Configuration, state
# --------------------------------------------------------------------------------------------


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


@dataclasses.dataclass(frozen=True)
class ServerInfo:
    """How to reach a server: ours (``dir`` set) or an external one (``dir`` None)."""

    host: str
    port: int
    dir: Path | None = None
    pid: int | None = None
    startup_seconds: float | None = None
    ca_cert: Path | None = None
    client_cert: Path | None = None  # PEM, for servers that require client certificates
    client_key: Path | None = None
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)  # never in reprs or logs
    storage_port: int | None = None
    jmx_port: int | None = None
    # 5 for our own servers (Cassandra 4.0+); None lets the driver negotiate, with warnings.
    protocol_version: int | None = 5

    @property
    def contact_point(self) -> str:
        return f"{self.host}:{self.port}"

    def cluster(self, **kwargs: Any) -> Cluster:
        """A cassandra-driver ``Cluster`` for this server (caller shuts it down)."""
        return make_cluster(
            self.host, self.port, username=self.username, password=self.password,
            ca_cert=self.ca_cert, client_cert=self.client_cert, client_key=self.client_key,
            protocol_version=self.protocol_version, **kwargs,
        )

    def connect(self, keyspace: str | None = None, **kwargs: Any) -> Session:
        """A driver session; end it with ``session.cluster.shutdown()``."""
        cluster = self.cluster(**kwargs)
        try:
            return cluster.connect(keyspace)
        except BaseException:
            cluster.shutdown()
            raise

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


def _read_state(directory: Path) -> ServerInfo | None:
    try:
        return ServerInfo.from_json(json.loads((directory / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    write_atomically(path, text.encode(), mode=mode)


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
    tls_keystore: Path | None = None,
    tls_password: str | None = None,
    tls_truststore: Path | None = None,
) -> str:
    """A minimal cassandra.yaml for one node. Cassandra 5.0 rejects unknown keys: keep it small."""
    data = directory / "data"
    lines = [
        "# Written by cassandra_dali.server at each start; edits are overwritten.",
        f"cluster_name: {_yaml_str(cluster_name)}",
        "num_tokens: 1",  # one node: a single token keeps start-up and token ranges simple
        "partitioner: org.apache.cassandra.dht.Murmur3Partitioner",
        "endpoint_snitch: SimpleSnitch",
        "seed_provider:",
        "  - class_name: org.apache.cassandra.locator.SimpleSeedProvider",
        "    parameters:",
        # The port matters: a seed without one means port 7000, i.e. some other node.
        f"      - seeds: {_yaml_str(f'{host}:{storage_port}')}",
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
        "commitlog_sync_period: 10000ms",
        "auto_snapshot: false",  # dropping test keyspaces must not keep their data as snapshots
        "authenticator: " + ("PasswordAuthenticator" if auth else "AllowAllAuthenticator"),
        "authorizer: " + ("CassandraAuthorizer" if auth else "AllowAllAuthorizer"),
        "role_manager: CassandraRoleManager",
    ]
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


# --------------------------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------------------------


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


def _choose_ports(config: ServerConfig, previous: ServerInfo | None) -> tuple[int, int, int | None]:
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


# --------------------------------------------------------------------------------------------
# TLS material (keytool, from the same JDK)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TlsMaterial:
    ca_pem: Path  # give this to clients
    keystore: Path  # PKCS12: the server's key and CA-signed certificate
    password: str


def ensure_tls(tls_dir: Path, java_home: Path, host: str = DEFAULT_HOST) -> TlsMaterial:
    """A CA and a server key pair signed by it, made with keytool; reused if already there.

    Reuse (unless the server's host name changed) keeps clients that hold ca.pem working across
    restarts. Everything is generated per directory at run time and readable by the owner only:
    no key is ever part of the repository.
    """
    password_file, san_file = tls_dir / "password", tls_dir / "san"
    san = _subject_alt_names(host)
    material_files = (tls_dir / CA_PEM, tls_dir / "server.p12", password_file, san_file)
    if all(p.is_file() for p in material_files) and san_file.read_text().strip() == san:
        password = password_file.read_text().strip()
        return TlsMaterial(tls_dir / CA_PEM, tls_dir / "server.p12", password)
    shutil.rmtree(tls_dir, ignore_errors=True)
    tls_dir.mkdir(parents=True, mode=0o700)
    password = secrets.token_hex(16)
    ca_pem = make_ca(tls_dir, java_home, password)
    ca_store, server_store = tls_dir / "ca.p12", tls_dir / "server.p12"
    csr, server_pem = tls_dir / "server.csr", tls_dir / "server.pem"

    def keytool(*args: str) -> None:
        _keytool(java_home, password, *args)

    keytool("-genkeypair", "-alias", "server", "-keyalg", "RSA", "-keysize", "2048",
            "-validity", "3650", "-dname", "CN=localhost", "-keystore", str(server_store),
            *_NEW_KEY_ARGS)
    keytool("-certreq", "-alias", "server", "-keystore", str(server_store), *_PASS_ARGS,
            "-file", str(csr))
    # The names clients check: the driver verifies the address it connected to.
    keytool("-gencert", "-alias", "ca", "-keystore", str(ca_store), *_PASS_ARGS,
            "-infile", str(csr), "-outfile", str(server_pem), "-rfc", "-validity", "3650",
            "-ext", f"san={san}", "-ext", "ku:c=digitalSignature,keyEncipherment",
            "-ext", "eku=serverAuth")
    # The chain must be in the keystore before the signed certificate can replace the
    # self-signed one.
    keytool("-importcert", "-noprompt", "-alias", "ca", "-file", str(ca_pem),
            "-keystore", str(server_store), *_PASS_ARGS)
    keytool("-importcert", "-noprompt", "-alias", "server", "-file", str(server_pem),
            "-keystore", str(server_store), *_PASS_ARGS)
    for leftover in (csr, server_pem):
        leftover.unlink()
    server_store.chmod(0o600)
    _write_atomically(password_file, password + "\n", mode=0o600)
    _write_atomically(san_file, san + "\n")  # written last: marks the material complete
    return TlsMaterial(ca_pem, server_store, password)


def make_ca(directory: Path, java_home: Path, password: str) -> Path:
    """A self-signed CA in ``directory/ca.p12``; returns its certificate (``directory/ca.pem``)."""
    store, pem = directory / "ca.p12", directory / CA_PEM
    # keyUsage keyCertSign: strict OpenSSL verification (Python 3.13's default) requires it.
    _keytool(java_home, password, "-genkeypair", "-alias", "ca", "-keyalg", "RSA",
             "-keysize", "2048", "-validity", "3650", "-dname", "CN=cassandra-dali local CA",
             "-ext", "bc:c=ca:true", "-ext", "ku:c=keyCertSign,cRLSign",
             "-keystore", str(store), *_NEW_KEY_ARGS)
    _keytool(java_home, password, "-exportcert", "-rfc", "-alias", "ca", "-keystore", str(store),
             *_PASS_ARGS, "-file", str(pem))
    store.chmod(0o600)
    return pem



_NEW_KEY_ARGS = ("-storetype", "PKCS12", *_PASS_ARGS, "-keypass:env", _PASS_ENV)


def _keytool(java_home: Path, password: str, *args: str) -> None:
    cmd = [str(java_home / "bin" / "keytool"), *args]
    env = {**os.environ, _PASS_ENV: password}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise ServerError(f"keytool failed: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")


def _subject_alt_names(host: str) -> str:
    names = ["dns:localhost", "ip:127.0.0.1"]
    extra = host if host not in ("0.0.0.0", "localhost", "127.0.0.1") else None
    if extra:
        try:
            ipaddress.ip_address(extra)
            names.append(f"ip:{extra}")
        except ValueError:
            names.append(f"dns:{extra}")
    return ",".join(names)


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

# Servers started by this process: kept so they can be reaped (else a stopped JVM lingers as a
# zombie, which still "exists" for kill(pid, 0), until this Python process exits).
_children: dict[int, subprocess.Popen[bytes]] = {}


def _pid_alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes: its parent just has not reaped it yet
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_our_server(pid: int, directory: Path) -> bool:
    """The pid is alive and is the Cassandra of this directory (PIDs get reused)."""
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (not Linux): trust the PID file
    config_arg = f"-Dcassandra.config={(directory / YAML_FILE).as_uri()}".encode()
    return MAIN_CLASS.encode() in cmdline and config_arg in cmdline


def _read_pid(directory: Path) -> int | None:
    try:
        return int((directory / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def status(directory: Path | str | None = None) -> ServerStatus:
    """Whether the server of a directory runs. A stale PID file is removed (and said so)."""
    directory = _abs_dir(directory)
    info = _read_state(directory)
    pid = _read_pid(directory)
    if pid is None:
        return ServerStatus(False, directory, info)
    if _is_our_server(pid, directory):
        return ServerStatus(True, directory, info, pid)
    (directory / PID_FILE).unlink(missing_ok=True)
    why = "is now another program" if _pid_alive(pid) else "is gone"
    message = f"removed stale PID file {directory / PID_FILE} (process {pid} {why})"
    log.warning("%s", message)
    return ServerStatus(False, directory, info, message=message)


def _abs_dir(directory: Path | str | None) -> Path:
    return Path(directory).expanduser().resolve() if directory is not None else default_server_dir()


def _check_heap(heap: str) -> None:
    if not re.fullmatch(r"\d+[kKmMgG]?", heap):
        raise ServerError(f"invalid heap size {heap!r} (examples: 512M, 1G)")


def java_command(
    java_home: Path, inst: Installation, directory: Path, heap: str, jmx_port: int | None
) -> list[str]:
    _check_heap(heap)
    logs = directory / LOG_DIR
    cmd = [
        str(java_home / "bin" / "java"),
        f"-Xms{heap}", f"-Xmx{heap}",
        "-Xss256k",  # as upstream: Cassandra runs many threads
        # Die rather than limp on (and corrupt data) after an OutOfMemoryError; readiness
        # checks and clients then see a dead server instead of a hung one.
        "-XX:+ExitOnOutOfMemoryError",
        *inst.jvm_options,
        "-Djava.net.preferIPv4Stack=true",
        # Else Cassandra closes stdout/stderr, where start-up failures are written.
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.config={(directory / YAML_FILE).as_uri()}",  # a URL, not a path
        f"-Dcassandra.storagedir={directory / 'data'}",
        f"-Dcassandra.logdir={logs}",
        f"-Dlogback.configurationFile={directory / LOGBACK_FILE}",
        f"-Dcassandra.triggers_dir={directory / 'triggers'}",  # must exist, else a warning
        # Single node: nothing to wait for. Saves tens of seconds per start.
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.superuser_setup_delay_ms=0",
        # No peer to tell about a shutdown: skips a 2 s sleep in every stop.
        "-Dcassandra.shutdown_announce_in_ms=0",
    ]
    if jmx_port is not None:  # local-only JMX (nodetool); off by default so servers never collide
        cmd.append(f"-Dcassandra.jmx.local.port={jmx_port}")
    cmd += ["-cp", inst.classpath, MAIN_CLASS]
    return cmd


def start(config: ServerConfig | None = None) -> ServerInfo:
    """Start a server in ``config.dir`` and wait until CQL answers; return how to reach it.

    Raises :class:`ServerError` if a server already runs there, a port is taken, or the server
    does not become ready in time (the JVM is then killed and the log tail is in the message).
    """
    config = config or ServerConfig()
    _check_heap(config.heap)  # before anything is written or started
    directory = _abs_dir(config.dir)
    directory.mkdir(parents=True, exist_ok=True)
    # Two starts in one directory at once would both find no server and start two JVMs.
    busy = f"another start is in progress in {directory}"
    with _locked(directory / ".start.lock", busy_message=busy):
        return _start_locked(config, directory)


def _start_locked(config: ServerConfig, directory: Path) -> ServerInfo:
    current = status(directory)
    if current.running:
        port = current.info.port if current.info else "?"
        raise ServerError(
            f"a Cassandra server already runs in {directory} (pid {current.pid}, "
            f"CQL port {port}); stop it first: cassandra-dali server stop --dir {directory}"
        )
    inst = installation(config.version)
    java_home = find_java_home()
    native_port, storage_port, jmx_port = _choose_ports(config, current.info)
    (directory / LOG_DIR).mkdir(exist_ok=True)
    (directory / "triggers").mkdir(exist_ok=True)
    if config.client_auth and not config.tls:
        raise ServerError("client_auth (--tls-client-auth) needs tls (--tls)")
    tls = ensure_tls(directory / TLS_DIR, java_home, config.host) if config.tls else None
    truststore = client_cert = client_key = None
    if tls is not None and config.client_auth:
        def keytool(*args: str) -> None:
            _keytool(java_home, tls.password, *args)

        truststore = ensure_truststore(directory / TLS_DIR, tls.ca_pem, keytool)
        client_cert, client_key = ensure_client_material(directory / TLS_DIR, tls.ca_pem,
                                                         tls.password, keytool)
    yaml_text = render_cassandra_yaml(
        directory, cluster_name=config.cluster_name, host=config.host,
        native_port=native_port, storage_port=storage_port, auth=config.auth,
        tls_keystore=tls.keystore if tls else None, tls_password=tls.password if tls else None,
        tls_truststore=truststore,
    )
    # 0600: with TLS it holds the keystore password.
    _write_atomically(directory / YAML_FILE, yaml_text, mode=0o600)
    _write_atomically(directory / LOGBACK_FILE, render_logback_xml(directory / LOG_DIR))
    cmd = java_command(java_home, inst, directory, config.heap, jmx_port)

    log.info("starting Cassandra (%s, JDK %s) in %s", inst.source, java_home, directory)
    started = time.monotonic()
    proc = _spawn(cmd, directory)
    info = ServerInfo(
        host=config.host, port=native_port, dir=directory, pid=proc.pid,
        ca_cert=tls.ca_pem if tls else None, client_cert=client_cert, client_key=client_key,
        username=SUPERUSER if config.auth else None,
        password=SUPERUSER_PASSWORD if config.auth else None,
        storage_port=storage_port, jmx_port=jmx_port,
    )
    _write_atomically(directory / STATE_FILE, json.dumps(info.to_json(), indent=2) + "\n",
                      mode=0o600)  # holds the password
    try:
        wait_ready(info, timeout=config.start_timeout, pid=proc.pid)
    except BaseException:  # also Ctrl-C: never leave a half-started JVM behind
        _terminate(proc.pid, DEFAULT_STOP_TIMEOUT)
        (directory / PID_FILE).unlink(missing_ok=True)
        raise
    info = dataclasses.replace(info, startup_seconds=time.monotonic() - started)
    _write_atomically(directory / STATE_FILE, json.dumps(info.to_json(), indent=2) + "\n",
                      mode=0o600)  # holds the password
    log.info("Cassandra ready at %s after %.1f s", info.contact_point, info.startup_seconds)
    return info


def _spawn(cmd: Sequence[str], directory: Path) -> subprocess.Popen[bytes]:
    # Detached: own session (no terminal signals from the caller's shell), output to a file, so
    # the server outlives the command that started it.
    with open(directory / LOG_DIR / STDOUT_LOG, "ab") as out:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        out.write(f"\n{_START_HEADER}{stamp}: {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(cmd), cwd=directory, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
        )
    _children[proc.pid] = proc
    _write_atomically(directory / PID_FILE, f"{proc.pid}\n")
    return proc


def wait_ready(
    info: ServerInfo, *, timeout: float = DEFAULT_START_TIMEOUT, pid: int | None = None
) -> None:
    """Block until ``SELECT release_version FROM system.local`` answers (as the configured user).

    Fails early when the JVM exits. With auth, the default superuser is created shortly after
    CQL opens; AuthenticationFailed is retried until then.
    """
    deadline = time.monotonic() + timeout
    last_error = "CQL port not open yet"
    while True:
        if pid is not None and not _pid_alive(pid):
            raise ServerError(
                f"Cassandra exited during start-up ({_exit_detail(pid)}).\n{_log_tail_for(info)}"
            )
        if time.monotonic() > deadline:
            raise ServerError(
                f"Cassandra did not answer CQL at {info.contact_point} within {timeout:.0f} s "
                f"(last error: {last_error}).\n{_log_tail_for(info)}"
            )
        if not _tcp_open(info.host, info.port):
            time.sleep(0.5)
            continue
        try:
            version = query_release_version(info)
        except Exception as error:  # noqa: BLE001  # driver errors vary: retried until the deadline
            last_error = f"{type(error).__name__}: {error}"
            time.sleep(1.0)
            continue
        log.debug("server answers: release_version %s", version)
        return


def _exit_detail(pid: int) -> str:
    child = _children.get(pid)
    code = child.poll() if child is not None else None
    return f"exit code {code}" if code is not None else f"pid {pid} is gone"


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def query_release_version(info: ServerInfo, timeout: float = 10.0) -> str:
    cluster = info.cluster(connect_timeout=timeout, control_connection_timeout=timeout)
    try:
        with _quiet_driver():
            session = cluster.connect()
            row = session.execute("SELECT release_version FROM system.local", timeout=timeout).one()
        return str(row.release_version)
    finally:
        cluster.shutdown()


@contextlib.contextmanager
def _quiet_driver() -> Iterator[None]:
    # While polling a starting server, the driver logs every refused attempt at WARNING/ERROR;
    # the caller gets the last error anyway if the server never becomes ready.
    driver_log = logging.getLogger("cassandra")
    previous = driver_log.level
    driver_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        driver_log.setLevel(previous)


def make_cluster(
    host: str,
    port: int,
    *,
    username: str | None = None,
    password: str | None = None,
    ca_cert: Path | str | None = None,
    client_cert: Path | str | None = None,
    client_key: Path | str | None = None,
    protocol_version: int | None = 5,
    **kwargs: Any,
) -> Cluster:
    """A cassandra-driver Cluster: explicit policies (no driver warnings about them), TCP_NODELAY.

    ``kwargs`` go to ``Cluster`` and override these settings (``request_timeout`` goes to the
    default execution profile).
    """
    try:
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
    except ImportError as error:
        raise ServerError(
            "the Python package cassandra-driver is needed to talk to Cassandra "
            f"(pip install cassandra-driver): {error}"
        ) from error
    options: dict[str, Any] = {
        "contact_points": [host],
        "port": port,
        # The driver leaves Nagle's algorithm on: with delayed ACKs every request of more than
        # a segment then waits ~40 ms (measured: a 64 KiB insert 48 ms -> 2.5 ms with NODELAY).
        "sockopts": [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        "execution_profiles": {
            EXEC_PROFILE_DEFAULT: ExecutionProfile(
                load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
                request_timeout=kwargs.pop("request_timeout", 30.0),
            )
        },
    }
    if protocol_version is not None:
        options["protocol_version"] = protocol_version
    if username is not None:
        options["auth_provider"] = PlainTextAuthProvider(username=username, password=password or "")
    if ca_cert is not None or client_cert is not None:
        options["ssl_context"] = client_ssl_context(ca_cert, client_cert, client_key)
    options.update(kwargs)
    return Cluster(**options)


def client_ssl_context(ca_cert: Path | str | None, client_cert: Path | str | None = None,
                       client_key: Path | str | None = None) -> Any:
    """TLS client context trusting only the given CA (the system's CAs without one), with
    hostname checks; presenting a client certificate when given one (mutual TLS)."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificate and host name
    if ca_cert is None:
        context.load_default_certs()
    else:
        context.load_verify_locations(cafile=str(ca_cert))
    if client_cert is not None:
        context.load_cert_chain(str(client_cert), str(client_key) if client_key else None)
    return context


def _terminate(pid: int, timeout: float) -> bool:
    """SIGTERM, wait up to ``timeout``, then SIGKILL. True once the process is gone."""
    if not _pid_alive(pid):
        _children.pop(pid, None)
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # Cassandra drains (flushes memtables) on SIGTERM
    if not _wait_gone(pid, timeout):
        log.warning("Cassandra (pid %d) did not stop within %.0f s: killing it", pid, timeout)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not _wait_gone(pid, 30.0):
            return False
    _children.pop(pid, None)
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def stop(directory: Path | str | None = None, timeout: float = DEFAULT_STOP_TIMEOUT) -> bool:
    """Stop the server of a directory. True if one was running, False if there was none."""
    directory = _abs_dir(directory)
    current = status(directory)
    pid = current.pid
    if not current.running or pid is None:
        return False
    log.info("stopping Cassandra (pid %d) in %s", pid, directory)
    if not _terminate(pid, timeout):
        raise ServerError(f"Cassandra (pid {pid}) survived SIGKILL; is it stuck in the kernel?")
    (directory / PID_FILE).unlink(missing_ok=True)
    return True


# --------------------------------------------------------------------------------------------
# Logs
# --------------------------------------------------------------------------------------------


def _tail_text(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def log_tail(directory: Path | str | None = None, lines: int = 40) -> str:
    """The last lines of the server log and of the JVM's own output (where start-up errors go)."""
    directory = _abs_dir(directory)
    parts = []
    for name in (SYSTEM_LOG, STDOUT_LOG):
        path = directory / LOG_DIR / name
        if path.is_file():
            with open(path, "rb") as handle:  # read only the end: logs can be large
                handle.seek(max(0, path.stat().st_size - 200_000))
                text = handle.read().decode(errors="replace")
            if name == STDOUT_LOG:  # appended at each start: only the last start's output
                text = text.rsplit(_START_HEADER, 1)[-1].partition("\n")[2]
            parts.append(f"---- last lines of {path} ----\n{_tail_text(text, lines)}")
    return "\n".join(parts) or f"(no log files under {directory / LOG_DIR})"


def _log_tail_for(info: ServerInfo) -> str:
    return log_tail(info.dir) if info.dir is not None else ""
