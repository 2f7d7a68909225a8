"""Read a dataset with DALI as fast as it comes and report the throughput (``loop_read.py``).

Two readers over the same images: ``cassandra`` (``fn.crs4.cassandra`` over a rows file) and
``file`` (DALI's ``fn.readers.file`` over the class folders), so the two can be compared on one
machine. The loop runs the pipeline for a whole number of batches per epoch (every shard runs
the same number, padded), sums the bytes of the encoded data it got, and prints images/s and
MB/s per epoch and over all epochs (± the per-epoch std); when there are several, epoch 0 is
left out of the mean as warm-up (connections, caches, thread start).

Sharding follows the variables torchrun sets: ``RANK`` and ``WORLD_SIZE`` give the shard,
``LOCAL_RANK`` the GPU with ``--use-gpu``. Without ``--use-gpu`` the pipeline has no device
(``device_id=None``) and runs on a machine without a GPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .. import telemetry
from ..client import Connection, qualified_table
from ..errors import UserError
from ..gpus import GpuError, dali_gpu_count, device_index
from ..sharding import Ranks, batches_per_epoch
from ..sources import READER_NAME, CassandraSource, FileSource

READERS = ("cassandra", "file")


class LoopError(UserError, RuntimeError):
    """A problem the user can fix (no GPU, missing rows file, a server down...)."""


def reader_error(error: BaseException) -> LoopError | None:
    """The reader's own error inside a DALI pipeline error (which wraps it in the pipeline's
    traceback), as one LoopError; None for errors that are not the reader's."""
    text = str(error)
    marker = "[cassandra-dali] "
    if marker not in text:
        return None
    line = text[text.index(marker) + len(marker):].splitlines()[0]
    return LoopError(f"fn.crs4.cassandra: {line}")


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    reader: str = "cassandra"
    data_table: str = ""
    rows_fn: str = ""
    file_root: str = ""
    connection: Connection = dataclasses.field(default_factory=Connection)
    batch_size: int = 128
    epochs: int = 3
    use_gpu: bool = False
    decode: bool = False
    # None: not passed, fn.crs4.cassandra's own defaults apply (the file reader then takes
    # its shuffle_seed too; the pipeline's own seed is left to DALI: nothing here is random).
    seed: int | None = None
    num_threads: int = 2
    io_threads: int | None = None
    prefetch_buffers: int | None = None
    ranks: Ranks = dataclasses.field(default_factory=Ranks)
    record: str = ""  # write "sha256 label" of every sample of epoch 0 here

    def check(self) -> None:
        if self.reader not in READERS:
            raise LoopError(f"--reader must be one of {', '.join(READERS)}, not {self.reader!r}")
        if self.batch_size < 1 or self.epochs < 1:
            raise LoopError("--bs and --epochs must be >= 1")
        if self.reader == "cassandra":
            if not self.data_table or not self.rows_fn:
                raise LoopError("--reader cassandra needs --data-table and --rows-fn")
            try:
                qualified_table(self.data_table)
            except ValueError as error:
                raise LoopError(str(error)) from None
            if not Path(self.rows_fn).is_file():
                raise LoopError(f"rows file {self.rows_fn} not found (make it with cache_uuids.py)")
        elif not self.file_root.startswith("s3://") and not Path(self.file_root).is_dir():
            # (s3:// roots are DALI's to list, with the AWS_* variables of the environment)
            raise LoopError(f"--file-root {self.file_root!r} is not a directory")


class Rate:
    """Images and bytes read over some seconds (an epoch, or a reader's measured rounds)."""

    images: int
    bytes: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6


