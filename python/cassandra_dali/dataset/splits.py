"""Training/validation splits and k-fold cross-validation drawn from a metadata table, written
as rows files the readers and training scripts take unchanged.

Every selected row gets a key, a 64-bit hash of (seed, UUID): the same on any machine, and
independent of where the row lives. Within each stratum (a value of ``stratify``, or all rows),
rows ranked by key are cut at exact counts: ``round(train_frac * n)`` rows go to training, or
fold ``j`` of ``k`` gets ranks ``[j*n//k, (j+1)*n//k)``. So splits are disjoint, together exactly
the selected rows, stratified to the row, and reproducible from the seed.

Memory stays bounded whatever the table's size: the cut points are found by radix selection
over three token-range scans in ring order, a few ranges fetched ahead
(:func:`cassandra_dali.client.token_scan.scan_in_ring_order`): counts per stratum and key
bucket, then the keys of the few buckets holding a cut, then the rows streamed into their
files. Memory: 4096 counts per stratum, about n/4096 keys per cut, and the pages in flight.
Files list rows in token order, which depends on the data only, so the same table and seed
give the same files byte for byte.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import logging
import os
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._files import write_atomically
from ..client import cql_table
from ..client.token_scan import prepare_range_scan, scan_in_ring_order
from ..errors import UserError

if TYPE_CHECKING:
    from cassandra.cluster import Session

log = logging.getLogger(__name__)

MANIFEST = "split.json"
BUCKET_BITS = 12  # 4096 buckets per stratum: a cut's bucket holds ~n/4096 keys
_KEY_BITS = 64


class SplitError(UserError, ValueError):
    """A split that cannot be made as asked (the message says which argument)."""


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """What to split and how. ``where``: a CQL condition on the metadata table's columns
    (e.g. ``label < 5``), run with ALLOW FILTERING."""

    metadata_table: str
    seed: int = 0
    train_frac: float | None = None  # default 0.8 unless kfold
    kfold: int | None = None
    stratify: str | None = None  # a metadata column, e.g. label
    where: str | None = None
    id_col: str = "id"
    label_col: str | None = "label"  # counted per file in the manifest; None: not counted

    def __post_init__(self) -> None:
        try:
            cql_table(self.metadata_table)
        except ValueError as error:
            raise SplitError(str(error)) from None
        if self.kfold is not None and self.train_frac is not None:
            raise SplitError("give --train-frac or --kfold, not both")
        if self.kfold is not None and self.kfold < 2:
            raise SplitError(f"--kfold must be at least 2, not {self.kfold}")
        if self.train_frac is not None and not 0.0 < self.train_frac < 1.0:
            raise SplitError(f"--train-frac must be between 0 and 1, not {self.train_frac}")
        if self.where is not None and (";" in self.where or not self.where.strip()):
            raise SplitError(f"--where must be one CQL condition, not {self.where!r}")

    @property
    def groups(self) -> int:
        return self.kfold or 2

    def cuts(self, n: int) -> list[int]:
        """Ranks where each group after the first starts, in a stratum of ``n`` rows."""
        if self.kfold is not None:
            return [j * n // self.kfold for j in range(1, self.kfold)]
        frac = 0.8 if self.train_frac is None else self.train_frac
        return [round(frac * n)]

    def files(self) -> list[tuple[str, set[int]]]:
        """(file name, groups it holds): train then val, or per fold its train and val."""
        if self.kfold is None:
            return [("train.rows", {0}), ("val.rows", {1})]
        every = set(range(self.kfold))
        return [entry for k in range(self.kfold)
                for entry in ((f"fold_{k}_train.rows", every - {k}), (f"fold_{k}_val.rows", {k}))]


def sample_key(seed: int, sample_id: uuid.UUID) -> tuple[int, bytes]:
    """A row's place in the seed's order: a 64-bit hash, the UUID's bytes to break ties."""
    digest = hashlib.blake2b(sample_id.bytes, digest_size=8,
                             key=seed.to_bytes(16, "little", signed=True)).digest()
    return int.from_bytes(digest, "big"), sample_id.bytes


def _rows(session: Session, spec: SplitSpec) -> Iterator[tuple[uuid.UUID, Any, Any]]:
    """(UUID, stratum, label) of every selected row, in token order (ranges in ring order)."""
    stratify, label = spec.stratify, spec.label_col  # checked and quoted by prepare_range_scan
    extra = [c for c in dict.fromkeys((stratify, label)) if c is not None]
    statement = prepare_range_scan(session, spec.metadata_table, spec.id_col, extra, spec.where)
    at = {name: i + 1 for i, name in enumerate(extra)}
    for row in scan_in_ring_order(session, statement):
        yield (row[0], row[at[stratify]] if stratify else None,
               row[at[label]] if label else None)


