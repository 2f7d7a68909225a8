"""What the readers of this process are doing: rows and bytes read, read latency p50/p99, reads
in flight, retries, errors, how long the consumer waited for data, the read-ahead depth, and rows
read per node of the cluster.

Every reader (an ``fn.crs4.cassandra`` operator, listed under its ``name=``, or a
:class:`cassandra_dali.Reader`, under its table) keeps counters from its start, updated as reads
complete; :func:`readers` reads them at any time, :func:`rates` turns two snapshots into
rows/s and bytes/s, :func:`summary` says it in one line (the read loop and the trainer print
it) and :func:`prometheus_text` writes the Prometheus text exposition format (for
node_exporter's textfile collector, or an HTTP handler of your own).

``reads_by_host`` counts the rows read by the node that holds each row: its primary replica in
the token ring the reader loads when it connects (``system.local``, ``system.peers`` and the
keyspace's replication): each node's share of the reads by its part of the ring. At RF 1 that
is the node that served the read; at RF > 1 the driver sends a row to a replica at a fixed
position per I/O thread (not shuffled), so the nodes' loads have about these shares (see
docs/reader.md). The C API does not report the node that coordinated a read. Empty when the
ring could not be loaded (``token_ring`` says why, e.g. a driver older than 2.16).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from . import _native


@dataclasses.dataclass(frozen=True)
class ReaderStats:
    name: str
    table: str
    seconds: float  # since the reader started
    rows: int
    bytes: int
    reads: int
    in_flight: int
    retries: int
    errors: int
    batches: int
    consumer_waits: int
    consumer_wait_seconds: float
    prefetch_depth: int
    latency_p50_seconds: float
    latency_p99_seconds: float
    # Hedged reads (docs/reader.md): reads that outlived the hedge delay (a second try went to
    # another replica), those whose first try stayed silent a fast round trip past the hedge (an
    # upper bound of the hedges that answered first), the delay in force (0: not hedged), and the
    # driver's count of speculative executions that answered after another one had.
    hedges_sent: int = 0
    hedges_won: int = 0
    hedge_delay_seconds: float = 0.0
    driver_hedges_aborted: int = 0
    # Bad reads replaced by another sample (on_bad_sample="replace"): each time a missing, null
    # or corrupt row is met (again in every epoch), and each bad candidate read in its place.
    bad_samples: int = 0
    # Rows read per node (address), counted to each row's primary replica; see the module doc.
    reads_by_host: dict[str, int] = dataclasses.field(default_factory=dict, hash=False)
    token_ring: str = ""  # the ring as loaded ("3 hosts, 48 tokens, ..."), or why it is not

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def bytes_per_s(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


def readers(name: str | None = None) -> list[ReaderStats]:
    """The live readers of this process (those named ``name`` only, if given)."""
    stats = [_stats(d) for d in _native.reader_telemetry()]
    return [s for s in stats if name is None or s.name == name]


def of(reader: Any) -> ReaderStats:
    """The counters of a :class:`cassandra_dali.Reader`."""
    return _stats(reader.telemetry())


def _stats(counters: dict[str, Any]) -> ReaderStats:
    fields = {f.name for f in dataclasses.fields(ReaderStats)}
    return ReaderStats(**{k: v for k, v in counters.items() if k in fields})


def rates(before: ReaderStats, after: ReaderStats) -> dict[str, float]:
    """rows/s, bytes/s and consumer wait share between two snapshots of one reader."""
    elapsed = after.seconds - before.seconds
    if elapsed <= 0:
        return {"rows_per_s": 0.0, "bytes_per_s": 0.0, "consumer_wait_share": 0.0}
    return {
        "rows_per_s": (after.rows - before.rows) / elapsed,
        "bytes_per_s": (after.bytes - before.bytes) / elapsed,
        "consumer_wait_share": (after.consumer_wait_seconds - before.consumer_wait_seconds)
        / elapsed,
    }


def summary(stats: ReaderStats) -> str:
    """One line: what the read loop and the trainer print at the end of an epoch. With more
    than one node, it ends with the share of rows read by each (by primary replica)."""
    line = (
        f"{stats.name} ({stats.table}): {stats.rows:,} rows, {stats.bytes / 1e6:,.1f} MB "
        f"({stats.rows_per_s:,.0f} rows/s overall); read latency p50 "
        f"{stats.latency_p50_seconds * 1e3:.1f} ms, p99 {stats.latency_p99_seconds * 1e3:.1f} ms; "
        f"{stats.in_flight} in flight, read-ahead {stats.prefetch_depth} batches; "
        f"{stats.retries} retries, {stats.errors} errors, {stats.hedges_sent} hedged "
        f"({stats.hedges_won} won, delay {stats.hedge_delay_seconds * 1e3:g} ms), "
        f"{stats.bad_samples} bad samples replaced; the consumer waited "
        f"{stats.consumer_wait_seconds:.2f} s over {stats.consumer_waits} of {stats.batches} "
        "batches"
    )
    total = sum(stats.reads_by_host.values())
    if len(stats.reads_by_host) > 1 and total > 0:
        shares = ", ".join(
            f"{host} {count / total:.0%}" for host, count in stats.reads_by_host.items()
        )
        line += f"; reads by replica host: {shares}"
    return line


_METRICS: Sequence[tuple[str, str, str, str]] = (
    # (metric, type, help, field)
    ("cassandra_dali_rows_total", "counter", "Rows read.", "rows"),
    ("cassandra_dali_bytes_total", "counter", "Sample bytes read.", "bytes"),
    ("cassandra_dali_reads_total", "counter", "Reads completed (failed ones included).", "reads"),
    ("cassandra_dali_retries_total", "counter", "Reads issued again after a transient failure.",
     "retries"),
    ("cassandra_dali_errors_total", "counter", "Reads that failed.", "errors"),
    ("cassandra_dali_batches_total", "counter", "Batches handed to the consumer.", "batches"),
    ("cassandra_dali_consumer_wait_seconds_total", "counter",
     "Time the consumer waited for data.", "consumer_wait_seconds"),
    ("cassandra_dali_reads_in_flight", "gauge", "Reads in flight now.", "in_flight"),
    ("cassandra_dali_prefetch_depth", "gauge", "Batches read ahead (adaptive).",
     "prefetch_depth"),
    ("cassandra_dali_read_latency_p50_seconds", "gauge", "Median read latency since start.",
     "latency_p50_seconds"),
    ("cassandra_dali_read_latency_p99_seconds", "gauge", "99th percentile read latency.",
     "latency_p99_seconds"),
    ("cassandra_dali_hedges_sent_total", "counter",
     "Reads that outlived the hedge delay: a second try went to another replica.", "hedges_sent"),
    ("cassandra_dali_hedges_won_total", "counter", "Hedged reads the second try answered.",
     "hedges_won"),
    ("cassandra_dali_hedge_delay_seconds", "gauge", "Hedge delay in force (0: not hedged).",
     "hedge_delay_seconds"),
    ("cassandra_dali_driver_hedges_aborted_total", "counter",
     "The driver's speculative executions that answered after another had.",
     "driver_hedges_aborted"),
    ("cassandra_dali_bad_samples_total", "counter",
     "Samples replaced by another (on_bad_sample='replace').", "bad_samples"),
)


# Labelled by host: one sample per node of the reader's token ring.
_HOST_METRIC = ("cassandra_dali_reads_by_host_total", "counter",
                "Rows read, by the node holding them (their primary replica in the token ring).")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(stats: Iterable[ReaderStats] | None = None, **labels: str) -> str:
    """The readers' counters in the Prometheus text exposition format (0.0.4); ``labels``
    (e.g. ``rank="3"``) are added to every sample."""
    stats = list(readers() if stats is None else stats)

    def rendered(tags: dict[str, str]) -> str:
        return ",".join(f'{k}="{_label(str(v))}"' for k, v in sorted(tags.items()))

    lines = []
    for metric, kind, help_text, field in _METRICS:
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}"]
        for s in stats:
            tags = {"reader": s.name, "table": s.table, **labels}
            lines.append(f"{metric}{{{rendered(tags)}}} {getattr(s, field)}")
    metric, kind, help_text = _HOST_METRIC
    if any(s.reads_by_host for s in stats):
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}"]
        for s in stats:
            for host, count in s.reads_by_host.items():
                tags = {"reader": s.name, "table": s.table, **labels, "host": host}
                lines.append(f"{metric}{{{rendered(tags)}}} {count}")
    return "\n".join(lines) + "\n"