@dataclasses.dataclass(frozen=True)
class EpochStat(Rate):
    epoch: int
    images: int
    bytes: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class LoopResult:
    reader: str
    batch_size: int
    batches_per_epoch: int
    ranks: Ranks
    epochs: list[EpochStat]
    reader_stats: telemetry.ReaderStats | None = None  # the Cassandra reader's counters

    @property
    def measured(self) -> list[EpochStat]:
        """The epochs in the mean: all but the warm-up epoch 0 when there are several."""
        return self.epochs[1:] if len(self.epochs) > 1 else self.epochs

    def mean_std(self, attribute: str) -> tuple[float, float]:
        """``images_per_s`` or ``mb_per_s`` over the measured epochs: all they read over all
        the time they took (not a mean of per-epoch rates, which short epochs, read ahead by
        the reader, would inflate), and the standard deviation of the per-epoch rates."""
        measured = self.measured
        seconds = sum(e.seconds for e in measured)
        total = (sum(e.images for e in measured) if attribute == "images_per_s"
                 else sum(e.bytes for e in measured) / 1e6)
        values = [getattr(e, attribute) for e in measured]
        return total / seconds, (statistics.stdev(values) if len(values) > 1 else 0.0)

    def which_epochs(self) -> str:
        count = len(self.epochs)
        if count > 2:
            return f"epochs 1..{count - 1}, epoch 0 left out as warm-up"
        if count == 2:
            return "epoch 1, epoch 0 left out as warm-up"
        return "the only epoch, warm-up included"

    def to_json(self) -> dict[str, Any]:
        ips, ips_std = self.mean_std("images_per_s")
        mbs, mbs_std = self.mean_std("mb_per_s")
        return {
            "reader": self.reader,
            "batch_size": self.batch_size,
            "batches_per_epoch": self.batches_per_epoch,
            **dataclasses.asdict(self.ranks),
            "epochs": [
                dict(dataclasses.asdict(e), images_per_s=e.images_per_s, mb_per_s=e.mb_per_s)
                for e in self.epochs
            ],
            "images_per_s": ips,
            "images_per_s_std": ips_std,
            "mb_per_s": mbs,
            "mb_per_s_std": mbs_std,
            "warmup_excluded": len(self.epochs) > 1,
            "reader_stats": (dataclasses.asdict(self.reader_stats)
                             if self.reader_stats is not None else None),
        }


def check_gpu(local_rank: int) -> int:
    """The GPU this rank reads onto; fails early, in words, where a GPU pipeline would fail late
    in CUDA jargon."""
    count, detail = dali_gpu_count()
    if count == 0:
        raise LoopError(
            f"--use-gpu needs an NVIDIA GPU with its driver, and none was found on this machine"
            f"{f' ({detail})' if detail else ''}: run without --use-gpu to read on the CPU"
        )
    try:
        return device_index(local_rank, count)
    except GpuError as error:
        raise LoopError(str(error)) from None


def source(config: LoopConfig) -> CassandraSource | FileSource:
    if config.reader == "cassandra":
        return CassandraSource(
            config.data_table, rows_file=config.rows_fn, connection=config.connection,
            options={"prefetch_buffers": config.prefetch_buffers, "io_threads": config.io_threads,
                     "label_type": "int", "loop_forever": True},
        )
    return FileSource(config.file_root, global_shuffle=True)


def build_pipeline(config: LoopConfig, device_id: int | None = None) -> Any:
    """The read loop's pipeline on ``device_id`` (None: CPU only; ``--use-gpu`` needs one)."""
    import nvidia.dali.fn as fn
    from nvidia.dali import pipeline_def

    ranks = config.ranks
    if config.use_gpu and device_id is None:
        raise LoopError("a --use-gpu pipeline needs a device_id")
    if not config.use_gpu:
        device_id = None
    reader = source(config)

    @pipeline_def(
        batch_size=config.batch_size,
        num_threads=config.num_threads,
        device_id=device_id,  # type: ignore[arg-type]  # None: DALI's CPU-only pipeline
        seed=config.seed,
        prefetch_queue_depth=2,
    )
    def pipe() -> Any:
        data, labels = reader.read(shard_id=ranks.rank, num_shards=ranks.world_size,
                                   seed=config.seed)
        if config.decode:
            # The mixed decoder takes the encoded bytes from the CPU node: it does its own
            # upload (and part of the Huffman decoding on the host).
            images = fn.decoders.image(data, device="mixed" if config.use_gpu else "cpu")
            return data, labels, images
        if config.use_gpu:
            data = data.gpu()
        return data, labels

    return pipe()


