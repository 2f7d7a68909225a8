"""How every tool here (ingest, UUID scans, schema, readers, the launcher's own checks) reaches
Cassandra.

One set of flags for every command: ``--host``/``--port`` (defaults from ``CASSANDRA_HOST`` and
``CASSANDRA_PORT``, else 127.0.0.1:9042; a cluster's contact points comma-separated, all on that
port) and, for clusters with auth or TLS, ``--username``/
``--password``/``--ca-cert`` (``CASSANDRA_USERNAME``, ``CASSANDRA_PASSWORD``, ``CASSANDRA_CA``:
the same variables the test suite reads), and ``--client-cert``/``--client-key`` for servers that
require client certificates (``CASSANDRA_CLIENT_CERT``, ``CASSANDRA_CLIENT_KEY``), and
``--datacenter`` (``CASSANDRA_DATACENTER``) for clusters of several data centers; the flags
themselves are in :mod:`cassandra_dali.cli._options`. The same settings give a cassandra-driver
session and the arguments of ``fn.crs4.cassandra``, so a script cannot write to one server and
read another.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from .cluster import PathArg, make_cluster

if TYPE_CHECKING:
    from cassandra.cluster import Cluster, Session

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9042
PASSWORD_ENV = "CASSANDRA_PASSWORD"


@dataclasses.dataclass(frozen=True)
class Connection:
    host: str = DEFAULT_HOST  # one contact point, or several comma-separated (a cluster's)
    port: int = DEFAULT_PORT
    username: str | None = None
    # Never in reprs or logs. Prefer password_file (first line) or CASSANDRA_PASSWORD to a flag.
    password: str | None = dataclasses.field(default=None, repr=False)
    password_file: str | None = None
    ca_cert: PathArg | None = None
    client_cert: PathArg | None = None  # PEM, for servers that require client certificates
    client_key: PathArg | None = None
    # 5: Cassandra 4.0 and newer. None negotiates (for 3.x), at the cost of driver warnings.
    protocol_version: int | None = 5
    # The data center whose nodes serve requests; None: the first contact point's.
    datacenter: str | None = None

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ConnectionFailed(f"no contact point in {self.host!r}: give a host name or "
                                   "address, or several separated by commas")

    @property
    def hosts(self) -> list[str]:
        """The contact points: any one that answers is enough to find the whole ring; listing
        more lets a client start while some nodes are down."""
        return [h.strip() for h in self.host.split(",") if h.strip()]

    @property
    def contact_point(self) -> str:
        return f"{','.join(self.hosts)}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Connection:
        env = os.environ if env is None else env
        return cls(
            host=env.get("CASSANDRA_HOST") or DEFAULT_HOST,
            port=int(env.get("CASSANDRA_PORT") or DEFAULT_PORT),
            username=env.get("CASSANDRA_USERNAME") or None,
            password=env.get(PASSWORD_ENV) or None,
            password_file=env.get("CASSANDRA_PASSWORD_FILE") or None,
            ca_cert=env.get("CASSANDRA_CA") or None,
            client_cert=env.get("CASSANDRA_CLIENT_CERT") or None,
            client_key=env.get("CASSANDRA_CLIENT_KEY") or None,
            datacenter=env.get("CASSANDRA_DATACENTER") or None,
        )

    def cluster(self, **kwargs: Any) -> Cluster:
        """A cassandra-driver Cluster (the caller shuts it down)."""
        return make_cluster(
            self.hosts,
            self.port,
            username=self.username,
            password=self.secret(),
            ca_cert=self.ca_cert,
            client_cert=self.client_cert,
            client_key=self.client_key,
            protocol_version=self.protocol_version,
            datacenter=self.datacenter,
            **kwargs,
        )

    def connect(self, keyspace: str | None = None, **kwargs: Any) -> Session:
        """A driver session (on ``keyspace`` if given); end it with
        ``session.cluster.shutdown()``."""
        from cassandra.cluster import NoHostAvailable

        cluster = self.cluster(**kwargs)
        try:
            return cluster.connect(keyspace)
        except NoHostAvailable as error:
            cluster.shutdown()
            raise ConnectionFailed(
                f"cannot connect to Cassandra at {self.contact_point}: {_first_error(error)} "
                "(is the server running? set --host/--port or CASSANDRA_HOST/CASSANDRA_PORT)"
            ) from error
        except BaseException:
            cluster.shutdown()
            raise

    def connection(self) -> Connection:
        """The client settings alone, without a subclass's fields (the launcher's ServerInfo
        and ClusterInfo): what a tool or a reader needs."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(Connection)}
        return Connection(**fields)

    def secret(self) -> str | None:
        """The password: given, or the first line of ``password_file``."""
        if self.password_file is None:
            return self.password
        try:
            with open(self.password_file, encoding="utf-8") as handle:
                return handle.readline().rstrip("\r\n")
        except OSError as error:
            raise ConnectionFailed(
                f"cannot read the password file {self.password_file}: {error.strerror}"
            ) from None

    def reader_kwargs(self) -> dict[str, Any]:
        """The connection arguments of ``fn.crs4.cassandra`` and ``cassandra_dali.Reader``.

        The password travels as a file name or an environment variable's name whenever it came
        from one, so a serialized pipeline holds no password."""
        kwargs: dict[str, Any] = {"cassandra_ips": self.hosts, "cassandra_port": self.port}
        if self.datacenter is not None:
            kwargs["local_datacenter"] = self.datacenter
        if self.username is not None:
            kwargs["username"] = self.username
            if self.password_file is not None:
                kwargs["password_file"] = self.password_file
            elif self.password is not None and os.environ.get(PASSWORD_ENV) == self.password:
                kwargs["password_env"] = PASSWORD_ENV
            elif self.password is not None:
                kwargs["password"] = self.password
        if self.ca_cert is not None:
            kwargs.update(use_ssl=True, ssl_certificate=str(self.ca_cert))
        if self.client_cert is not None:  # TLS then, against the system's CAs unless ca_cert
            kwargs.update(use_ssl=True, ssl_own_certificate=str(self.client_cert),
                          ssl_own_key=str(self.client_key or ""))
        return kwargs


class ConnectionFailed(UserError, RuntimeError):
    """No Cassandra host answered; the message names the host and port."""


def _first_error(error: Any) -> str:
    # NoHostAvailable carries {host: exception}; its str() is a long repr of that dict.
    errors = getattr(error, "errors", None) or {}
    for cause in errors.values():
        return str(cause)  # the caller names the host
    return str(error)
