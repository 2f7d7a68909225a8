"""``cassandra-dali data read`` (``loop_read.py``): the read loop's flags
(:mod:`cassandra_dali.benchmark.readloop`), sharded by torchrun's variables."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import telemetry
from ..benchmark.readloop import READERS, LoopConfig, LoopError, per_rank_path, run
from ..sharding import Ranks
from ._options import add_connection_arguments, connection_from_args


def _ranks() -> Ranks:
    try:
        return Ranks.from_env()
    except ValueError as error:
        raise LoopError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reader",
        choices=READERS,
        default="cassandra",
        help="fn.crs4.cassandra or DALI's fn.readers.file (%(default)s)",
    )
    parser.add_argument("--data-table", default="", help="keyspace.table (cassandra reader)")
    parser.add_argument(
        "--rows-fn", default="", help="rows file from cache_uuids.py (cassandra reader)"
    )
    parser.add_argument("--file-root", default="", help="ROOT/train: class folders (file reader)")
    parser.add_argument("--bs", type=int, default=128, help="batch size per rank (%(default)s)")
    parser.add_argument(
        "--epochs",
        type=int,
        default=3,
        help="epochs; with more than one, epoch 0 is warm-up (%(default)s)",
    )
    parser.add_argument(
        "--use-gpu",
        action="store_true",
        help="GPU pipeline on device LOCAL_RANK: data copied to the GPU",
    )
    parser.add_argument(
        "--decode",
        action="store_true",
        help="also decode the images (mixed decoder with --use-gpu)",
    )
    # Unset: not passed, so fn.crs4.cassandra's own defaults apply (docs/reader.md lists them).
    parser.add_argument("--seed", type=int, default=None,
                        help="shuffling seed (default: the reader's shuffle_seed)")
    parser.add_argument("--num-threads", type=int, default=2, help="DALI CPU threads (%(default)s)")
    parser.add_argument("--io-threads", type=int, default=None,
                        help="driver I/O threads (default: the reader's)")
    parser.add_argument(
        "--prefetch-buffers",
        type=int,
        default=None,
        help="batches fn.crs4.cassandra reads ahead at least; the depth adapts from there "
        "(default: the reader's)",
    )
    parser.add_argument(
        "--record",
        default="",
        metavar="PATH",
        help="write 'sha256 label' of each sample of epoch 0 (to check sharding); "
        "PATH.RANK, or {rank} in PATH, with several ranks",
    )
    parser.add_argument(
        "--metrics-file",
        default="",
        metavar="PATH",
        help="write the reader's counters at the end in the Prometheus text format (per rank, "
        "as --record), e.g. for node_exporter's textfile collector",
    )
    parser.add_argument(
        "--json",
        default="",
        metavar="PATH",
        help="also write the figures as JSON (per rank, as --record)",
    )
    add_connection_arguments(parser)


def config_from_args(args: argparse.Namespace, ranks: Ranks | None = None) -> LoopConfig:
    return LoopConfig(
        reader=args.reader,
        data_table=args.data_table,
        rows_fn=args.rows_fn,
        file_root=args.file_root,
        connection=connection_from_args(args),
        batch_size=args.bs,
        epochs=args.epochs,
        use_gpu=args.use_gpu,
        decode=args.decode,
        seed=args.seed,
        num_threads=args.num_threads,
        io_threads=args.io_threads,
        prefetch_buffers=args.prefetch_buffers,
        ranks=ranks or _ranks(),
        record=args.record,
    )


def run_from_args(args: argparse.Namespace) -> int:
    result = run(config_from_args(args))
    if args.metrics_file and result.reader_stats is not None:
        Path(per_rank_path(args.metrics_file, result.ranks)).write_text(
            telemetry.prometheus_text([result.reader_stats], rank=str(result.ranks.rank)))
    if args.json:
        text = json.dumps(result.to_json(), indent=2) + "\n"
        Path(per_rank_path(args.json, result.ranks)).write_text(text)
    sys.stdout.flush()
    return 0

