"""Write an image-folder dataset (``ROOT/SPLIT/CLASS/FILE``) into Cassandra.

Each image becomes one row of the data table ``(id uuid, label int, data blob)`` and one row of
the metadata table ``(id uuid, label int, or_label text, or_split text)``:

- labels: the class folders of the split, sorted by name, numbered from 0 (stable: the same
  folders always give the same labels);
- ids: ``uuid5(NAMESPACE, "split/class/file")`` (:func:`cassandra_dali.dataset.rows_files.sample_uuid`), so
  running the same ingest again rewrites the same rows instead of adding duplicates, and an
  interrupted ingest is resumed by running it again;
- the metadata row is written only once the data row is stored: a metadata row therefore
  always has its data, and ``--skip-existing`` (which skips ids already in the metadata table)
  is safe after an interruption.

Writes go out concurrently through the driver's async API, bounded in samples and in bytes in
flight, and back-pressure, timeouts and a restarting server are retried for a time budget
(:mod:`cassandra_dali.dataset.row_writer`). Bad inputs (unreadable files, files that are not JPEG or PNG,
files over ``--max-size`` or over the largest row the server accepts, empty class folders, stray
files) and failed writes are reported with the file they concern, and either skipped or fatal
(``on_error``). A server unreachable past the retry budget is always fatal: no later write
could succeed. The serial tool and the Spark job share all of this;
Spark only splits the file list into partitions, each writing through its own session.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..client import Connection, cql_table
from ..client.token_scan import scan_ids
from ..errors import UserError
from . import checksums
from .row_writer import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_BYTES_IN_FLIGHT,
    DEFAULT_RETRY_BUDGET_S,
    DEFAULT_WRITE_CONSISTENCY,
    WRITE_CONSISTENCIES,
    RowWriter,
)
from .rows_files import sample_uuid

if TYPE_CHECKING:
    from cassandra.cluster import Session

log = logging.getLogger(__name__)

# A row must fit in one mutation, at most half a commitlog segment (32 MiB by default): stay
# well below, as the real datasets do (ImageNet's largest JPEG is about 15 MB).
DEFAULT_MAX_SIZE = 16 * 1024 * 1024
# Room left for the id, the label and the request's own headers (measured: a 16 MiB message
# limit takes blobs of up to 16 MiB - 96 bytes).
ROW_OVERHEAD = 1024
NO_LIMIT = 1 << 62

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class OnError(str, enum.Enum):
    SKIP = "skip"
    FAIL = "fail"


class IngestError(UserError, RuntimeError):
    """The ingest stopped: the message names the file or the server, and what to do."""


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    data_table: str
    metadata_table: str
    connection: Connection = dataclasses.field(default_factory=Connection)
    max_size: int = DEFAULT_MAX_SIZE
    on_error: OnError = OnError.FAIL
    concurrency: int = DEFAULT_CONCURRENCY
    skip_existing: bool = False
    max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT
    retry_budget_s: float = DEFAULT_RETRY_BUDGET_S
    checksum: bool = False  # store each sample's CRC32C in the data table's crc32c column
    consistency: str = DEFAULT_WRITE_CONSISTENCY  # a cassandra ConsistencyLevel name


    def __post_init__(self) -> None:
        cql_table(self.data_table)
        cql_table(self.metadata_table)
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if self.max_bytes_in_flight < 1:
            raise ValueError("max_bytes_in_flight must be >= 1")
        if self.retry_budget_s < 0:
            raise ValueError("retry_budget_s must be >= 0")
        if self.max_size < 1:
            raise ValueError("max_size must be >= 1")
        object.__setattr__(self, "on_error", OnError(self.on_error))
        object.__setattr__(self, "consistency", str(self.consistency).upper())
        if self.consistency not in WRITE_CONSISTENCIES:
            raise ValueError(f"consistency {self.consistency!r} is not a write consistency "
                             f"level (one of {', '.join(WRITE_CONSISTENCIES)})")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One file to ingest (plain strings and ints: Spark ships these to its workers)."""

    path: str  # where to read it
    relative: str  # split/class/file: what its id is derived from
    label: int
    or_label: str
    or_split: str

    @property
    def id(self) -> uuid.UUID:
        return sample_uuid(self.relative)


@dataclasses.dataclass(frozen=True)
class Problem:
    what: str  # the file or folder, relative to the dataset root
    reason: str

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class Listing:
    split: str
    classes: tuple[str, ...]  # label i is classes[i]
    samples: tuple[Sample, ...]
    problems: tuple[Problem, ...]  # empty class folders, files outside class folders


