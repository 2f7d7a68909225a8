"""cassandra-driver clusters as every tool here wants them: token-aware routing, TCP_NODELAY,
TLS with host-name checks, no warnings about default policies."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from os import PathLike
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the driver is imported lazily: the reader alone does not need it
    from cassandra.cluster import Cluster

PathArg = str | PathLike[str]


def make_cluster(
    hosts: str | list[str],
    port: int,
    *,
    username: str | None = None,
    password: str | None = None,
    ca_cert: PathArg | None = None,
    client_cert: PathArg | None = None,
    client_key: PathArg | None = None,
    protocol_version: int | None = 5,
    datacenter: str | None = None,
    **kwargs: Any,
) -> Cluster:
    """A cassandra-driver Cluster: explicit policies (no driver warnings about them), TCP_NODELAY.
    ``hosts``: one contact point or a list (the driver finds the rest of the ring from them);
    ``datacenter``: the only data center used (None: the first contact point's).

    ``kwargs`` go to ``Cluster`` and override these settings (``request_timeout`` goes to the
    default execution profile).
    """
    try:
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
    except ImportError as error:
        raise ImportError(
            "the Python package cassandra-driver is needed to talk to Cassandra "
            f"(pip install cassandra-driver): {error}"
        ) from error
    options: dict[str, Any] = {
        "contact_points": [hosts] if isinstance(hosts, str) else list(hosts),
        "port": port,
        # The driver leaves Nagle's algorithm on: with delayed ACKs every request of more than
        # a segment then waits ~40 ms (measured: a 64 KiB insert 48 ms -> 2.5 ms with NODELAY).
        "sockopts": [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        "execution_profiles": {
            EXEC_PROFILE_DEFAULT: ExecutionProfile(
                load_balancing_policy=TokenAwarePolicy(
                    DCAwareRoundRobinPolicy(local_dc=datacenter or "")),
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


def client_ssl_context(ca_cert: PathArg | None, client_cert: PathArg | None = None,
                       client_key: PathArg | None = None) -> Any:
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


@contextlib.contextmanager
def quiet_driver() -> Iterator[None]:
    # While polling a starting server, the driver logs every refused attempt at WARNING/ERROR;
    # the caller gets the last error anyway if the server never becomes ready.
    driver_log = logging.getLogger("cassandra")
    previous = driver_log.level
    driver_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        driver_log.setLevel(previous)
