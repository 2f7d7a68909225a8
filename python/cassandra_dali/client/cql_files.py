"""Apply a ``.cql`` file (what ``cqlsh -f FILE`` does) through the Python driver.

For machines without cqlsh, and for tests: ``cassandra-dali schema apply create_tables.cql``.
Statements are split on ``;`` outside strings, quoted identifiers and comments, then run one by
one; the driver waits for schema agreement after each DDL statement, so the next one sees it.

``keyspace=`` renames the keyspace the file creates (whole identifiers only, never inside
strings or comments), so one schema file serves several keyspaces, e.g. one per test module.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _native
from ..errors import UserError
from .identifiers import quote_identifier

if TYPE_CHECKING:
    from cassandra.cluster import Session

log = logging.getLogger(__name__)


class CqlSyntaxError(UserError, ValueError):
    """The file could not be split into statements (an unterminated string or comment)."""


# Tokens that may hold a ';' or an identifier that is not code: comments, strings, quoted names.
_TOKEN = re.compile(
    r"""(?P<line_comment>(?:--|//)[^\n]*)
      | (?P<block_comment>/\*.*?\*/)
      | (?P<string>'(?:[^']|'')*')
      | (?P<dollar>\$\$.*?\$\$)
      | (?P<quoted>"(?:[^"]|"")*")
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<semicolon>;)
      | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
_UNTERMINATED = re.compile(r"/\*|'|\$\$|\"")


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        assert match is not None and match.lastgroup is not None  # 'other' matches anything
        kind, value = match.lastgroup, match.group()
        if kind == "other" and _UNTERMINATED.match(text, position):
            line = text.count("\n", 0, position) + 1
            raise CqlSyntaxError(f"unterminated {value!r} starting on line {line}")
        yield kind, value
        position = match.end()


def split_statements(text: str, keyspace: str | None = None) -> list[str]:
    """The statements of a CQL script, comments dropped, optionally with the keyspace renamed."""
    original = created_keyspace(text) if keyspace else None
    if keyspace and original is None:
        raise CqlSyntaxError("cannot rename the keyspace: the file has no CREATE KEYSPACE")
    new_name = (quote_identifier(_native.canonical_identifier(keyspace, "keyspace",
                                                              "keyspace_or_table"))
                if keyspace else None)
    statements: list[str] = []
    current: list[str] = []
    for kind, value in _tokens(text):
        if kind in ("line_comment", "block_comment"):
            current.append(" ")
        elif kind == "semicolon":
            statement = "".join(current).strip()
            if statement:
                statements.append(statement)
            current = []
        elif kind == "word" and original is not None and value.lower() == original:
            current.append(new_name or value)
        else:
            current.append(value)
    tail = "".join(current).strip()
    if tail:
        statements.append(tail)
    return statements


def created_keyspace(text: str) -> str | None:
    """The (lower-case) name in the script's first ``CREATE KEYSPACE``, if any."""
    words = [v for kind, v in _tokens(text) if kind in ("word", "quoted")]
    for i, word in enumerate(words):
        if word.lower() == "keyspace" and i > 0 and words[i - 1].lower() == "create":
            rest = words[i + 1 :]
            if len(rest) >= 3 and [w.lower() for w in rest[:3]] == ["if", "not", "exists"]:
                rest = rest[3:]
            return rest[0].lower() if rest else None
    return None


_REPLICATION = re.compile(r"replication\s*=\s*\{.*?\}", re.IGNORECASE | re.DOTALL)


def with_replication_factor(statements: list[str], factor: int) -> list[str]:
    """The statements with the first CREATE KEYSPACE's replication replaced by ``factor``
    copies in every data center (NetworkTopologyStrategy: Cassandra 4.0 and newer expand
    ``replication_factor`` to each data center when the keyspace is created)."""
    if factor < 1:
        raise CqlSyntaxError(f"the replication factor must be >= 1, not {factor}")
    replication = ("replication = {'class': 'NetworkTopologyStrategy', "
                   f"'replication_factor': {factor}}}")
    out = list(statements)
    for i, statement in enumerate(out):
        if re.match(r"create\s+keyspace\b", statement, re.IGNORECASE):
            if not _REPLICATION.search(statement):
                raise CqlSyntaxError("the CREATE KEYSPACE has no replication to replace")
            out[i] = _REPLICATION.sub(lambda _: replication, statement, count=1)
            return out
    raise CqlSyntaxError("cannot set the replication factor: the file has no CREATE KEYSPACE")


def apply(session: Session, path: Path | str, *, keyspace: str | None = None,
          replication_factor: int | None = None) -> list[str]:
    """Run every statement of the file in order (optionally in another keyspace, with another
    replication factor); returns the statements run."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise FileNotFoundError(f"cannot read the CQL file {path}: {error.strerror}") from error
    statements = split_statements(text, keyspace)
    if replication_factor is not None:
        statements = with_replication_factor(statements, replication_factor)
    for statement in statements:
        log.info("%s", " ".join(statement.split())[:120])
        session.execute(statement, timeout=60.0)
    return statements
