"""What the parsers must do with any input, as functions of raw bytes: each either returns
normally (the input was valid and the result is right) or raises AssertionError (a bug).
``fuzz_parsers.py`` drives them with atheris; ``tests/test_fuzz_corpus.py`` replays the kept
corpus through them in ``make test``."""

from __future__ import annotations

import argparse
import math
import os
import re
import tempfile
import uuid
from collections.abc import Callable
from fractions import Fraction

from cassandra_dali import _native, client
from cassandra_dali.cli import _options as options

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


# Cassandra's identifier rules, written here from its documentation rather than from the
# engine's code. Keyspace and table names: only letters, digits and '_', 1..48 characters, quoted
# or not. Columns: unquoted, a letter then letters, digits or '_', any length; quoted, anything
# non-empty without a double quote or a control character. Unquoted names are lower-cased.
_WORD = re.compile(r"[A-Za-z0-9_]{1,48}")
_UNQUOTED = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
KINDS = ("column", "keyspace_or_table")


def _identifier_model(name: str, kind: str) -> str | None:
    """The canonical name, or None if the rules refuse it."""
    quoted = len(name) >= 2 and name[0] == name[-1] == '"'
    inner = name[1:-1] if quoted else name
    if kind == "keyspace_or_table" and not _WORD.fullmatch(inner):
        return None
    if quoted:
        clean = inner and '"' not in inner and min(map(ord, inner)) >= 0x20
        return inner if clean else None
    return name.lower() if _UNQUOTED.fullmatch(name) else None


def _check_refusal(name: str, kind: str, message: str) -> None:
    """A refusal names the rule: for keyspaces and tables, Cassandra's own."""
    assert "is not a valid CQL identifier" in message, message
    inner = name[1:-1] if len(name) >= 2 and name[0] == name[-1] == '"' else name
    if kind == "keyspace_or_table" and inner:
        if re.search(r"[^A-Za-z0-9_]", inner):
            assert "letters, digits" in message, message
        elif len(inner) > 48:
            assert "48" in message, message


def identifier(data: bytes) -> None:
    name = _text(data)
    for kind in KINDS:
        expected = _identifier_model(name, kind)
        try:
            canonical = _native.canonical_identifier(name, "name", kind)
        except ValueError as error:
            assert expected is None, f"refused the {kind} name {name!r}: {error}"
            _check_refusal(name, kind, str(error))
            continue
        assert canonical == expected, f"{kind} {name!r} gave {canonical!r}, not {expected!r}"
        quoted = client.quote_identifier(canonical)
        assert quoted[0] == quoted[-1] == '"' and '"' not in quoted[1:-1]


def _table_model(name: str) -> tuple[str, str] | None:
    parts = name.split(".")
    if len(parts) != 2:
        return None
    keyspace, table = (_identifier_model(part, "keyspace_or_table") for part in parts)
    return (keyspace, table) if keyspace is not None and table is not None else None


def table_name(data: bytes) -> None:
    name = _text(data)
    expected = _table_model(name)
    try:
        got = client.qualified_table(name)
        text = client.cql_table(name)
    except ValueError as error:
        assert expected is None, f"refused the table {name!r}: {error}"
        return
    assert got == expected, f"{name!r} gave {got!r}, not {expected!r}"
    assert text == f'"{expected[0]}"."{expected[1]}"', text


# Sizes: a decimal number (ASCII digits, optional exponent), then K, M or G (binary units,
# optionally followed by i) and an optional B, any case, blanks around; at least one byte, below
# 2**62.
_SIZE = re.compile(r"\s*(?P<number>[0-9]+(\.[0-9]*)?|\.[0-9]+)([eE](?P<exponent>[+-]?[0-9]+))?"
                   r"\s*((?P<unit>[kKmMgG])[iI]?)?[bB]?\s*")
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def _size_model(text: str) -> Fraction | None:
    """The exact number of bytes written (not rounded), or None if it is not a size."""
    match = _SIZE.fullmatch(text)
    if match is None:
        return None
    exponent = int(match["exponent"] or 0)
    if abs(exponent) > 10_000:  # 0, below a byte, or far beyond 2**62: all refused
        return Fraction(0)
    return Fraction(match["number"]) * 10**exponent * _UNITS[(match["unit"] or "").lower()]


def size(data: bytes) -> None:
    text = _text(data)
    exact = _size_model(text)

    def near(bound: int) -> bool:  # where a float's rounding may decide either way
        return exact is not None and abs(exact - bound) <= Fraction(bound, 2**50)

    valid = exact is not None and 1 <= exact < 2**62
    try:
        value = options.parse_size(text)
    except argparse.ArgumentTypeError as error:
        assert not valid or near(1) or near(2**62), f"refused the size {text!r}: {error}"
        return
    assert valid or near(1) or near(2**62), f"accepted {text!r} as {value} bytes"
    assert exact is not None and abs(value - math.floor(exact)) <= 1 + exact / 2**50, (text, value)


def _layout_model(n: int, shards: int, shard: int, batch: int) -> dict[str, int] | None:
    """Shard i of S covers [N*i/S, N*(i+1)/S); every shard pads to ceil(N/S), then to whole
    batches. None where the reader must refuse."""
    if not (1 <= n <= 2**62 and 1 <= shards <= n and 0 <= shard < shards and batch >= 1):
        return None
    begin, end = n * shard // shards, n * (shard + 1) // shards
    batches = _ceil_div(_ceil_div(n, shards), batch)
    return {"begin": begin, "end": end, "size": end - begin, "batches_per_epoch": batches,
            "padded_shard_size": batches * batch, "padded_epoch_size": batches * batch * shards}


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def shard_layout(data: bytes) -> None:
    if len(data) < 16:
        return
    n = int.from_bytes(data[0:6], "little", signed=True)
    shards = int.from_bytes(data[6:9], "little", signed=True)
    shard = int.from_bytes(data[9:12], "little", signed=True)
    batch = int.from_bytes(data[12:16], "little", signed=True)
    expected = _layout_model(n, shards, shard, batch)
    try:
        layout = _native.shard_layout(n, shards, shard, batch)
    except ValueError as error:
        assert expected is None, f"refused {(n, shards, shard, batch)}: {error}"
        return
    assert layout == expected, ((n, shards, shard, batch), layout, expected)


CHECKS: dict[str, Callable[[bytes], None]] = {
    "uuid_text": uuid_text,
    "rows_file": rows_file,
    "identifier": identifier,
    "table_name": table_name,
    "size": size,
    "shard_layout": shard_layout,
}
