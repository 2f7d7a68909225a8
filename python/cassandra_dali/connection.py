"""How the Python tools (ingest, UUID scans, schema, readers) reach Cassandra.

One set of flags for every command: ``--host``/``--port`` (defaults from ``CASSANDRA_HOST`` and
``CASSANDRA_PORT``, else 127.0.0.1:9042) and, for clusters with auth or TLS, ``--username``/
``--password``/``--ca-cert`` (``CASSANDRA_USERNAME``, ``CASSANDRA_PASSWORD``, ``CASSANDRA_CA``:
the same variables the test suite reads), and ``--client-cert``/``--client-key`` for servers that
require client certificates (``CASSANDRA_CLIENT_CERT``, ``CASSANDRA_CLIENT_KEY``). The same settings give a cassandra-driver session and
the arguments of ``fn.crs4.cassandra``, so a script cannot write to one server and read another.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _native, server

if TYPE_CHECKING:
    from cassandra.cluster import Cluster, Session

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9042
PASSWORD_ENV = "CASSANDRA_PASSWORD"


@dataclasses.dataclass(frozen=True)
class Connection:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    username: str | None = None
    # Never in reprs or logs. Prefer password_file (first line) or CASSANDRA_PASSWORD to a flag.
    password: str | None = dataclasses.field(default=None, repr=False)
    password_file: str | None = None
    ca_cert: str | None = None
    client_cert: str | None = None  # PEM, for servers that require client certificates
    client_key: str | None = None
    # 5: Cassandra 4.0 and newer. None negotiates (for 3.x), at the cost of driver warnings.
    protocol_version: int | None = 5

    @property
    def contact_point(self) -> str:
        return f"{self.host}:{self.port}"

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
        )

    def cluster(self, **kwargs: Any) -> Cluster:
        """A cassandra-driver Cluster (the caller shuts it down)."""
        return server.make_cluster(
            self.host,
            self.port,
            username=self.username,
            password=self.secret(),
            ca_cert=self.ca_cert,
            client_cert=self.client_cert,
            client_key=self.client_key,
            protocol_version=self.protocol_version,
            **kwargs,
        )

    def connect(self, **kwargs: Any) -> Session:
        """A driver session; end it with ``session.cluster.shutdown()``."""
        from cassandra.cluster import NoHostAvailable

        cluster = self.cluster(**kwargs)
        try:
            return cluster.connect()
        except NoHostAvailable as error:
            cluster.shutdown()
            raise ConnectionFailed(
                f"cannot connect to Cassandra at {self.contact_point}: {_first_error(error)} "
                "(is the server running? set --host/--port or CASSANDRA_HOST/CASSANDRA_PORT)"
            ) from error
        except BaseException:
            cluster.shutdown()
            raise

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
        kwargs: dict[str, Any] = {"cassandra_ips": [self.host], "cassandra_port": self.port}
        if self.username is not None:
            kwargs["username"] = self.username
            if self.password_file is not None:
                kwargs["password_file"] = self.password_file
            elif self.password is not None and os.environ.get(PASSWORD_ENV) == self.password:
                kwargs["password_env"] = PASSWORD_ENV
            elif self.password is not None:
                kwargs["password"] = self.password
        if self.ca_cert is not None:
            kwargs.update(use_ssl=True, ssl_certificate=self.ca_cert)
        if self.client_cert is not None:  # TLS then, against the system's CAs unless ca_cert
            kwargs.update(use_ssl=True, ssl_own_certificate=self.client_cert,
                          ssl_own_key=self.client_key or "")
        return kwargs


class ConnectionFailed(RuntimeError):
    """No Cassandra host answered; the message names the host and port."""


def _first_error(error: Any) -> str:
    # NoHostAvailable carries {host: exception}; its str() is a long repr of that dict.
    errors = getattr(error, "errors", None) or {}
    for cause in errors.values():
        return str(cause)  # the caller names the host
    return str(error)


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Connection.from_env()
    group = parser.add_argument_group("Cassandra connection")
    group.add_argument(
        "--host",
        default=defaults.host,
        help="contact point (env CASSANDRA_HOST, default %(default)s)",
    )
    group.add_argument(
        "--port",
        type=int,
        default=defaults.port,
        help="CQL port (env CASSANDRA_PORT, default %(default)s)",
    )
    group.add_argument("--username", default=defaults.username, help="(env CASSANDRA_USERNAME)")
    group.add_argument(
        "--password",
        default=defaults.password,
        help="visible to other users (ps, shell history): prefer env CASSANDRA_PASSWORD or "
        "--password-file",
    )
    group.add_argument(
        "--password-file",
        default=defaults.password_file,
        help="file whose first line is the password (env CASSANDRA_PASSWORD_FILE)",
    )
    group.add_argument(
        "--ca-cert",
        default=defaults.ca_cert,
        help="CA certificate (PEM) to trust; enables TLS (env CASSANDRA_CA)",
    )
    group.add_argument(
        "--client-cert",
        default=defaults.client_cert,
        help="client certificate (PEM), for servers that require one (env CASSANDRA_CLIENT_CERT)",
    )
    group.add_argument(
        "--client-key",
        default=defaults.client_key,
        help="its private key (PEM) (env CASSANDRA_CLIENT_KEY)",
    )


def from_args(args: argparse.Namespace) -> Connection:
    if args.password is not None and args.password != os.environ.get(PASSWORD_ENV):
        log.warning("--password on the command line is visible to other users of this machine "
                    "(ps, shell history): set CASSANDRA_PASSWORD or use --password-file instead")
    return Connection(
        host=args.host,
        port=args.port,
        username=args.username,
        password=args.password,
        password_file=args.password_file,
        ca_cert=args.ca_cert,
        client_cert=args.client_cert,
        client_key=args.client_key,
    )


def quote_identifier(canonical: str) -> str:
    """A canonical identifier (from ``canonical_identifier``) as CQL text: always double-quoted,
    so nothing in it can be read as CQL. Quoting a lower-case name keeps its meaning."""
    return '"' + canonical.replace('"', '""') + '"'


def cql_table(name: str) -> str:
    """``keyspace.table`` as CQL text, both parts checked and quoted."""
    keyspace, table = qualified_table(name)
    return f"{quote_identifier(keyspace)}.{quote_identifier(table)}"


def qualified_table(name: str) -> tuple[str, str]:
    """Split and check ``keyspace.table`` (unquoted CQL identifiers, as lower case)."""
    parts = name.split(".")
    if len(parts) != 2:
        raise ValueError(f"table {name!r} must be given as keyspace.table")
    keyspace = _native.canonical_identifier(parts[0], "keyspace")
    table = _native.canonical_identifier(parts[1], "table")
    return keyspace, table
