#!/usr/bin/env python3
"""Distributed training from Cassandra: DALI's ImageNet example reading with fn.crs4.cassandra.

    torchrun --nproc_per_node=NUM_GPUS distrib_train_from_cassandra.py -a resnet50 --dali_cpu \
        --b 128 --loss-scale 128.0 --workers 4 --lr=0.4 --opt-level O2 \
        --train-data-table imagenette.data_train --train-rows-fn train.rows \
        --val-data-table imagenette.data_val --val-rows-fn val.rows

The rows files list the samples' UUIDs (cache_uuids.py writes them). The server is given by
--host/--port or CASSANDRA_HOST/CASSANDRA_PORT. The twin of distrib_train_from_file.py: same
trainer, same augmentation, only the reader differs. See TRAINING.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cassandra_dali import training
from cassandra_dali.cli._options import add_connection_arguments, connection_from_args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    data = parser.add_argument_group("data in Cassandra")
    data.add_argument(
        "--train-data-table",
        default="imagenette.data_train",
        help="training samples, keyspace.table (default %(default)s)",
    )
    data.add_argument(
        "--train-rows-fn",
        type=Path,
        default=Path("train.rows"),
        help="UUIDs of the training samples, one per line (default %(default)s)",
    )
    data.add_argument(
        "--val-data-table",
        default="imagenette.data_val",
        help="validation samples, keyspace.table (default %(default)s)",
    )
    data.add_argument(
        "--val-rows-fn",
        type=Path,
        default=Path("val.rows"),
        help="UUIDs of the validation samples (default %(default)s)",
    )
    # Unset: not passed, so fn.crs4.cassandra's own defaults apply.
    data.add_argument(
        "--io-threads",
        type=int,
        default=None,
        help="driver I/O threads per reader (default: the reader's)",
    )
    data.add_argument(
        "--prefetch-buffers",
        type=int,
        default=None,
        help="batches each reader fetches ahead at least (default: the reader's)",
    )
    add_connection_arguments(parser)
    training.add_training_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for rows in (args.train_rows_fn, args.val_rows_fn):
        if not rows.is_file():
            raise SystemExit(f"no rows file {rows} (write it with cache_uuids.py)")
    connection = connection_from_args(args)

    def source(table: str, rows: Path) -> training.CassandraSource:
        return training.CassandraSource(
            table, rows_file=rows, connection=connection,
            options={"io_threads": args.io_threads, "prefetch_buffers": args.prefetch_buffers},
        )

    return training.run(
        training.options_from_args(args),
        train_source=source(args.train_data_table, args.train_rows_fn),
        val_source=source(args.val_data_table, args.val_rows_fn),
    )


if __name__ == "__main__":
    sys.exit(main())
