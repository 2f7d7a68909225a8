"""The quarantine file: samples that could not be delivered, one JSON object per line.

The reader (``on_bad_sample="replace"``) and ``cassandra-dali data verify`` append a line for
each bad sample; ``cassandra-dali data exclude`` drops them from a rows file, giving the list a
training uses from its next epoch on. A line::

    {"uuid": "...", "table": "keyspace.table", "reason": "undecodable", "detail": "...",
     "substitute": "<uuid>" or null, "pid": 1234, "time": "2026-12-06T20:30:00Z"}

Each line is one ``write`` to a file opened with ``O_APPEND``, so several processes (ranks, the
C++ reader, this module) can append to the same file and every line stays whole. Readers skip
blank lines and name the file and line of anything else they cannot read.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeAlias
from uuid import UUID

from .._files import cache_root
from ..client.identifiers import qualified_table
from ..errors import UserError

# Why a sample was quarantined; the C++ reader writes the same words.
REASONS = frozenset({"missing_row", "checksum_mismatch", "null_value", "undecodable"})

PathLike: TypeAlias = "str | os.PathLike[str]"


class QuarantineError(UserError, ValueError):
    """A quarantine file or entry that cannot be read or written (the message says where)."""


def canonical_table(table: str) -> str:
    """``keyspace.table`` as the reader names it: checked, unquoted parts lower-cased."""
    try:
        keyspace, name = qualified_table(table)
    except ValueError as error:
        raise QuarantineError(str(error)) from error
    return f"{keyspace}.{name}"


def default_quarantine_path(table: str) -> Path:
    """``<cache>/quarantine/<keyspace>.<table>.jsonl``, the cache being ``$CASSANDRA_DALI_CACHE``
    or ``~/.cache/cassandra-dali`` (:func:`cassandra_dali._files.cache_root`): where the reader
    and ``data verify`` write when no file is given. The C++ reader computes the same path
    (``DefaultQuarantinePath``)."""
    return cache_root() / "quarantine" / f"{canonical_table(table)}.jsonl"


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class QuarantineEntry:
    """One bad sample. ``substitute``: the sample delivered in its place, if any; ``pid`` and
    ``time`` (UTC, ISO 8601) say who found it when, and default to this process and now."""

    uuid: UUID
    table: str
    reason: str
    detail: str = ""
    substitute: UUID | None = None
    pid: int = dataclasses.field(default_factory=os.getpid)
    time: str = dataclasses.field(default_factory=_utc_now)

    def to_json(self) -> str:
        """The entry as one line (no newline), keys in the documented order. ASCII only, so a
        line never splits on a multi-byte character and any reader can take it."""
        return json.dumps({
            "uuid": str(self.uuid),
            "table": self.table,
            "reason": self.reason,
            "detail": self.detail,
            "substitute": None if self.substitute is None else str(self.substitute),
            "pid": self.pid,
            "time": self.time,
        })


def append_quarantine(path: PathLike, entry: QuarantineEntry) -> None:
    """Append ``entry`` as one line to ``path`` (created with its folders if needed) in a
    single ``write`` on an ``O_APPEND`` descriptor: whole lines even with other writers."""
    if entry.reason not in REASONS:
        raise QuarantineError(f"quarantine reason {entry.reason!r} is not one of "
                              f"{', '.join(sorted(REASONS))}")
    line = (entry.to_json() + "\n").encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        before = os.lseek(fd, 0, os.SEEK_END)
        written = os.write(fd, line)
        if written != len(line):  # a full disk; a second write would no longer be atomic
            os.ftruncate(fd, before)  # no half line left to break the file (as the engine does)
            raise OSError(f"quarantine file '{path}': wrote {written} of {len(line)} bytes")
    finally:
        os.close(fd)


def _paths(paths: PathLike | Iterable[PathLike]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _uuid_field(value: Any, name: str, where: str) -> UUID:
    if not isinstance(value, str):
        raise QuarantineError(f"{where}: {name!r} must be a UUID string, not {value!r}")
    try:
        return UUID(value)
    except ValueError:
        raise QuarantineError(f"{where}: {name!r} is not a UUID: {value!r}") from None


def _entry_from_line(line: str, where: str) -> QuarantineEntry:
    try:
        fields = json.loads(line)
    except json.JSONDecodeError as error:
        raise QuarantineError(f"{where}: not a JSON object ({error.msg}): {line[:80]!r}") from None
    if not isinstance(fields, dict):
        raise QuarantineError(f"{where}: not a JSON object: {line[:80]!r}")
    missing = [key for key in ("uuid", "reason") if key not in fields]
    if missing:
        raise QuarantineError(f"{where}: no {' or '.join(repr(k) for k in missing)} in the entry")
    reason, pid = fields["reason"], fields.get("pid", 0)
    if not isinstance(reason, str):
        raise QuarantineError(f"{where}: 'reason' must be a string, not {reason!r}")
    if not isinstance(pid, int) or isinstance(pid, bool):
        raise QuarantineError(f"{where}: 'pid' must be an integer, not {pid!r}")
    substitute = fields.get("substitute")
    # A reason this version does not know is kept: a newer reader may write new ones.
    return QuarantineEntry(
        uuid=_uuid_field(fields["uuid"], "uuid", where),
        table=str(fields.get("table", "")),
        reason=reason,
        detail=str(fields.get("detail", "")),
        substitute=None if substitute is None else _uuid_field(substitute, "substitute", where),
        pid=pid,
        time=str(fields.get("time", "")),
    )


def read_quarantine(paths: PathLike | Iterable[PathLike]) -> list[QuarantineEntry]:
    """The entries of one quarantine file or several, in file and line order."""
    entries = []
    for path in _paths(paths):
        try:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            raise QuarantineError(f"quarantine file '{path}' does not exist") from None
        for number, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                entries.append(_entry_from_line(line, f"{path}:{number}"))
    return entries


def quarantined_ids(paths: PathLike | Iterable[PathLike],
                    table: str | None = None) -> set[UUID]:
    """The UUIDs in the quarantine files; with ``table``, only that table's entries."""
    wanted = None if table is None else canonical_table(table)
    return {entry.uuid for entry in read_quarantine(paths)
            if wanted is None or _same_table(entry.table, wanted)}


def _same_table(written: str, wanted: str) -> bool:
    # Written names are canonical already (the reader's QualifiedName, verify's
    # canonical_table): parsing them again would lower-case a quoted "Tab".
    return written == wanted


__all__ = [
    "REASONS",
    "QuarantineEntry",
    "QuarantineError",
    "append_quarantine",
    "canonical_table",
    "default_quarantine_path",
    "quarantined_ids",
    "read_quarantine",
]
