"""``cassandra-dali data verify`` and ``data exclude``: find a table's bad samples, and drop them
from a rows file (:mod:`cassandra_dali.dataset.quarantine`).

``verify`` reads every row once over the token ring and runs the checks asked for on each
value; a row that fails one gets a line in the quarantine file, the same file the reader's
``on_bad_sample="replace"`` appends to. ``exclude`` then writes the list without them.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from .. import _native
from ..client import token_scan
from ..dataset import rows_files
from ..dataset.quarantine import (
    QuarantineEntry,
    append_quarantine,
    canonical_table,
    default_quarantine_path,
    quarantined_ids,
    read_quarantine,
)
from ..errors import UserError
from ._options import add_connection_arguments, connection_from_args

log = logging.getLogger(__name__)

# Rows checked between two hand-outs to the worker threads: bounds what is held beyond the
# driver's pages.
_BATCH_ROWS = 256
# Rows per page: values are whole images, so pages far smaller than for a scan of ids.
_DEFAULT_FETCH_SIZE = 64

# --------------------------------------------------------------------------------------------
# data exclude
# --------------------------------------------------------------------------------------------


def add_exclude_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows-fn", required=True, metavar="IN",
                        help="rows file (text or binary) to leave the quarantined samples out of")
    parser.add_argument("--quarantine", required=True, action="append", metavar="FILE",
                        help="quarantine file (JSON lines); repeat for several")
    parser.add_argument("--out", required=True, metavar="OUT",
                        help="new rows file, in IN's format and order (IN itself is refused)")
    parser.add_argument("--table", default=None, metavar="KEYSPACE.TABLE",
                        help="only the entries of this table (default: every entry)")


def run_exclude(args: argparse.Namespace) -> int:
    ids = quarantined_ids(args.quarantine, table=args.table)
    kept, dropped = rows_files.write_rows_file_without(args.rows_fn, args.out, ids)
    print(f"{dropped} quarantined rows dropped, {kept} kept: {args.out} "
          f"({len(ids)} UUIDs in quarantine)")
    return 0


# --------------------------------------------------------------------------------------------
# data verify
# --------------------------------------------------------------------------------------------


def decode_problem(value: bytes) -> str | None:
    """Why PIL cannot decode ``value`` completely (None: it can)."""
    from PIL import Image

    stream = BytesIO(value)
    try:
        with Image.open(stream) as image:
            image.load()
    except MemoryError:
        raise  # the machine's problem, not the image's
    except Exception as error:  # noqa: BLE001  (a decoder fed garbage may raise anything)
        # "cannot identify image file <_io.BytesIO object at 0x...>": the size says more.
        return (str(error) or type(error).__name__).replace(repr(stream), f"({len(value)} bytes)")
    return None


@dataclass(frozen=True)
class Check:
    """A check ``verify`` can run on each value: the quarantine reason it records, and a
    function saying what is wrong with a value (None: nothing)."""

    reason: str
    problem: Callable[[bytes], str | None]
    help: str


# One flag each (--decode...): a new check is one more entry.
CHECKS: dict[str, Check] = {
    "decode": Check("undecodable", decode_problem,
                    "decode every value with PIL, to the last byte (truncated images fail)"),
}


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("Exit status: 0 when every row passes, 1 when some did not (they are in "
                     "the quarantine file) or on an error.")
    checks = parser.add_argument_group("checks (at least one)")
    for name, check in CHECKS.items():
        checks.add_argument(f"--{name}", action="store_true", help=check.help)
    parser.add_argument("--data-table", required=True, metavar="KEYSPACE.TABLE",
                        help="table to read, every row once")
    parser.add_argument("--data-col", default="data", help="column with the sample (%(default)s)")
    parser.add_argument("--id-col", default="id", help="(%(default)s)")
    parser.add_argument("--quarantine", default=None, metavar="FILE",
                        help="append bad rows here (default: "
                        "~/.cache/cassandra-dali/quarantine/KEYSPACE.TABLE.jsonl; $CASSANDRA_DALI_CACHE moves it)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="threads checking values (%(default)s)")
    parser.add_argument("--splits", type=int, default=token_scan.DEFAULT_SPLITS,
                        help="token ranges the ring is split into (%(default)s)")
    parser.add_argument("--concurrency", type=int, default=token_scan.DEFAULT_CONCURRENCY,
                        help="ranges fetched at once (%(default)s)")
    parser.add_argument("--fetch-size", type=int, default=_DEFAULT_FETCH_SIZE,
                        help="rows per page (%(default)s); memory: about concurrency x "
                        "fetch-size values")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_connection_arguments(parser)


@dataclass
class VerifySummary:
    checked: int = 0
    bad: dict[str, int] = field(default_factory=dict)  # reason: rows
    added: int = 0  # entries appended (the others were in the file already)


def run_verify(args: argparse.Namespace) -> int:
    checks = [check for name, check in CHECKS.items() if getattr(args, name)]
    if not checks:
        raise UserError("data verify: say what to check; the only check so far is --decode "
                        "(every value decoded with PIL)")
    for flag in ("workers", "fetch_size", "splits", "concurrency"):
        if getattr(args, flag) < 1:
            raise UserError(f"data verify: --{flag.replace('_', '-')} must be at least 1")
    table = canonical_table(args.data_table)
    id_col = _checked_column(args.id_col, "--id-col")
    data_col = _checked_column(args.data_col, "--data-col")
    path = Path(args.quarantine) if args.quarantine else default_quarantine_path(table)
    # True would pass a truncated image as whole (its missing part grey): the very thing
    # looked for here.
    from PIL import Image, ImageFile
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    # Memory in bytes per worker: an image past PIL's bound (89 Mpx, about 270 MB decoded) is
    # refused as a decompression bomb rather than decoded.
    warnings.simplefilter("error", Image.DecompressionBombWarning)

    session = connection_from_args(args).connect()
    try:
        statement = token_scan.prepare_range_scan(session, table, id_col, [data_col],
                                                  fetch_size=args.fetch_size)
        rows = token_scan.scan_in_ring_order(session, statement, splits=args.splits,
                                             concurrency=args.concurrency)
        summary = _verify_rows(rows, table, args.data_col, checks, path, args.workers,
                               progress=not args.no_progress)
    finally:
        session.cluster.shutdown()

    bad = sum(summary.bad.values())
    print(f"{summary.checked} rows of {table} checked: {bad} bad"
          + "".join(f", {count} {reason}" for reason, count in sorted(summary.bad.items())))
    if bad:
        print(f"{summary.added} entries added to {path} "
              f"({bad - summary.added} were there already)")
    return 1 if bad else 0


def _checked_column(name: str, flag: str) -> str:
    try:
        return _native.canonical_identifier(name, "column")
    except ValueError as error:
        raise UserError(f"{flag}: {error}") from None


def _verify_rows(rows: Iterable[Any], table: str, data_col: str, checks: list[Check],
                 path: Path, workers: int, *, progress: bool) -> VerifySummary:
    summary = VerifySummary()
    # Run twice, verify adds nothing new: (uuid, reason) pairs already in the file are skipped.
    known = ({(e.uuid, e.reason) for e in read_quarantine(path)} if path.exists() else set())
    with _progress_bar(progress) as bar, ThreadPoolExecutor(workers) as pool:
        for batch in _batches(rows, _BATCH_ROWS):
            # PIL releases the GIL while it decodes, so the threads decode in parallel.
            for (sample_id, value), (reason, detail) in zip(
                    batch, pool.map(lambda row: _first_problem(row[1], checks, data_col), batch)):
                summary.checked += 1
                if reason is None:
                    continue
                summary.bad[reason] = summary.bad.get(reason, 0) + 1
                log.info("%s in %s: %s: %s", sample_id, table, reason, detail)
                if (sample_id, reason) not in known:
                    append_quarantine(path, QuarantineEntry(sample_id, table, reason, detail))
                    known.add((sample_id, reason))
                    summary.added += 1
            if bar is not None:
                bar.update(len(batch))
                bar.set_postfix_str(f"{sum(summary.bad.values())} bad", refresh=False)
    return summary


def _first_problem(value: Any, checks: list[Check],
                   data_col: str) -> tuple[str | None, str]:
    if value is None:
        return "null_value", f"{data_col} is null"
    if not isinstance(value, (bytes, bytearray)):
        raise UserError(f"column {data_col} holds {type(value).__name__} values, not blobs")
    for check in checks:
        problem = check.problem(bytes(value))
        if problem is not None:
            return check.reason, problem
    return None, ""


def _batches(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Any]:
    """Rows checked and their rate; no total, as counting the rows would cost a scan of its
    own. Log lines go above the bar, not through it."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(), tqdm(unit="row", desc="verifying", dynamic_ncols=True,
                                       smoothing=0.1) as bar:
        yield bar
