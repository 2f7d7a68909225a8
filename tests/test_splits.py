"""Splits and folds drawn from a metadata table (issue 13): determinism, disjointness, coverage,
exact per-label counts, the --where selection, and the command line, against the real server.
The radix selection is checked against a direct in-memory ranking of the same keys."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cassandra.concurrent import execute_concurrent_with_args
from cassandra_dali import server
from cassandra_dali.dataset import rows_files, splits

# Unbalanced on purpose: exact stratified cuts must hold for every class size, 1 included.
SIZES = {0: 400, 1: 250, 2: 120, 3: 77, 4: 31, 5: 9, 6: 1}


@pytest.fixture(scope="module")
def metadata(keyspace: str, cql_session: Any) -> tuple[str, dict[uuid.UUID, int]]:
    table = f"{keyspace}.metadata"
    cql_session.execute(
        f"CREATE TABLE {table} (id uuid PRIMARY KEY, label int, or_label text, or_split text)"
    )
    rng = random.Random(5)
    rows = {uuid.UUID(int=rng.getrandbits(128), version=4): label
            for label, n in SIZES.items() for _ in range(n)}
    insert = cql_session.prepare(f"INSERT INTO {table} (id, label, or_label, or_split) "
                                 "VALUES (?, ?, ?, 'train')")
    results = execute_concurrent_with_args(
        cql_session, insert, [(i, label, f"n{label:04d}") for i, label in rows.items()],
        concurrency=64, raise_on_first_error=True)
    assert all(ok for ok, _ in results)
    return table, rows


def _ids(path: Path) -> list[uuid.UUID]:
    return [uuid.UUID(u) for u in rows_files.read_rows_file(path)]


def _expected_groups(spec: splits.SplitSpec, rows: dict[uuid.UUID, int]) -> dict[uuid.UUID, int]:
    """The definition, computed directly: rank each stratum's rows by key, cut at spec.cuts."""
    strata: dict[Any, list[uuid.UUID]] = {}
    for sample_id, label in rows.items():
        strata.setdefault(label if spec.stratify else None, []).append(sample_id)
    groups = {}
    for members in strata.values():
        ranked = sorted(members, key=lambda u: splits.sample_key(spec.seed, u))
        cuts = spec.cuts(len(ranked))
        for rank, sample_id in enumerate(ranked):
            groups[sample_id] = sum(1 for cut in cuts if rank >= cut)
    return groups


@pytest.mark.parametrize("stratify", [None, "label"])
def test_train_val_split(metadata: tuple[str, dict[uuid.UUID, int]], cql_session: Any,
                         tmp_path: Path, stratify: str | None) -> None:
    table, rows = metadata
    spec = splits.SplitSpec(table, seed=11, train_frac=0.7, stratify=stratify)
    manifest = splits.split(cql_session, spec, tmp_path / "a")
    train, val = _ids(tmp_path / "a" / "train.rows"), _ids(tmp_path / "a" / "val.rows")
    assert not set(train) & set(val) and len(set(train)) == len(train)
    assert set(train) | set(val) == set(rows)
    expected = _expected_groups(spec, rows)
    assert set(train) == {u for u, g in expected.items() if g == 0}
    if stratify:  # exact per class: round(0.7 * n)
        per_label = Counter(rows[u] for u in train)
        assert per_label == Counter({label: round(0.7 * n) for label, n in SIZES.items()
                                     if round(0.7 * n)})
    else:
        assert len(train) == round(0.7 * len(rows))
    assert manifest["files"]["train.rows"]["rows"] == len(train)
    assert manifest["files"]["val.rows"]["per_label"] == {
        str(k): v for k, v in sorted(Counter(rows[u] for u in val).items())}
    assert json.loads((tmp_path / "a" / splits.MANIFEST).read_text()) == manifest

    # Same seed: the same bytes; another seed: another split of the same sizes.
    splits.split(cql_session, spec, tmp_path / "b")
    for name in ("train.rows", "val.rows", splits.MANIFEST):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other = splits.SplitSpec(table, seed=12, train_frac=0.7, stratify=stratify)
    splits.split(cql_session, other, tmp_path / "c")
    other_train = _ids(tmp_path / "c" / "train.rows")
    assert len(other_train) == len(train) and set(other_train) != set(train)


def test_stratified_kfold(metadata: tuple[str, dict[uuid.UUID, int]], cql_session: Any,
                          tmp_path: Path) -> None:
    table, rows = metadata
    spec = splits.SplitSpec(table, seed=3, kfold=5, stratify="label")
    splits.split(cql_session, spec, tmp_path)
    names = sorted(p.name for p in tmp_path.glob("*.rows"))
    assert names == sorted([f"fold_{k}_{part}.rows" for k in range(5) for part in ("train", "val")])
    folds = [set(_ids(tmp_path / f"fold_{k}_val.rows")) for k in range(5)]
    assert sum(len(f) for f in folds) == len(rows) and set().union(*folds) == set(rows)
    expected = _expected_groups(spec, rows)
    for k, fold in enumerate(folds):
        assert fold == {u for u, g in expected.items() if g == k}
        assert set(_ids(tmp_path / f"fold_{k}_train.rows")) == set(rows) - fold
        for label, n in SIZES.items():  # every class spread over the folds to within one
            assert sum(1 for u in fold if rows[u] == label) in (n // 5, n // 5 + 1)


def test_where_selects_rows(metadata: tuple[str, dict[uuid.UUID, int]], cql_session: Any,
                            tmp_path: Path) -> None:
    table, rows = metadata
    spec = splits.SplitSpec(table, seed=1, train_frac=0.5, where="label <= 2")
    manifest = splits.split(cql_session, spec, tmp_path)
    chosen = set(_ids(tmp_path / "train.rows")) | set(_ids(tmp_path / "val.rows"))
    assert chosen == {u for u, label in rows.items() if label <= 2}
    assert manifest["where"] == "label <= 2"


def test_bad_arguments_are_refused(metadata: tuple[str, dict[uuid.UUID, int]]) -> None:
    table, _ = metadata
    for kwargs, message in (({"kfold": 1}, "--kfold must be at least 2"),
                            ({"train_frac": 1.0}, "--train-frac must be between 0 and 1"),
                            ({"kfold": 3, "train_frac": 0.5}, "not both"),
                            ({"where": "label = 1; DROP TABLE x"}, "one CQL condition")):
        with pytest.raises(splits.SplitError, match=message):
            splits.SplitSpec(table, **kwargs)
    with pytest.raises(splits.SplitError, match="keyspace.table"):
        splits.SplitSpec("no_dot")


def test_command_line(metadata: tuple[str, dict[uuid.UUID, int]],
                     cassandra_server: server.ServerInfo, tmp_path: Path) -> None:
    table, rows = metadata
    flags = ["--host", cassandra_server.host, "--port", str(cassandra_server.port)]
    result = subprocess.run(
        [sys.executable, "-m", "cassandra_dali.cli", "data", "split", "--metadata-table", table,
         "--out", str(tmp_path), "--kfold", "3", "--seed", "9", *flags],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / splits.MANIFEST).read_text())
    assert manifest["kfold"] == 3 and manifest["seed"] == 9 and manifest["table"] == table
    assert sum(manifest["files"][f"fold_{k}_val.rows"]["rows"] for k in range(3)) == len(rows)
    assert f"rows in {tmp_path}/fold_2_val.rows" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "cassandra_dali.cli", "data", "split", "--metadata-table", table,
         "--out", str(tmp_path), "--where", "nosuchcolumn = 1", *flags],
        capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "nosuchcolumn" in bad.stderr, bad.stderr
