"""The server launcher against real Cassandra servers (no mocks).

The session server (conftest) carries the CQL round trip; the auth, TLS and CLI tests start
their own small servers, one at a time, and stop them before the next.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cassandra_dali
import pytest
from cassandra import AuthenticationFailed
from cassandra.cluster import NoHostAvailable
from cassandra.concurrent import execute_concurrent_with_args
from cassandra_dali import server
from cassandra_dali.client.cluster import make_cluster
from servers import extra_server

if TYPE_CHECKING:
    from cassandra.cluster import Session

SMALL_HEAP = "512M"


def _start(directory: Path, **options: Any) -> server.ServerInfo:
    return server.start(server.ServerConfig(dir=directory, heap=SMALL_HEAP, **options))


def _connect_error(info: server.ServerInfo, **overrides: Any) -> BaseException:
    """The one per-host error a connection attempt fails with (it must fail)."""
    options: dict[str, Any] = {"username": info.username, "password": info.password,
                               "ca_cert": info.ca_cert, "connect_timeout": 10}
    options.update(overrides)
    cluster = make_cluster(info.host, info.port, **options)
    try:
        with pytest.raises(NoHostAvailable) as caught:
            cluster.connect()
    finally:
        cluster.shutdown()
    errors = list(caught.value.errors.values())
    assert len(errors) == 1, caught.value
    return errors[0]


def _alive(pid: int) -> bool:
    """Running (a zombie is dead: its new parent, init, reaps it a moment later)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _java_processes_for(directory: Path) -> list[int]:
    """PIDs of live java processes whose command line mentions the directory."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(directory).encode() in cmdline and b"java" in cmdline and _alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------------------------------------
# The session server: CQL round trip
# ---------------------------------------------------------------------------------------------


def _execute_all(session: Session, statement: Any, params: list[tuple[Any, ...]]) -> list[Any]:
    """Run a statement for every parameter tuple, concurrently; the result rows, in order.

    With large values the driver's socket buffer fills up and it fails requests at once with
    ConnectionBusy ("overloaded") instead of waiting: those are retried, anything else fails.
    """
    results: list[Any] = [None] * len(params)
    todo = list(range(len(params)))
    for _ in range(20):
        outcome = execute_concurrent_with_args(
            session, statement, [params[i] for i in todo], concurrency=16,
            raise_on_first_error=False,
        )
        retry = []
        for i, (ok, result) in zip(todo, outcome, strict=True):
            if ok:
                results[i] = result
            elif "overloaded" in str(result):
                retry.append(i)
            else:
                raise result
        if not retry:
            return results
        todo = retry
        time.sleep(0.2)
    raise AssertionError(f"{len(todo)} requests still failing with ConnectionBusy")


@pytest.mark.slow
def test_blob_round_trip(cql_session: Session, keyspace: str) -> None:
    cql_session.execute(f"CREATE TABLE {keyspace}.blobs (id int PRIMARY KEY, data blob)")
    rng = random.Random(1234)
    # Log-uniform sizes from 1 KB to 1 MB: mostly small, some large (~45 MB in all).
    blobs = [rng.randbytes(int(1024 * 1024 ** rng.random())) for _ in range(300)]
    blobs[0], blobs[1] = rng.randbytes(1024), rng.randbytes(1024 * 1024)  # both bounds
    insert = cql_session.prepare(f"INSERT INTO {keyspace}.blobs (id, data) VALUES (?, ?)")
    _execute_all(cql_session, insert, list(enumerate(blobs)))

    select = cql_session.prepare(f"SELECT id, data FROM {keyspace}.blobs WHERE id = ?")
    rows = _execute_all(cql_session, select, [(i,) for i in range(len(blobs))])
    for i, result in enumerate(rows):
        row = result.one()
        assert row is not None and row.id == i
        assert row.data == blobs[i], f"blob {i} ({len(blobs[i])} bytes) differs"
    count = cql_session.execute(f"SELECT count(*) FROM {keyspace}.blobs").one()[0]
    assert count == len(blobs)


def test_session_server_info(cassandra_server: server.ServerInfo, cql_session: Session) -> None:
    version = cql_session.execute("SELECT release_version FROM system.local").one()[0]
    assert version
    if cassandra_server.dir is None:
        pytest.skip("external cluster: nothing more to check about the launcher")
    assert version.startswith("5.0"), version
    current = server.status(cassandra_server.dir)
    assert current.running and current.pid == cassandra_server.pid
    assert cassandra_server.startup_seconds is not None and cassandra_server.startup_seconds > 0
    assert cassandra_server.contact_point == f"127.0.0.1:{cassandra_server.port}"


# ---------------------------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------------------------


# Class-scoped: each extra server is stopped when its class is done, so at most one of them
# runs next to the session server.
@pytest.fixture(scope="class")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.ServerInfo]:
    with extra_server(tmp_path_factory.mktemp("cassandra-auth"), heap=SMALL_HEAP, auth=True) as info:
        yield info


@pytest.mark.slow
class TestAuth:
    def test_right_password(self, auth_server: server.ServerInfo) -> None:
        assert (auth_server.username, auth_server.password) == ("cassandra", "cassandra")
        session = auth_server.connect()
        try:
            row = session.execute("SELECT role, is_superuser FROM system_auth.roles "
                                  "WHERE role = 'cassandra'").one()
            assert row.is_superuser
        finally:
            session.cluster.shutdown()

    def test_wrong_password(self, auth_server: server.ServerInfo) -> None:
        error = _connect_error(auth_server, password="not-the-password")
        assert isinstance(error, AuthenticationFailed)
        assert "Provided username cassandra and/or password are incorrect" in str(error)

    def test_no_credentials(self, auth_server: server.ServerInfo) -> None:
        error = _connect_error(auth_server, username=None)
        assert isinstance(error, AuthenticationFailed)


# ---------------------------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="class")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.ServerInfo]:
    with extra_server(tmp_path_factory.mktemp("cassandra-tls"), heap=SMALL_HEAP, tls=True) as info:
        yield info


@pytest.mark.slow
class TestTls:
    def test_trusted_ca_connects(self, tls_server: server.ServerInfo) -> None:
        assert tls_server.ca_cert is not None and tls_server.dir is not None
        assert tls_server.ca_cert == tls_server.dir / "tls" / "ca.pem"
        assert tls_server.ca_cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
        session = tls_server.connect()
        try:
            assert session.execute("SELECT release_version FROM system.local").one()[0]
        finally:
            session.cluster.shutdown()

    def test_private_material_is_owner_only(self, tls_server: server.ServerInfo) -> None:
        assert tls_server.dir is not None
        for name in ("tls/server.p12", "tls/ca.p12", "tls/password", "cassandra.yaml"):
            assert (tls_server.dir / name).stat().st_mode & 0o077 == 0, name

    def test_default_trust_store_refuses(self, tls_server: server.ServerInfo) -> None:
        error = _connect_error(tls_server, ca_cert=None, ssl_context=ssl.create_default_context())
        assert "CERTIFICATE_VERIFY_FAILED" in str(error)

    def test_other_ca_refuses(self, tls_server: server.ServerInfo, tmp_path: Path) -> None:
        # Same name as the server's CA, another key: the signature must be what is checked.
        other_ca = server.make_ca(tmp_path, server.find_java_home(), "another-password")
        error = _connect_error(tls_server, ca_cert=other_ca)
        assert "CERTIFICATE_VERIFY_FAILED" in str(error)

    def test_plaintext_refused(self, tls_server: server.ServerInfo) -> None:
        error = _connect_error(tls_server, ca_cert=None)
        assert isinstance(error, OSError), error  # the server resets the non-TLS connection


# ---------------------------------------------------------------------------------------------
# Start-up failures, stale state, ports
# ---------------------------------------------------------------------------------------------


def test_stale_pid_file_is_cleaned(tmp_path: Path) -> None:
    (tmp_path / server.PID_FILE).write_text(f"{_dead_pid()}\n")
    current = server.status(tmp_path)
    assert not current.running
    assert "stale PID file" in current.message
    assert not (tmp_path / server.PID_FILE).exists()
    assert server.stop(tmp_path) is False


def test_pid_of_another_process_is_not_taken_for_the_server(tmp_path: Path) -> None:
    # A reused PID (here: this very test process) must not pass for the server, nor be killed.
    (tmp_path / server.PID_FILE).write_text(f"{os.getpid()}\n")
    assert not server.status(tmp_path).running
    assert server.stop(tmp_path) is False


def test_port_in_use_fails_fast(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(server.ServerError, match=f"port 127.0.0.1:{port} is already in use"):
            _start(tmp_path, native_port=port)
        assert time.monotonic() - started < 10
    assert not (tmp_path / server.PID_FILE).exists()


@pytest.mark.slow
def test_jvm_death_is_reported_with_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.environ.get("CASSANDRA_HOME"):
        pytest.skip("the JDK 17 flags come from CASSANDRA_HOME's conf/ here")
    # Without the JDK 17 module flags that conf/jvm17-server.options carries, Cassandra 5.0
    # dies during start-up: the launcher must say so at once, with the JVM's own error.
    monkeypatch.setattr(server.jars, "JVM17_MODULE_FLAGS", ())
    started = time.monotonic()
    with pytest.raises(server.ServerError) as caught:
        _start(tmp_path)
    assert time.monotonic() - started < 60
    message = str(caught.value)
    assert "Cassandra exited during start-up" in message
    assert "IllegalAccess" in message and "stdout.log" in message
    assert not server.status(tmp_path).running


@pytest.mark.slow
def test_start_timeout_kills_the_jvm(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(server.ServerError, match="did not answer CQL .* within 2 s"):
        _start(tmp_path, start_timeout=2.0)
    assert time.monotonic() - started < 70
    assert _java_processes_for(tmp_path) == []
    assert not (tmp_path / server.PID_FILE).exists()


# ---------------------------------------------------------------------------------------------
# Jars and JDK
# ---------------------------------------------------------------------------------------------


def test_fetch_jars_is_cached() -> None:
    if os.environ.get("CASSANDRA_HOME"):
        pytest.skip("CASSANDRA_HOME is used instead of Maven jars")
    lib = server.fetch_jars()
    assert (lib.parent / ".complete").is_file()
    assert any(lib.glob("cassandra-all-*.jar"))
    started = time.monotonic()
    assert server.fetch_jars() == lib
    assert time.monotonic() - started < 1


@pytest.mark.slow
def test_interrupted_fetch_is_redone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Leftovers of a fetch killed half-way: a partial staging folder and a lib/ with no marker.
    monkeypatch.setenv("CASSANDRA_DALI_CACHE", str(tmp_path))
    base = server.jar_cache_dir()
    (base / "lib").mkdir(parents=True)
    (base / "lib" / "half-written.jar").write_bytes(b"")
    (base / "lib.partial-1").mkdir()
    lib = server.fetch_jars()
    assert lib == base / "lib" and (base / ".complete").is_file()
    assert not (lib / "half-written.jar").exists() and not (base / "lib.partial-1").exists()
    assert len(list(lib.glob("*.jar"))) > 50
    shutil.rmtree(lib)  # 66 MB: pytest keeps the temporary folders of the last runs


# The JDK 17 part of an installation's conf/jvm17-server.options, in upstream's format.
JVM17_SERVER_OPTIONS = """\
### G1 Settings
-XX:+UseG1GC
-XX:+ParallelRefProcEnabled
-XX:MaxTenuringThreshold=1
-XX:G1HeapRegionSize=16m
-XX:G1RSetUpdatingPauseTimePercent=5
-XX:MaxGCPauseMillis=300
-XX:InitiatingHeapOccupancyPercent=70