def _sample_bytes(data: Any) -> int:
    # Shapes are known on the host for CPU and GPU outputs alike: no copy is needed to count.
    return int(sum(shape[0] for shape in data.shape()))


class Loop:
    """One built pipeline that runs whole epochs on demand (benchmarks interleave several)."""

    def __init__(self, config: LoopConfig) -> None:
        config.check()
        device_id = check_gpu(config.ranks.local_rank) if config.use_gpu else None
        self.config = config
        self.device_id = device_id
        self.pipe = build_pipeline(config, device_id)
        self._guarded(self.pipe.build)
        self.batches = batches_per_epoch(self.pipe.reader_meta(READER_NAME), config.batch_size)

    def run_epoch(self, epoch: int, record: TextIO | None = None) -> EpochStat:
        total_bytes = 0
        started = time.perf_counter()
        for _ in range(self.batches):
            outputs = self._guarded(self.pipe.run)
            total_bytes += _sample_bytes(outputs[0])
            if record is not None:
                _record(record, outputs[0], outputs[1])
        elapsed = time.perf_counter() - started
        return EpochStat(epoch, self.batches * self.config.batch_size, total_bytes, elapsed)

    @staticmethod
    def _guarded(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except RuntimeError as error:
            ours = reader_error(error)
            if ours is None:
                raise
            raise ours from None

    def close(self) -> None:
        # Stops the reader's threads and connections now rather than at garbage collection.
        del self.pipe


def run(config: LoopConfig, report: Callable[[str], None] = print) -> LoopResult:
    loop = Loop(config)
    ranks = config.ranks
    prefix = ranks.prefix
    device = f"GPU {loop.device_id}" if loop.device_id is not None else "CPU"
    report(
        f"{prefix}{config.reader} reader: batch size {config.batch_size}, {loop.batches} "
        f"batches per epoch, {config.epochs} epochs, {device}"
    )
    record = open(per_rank_path(config.record, ranks), "w") if config.record else None
    stats: list[EpochStat] = []
    counters: list[telemetry.ReaderStats] = []
    try:
        for epoch in range(config.epochs):
            stat = loop.run_epoch(epoch, record if epoch == 0 else None)
            stats.append(stat)
            warm = " (warm-up)" if epoch == 0 and config.epochs > 1 else ""
            report(
                f"{prefix}epoch {epoch}: {stat.images} images, {stat.bytes / 1e6:.1f} MB in "
                f"{stat.seconds:.2f} s: {stat.images_per_s:.0f} images/s, "
                f"{stat.mb_per_s:.1f} MB/s{warm}"
            )
        table = ".".join(qualified_table(config.data_table)) if config.data_table else ""
        counters = [s for s in telemetry.readers(READER_NAME) if s.table == table]
    finally:
        if record is not None:
            record.close()
        loop.close()
    for reader in counters[-1:]:  # this loop's reader: the last one started under its name
        report(f"{prefix}{telemetry.summary(reader)}")
    result = LoopResult(config.reader, config.batch_size, loop.batches, ranks, stats,
                        counters[-1] if counters else None)
    ips, ips_std = result.mean_std("images_per_s")
    mbs, mbs_std = result.mean_std("mb_per_s")
    report(
        f"{prefix}{config.reader}: {ips:.0f} ± {ips_std:.0f} images/s, "
        f"{mbs:.1f} ± {mbs_std:.1f} MB/s (over {result.which_epochs()}; ± per-epoch std)"
    )
    return result


def per_rank_path(path: str, ranks: Ranks) -> str:
    """``path`` with ``{rank}`` filled in; with several ranks and no ``{rank}``, ``path.RANK``."""
    if "{rank}" in path:
        return path.replace("{rank}", str(ranks.rank))
    return f"{path}.{ranks.rank}" if ranks.world_size > 1 else path


def _record(handle: Any, data: Any, labels: Any) -> None:
    if hasattr(data, "as_cpu"):
        data = data.as_cpu()
    for i in range(len(data)):
        digest = hashlib.sha256(bytes(memoryview(data.at(i)))).hexdigest()
        handle.write(f"{digest} {int(labels.at(i).reshape(-1)[0])}\n")
