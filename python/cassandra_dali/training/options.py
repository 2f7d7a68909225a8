"""The command line shared by the training scripts, kept compatible with DALI's ImageNet
example (``-a resnet50 --dali_cpu --b 128 --loss-scale 128.0 --workers 4 --lr=0.4
--opt-level O2``); each script adds only the flags that say where its data is."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from . import precision, schedule


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    arch: str = "resnet50"
    num_classes: int = 1000
    epochs: int = 90
    start_epoch: int = 0
    batch_size: int = 256
    workers: int = 4
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: int = schedule.WARMUP_EPOCHS
    lr_milestones: tuple[int, ...] = schedule.MILESTONES
    print_freq: int = 10
    resume: Path | None = None
    evaluate: bool = False
    checkpoint_dir: Path | None = None  # None: a new run directory (checkpoint.directory)
    dali_cpu: bool = False
    opt_level: str = "O0"
    loss_scale: str | None = None
    channels_last: bool = False
    crop_size: int = 224
    val_size: int = 256
    max_iters: int | None = None
    seed: int = 0
    deterministic: bool = False
    log_json: Path | None = None
    save_every: int = 0  # also checkpoint every N steps within an epoch (0: at epoch ends only)
    stop_after: int | None = None  # checkpoint and stop after N steps of this run

    def __post_init__(self) -> None:
        positive = ("num_classes", "epochs", "batch_size", "workers", "print_freq", "crop_size",
                    "val_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if self.max_iters is not None and self.max_iters < 1:
            raise ValueError("--max-iters must be >= 1")
        if self.save_every < 0:
            raise ValueError("--save-every must be >= 0")
        if self.stop_after is not None and self.stop_after < 1:
            raise ValueError("--stop-after must be >= 1")
        if self.val_size < self.crop_size:
            raise ValueError("--val-size (shorter side before the centre crop) must be >= --crop-size")
        precision.Precision.create(self.opt_level, self.loss_scale, "cpu")  # checks both flags


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainOptions()
    g = parser.add_argument_group("training (as DALI's ImageNet example)")
    g.add_argument("-a", "--arch", default=d.arch, metavar="ARCH",
                   help="torchvision.models architecture, e.g. resnet50, resnet18, "
                        "mobilenet_v3_small (default %(default)s)")
    g.add_argument("--num-classes", type=int, default=d.num_classes,
                   help="classifier outputs; labels must be below it (default %(default)s, "
                        "ImageNet's; Imagenette has 10)")
    g.add_argument("-j", "--workers", type=int, default=d.workers,
                   help="DALI CPU threads per process (default %(default)s)")
    g.add_argument("--epochs", type=int, default=d.epochs, help="total epochs (default %(default)s)")
    g.add_argument("--start-epoch", type=int, default=d.start_epoch,
                   help="first epoch number (set by --resume; default %(default)s)")
    # "--b" spelled out: the reference's command lines use it, and an abbreviation would stop
    # working as soon as another --b... flag exists.
    g.add_argument("-b", "--b", "--batch-size", dest="batch_size", type=int, default=d.batch_size,
                   help="batch size per process (default %(default)s)")
    g.add_argument("--lr", "--learning-rate", dest="lr", type=float, default=d.lr,
                   help="learning rate for a global batch of 256, scaled by batch*world/256 "
                        "(default %(default)s)")
    g.add_argument("--momentum", type=float, default=d.momentum, help="SGD momentum (%(default)s)")
    g.add_argument("--wd", "--weight-decay", dest="weight_decay", type=float,
                   default=d.weight_decay, help="weight decay (default %(default)s)")
    g.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs,
                   help="linear warm-up epochs (default %(default)s)")
    g.add_argument("--lr-milestones", type=int, nargs="*", default=list(d.lr_milestones),
                   help="epochs at which the rate is divided by 10 (default 30 60 80)")
    g.add_argument("-p", "--print-freq", type=int, default=d.print_freq,
                   help="print every N iterations (default %(default)s)")
    g.add_argument("--resume", type=Path, default=None, metavar="PATH",
                   help="checkpoint file (or directory holding checkpoint.pth.tar) to continue from")
    g.add_argument("-e", "--evaluate", action="store_true", help="only validate (with --resume)")
    g.add_argument("--checkpoint-dir", type=Path, default=d.checkpoint_dir,
                   help="where rank 0 writes checkpoint.pth.tar and model_best.pth.tar after "
                        "every epoch (default: a new run directory, "
                        "~/.cache/cassandra-dali/runs/ARCH-DATE-TIME-PID, named in the log)")
    g.add_argument("--save-every", type=int, default=d.save_every, metavar="N",
                   help="also checkpoint every N steps within an epoch, so a preempted job "
                        "loses at most N steps (default: at epoch ends only). SIGTERM "
                        "checkpoints at the next step and stops")
    g.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="checkpoint and stop after N steps of this run (a time-boxed allocation)")
    g.add_argument("--dali_cpu", "--dali-cpu", dest="dali_cpu", action="store_true",
                   help="decode and augment on the CPU (implied without a GPU)")
    g.add_argument("--opt-level", default=d.opt_level, choices=precision.OPT_LEVELS,
                   help=precision.HELP_OPT_LEVEL)
    g.add_argument("--loss-scale", default=None, metavar="SCALE|dynamic",
                   help=precision.HELP_LOSS_SCALE)
    g.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    g.add_argument("--crop-size", type=int, default=d.crop_size,
                   help="training crop and validation centre crop (default %(default)s)")
    g.add_argument("--val-size", type=int, default=d.val_size,
                   help="validation: shorter side before the centre crop (default %(default)s)")
    g.add_argument("--max-iters", type=int, default=None, metavar="N",
                   help="short runs: at most N iterations per epoch (training and validation)")
    g.add_argument("--seed", type=int, default=d.seed,
                   help="seeds the model, the sample order and the augmentations (default %(default)s)")
    g.add_argument("--deterministic", action="store_true",
                   help="deterministic cuDNN algorithms (slower; no effect on CPU)")
    g.add_argument("--log-json", type=Path, default=None, metavar="FILE",
                   help="rank 0 appends JSON lines: per-iteration loss and lr, per-epoch "
                        "throughput and validation, checkpoints")
    # torch.distributed.launch passes --local_rank; torchrun sets LOCAL_RANK instead.
    g.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    if args.local_rank is not None and "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)
    return TrainOptions(
        arch=args.arch, num_classes=args.num_classes, epochs=args.epochs,
        start_epoch=args.start_epoch, batch_size=args.batch_size, workers=args.workers,
        lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs, lr_milestones=tuple(args.lr_milestones),
        print_freq=args.print_freq, resume=args.resume, evaluate=args.evaluate,
        checkpoint_dir=args.checkpoint_dir, dali_cpu=args.dali_cpu, opt_level=args.opt_level,
        loss_scale=args.loss_scale, channels_last=args.channels_last, crop_size=args.crop_size,
        val_size=args.val_size, max_iters=args.max_iters, seed=args.seed,
        deterministic=args.deterministic, log_json=args.log_json, save_every=args.save_every,
        stop_after=args.stop_after,
    )
