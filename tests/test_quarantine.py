"""The bad-sample quarantine: the JSON-lines file (round trip, errors naming file:line, whole
lines under concurrent appends), ``data exclude`` on text and binary rows files, and
``data verify --decode`` against the real server."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cassandra_dali import server
from cassandra_dali.cli import main
from cassandra_dali.dataset import rows_files
from cassandra_dali.dataset.quarantine import (
    QuarantineEntry,
    QuarantineError,
    append_quarantine,
    default_quarantine_path,
    quarantined_ids,
    read_quarantine,
)
from PIL import Image
from reader_helpers import write_dataset

ID = [uuid.UUID(int=i + 1, version=4) for i in range(8)]


def _entry(i: int, table: str = "ks.images", **fields: Any) -> QuarantineEntry:
    return QuarantineEntry(ID[i], table, fields.pop("reason", "undecodable"), **fields)


# --------------------------------------------------------------------------------------------
# The file
# --------------------------------------------------------------------------------------------


def test_entries_round_trip_as_one_line_each(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "q.jsonl"  # folders are made
    entries = [
        _entry(0, detail="image file is truncated"),
        _entry(1, reason="missing_row", substitute=ID[2], pid=42, time="2026-12-06T20:30:00Z"),
        _entry(3, reason="checksum_mismatch", detail="crc32c 1 != 2\nsecond line, é"),
    ]
    for entry in entries:
        append_quarantine(path, entry)
    assert read_quarantine(path) == entries
    lines = path.read_bytes().split(b"\n")
    assert len(lines) == 4 and lines[-1] == b"" and all(line.isascii() for line in lines)
    first = json.loads(lines[0])
    assert list(first) == ["uuid", "table", "reason", "detail", "substitute", "pid", "time"]
    assert first["substitute"] is None and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["time"])
    assert json.loads(lines[1])["substitute"] == str(ID[2])
    with pytest.raises(QuarantineError, match="'bogus' is not one of"):
        append_quarantine(path, _entry(4, reason="bogus"))


def test_reader_skips_blank_lines_and_reads_what_the_cpp_writes(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        "\n"
        f'{{"uuid": "{str(ID[0]).upper()}", "table": "ks.images", "reason": "null_value", '
        '"detail": "", "substitute": null, "pid": 7, "time": "2026-12-06T20:30:00Z"}\n'
        "   \n"
        f'{{"uuid": "{ID[1]}", "reason": "a_future_reason"}}'  # no newline at the end
    )
    first, second = read_quarantine([path])
    assert first.uuid == ID[0] and first.pid == 7 and first.reason == "null_value"
    assert second == QuarantineEntry(ID[1], "", "a_future_reason", pid=0, time="")
    # table names compare as the reader canonicalises them: unquoted is lower case
    assert quarantined_ids(path, table="KS.Images") == {ID[0]}
    assert quarantined_ids(path, table='ks."Images"') == set()
    assert quarantined_ids([path, path]) == {ID[0], ID[1]}


@pytest.mark.parametrize("line, message", [
    ('{"uuid": "x", "reason": "undecodable"', "not a JSON object"),
    ('["a list"]', "not a JSON object"),
    ('{"reason": "undecodable"}', "no 'uuid'"),
    (f'{{"uuid": "{ID[0]}"}}', "no 'reason'"),
    ('{"uuid": "not-a-uuid", "reason": "undecodable"}', "'uuid' is not a UUID"),
    (f'{{"uuid": "{ID[0]}", "reason": "undecodable", "substitute": 5}}', "'substitute' must be"),
])
def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    append_quarantine(path, _entry(0))
    with path.open("a") as file:
        file.write(f"\n{line}\n")
    with pytest.raises(QuarantineError, match=re.escape(f"{path}:3: ") + ".*" + message):
        read_quarantine(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(QuarantineError, match="quarantine file .*nope.jsonl' does not exist"):
        read_quarantine(tmp_path / "nope.jsonl")


def test_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The package's cache, as the C++ reader's DefaultQuarantinePath computes it.
    monkeypatch.setenv("CASSANDRA_DALI_CACHE", str(tmp_path))
    assert default_quarantine_path("KS.Images") == tmp_path / "quarantine" / "ks.images.jsonl"
    monkeypatch.delenv("CASSANDRA_DALI_CACHE")
    assert default_quarantine_path('ks."Tab"') == (
        Path.home() / ".cache" / "cassandra-dali" / "quarantine" / "ks.Tab.jsonl")
    with pytest.raises(QuarantineError, match="keyspace.table"):
        default_quarantine_path("no_keyspace")


_WRITER = """
import sys, uuid
from cassandra_dali.dataset.quarantine import QuarantineEntry, append_quarantine
path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    append_quarantine(path, QuarantineEntry(uuid.uuid4(), "ks.t", "undecodable",
                                            detail=tag * 3000 + str(i)))
