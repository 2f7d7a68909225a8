#!/usr/bin/env python3
"""Distributed training from image folders: DALI's ImageNet example (fn.readers.file).

    torchrun --nproc_per_node=NUM_GPUS distrib_train_from_file.py -a resnet50 --dali_cpu \
        --b 128 --loss-scale 128.0 --workers 4 --lr=0.4 --opt-level O2 ROOT/train ROOT/val

The twin of distrib_train_from_cassandra.py: same trainer, same augmentation, only the reader
differs. See TRAINING.md for the flags, precision, CPU/GPU choice and checkpoints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cassandra_dali import training


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("train_dir", type=Path, help="training split: one folder per class")
    parser.add_argument("val_dir", type=Path, help="validation split, same class folders")
    training.add_training_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for folder in (args.train_dir, args.val_dir):
        if not folder.is_dir():
            raise SystemExit(f"{folder} is not a directory (give ROOT/train ROOT/val)")
    return training.run(
        training.options_from_args(args),
        train_source=training.FileSource(args.train_dir),
        val_source=training.FileSource(args.val_dir),
    )


if __name__ == "__main__":
    sys.exit(main())