### JPMS
-Djdk.attach.allowAttachSelf=true
""" + "".join(
    f"{flag} {value}\n"
    for flag, value in zip(server.jars.JVM17_MODULE_FLAGS[1::2], server.jars.JVM17_MODULE_FLAGS[2::2],
                           strict=True)
) + """
# Netty
-Dio.netty.tryReflectionSetAccessible=true
"""


@pytest.fixture
def cassandra_home(tmp_path: Path) -> Path:
    """CASSANDRA_HOME if set, else an installation laid out like a tarball from the cached jars."""
    if os.environ.get("CASSANDRA_HOME"):
        return Path(os.environ["CASSANDRA_HOME"])
    home = tmp_path / "apache-cassandra"
    (home / "lib").mkdir(parents=True)
    (home / "conf").mkdir()
    for jar in server.fetch_jars().glob("*.jar"):
        (home / "lib" / jar.name).symlink_to(jar)
    (home / "conf" / "jvm17-server.options").write_text(JVM17_SERVER_OPTIONS)
    return home


@pytest.mark.slow
def test_cassandra_home_is_used(
    cassandra_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASSANDRA_HOME", str(cassandra_home))
    inst = server.installation()
    assert inst.classpath == f"{cassandra_home.resolve()}/lib/*"
    assert "--add-opens" in inst.jvm_options and "java.base/java.io=ALL-UNNAMED" in inst.jvm_options
    directory = tmp_path / "srv"
    info = _start(directory)
    try:
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().split(b"\0")
        assert inst.classpath.encode() in cmdline
    finally:
        server.stop(directory)


def test_cassandra_home_without_jvm17_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "apache-cassandra-4.1.5.jar").write_bytes(b"")
    monkeypatch.setenv("CASSANDRA_HOME", str(tmp_path))
    with pytest.raises(server.ServerError, match="jvm17-server.options is missing"):
        server.installation()


def test_java_is_a_supported_jdk(monkeypatch: pytest.MonkeyPatch) -> None:
    newer = sorted(Path("/usr/lib/jvm").glob("*25*")) + sorted(Path("/usr/lib/jvm").glob("*-24*"))
    if newer:  # a JAVA_HOME newer than Cassandra 5.0 supports must be passed over
        monkeypatch.setenv("JAVA_HOME", str(newer[0]))
    home = server.find_java_home()
    version = server.java_major_version(home)
    assert version is not None and server.JAVA_MIN <= version <= server.JAVA_MAX


def test_parse_jvm_options() -> None:
    text = """
    # comment
    -XX:+UseG1GC
    --add-opens java.base/java.io=ALL-UNNAMED
    -Xmx4G
    ### JPMS
    -Djdk.attach.allowAttachSelf=true
    """
    assert server.parse_jvm_options(text) == [
        "-XX:+UseG1GC", "--add-opens", "java.base/java.io=ALL-UNNAMED",
        "-Djdk.attach.allowAttachSelf=true",
    ]


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------


def _cli_popen(*args: str) -> subprocess.Popen[str]:
    # The package may be installed (make) or only on PYTHONPATH (a source tree): work with both.
    package_root = str(Path(cassandra_dali.__path__[0]).parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "cassandra_dali.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = _cli_popen(*args)
    stdout, stderr = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.slow
def test_cli_lifecycle(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    directory.mkdir()
    (directory / server.PID_FILE).write_text(f"{_dead_pid()}\n")  # left by a crashed run
    try:
        # Two starts at once in one directory: one server, and a clear error for the other.
        racing = [_cli_popen("server", "start", "--dir", str(directory), "--heap", SMALL_HEAP)
                  for _ in range(2)]
        finished = [(proc.communicate(timeout=300), proc.returncode) for proc in racing]
        outcomes = sorted(((code, out, err) for (out, err), code in finished),
                          key=lambda outcome: outcome[0])
        (ok, started_out, started_err), (failed, _, failed_err) = outcomes
        assert ok == 0 and failed == 1, outcomes
        assert "removed stale PID file" in started_err
        assert "Cassandra is running at 127.0.0.1:" in started_out
        assert "another start is in progress" in failed_err or "already runs in" in failed_err
        assert "Traceback" not in failed_err
        info = server.status(directory).info
        assert info is not None and info.pid is not None

        status = _cli("server", "status", "--dir", str(directory))
        assert status.returncode == 0
        assert f"running: pid {info.pid}, CQL at {info.contact_point}" in status.stdout

        again = _cli("server", "start", "--dir", str(directory))
        assert again.returncode == 1
        assert "already runs in" in again.stderr and "Traceback" not in again.stderr

        # Another server may not take the same port: a clear error, before any JVM starts.
        clash = _cli("server", "start", "--dir", str(tmp_path / "other"), "--port", str(info.port))
        assert clash.returncode == 1 and "already in use" in clash.stderr
        assert "Traceback" not in clash.stderr

        stopped = _cli("server", "stop", "--dir", str(directory))
        assert stopped.returncode == 0 and "stopped the server" in stopped.stdout
        assert not _alive(info.pid)
        assert _java_processes_for(directory) == []
        assert not (directory / server.PID_FILE).exists()

        status = _cli("server", "status", "--dir", str(directory))
        assert status.returncode == 3 and status.stdout.startswith("stopped")
    finally:
        server.stop(directory)


def test_cli_errors_without_traceback(tmp_path: Path) -> None:
    result = _cli("server", "start", "--dir", str(tmp_path), "--heap", "lots")
    assert result.returncode == 1
    assert "invalid heap size" in result.stderr and "Traceback" not in result.stderr
    usage = _cli("server", "launch")
    assert usage.returncode == 2 and "invalid choice" in usage.stderr


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "cassandra-dali"
    if not script.exists():
        script_on_path = shutil.which("cassandra-dali")
        if script_on_path is None:
            pytest.skip("the package is not installed (no cassandra-dali script)")
        script = Path(script_on_path)
    result = subprocess.run([str(script), "server", "status", "--dir", str(tmp_path)],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3 and "stopped" in result.stdout