def _bucket(key: int) -> int:
    return key >> (_KEY_BITS - BUCKET_BITS)


def _thresholds(session: Session, spec: SplitSpec
                ) -> tuple[dict[Any, list[tuple[int, bytes]]], dict[Any, int]]:
    """Per stratum, the key of the first row of each group after the first (passes 1 and 2),
    and the stratum's size."""
    histograms: dict[Any, Counter[int]] = defaultdict(Counter)
    for sample_id, stratum, _ in _rows(session, spec):
        histograms[stratum][_bucket(sample_key(spec.seed, sample_id)[0])] += 1
    wanted: dict[Any, dict[int, list[int]]] = {}  # stratum -> bucket -> ranks within it
    for stratum, histogram in histograms.items():
        n = sum(histogram.values())
        below, buckets = 0, sorted(histogram)
        wanted[stratum] = defaultdict(list)
        cuts = iter(spec.cuts(n))
        cut = next(cuts, None)
        for bucket in buckets:
            while cut is not None and cut < below + histogram[bucket]:
                if cut < n:
                    wanted[stratum][bucket].append(cut - below)
                cut = next(cuts, None)
            below += histogram[bucket]
    keys: dict[Any, dict[int, list[tuple[int, bytes]]]] = defaultdict(lambda: defaultdict(list))
    for sample_id, stratum, _ in _rows(session, spec):
        key = sample_key(spec.seed, sample_id)
        if _bucket(key[0]) in wanted.get(stratum, {}):
            keys[stratum][_bucket(key[0])].append(key)
    thresholds: dict[Any, list[tuple[int, bytes]]] = {}
    for stratum, by_bucket in wanted.items():
        found = []
        for bucket, ranks in sorted(by_bucket.items()):
            ordered = sorted(keys[stratum][bucket])
            if ranks[-1] >= len(ordered):
                raise _changed(spec)
            found += [ordered[rank] for rank in ranks]
        thresholds[stratum] = found  # fewer than cuts when a stratum is too small: groups empty
    return thresholds, {stratum: sum(h.values()) for stratum, h in histograms.items()}


def _changed(spec: SplitSpec) -> SplitError:
    return SplitError(f"{spec.metadata_table} changed while it was being split (its scans "
                      "disagree): run the split again once writes to it have stopped")


def split(session: Session, spec: SplitSpec, out_dir: Path | str) -> dict[str, Any]:
    """Write the split's rows files and ``split.json`` into ``out_dir``; return the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    thresholds, sizes = _thresholds(session, spec)
    seen: Counter[Any] = Counter()
    names = spec.files()
    temporary = {name: out / f".{name}.{os.getpid()}.tmp" for name, _ in names}
    counts: dict[str, Counter[str]] = {name: Counter() for name, _ in names}
    header = (f"# {spec.metadata_table} split with seed {spec.seed}"
              f"{f' where {spec.where}' if spec.where else ''}\n")
    handles = {name: open(path, "w", encoding="ascii") for name, path in temporary.items()}
    try:
        for handle in handles.values():
            handle.write(header)
        for sample_id, stratum, label in _rows(session, spec):
            if stratum not in thresholds:
                raise _changed(spec)  # a stratum the first scans did not see
            seen[stratum] += 1
            key = sample_key(spec.seed, sample_id)
            group = bisect.bisect_right(thresholds[stratum], key)
            for name, groups in names:
                if group in groups:
                    handles[name].write(f"{sample_id}\n")
                    counts[name][str(label)] += 1
        for handle in handles.values():
            handle.close()
        if seen != sizes:
            raise _changed(spec)
        for name, path in temporary.items():
            os.replace(path, out / name)
    finally:
        for handle in handles.values():
            handle.close()
        for path in temporary.values():
            path.unlink(missing_ok=True)
    manifest: dict[str, Any] = {
        "table": spec.metadata_table, "where": spec.where, "seed": spec.seed,
        "train_frac": spec.train_frac if spec.kfold is None else None,
        "kfold": spec.kfold, "stratify": spec.stratify,
        "label_col": spec.label_col,
        "files": {name: {"rows": sum(c.values()),
                         **({"per_label": dict(sorted(c.items()))} if spec.label_col else {})}
                  for name, c in counts.items()},
    }
    write_atomically(out / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    log.info("%s", ", ".join(f"{name}: {entry['rows']}" for name, entry in
                             manifest["files"].items()))
    return manifest
