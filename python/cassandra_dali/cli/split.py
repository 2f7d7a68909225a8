"""``cassandra-dali data split``: training/validation rows files, or k folds, from a metadata
table (:mod:`cassandra_dali.dataset.splits`)."""

from __future__ import annotations

import argparse

from ..dataset import splits
from ._options import add_connection_arguments, connection_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metadata-table", required=True, help="keyspace.table to draw from")
    parser.add_argument("--out", required=True, help="folder for the rows files and split.json")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same files (%(default)s)")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--train-frac", type=float, default=None,
                     help="share of each stratum in train.rows, the rest in val.rows (0.8)")
    how.add_argument("--kfold", type=int, default=None, metavar="K",
                     help="K folds: fold_J_train.rows and fold_J_val.rows for J = 0..K-1")
    parser.add_argument("--stratify", default=None, metavar="COLUMN",
                        help="cut each value of this metadata column (e.g. label) exactly")
    parser.add_argument("--where", default=None, metavar="CONDITION",
                        help="CQL condition on metadata columns selecting the rows, e.g. "
                        "'label < 5' (run with ALLOW FILTERING)")
    parser.add_argument("--id-col", default="id", help="(%(default)s)")
    parser.add_argument("--label-col", default="label",
                        help="column counted per file in split.json; '' for none (%(default)s)")
    add_connection_arguments(parser)


def run(args: argparse.Namespace) -> int:
    spec = splits.SplitSpec(
        args.metadata_table, seed=args.seed, train_frac=args.train_frac, kfold=args.kfold,
        stratify=args.stratify, where=args.where, id_col=args.id_col,
        label_col=args.label_col or None,
    )
    session = connection_from_args(args).connect()
    try:
        manifest = splits.split(session, spec, args.out)
    finally:
        session.cluster.shutdown()
    for name, entry in manifest["files"].items():
        print(f"{entry['rows']:>10} rows in {args.out}/{name}")
    return 0