"""


def test_concurrent_appends_give_whole_lines(tmp_path: Path) -> None:
    path, writers, per_writer = tmp_path / "q.jsonl", "abcd", 300
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), tag, str(per_writer)])
             for tag in writers]
    assert [p.wait(timeout=120) for p in procs] == [0] * len(writers)
    entries = read_quarantine(path)  # a torn or interleaved line would not parse
    assert len(entries) == len(writers) * per_writer
    for tag in writers:
        mine = [e for e in entries if e.detail.startswith(tag)]
        assert len({e.pid for e in mine}) == 1
        assert [e.detail for e in mine] == [tag * 3000 + str(i) for i in range(per_writer)]


# --------------------------------------------------------------------------------------------
# data exclude
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True])
def test_exclude(tmp_path: Path, capsys: pytest.CaptureFixture[str], binary: bool) -> None:
    # unsorted, with a duplicate: both are kept as they were, only the quarantined rows go
    rows = [ID[5], ID[0], ID[3], ID[1], ID[0], ID[4]]
    source = tmp_path / "in.rows"
    if binary:
        rows_files.write_binary_rows_file(source, [u.bytes for u in rows])
    else:
        source.write_text("# a list\n" + "".join(f"{str(u).upper()}\n" for u in rows))
    q1, q2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    append_quarantine(q1, _entry(0))
    append_quarantine(q1, _entry(7))  # not in the list
    append_quarantine(q2, _entry(3, table="other.table", reason="missing_row"))
    out = tmp_path / "sub" / "out.rows"

    assert main(["data", "exclude", "--rows-fn", str(source), "--quarantine", str(q1),
                 "--quarantine", str(q2), "--out", str(out)]) == 0
    assert "3 quarantined rows dropped, 3 kept" in capsys.readouterr().out
    assert rows_files.is_binary_rows_file(out) == binary
    assert rows_files.read_rows_file(out) == [str(u) for u in (ID[5], ID[1], ID[4])]

    assert main(["data", "exclude", "--rows-fn", str(source), "--quarantine", str(q1),
                 "--quarantine", str(q2), "--out", str(out), "--table", "KS.images"]) == 0
    assert "2 quarantined rows dropped, 4 kept" in capsys.readouterr().out
    assert rows_files.read_rows_file(out) == [str(u) for u in (ID[5], ID[3], ID[1], ID[4])]


def test_exclude_refuses_its_input_and_names_bad_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, q = tmp_path / "in.rows", tmp_path / "q.jsonl"
    rows_files.write_rows_file(source, ID)
    append_quarantine(q, _entry(0))
    (tmp_path / "link.rows").symlink_to(source)
    for out in (source, tmp_path / "." / "in.rows", tmp_path / "link.rows"):
        assert main(["data", "exclude", "--rows-fn", str(source), "--quarantine", str(q),
                     "--out", str(out)]) == 1
        assert "is the input itself" in capsys.readouterr().err
    broken = tmp_path / "broken.rows"
    broken.write_bytes(rows_files.BINARY_MAGIC + (5).to_bytes(8, "little") + bytes(16))
    bad_text = tmp_path / "bad.rows"
    bad_text.write_text(f"{ID[0]}\nnot a uuid\n")
    for rows_fn, quarantine, message in (
            (broken, q, "says it holds 5 UUIDs but is 32 bytes long"),
            (bad_text, q, "line 2"),
            (source, tmp_path / "none.jsonl", "none.jsonl' does not exist")):
        assert main(["data", "exclude", "--rows-fn", str(rows_fn), "--quarantine",
                     str(quarantine), "--out", str(tmp_path / "out.rows")]) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out.rows").exists()


def test_binary_rows_are_filtered_in_chunks(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows_files, "_FILTER_CHUNK", 7)  # many chunks, one partial
    ids = np.random.default_rng(1).integers(0, 256, (100, 16), dtype=np.uint8)
    source, out = tmp_path / "in.rows", tmp_path / "out.rows"
    rows_files.write_binary_rows_file(source, ids)
    drop = {uuid.UUID(bytes=bytes(ids[i])) for i in (0, 6, 7, 50, 99)}
    assert rows_files.write_rows_file_without(source, out, drop) == (95, 5)
    keep = [i for i in range(100) if i not in (0, 6, 7, 50, 99)]
    assert np.array_equal(rows_files.map_binary_rows_file(out), ids[keep])
    every = {uuid.UUID(bytes=bytes(row)) for row in ids}
    assert rows_files.write_rows_file_without(source, out, every) == (0, 100)
    assert len(rows_files.map_binary_rows_file(out)) == 0
    empty = tmp_path / "empty.rows"
    rows_files.write_binary_rows_file(empty, [])
    assert rows_files.write_rows_file_without(empty, out, drop) == (0, 0)


# --------------------------------------------------------------------------------------------
# data verify --decode
# --------------------------------------------------------------------------------------------


def _jpegs(count: int) -> list[bytes]:
    rng = np.random.default_rng(3)
    jpegs = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
        jpegs.append(buffer.getvalue())
    return jpegs


def _connection_flags(info: server.ServerInfo) -> list[str]:
    return ["--host", info.host, "--port", str(info.port)]


def test_verify_quarantines_undecodable_rows(
        keyspace: str, cql_session: Any, cassandra_server: server.ServerInfo, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    good = _jpegs(6)
    truncated = good[0][: len(good[0]) // 2]
    blobs = [*good, truncated, b"definitely not an image" * 20]
    ds = write_dataset(cql_session, keyspace, 0, blobs=blobs)
    table = f"{keyspace}.data_none"
    quarantine = tmp_path / "q.jsonl"
    verify = ["data", "verify", "--decode", "--data-table", table, "--no-progress",
              *_connection_flags(cassandra_server)]

    assert main([*verify, "--quarantine", str(quarantine), "--splits", "4"]) == 1
    out = capsys.readouterr().out
    assert f"8 rows of {table} checked: 2 bad, 2 undecodable" in out
    assert f"2 entries added to {quarantine}" in out
    entries = read_quarantine(quarantine)
    assert {e.uuid: e.reason for e in entries} == {
        uuid.UUID(ds.ids[6]): "undecodable", uuid.UUID(ds.ids[7]): "undecodable"}
    by_id = {str(e.uuid): e for e in entries}
    assert "truncated" in by_id[ds.ids[6]].detail
    assert "cannot identify image file" in by_id[ds.ids[7]].detail
    assert all(e.table == table and e.substitute is None for e in entries)

    # Run again: the same rows are bad, and already in the file.
    assert main([*verify, "--quarantine", str(quarantine), "--workers", "1"]) == 1
    assert "0 entries added" in capsys.readouterr().out
    assert len(read_quarantine(quarantine)) == 2

    # No --quarantine: the default file for the table.
    monkeypatch.setenv("CASSANDRA_DALI_CACHE", str(tmp_path / "cache"))
    assert main(verify) == 1
    assert quarantined_ids(default_quarantine_path(table)) == {uuid.UUID(u) for u in ds.ids[6:]}


def test_verify_a_good_table_exits_0_and_writes_nothing(
        keyspace: str, cql_session: Any, cassandra_server: server.ServerInfo, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    table = f"{keyspace}.good_images"
    cql_session.execute(f"CREATE TABLE {table} (key uuid PRIMARY KEY, image blob)")
    insert = cql_session.prepare(f"INSERT INTO {table} (key, image) VALUES (?, ?)")
    for jpeg in _jpegs(5):
        cql_session.execute(insert, (uuid.uuid4(), jpeg))
    quarantine = tmp_path / "q.jsonl"
    assert main(["data", "verify", "--decode", "--data-table", table, "--id-col", "key",
                 "--data-col", "image", "--quarantine", str(quarantine), "--no-progress",
                 *_connection_flags(cassandra_server)]) == 0
    assert f"5 rows of {table} checked: 0 bad" in capsys.readouterr().out
    assert not quarantine.exists()


def test_verify_needs_a_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "verify", "--data-table", "ks.t", "--port", "1"]) == 1
    assert "the only check so far is --decode" in capsys.readouterr().err
