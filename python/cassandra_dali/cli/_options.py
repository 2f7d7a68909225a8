"""Flags shared by several commands: how to reach Cassandra (the same for every tool and
example script) and byte sizes."""

from __future__ import annotations

import argparse
import logging
import math
import os
import re

from ..client import Connection
from ..client.connection import PASSWORD_ENV

log = logging.getLogger(__name__)


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
    group.add_argument(
        "--datacenter",
        default=defaults.datacenter,
        help="read and write through this data center's nodes only (env CASSANDRA_DATACENTER; "
        "default: the first contact point's)",
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


def connection_from_args(args: argparse.Namespace) -> Connection:
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
        datacenter=args.datacenter,
    )


_SIZE_SUFFIXES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
# A decimal number (ASCII digits, optional exponent), then K, M or G (binary units, optionally
# "Ki"...) and an optional "B", any case; spaces around. Checked before float(), which would
# also take "1_0", "inf" or other scripts' digits.
_SIZE = re.compile(
    r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*(?:([kKmMgG])[iI]?)?[bB]?\s*")


def parse_size(text: str) -> int:
    """Bytes from ``123``, ``500K``, ``16M``, ``1G``, ``1.5KiB`` (binary units)."""
    match = _SIZE.fullmatch(text)
    not_a_size = argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 16M)")
    if match is None:
        raise not_a_size
    number = float(match[1] + (match[2] or "")) * _SIZE_SUFFIXES[(match[3] or "").upper()]
    if not math.isfinite(number) or number >= 2**62:
        raise not_a_size
    size = int(number)
    if size < 1:
        raise argparse.ArgumentTypeError(f"size must be at least one byte: {text!r}")
    return size