@dataclasses.dataclass
class IngestSummary:
    files: int = 0  # samples considered
    written: int = 0
    existing: int = 0  # skipped because already in the metadata table
    bytes_written: int = 0
    retries: int = 0  # writes retried through back-pressure, timeouts or a restart
    seconds: float = 0.0
    skipped: list[Problem] = dataclasses.field(default_factory=list)
    failed: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.failed

    def merge(self, other: IngestSummary) -> IngestSummary:
        return IngestSummary(
            files=self.files + other.files,
            written=self.written + other.written,
            existing=self.existing + other.existing,
            bytes_written=self.bytes_written + other.bytes_written,
            retries=self.retries + other.retries,
            seconds=max(self.seconds, other.seconds),
            skipped=self.skipped + other.skipped,
            failed=self.failed + other.failed,
        )

    def format(self, max_listed: int = 20) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        mbps = self.bytes_written / self.seconds / 1e6 if self.seconds > 0 else 0.0
        lines = [
            f"ingest summary: {self.written} written ({self.bytes_written / 1e6:.1f} MB), "
            f"{self.existing} already present, {len(self.skipped)} skipped, "
            f"{len(self.failed)} failed, of {self.files} files; "
            f"{self.seconds:.1f} s, {rate:.0f} images/s, {mbps:.1f} MB/s"
            + (f"; {self.retries} writes retried" if self.retries else "")
        ]
        for title, problems in (("skipped", self.skipped), ("failed", self.failed)):
            for problem in problems[:max_listed]:
                lines.append(f"  {title}: {problem}")
            if len(problems) > max_listed:
                lines.append(f"  ... and {len(problems) - max_listed} more {title}")
        if self.failed:
            lines.append(
                "  some rows were not written: run the same command again to finish "
                "(rows already written are rewritten identically)"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Listing and checking files
# --------------------------------------------------------------------------------------------


def list_split(root: Path | str, split_subdir: str) -> Listing:
    """The samples of ``root/split_subdir``: class folders sorted by name give the labels."""
    root = Path(os.path.abspath(root))  # Spark workers read these paths from another cwd
    split_dir = root / split_subdir
    if not split_dir.is_dir():
        raise IngestError(f"{split_dir} is not a directory (check ROOT and --split-subdir)")
    split = Path(split_subdir).name
    entries = sorted(
        (e for e in os.scandir(split_dir) if not e.name.startswith(".")), key=lambda e: e.name
    )
    classes = tuple(e.name for e in entries if e.is_dir())
    if not classes:
        raise IngestError(f"{split_dir} has no class folders (expected {split_dir}/CLASS/FILE)")
    problems = [
        Problem(f"{split}/{e.name}", "not in a class folder") for e in entries if not e.is_dir()
    ]
    samples: list[Sample] = []
    for label, name in enumerate(classes):
        files = sorted(
            (e for e in os.scandir(split_dir / name) if not e.name.startswith(".")),
            key=lambda e: e.name,
        )
        if not files:
            problems.append(Problem(f"{split}/{name}", "empty class folder"))
        for entry in files:
            relative = f"{split}/{name}/{entry.name}"
            if entry.is_dir():
                problems.append(Problem(relative, "a folder inside a class folder (not read)"))
                continue
            samples.append(Sample(entry.path, relative, label, name, split))
    return Listing(split, classes, tuple(samples), tuple(problems))


def image_kind(head: bytes) -> str | None:
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if head.startswith(PNG_MAGIC):
        return "png"
    return None


def read_sample(sample: Sample, max_size: int) -> bytes:
    """The file's bytes, or ValueError naming what is wrong with it."""
    try:
        size = os.stat(sample.path).st_size
        if size > max_size:
            raise ValueError(f"{size} bytes, over the --max-size limit of {max_size}")
        with open(sample.path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ValueError(f"cannot read {sample.path}: {error.strerror or error}") from error
    if not data:
        raise ValueError("empty file")
    if len(data) > max_size:  # it grew since the stat
        raise ValueError(f"{len(data)} bytes, over the --max-size limit of {max_size}")
    if image_kind(data[:8]) is None:
        raise ValueError(f"not a JPEG or PNG file (starts with {data[:8].hex(' ')})")
    return data


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _open_writer(session: Session, config: IngestConfig) -> RowWriter:
    columns = "id, label, data"
    if config.checksum:
        try:
            checksums.ensure_column(session, config.data_table)
        except ValueError as error:
            raise IngestError(str(error)) from None
        columns += f", {checksums.CHECKSUM_COLUMN}"
    markers = ", ".join("?" * len(columns.split(", ")))
    insert_data = _prepare(
        session, f"INSERT INTO {cql_table(config.data_table)} ({columns}) VALUES ({markers})"
    )
    insert_meta = _prepare(
        session,
        f"INSERT INTO {cql_table(config.metadata_table)} (id, label, or_label, or_split) "
        "VALUES (?, ?, ?, ?)",
    )
    # Same values every time: the driver may retry these on a timeout, and so do we.
    insert_data.is_idempotent = True
    insert_meta.is_idempotent = True
    from cassandra import ConsistencyLevel

    level = ConsistencyLevel.name_to_value[config.consistency]
    insert_data.consistency_level = insert_meta.consistency_level = level
    return RowWriter(
        session, insert_data, insert_meta, concurrency=config.concurrency,
        max_bytes_in_flight=config.max_bytes_in_flight, retry_budget_s=config.retry_budget_s,
    )


def _prepare(session: Session, statement: str) -> Any:
    from cassandra import InvalidRequest

    try:
        return session.prepare(statement)
    except InvalidRequest as error:
        raise IngestError(
            f"{statement.split(' (')[0]}: {error.message if hasattr(error, 'message') else error} "
            "(create the tables first: cqlsh -f create_tables.cql, or "
            "cassandra-dali schema apply create_tables.cql)"
        ) from None


def existing_ids(session: Session, metadata_table: str) -> set[uuid.UUID]:
    return set(scan_ids(session, metadata_table))


def write_samples(
    session: Session,
    samples: Sequence[Sample],
    config: IngestConfig,
    *,
    existing: set[uuid.UUID] | None = None,
    progress: bool = False,
    desc: str = "ingest",
) -> IngestSummary:
    """Write ``samples``; bad files and failed writes are handled as ``config.on_error`` says."""
    started = time.monotonic()
    summary = IngestSummary(files=len(samples))
    writer = _open_writer(session, config)
    limit = min(config.max_size, server_row_limit(session))
    bar = _progress_bar(len(samples), desc) if progress else None
    contact = config.connection.contact_point
    try:
        for sample in samples:
            if _should_stop(writer, config):
                break
            if existing is not None and sample.id in existing:
                summary.existing += 1
                _advance(bar, writer, summary, started)
                continue
            try:
                data = read_sample(sample, config.max_size)
                if len(data) > limit:
                    raise ValueError(
                        f"{len(data)} bytes, over the largest sample the server at {contact} "
                        f"accepts ({limit} bytes: the smaller of its max_mutation_size and "
                        "native_transport_max_message_size, less room for the request); raise "
                        "both on the server (max_mutation_size through commitlog_segment_size) "
                        "to store it"
                    )
            except ValueError as error:
                problem = Problem(sample.relative, str(error))
                if config.on_error is OnError.FAIL:
                    raise IngestError(
                        f"{problem} (use --on-error skip to skip such files)"
                    ) from None
                log.warning("skipping %s", problem)
                summary.skipped.append(problem)
                _advance(bar, writer, summary, started)
                continue
            values: tuple[Any, ...] = (sample.id, sample.label, data)
            if config.checksum:
                values += (checksums.crc32c(data),)
            writer.submit(sample, sample.id, values,
                          (sample.id, sample.label, sample.or_label, sample.or_split), len(data))
            _advance(bar, writer, summary, started)
    finally:
        # Each of a sample's two writes ends within its retry budget plus a request timeout
        # (30 s) or two; the bound is a backstop against a driver that never calls back.
        drained = writer.drain(timeout_s=2 * (config.retry_budget_s + 90))
        if bar is not None:
            _advance(bar, writer, summary, started)
            bar.close()
    if not drained:
        pending, _ = writer.in_flight
        raise IngestError(
            f"{pending} writes to Cassandra at {contact} neither succeeded nor failed within "
            f"{2 * (config.retry_budget_s + 90):.0f} s; {writer.written} samples were written. "
            "Run the same command again: the ingest resumes."
        )
    summary.written = writer.written
    summary.bytes_written = writer.bytes_written
    summary.retries = writer.retries
    summary.failed = [
        Problem(s.relative, f"writing to Cassandra at {contact} failed: {f.message}")
        for s, f in writer.failed
    ]
    summary.seconds = time.monotonic() - started
    lost = [f for _, f in writer.failed if f.kind == "unreachable"]
    if lost:
        raise IngestError(
            f"writing to Cassandra at {contact} failed: {lost[0].message} -- the server is "
            f"unreachable; {summary.written} samples were written before that. Run the same "
            "command again once it is back: the ingest resumes (--skip-existing skips what is "
            "already stored)."
        )
    if summary.failed and config.on_error is OnError.FAIL:
        raise IngestError(f"{summary.failed[0]} (use --on-error skip to go on past failed writes)")
    return summary


def _should_stop(writer: RowWriter, config: IngestConfig) -> bool:
    # A server unreachable past the retry budget stops every mode (no later write could
    # succeed); any failure stops the default mode.
    return writer.unreachable or (bool(writer.failed) and config.on_error is OnError.FAIL)


def server_row_limit(session: Session) -> int:
    """The largest sample the server accepts in one row: the smaller of its largest mutation
    (``max_mutation_size``, by default half of ``commitlog_segment_size``) and its largest CQL
    message (``native_transport_max_message_size``), less room for the rest of the request.
    Settings it does not show: no limit here (the server's own error then names the file)."""
    try:
        rows = session.execute(
            "SELECT name, value FROM system_views.settings WHERE name IN "
            "('max_mutation_size', 'commitlog_segment_size', 'native_transport_max_message_size')"
        )
        settings = {row.name: row.value for row in rows}
    except Exception:  # noqa: BLE001  (an older server, or no access to virtual tables)
        return NO_LIMIT
    mutation = _setting_bytes(settings.get("max_mutation_size"))
    segment = _setting_bytes(settings.get("commitlog_segment_size"))
    if mutation is None and segment is not None:
        mutation = segment // 2
    limits = [v for v in (mutation, _setting_bytes(settings.get("native_transport_max_message_size")))
              if v is not None]
    return min(limits) - ROW_OVERHEAD if limits else NO_LIMIT


def _setting_bytes(value: str | None) -> int | None:
    """Bytes from a Cassandra 4+/5 size setting such as ``32MiB`` or ``16384KiB`` (None: unset)."""
    if not value or value == "null":
        return None
    units = {"B": 1, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}
    text = value.strip().upper()
    for unit in ("KIB", "MIB", "GIB", "B"):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * units[unit]
    return int(text) * 1024**2 if text.isdigit() else None  # plain numbers are MiB


def _progress_bar(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc=desc, dynamic_ncols=True, smoothing=0.1)


def _advance(bar: Any, writer: RowWriter, summary: IngestSummary, started: float) -> None:
    # The bar counts finished samples (written, skipped or present), so its rate and ETA are
    # the store's, not the file reader's; MB/s goes in the postfix.
    if bar is None:
        return
    done = writer.written + len(writer.failed) + len(summary.skipped) + summary.existing
    if done > bar.n:
        elapsed = max(time.monotonic() - started, 1e-9)
        bar.set_postfix_str(f"{writer.bytes_written / elapsed / 1e6:.1f} MB/s", refresh=False)
        bar.update(done - bar.n)


def ingest_split(
    root: Path | str,
    split_subdir: str,
    config: IngestConfig,
    *,
    progress: bool = False,
) -> IngestSummary:
    """The serial ingest: list, check, write, summarise (one session, concurrent writes)."""
    listing = list_split(root, split_subdir)
    handle_listing_problems(listing, config.on_error)
    log.info(
        "%s: %d files in %d classes -> %s, %s (Cassandra at %s)",
        Path(root) / split_subdir,
        len(listing.samples),
        len(listing.classes),
        config.data_table,
        config.metadata_table,
        config.connection.contact_point,
    )
    session = config.connection.connect()
    try:
        existing = existing_ids(session, config.metadata_table) if config.skip_existing else None
        if existing is not None:
            log.info(
                "%d samples are already in %s: they are skipped",
                len(existing),
                config.metadata_table,
            )
        summary = write_samples(
            session,
            listing.samples,
            config,
            existing=existing,
            progress=progress,
            desc=f"ingest {listing.split}",
        )
    finally:
        session.cluster.shutdown()
    summary.skipped = list(listing.problems) + summary.skipped
    return summary


def handle_listing_problems(listing: Listing, on_error: OnError) -> None:
    for problem in listing.problems:
        if on_error is OnError.FAIL:
            raise IngestError(f"{problem} (use --on-error skip to go on without it)")
        log.warning("skipping %s", problem)


def write_partition(samples: Iterable[Sample], config: IngestConfig) -> Iterator[IngestSummary]:
    """One Spark partition: its own session, the same writes as the serial ingest.

    Samples already stored were filtered out by the driver (``skip_existing``), once."""
    batch = list(samples)
    if not batch:
        return
    session = config.connection.connect()
    try:
        yield write_samples(session, batch, config)
    finally:
        session.cluster.shutdown()
