"""Concurrent inserts of samples (a data row, then its metadata row) that ride through
back-pressure and server hiccups.

- **Bounded in bytes and in samples.** At most ``concurrency`` samples and ``max_bytes_in_flight``
  bytes of sample data are being written at once (a file larger than the byte budget goes alone):
  the driver's connection refuses writes ("Connection ... is overloaded") once its socket buffer
  is full, which 32 ImageNet-size files at once reach at once.
- **Retried.** Back-pressure (the client's connection busy, the server overloaded), timeouts and
  an unreachable server (a restart) are transient: the write is retried with a capped, jittered
  backoff for up to ``retry_budget_s`` per sample, then reported, saying which it was. Errors
  that no retry can fix (a mutation over the server's size limit, a missing table) are reported
  at once, for the sample they concern.
- The driver runs the callbacks on its event-loop thread: they only count, record and schedule;
  retries are issued from the caller's thread (``submit`` and ``drain``), so no thread is created
  per write.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import random
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cassandra.cluster import Session

DEFAULT_CONCURRENCY = 32
DEFAULT_MAX_BYTES_IN_FLIGHT = 64 * 1024 * 1024
DEFAULT_RETRY_BUDGET_S = 60.0
# A majority of the local data center's replicas: at RF 3 a write survives one node down, and a
# LOCAL_QUORUM read always meets a replica that has it (2 + 2 > 3). A LOCAL_ONE read may reach
# the one that missed it; the reader then re-reads that row at LOCAL_QUORUM.
DEFAULT_WRITE_CONSISTENCY = "LOCAL_QUORUM"
WRITE_CONSISTENCIES = ("ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM",
                       "EACH_QUORUM", "LOCAL_ONE")
FIRST_BACKOFF_S = 0.05
MAX_BACKOFF_S = 2.0


@dataclasses.dataclass(frozen=True)
class WriteFailure:
    """Why a sample could not be written, in words; ``kind`` is one of ``overloaded``,
    ``timeout``, ``unreachable`` (transient, given up after the retry budget) or ``rejected``
    (the server refused this write: retrying cannot help)."""

    kind: str
    message: str

    @property
    def transient(self) -> bool:
        return self.kind != "rejected"


def classify(error: BaseException) -> WriteFailure:
    """What kind of failure a driver error is, and how to say it."""
    from cassandra import OperationTimedOut, Unavailable, WriteTimeout
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionBusy
    from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage

    if isinstance(error, NoHostAvailable):
        errors = getattr(error, "errors", None) or {}
        causes = list(errors.values()) or [error]
        text = "; ".join(f"{host}: {cause}" for host, cause in errors.items()) or str(error)
        if all(isinstance(c, ConnectionBusy) for c in causes):
            return WriteFailure("overloaded", f"the client's connection is saturated ({text})")
        if all(isinstance(c, (OperationTimedOut, ConnectionBusy)) for c in causes):
            return WriteFailure("timeout", f"timed out ({text})")
        return WriteFailure("unreachable", f"no host answers ({text})")
    if isinstance(error, (OverloadedErrorMessage, IsBootstrappingErrorMessage, Unavailable)):
        return WriteFailure("overloaded", f"the server is overloaded or unavailable ({error})")
    if isinstance(error, (OperationTimedOut, WriteTimeout)):
        return WriteFailure("timeout", f"timed out ({type(error).__name__}: {error})")
    return WriteFailure("rejected", f"{type(error).__name__}: {error}")


@dataclasses.dataclass(eq=False)
class _Write:
    """One sample on its way: its rows' values and where it stands."""

    key: Any  # what the caller calls it (reported with its failure)
    sample_id: uuid.UUID
    data_values: tuple[Any, ...]
    meta_values: tuple[Any, ...]
    size: int
    stage: str = "data"  # "data", then "metadata" once the data row is stored
    first_failure: float | None = None
    attempts: int = 0


