"""What the parsers must do with any input, as functions of raw bytes: each either returns
normally (the input was valid and the result is right) or raises AssertionError (a bug).
``fuzz_parsers.py`` drives them with atheris; ``tests/test_fuzz_corpus.py`` replays the kept
corpus through them in ``make test``."""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import uuid
from collections.abc import Callable

from cassandra_dali import _native, client
from cassandra_dali.cli import options

_CANONICAL = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\Z")


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def uuid_text(data: bytes) -> None:
    text = _text(data)
    try:
        parsed = _native.parse_uuid(text)
    except ValueError as error:
        assert not _CANONICAL.match(text), f"refused a canonical UUID {text!r}: {error}"
        assert "is not a UUID" in str(error), str(error)  # and decodable: no NUL cut it short
        return
    assert _CANONICAL.match(text), f"accepted {text!r}"
    assert parsed == uuid.UUID(text).bytes


def _rows_model(data: bytes) -> list[str] | int:
    """The rows-file format, written independently: the UUIDs, or the 1-based bad line."""
    out = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.split(b"#", 1)[0].strip(b" \t\r")
        if not line:
            continue
        text = line.decode("latin-1")
        if not _CANONICAL.match(text):
            return number
        out.append(str(uuid.UUID(text)))
    return out


def rows_file(data: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".rows", delete=False) as handle:
        handle.write(data)
        path = handle.name
    try:
        expected = _rows_model(data)
        try:
            got = _native.read_uuid_file(path)
        except ValueError as error:
            assert isinstance(expected, int), f"refused a valid rows file: {error}"
            assert path in str(error) and f"line {expected}:" in str(error), str(error)
            return
        assert got == expected, (got, expected)
    finally:
        os.unlink(path)


def identifier(data: bytes) -> None:
    name = _text(data)
    try:
        canonical = _native.canonical_identifier(name, "name")
    except ValueError as error:
        assert "is not a valid CQL identifier" in str(error), str(error)
        return
    assert canonical and '"' not in canonical
    assert all(ord(c) >= 0x20 for c in canonical)
    quoted = client.quote_identifier(canonical)
    assert quoted[0] == quoted[-1] == '"' and '"' not in quoted[1:-1]
    if not name.startswith('"'):
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,47}", canonical), canonical


def table_name(data: bytes) -> None:
    name = _text(data)
    try:
        text = client.cql_table(name)
    except ValueError:
        return
    keyspace, table = client.qualified_table(name)
    assert text == f"{client.quote_identifier(keyspace)}.{client.quote_identifier(table)}"


def size(data: bytes) -> None:
    text = _text(data)
    try:
        value = options.parse_size(text)
    except argparse.ArgumentTypeError:
        return
    assert isinstance(value, int) and 1 <= value < 2**62, value


def shard_layout(data: bytes) -> None:
    if len(data) < 16:
        return
    n = int.from_bytes(data[0:6], "little", signed=True)
    shards = int.from_bytes(data[6:9], "little", signed=True)
    shard = int.from_bytes(data[9:12], "little", signed=True)
    batch = int.from_bytes(data[12:16], "little", signed=True)
    try:
        layout = _native.shard_layout(n, shards, shard, batch)
    except ValueError:
        return
    assert 0 < n and 0 <= shard < shards and batch > 0, (n, shards, shard, batch)
    assert 0 <= layout["begin"] <= layout["end"] <= n
    assert layout["padded_shard_size"] == layout["batches_per_epoch"] * batch
    assert layout["padded_shard_size"] >= layout["end"] - layout["begin"]


CHECKS: dict[str, Callable[[bytes], None]] = {
    "uuid_text": uuid_text,
    "rows_file": rows_file,
    "identifier": identifier,
    "table_name": table_name,
    "size": size,
    "shard_layout": shard_layout,
}