class RowWriter:
    """Writes (data row, metadata row) pairs through prepared statements, as described above.

    Each sample ends up counted in ``written``/``bytes_written`` or listed in ``failed`` (its key
    and a ``WriteFailure``); ``unreachable`` is set once a sample failed for want of a server."""

    def __init__(
        self,
        session: Session,
        insert_data: Any,
        insert_meta: Any,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT,
        retry_budget_s: float = DEFAULT_RETRY_BUDGET_S,
    ) -> None:
        self._session = session
        self._statements = {"data": insert_data, "metadata": insert_meta}
        self._concurrency = concurrency
        self._max_bytes = max_bytes_in_flight
        self._budget = retry_budget_s
        self._cond = threading.Condition()
        self._count = 0  # samples in flight (waiting for a retry included)
        self._bytes = 0
        self._due: list[tuple[float, int, _Write]] = []  # retries, by due time
        self._order = itertools.count()
        self.written = 0
        self.bytes_written = 0
        self.failed: list[tuple[Any, WriteFailure]] = []
        self.unreachable = False
        self.retries = 0

    def submit(self, key: Any, sample_id: uuid.UUID, data_values: tuple[Any, ...],
               meta_values: tuple[Any, ...], size: int) -> None:
        """Starts writing one sample once there is room (bytes and count); meanwhile issues the
        retries that are due."""
        write = _Write(key, sample_id, data_values, meta_values, size)
        with self._cond:
            while not self._has_room(size):
                self._wait_and_retry()
            self._count += 1
            self._bytes += size
        self._execute(write)

    def drain(self, timeout_s: float | None = None) -> bool:
        """Waits until every submitted sample is stored or failed (retries included); False if
        ``timeout_s`` ran out first (``in_flight`` then says how many are unaccounted for)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._count:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                self._wait_and_retry(deadline)
        return True

    @property
    def in_flight(self) -> tuple[int, int]:
        with self._cond:
            return self._count, self._bytes

    # -- internals ------------------------------------------------------------------------------

    def _has_room(self, size: int) -> bool:
        if self._count >= self._concurrency:
            return False
        return self._count == 0 or self._bytes + size <= self._max_bytes

    def _wait_and_retry(self, deadline: float | None = None) -> None:
        """Under the lock: issues one due retry, or waits for a completion or the next due time."""
        now = time.monotonic()
        if self._due and self._due[0][0] <= now:
            _, _, write = heapq.heappop(self._due)
            self._cond.release()
            try:
                self._execute(write)
            finally:
                self._cond.acquire()
            return
        wait = self._due[0][0] - now if self._due else 1.0
        if deadline is not None:
            wait = min(wait, max(deadline - now, 0.0))
        self._cond.wait(timeout=max(wait, 0.001))

    def _execute(self, write: _Write) -> None:
        values = write.data_values if write.stage == "data" else write.meta_values
        try:
            future = self._session.execute_async(self._statements[write.stage], values)
        except Exception as error:  # e.g. ConnectionBusy raised synchronously
            self._failed(error, write)
            return
        future.add_callbacks(self._succeeded, self._failed, callback_args=(write,),
                             errback_args=(write,))

    def _succeeded(self, _rows: Any, write: _Write) -> None:
        if write.stage == "data":
            write.stage, write.first_failure, write.attempts = "metadata", None, 0
            self._execute(write)  # a metadata row only ever follows its stored data row
            return
        with self._cond:
            self.written += 1
            self.bytes_written += write.size
            self._finish(write)

    def _failed(self, error: BaseException, write: _Write) -> None:
        try:
            failure = classify(error)
        except Exception as unexpected:  # noqa: BLE001  (never leave a write unaccounted for)
            failure = WriteFailure("rejected", f"{type(error).__name__}: {error} ({unexpected})")
        now = time.monotonic()
        with self._cond:
            if write.first_failure is None:
                write.first_failure = now
            spent = now - write.first_failure
            backoff = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** min(write.attempts, 10))
            backoff *= random.uniform(0.5, 1.0)  # noqa: S311  (jitter, not security)
            if failure.transient and spent + backoff <= self._budget:
                write.attempts += 1
                self.retries += 1
                heapq.heappush(self._due, (now + backoff, next(self._order), write))
                self._cond.notify_all()
                return
            if failure.transient:
                failure = dataclasses.replace(
                    failure,
                    message=f"{failure.message}; still failing after {write.attempts} retries "
                    f"over {spent:.1f} s (retry budget {self._budget:g} s)",
                )
            self.failed.append((write.key, failure))
            self.unreachable = self.unreachable or failure.kind == "unreachable"
            self._finish(write)

    def _finish(self, write: _Write) -> None:
        self._count -= 1
        self._bytes -= write.size
        self._cond.notify_all()
