"""The training loop shared by the file and Cassandra scripts (DALI's ImageNet example, on
torch.amp and DDP): they differ only in the ``Source`` their pipelines read from."""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
import sys
import time
from typing import Any

import nvidia.dali
import torch
import torchvision
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .. import checkpoints, telemetry
from ..gpus import GpuError
from . import checkpoint, distributed, resume, schedule
from .data import Loader, PipelineOptions, Source, training_loader, validation_loader
from .distributed import DistContext
from .metrics import JsonLog, correct_topk
from .options import TrainOptions
from .precision import Precision
from .resume import DataStart, augment_seed, order_seed

log = logging.getLogger(__name__)


def build_model(arch: str, num_classes: int) -> nn.Module:
    """A freshly initialised torchvision classifier (no pretrained weights: nothing is
    downloaded)."""
    names = torchvision.models.list_models(module=torchvision.models)
    if arch not in names:
        raise ValueError(f"unknown architecture {arch!r}; torchvision.models has: {', '.join(names)}")
    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)


@dataclasses.dataclass
class EpochResult:
    losses: list[float]  # per iteration, averaged over ranks
    images: int  # over all ranks
    seconds: float
    data_wait_s: float  # rank 0's time waiting for batches
    first_step: int = 0  # of the epoch (> 0: resumed mid-epoch)
    stopped: bool = False  # stopped mid-epoch (SIGTERM, --stop-after), after a checkpoint

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


@dataclasses.dataclass
class ValResult:
    loss: float
    top1: float
    top5: float
    samples: int


class Trainer:
    def __init__(self, opts: TrainOptions, ctx: DistContext, train_source: Source,
                 val_source: Source) -> None:
        self.opts = opts
        self.ctx = ctx
        self.device = ctx.device
        self.precision = Precision.create(opts.opt_level, opts.loss_scale, ctx.device.type)
        self.json = JsonLog(opts.log_json, enabled=ctx.is_main)
        torch.manual_seed(opts.seed)  # same initial weights everywhere (DDP broadcasts anyway)
        if ctx.cuda:
            torch.backends.cudnn.benchmark = not opts.deterministic
            torch.backends.cudnn.deterministic = opts.deterministic

        model = build_model(opts.arch, opts.num_classes).to(self.device)
        self.memory_format = torch.channels_last if opts.channels_last else torch.contiguous_format
        model = model.to(memory_format=self.memory_format)
        self.base_lr = schedule.scaled_lr(opts.lr, opts.batch_size, ctx.world_size)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=self.base_lr,
                                         momentum=opts.momentum, weight_decay=opts.weight_decay)
        self.scaler = self.precision.grad_scaler()
        self.criterion = nn.CrossEntropyLoss()
        self.start_epoch = opts.start_epoch
        self.best_top1 = 0.0
        self.resumed_mid_epoch = False
        self.train_source_kind = type(train_source).__name__
        self.checkpoint_dir = checkpoint.directory(opts.checkpoint_dir, opts.arch)
        self.data_start = DataStart(order_seed(opts.seed, self.start_epoch),
                                    augment_seed(opts.seed, self.start_epoch, ctx.rank))
        self.steps_run = 0  # optimizer steps of this process, for --stop-after
        self._stop_signal: str | None = None  # set by SIGTERM: checkpoint and stop
        if opts.resume is not None:
            self._resume(model)
            opts = self.opts  # the global batch rule may have set another per-rank batch
            self.base_lr = schedule.scaled_lr(opts.lr, opts.batch_size, ctx.world_size)
        self.model = model  # unwrapped: what is saved and what validates
        self.ddp: nn.Module = model
        if ctx.backend is not None:
            self.ddp = DistributedDataParallel(
                model, device_ids=[ctx.device.index] if ctx.cuda else None
            )

        # Without a GPU there is no "mixed" decoder and no CUDA context to give DALI.
        dali_cpu = opts.dali_cpu or not ctx.cuda
        popts = PipelineOptions(
            batch_size=opts.batch_size, num_threads=opts.workers, crop=opts.crop_size,
            val_size=opts.val_size, dali_cpu=dali_cpu,
            device_id=ctx.device.index if ctx.cuda else None,
        )
        self.dali_cpu = dali_cpu
        self.train_loader: Loader | None = None
        if not opts.evaluate:
            start = self.data_start
            self.train_loader = training_loader(
                train_source, popts, shard_id=ctx.rank, num_shards=ctx.world_size,
                order_seed=start.order_seed, augment_seed=start.augment_seed,
                max_iters=opts.max_iters, device=self.device, checkpoint=start.checkpoint,
            )
            self.full_steps = self.train_loader.full_epoch_length()
            low, high = ctx.all_reduce_min_max(len(self.train_loader))
            if low != high or low == 0:
                raise RuntimeError(
                    f"ranks would run {low}..{high} iterations per epoch: DDP needs the same "
                    "number (>= 1) on every rank; use a smaller batch or more samples"
                )
        self.val_loader = validation_loader(
            val_source, popts, shard_id=ctx.rank, num_shards=ctx.world_size,
            max_iters=opts.max_iters, device=self.device,
        )
        self._describe(train_source, val_source)

    # -- set-up ----------------------------------------------------------------------------

    def _resume(self, model: nn.Module) -> None:
        assert self.opts.resume is not None
        state = checkpoint.load(self.opts.resume, self.device)
        checkpoint.check_compatible(state, self.opts.arch, self.opts.num_classes, self.opts.resume)
        model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") and self.precision.uses_scaler:
            self.scaler.load_state_dict(state["scaler"])
        self.start_epoch = int(state["epoch"])
        self.resumed_mid_epoch = int(state.get("step") or 0) > 0
        self.best_top1 = float(state.get("best_top1", 0.0))
        self._keep_global_batch(state.get("data"))
        momentum = [s["momentum_buffer"] for s in self.optimizer.state.values()
                    if s.get("momentum_buffer") is not None]
        data = "unused" if self.opts.evaluate else self._resume_data(state.get("data"))
        log.info("resumed from %s: epoch %d%s, best top-1 %.2f %%, %d momentum buffers, "
                 "training data %s", self.opts.resume, self.start_epoch,
                 f" from step {state['step']}" if self.resumed_mid_epoch else "",
                 self.best_top1, len(momentum), data)
        self.json.write(
            "resume", path=str(self.opts.resume), epoch=self.start_epoch,
            step=int(state.get("step") or 0), best_top1=self.best_top1,
            momentum_buffers=len(momentum),
            momentum_norm=float(sum(m.float().norm() ** 2 for m in momentum) ** 0.5) if momentum else 0.0,
            scaler_restored=bool(state.get("scaler")) and self.precision.uses_scaler,
            data=data, data_reseeded_because=self.data_start.reseeded_because,
            batch_size=self.opts.batch_size,
        )

    def _keep_global_batch(self, saved: dict[str, Any] | None) -> None:
        batch, note = resume.batch_for(saved, self.ctx.world_size, self.opts.batch_size)
        if note and self.ctx.is_main:
            (log.info if batch != self.opts.batch_size else log.warning)("%s", note)
        self.opts = dataclasses.replace(self.opts, batch_size=batch)

    def _data_depends_on(self) -> dict[str, Any]:
        return {"world_size": self.ctx.world_size, "batch_size": self.opts.batch_size,
                "max_iters": self.opts.max_iters, "source": self.train_source_kind,
                "seed": self.opts.seed, "dali": nvidia.dali.__version__}

    def _resume_data(self, saved: dict[str, Any] | None) -> str:
        """How this rank's training data continues (resume.data_start): "restored",
        "resharded" or "reseeded" (with a warning saying why)."""
        self.data_start, status = resume.data_start(
            saved, self._data_depends_on(), rank=self.ctx.rank, world_size=self.ctx.world_size,
            batch_size=self.opts.batch_size, seed=self.opts.seed, start_epoch=self.start_epoch,
            elastic=self.opts.max_iters is None and self.train_source_kind == "CassandraSource")
        if status == "reseeded":
            self.resumed_mid_epoch = False  # new pipelines start the epoch afresh
            if self.ctx.is_main:
                log.warning(
                    "not continuing the saved training data position: %s. The sample order "
                    "and augmentations restart from new seeds (--seed + %d), so this run is not "
                    "identical to one that never stopped", self.data_start.reseeded_because,
                    self.start_epoch,
                )
        return status

    def _describe(self, train_source: Source, val_source: Source) -> None:
        ctx, opts = self.ctx, self.opts
        steps = self.full_steps if self.train_loader is not None else 0
        info: dict[str, Any] = {
            "arch": opts.arch, "num_classes": opts.num_classes, "world_size": ctx.world_size,
            "backend": ctx.backend or "none", "device": str(ctx.device),
            "dali_cpu": self.dali_cpu, "precision": self.precision.describe(),
            "batch_size": opts.batch_size, "global_batch": opts.batch_size * ctx.world_size,
            "base_lr": self.base_lr, "steps_per_epoch": steps,
            "val_steps": len(self.val_loader), "start_epoch": self.start_epoch,
            "epochs": opts.epochs, "crop_size": opts.crop_size, "val_size": opts.val_size,
            "workers": opts.workers, "train_source": train_source.describe(),
            "val_source": val_source.describe(), "seed": opts.seed,
            "torch_threads": torch.get_num_threads(),
        }
        if not opts.evaluate:  # rank 0's: where --resume finds this run
            info["checkpoint_dir"] = str(self.checkpoint_dir.resolve())
        log.info("training: %s", ", ".join(f"{k}={v}" for k, v in info.items()))
        self.json.write("start", **info)

    # -- the loop --------------------------------------------------------------------------

    def fit(self) -> ValResult | None:
        if self.opts.evaluate:
            only = self.validate()
            self.json.write("validate", epoch=self.start_epoch - 1, **dataclasses.asdict(only))
            log.info("validation: loss %.4f, top-1 %.2f %%, top-5 %.2f %% on %d images",
                     only.loss, only.top1, only.top5, only.samples)
            return only
        result: ValResult | None = None
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            for epoch in range(self.start_epoch, self.opts.epochs):
                train = self.train_epoch(epoch)
                if train.stopped:
                    break
                result = self._end_epoch(epoch, train)
                if epoch + 1 < self.opts.epochs and (stop := self._should_stop(0)):
                    log.warning("stopping after epoch %d (%s): checkpoint written", epoch, stop)
                    self.json.write("stopped", epoch=epoch + 1, step=0, reason=stop, images=0)
                    break
        finally:
            signal.signal(signal.SIGTERM, previous)
        return result

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        # A preempted job: checkpoint at the next step the ranks agree on, and stop.
        self._stop_signal = "SIGTERM"

    def _end_epoch(self, epoch: int, train: EpochResult) -> ValResult:
        result = self.validate()
        is_best = result.top1 > self.best_top1
        self.best_top1 = max(self.best_top1, result.top1)
        log.info(
            "epoch %d: train loss %.4f, %.1f images/s (%.1f s, %.1f s waiting for data); "
            "val loss %.4f, top-1 %.2f %%, top-5 %.2f %% on %d images",
            epoch, _mean(train.losses), train.images_per_s, train.seconds, train.data_wait_s,
            result.loss, result.top1, result.top5, result.samples,
        )
        for reader in telemetry.readers():  # Cassandra readers only; none reading files
            log.info("reader %s", telemetry.summary(reader))
        self.json.write_many("iter", [
            {"epoch": epoch, "step": train.first_step + i, "loss": loss}
            for i, loss in enumerate(train.losses)
        ])
        self.json.write(
            "epoch", epoch=epoch, train_loss=_mean(train.losses), images=train.images,
            seconds=train.seconds, images_per_s=train.images_per_s,
            data_wait_s=train.data_wait_s, val_loss=result.loss, val_top1=result.top1,
            val_top5=result.top5, val_samples=result.samples, first_step=train.first_step,
            lr=self._lr(epoch, train.first_step + len(train.losses) - 1),
        )
        data = self._data_state()  # a collective: every rank takes part
        if self.ctx.is_main:
            self._write_delivered(epoch, data)
            path = checkpoint.save(self._state(epoch + 1, data), self.checkpoint_dir,
                                   is_best=is_best)
            self.json.write("checkpoint", epoch=epoch + 1, path=str(path), best=is_best)
        return result

    def _write_delivered(self, epoch: int, data: dict[str, Any] | None) -> None:
        """Each rank's reader digest of the samples it delivered of `epoch` (Cassandra only):
        over the ranks, and the runs of an epoch interrupted and resumed, they add up to the
        epoch's exactly when every sample came once (cassandra_dali.checkpoints). Delivered by
        the reader: DROP then leaves out each rank's last partial batch from training."""
        if not data:
            return
        digests = []
        for pipeline in data["pipelines"]:
            try:
                (state,) = checkpoints.reader_checkpoints(pipeline).values()
            except checkpoints.FormatError:
                return  # DALI's file reader
            if state.get("delivered_epoch") != epoch:
                return
            digests.append([state["delivered"].count, state["delivered"].hash])
        self.json.write("delivered", epoch=epoch, ranks=digests)

    def _save_mid_epoch(self, epoch: int, step: int) -> None:
        """A checkpoint after `step` steps of `epoch`: a resume continues at the next batch
        of every rank's stream, on this number of ranks or another (a collective)."""
        data = self._data_state()
        if self.ctx.is_main:
            state = self._state(epoch, data)
            state["step"] = step
            path = checkpoint.save(state, self.checkpoint_dir)
            self.json.write("checkpoint", epoch=epoch, step=step, path=str(path), best=False)

    def _should_stop(self, done: int) -> str | None:
        """Why every rank stops after this step, or None. --stop-after is the same count on
        every rank; a SIGTERM may reach the ranks at different steps, so they agree on it (an
        all-reduce) every --print-freq steps, not every step: no extra sync per iteration."""
        if self.opts.stop_after is not None and self.steps_run >= self.opts.stop_after:
            return f"--stop-after {self.opts.stop_after}"
        if done % self.opts.print_freq:
            return None
        _, high = self.ctx.all_reduce_min_max(int(self._stop_signal is not None))
        if high == 0:
            return None
        return self._stop_signal or "SIGTERM on another rank"

    def _lr(self, epoch: int, step: int) -> float:
        return schedule.learning_rate(
            self.base_lr, epoch, step, self.full_steps,
            warmup_epochs=self.opts.warmup_epochs, milestones=self.opts.lr_milestones,
        )

    def train_epoch(self, epoch: int) -> EpochResult:
        assert self.train_loader is not None
        loader, ctx = self.train_loader, self.ctx
        # An epoch resumed mid-way holds fewer steps: it goes on at the step where a whole
        # one would be, so the schedule continues where it was.
        first_step = loader.steps_done() + max(0, self.full_steps - len(loader))
        self.ddp.train()
        losses: list[torch.Tensor] = []
        images_seen = 0
        data_wait = 0.0
        started = time.perf_counter()
        mark = started
        for step, (images, target) in enumerate(loader):
            data_wait += time.perf_counter() - mark
            if step == 0 and epoch == self.start_epoch:
                self._check_labels(target)
            lr = self._lr(epoch, first_step + step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            images = images.contiguous(memory_format=self.memory_format)
            with self.precision.autocast():
                output = self.ddp(images)
                loss = self.criterion(output, target)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            losses.append(loss.detach().float())
            images_seen += target.numel()
            if (step + 1) % self.opts.print_freq == 0 or step + 1 == len(loader):
                self._print_progress(epoch, first_step + step, self.full_steps, loss, output,
                                     target, lr, time.perf_counter() - started, images_seen)
            self.steps_run += 1
            done = first_step + step + 1
            stop = self._should_stop(done) if done < self.full_steps else None
            if stop or (self.opts.save_every and done % self.opts.save_every == 0
                        and done < self.full_steps):
                self._save_mid_epoch(epoch, done)
            if stop:
                log.warning("stopping after step %d of epoch %d (%s): checkpoint written",
                            done, epoch, stop)
                curve = ctx.all_reduce_sum(torch.stack(losses)) / ctx.world_size
                self.json.write_many("iter", [
                    {"epoch": epoch, "step": first_step + i, "loss": float(loss)}
                    for i, loss in enumerate(curve.cpu())
                ])
                self.json.write("stopped", epoch=epoch, step=done, reason=stop,
                                images=self._images_so_far(images_seen))
                return EpochResult([float(x) for x in curve.cpu()], 0,
                                   time.perf_counter() - started, data_wait,
                                   first_step=first_step, stopped=True)
            mark = time.perf_counter()
        if ctx.cuda:
            torch.cuda.synchronize(ctx.device)
        seconds = time.perf_counter() - started
        # One all-reduce per epoch for the whole loss curve: no extra sync per iteration.
        curve = (ctx.all_reduce_sum(torch.stack(losses)) / ctx.world_size if losses
                 else torch.zeros(0))
        return EpochResult([float(x) for x in curve.cpu()], self._images_so_far(images_seen),
                           seconds, data_wait, first_step=first_step)

    def _images_so_far(self, images_seen: int) -> int:
        """Images trained on over all ranks (a collective)."""
        return int(self.ctx.all_reduce_sum(
            torch.tensor([images_seen], device=self.device)).item())

    def _check_labels(self, target: torch.Tensor) -> None:
        # Out-of-range labels fail deep inside the loss (a device-side assert on CUDA): say why.
        if target.numel() and int(target.max()) >= self.opts.num_classes:
            raise ValueError(
                f"label {int(target.max())} >= --num-classes {self.opts.num_classes}: set "
                "--num-classes to the number of classes in the data"
            )

    def _print_progress(self, epoch: int, step: int, steps: int, loss: torch.Tensor,
                        output: torch.Tensor, target: torch.Tensor, lr: float, elapsed: float,
                        images: int) -> None:
        c1, c5 = correct_topk(output.detach(), target, (1, 5))
        stats = torch.stack([loss.detach().float(), c1.float(), c5.float(),
                             torch.tensor(float(target.numel()), device=self.device)])
        stats = self.ctx.all_reduce_sum(stats)
        n = max(float(stats[3]), 1.0)
        log.info(
            "Epoch: [%d][%d/%d]  loss %.4f  prec@1 %.2f  prec@5 %.2f  lr %.5f  %.1f images/s",
            epoch, step + 1, steps, float(stats[0]) / self.ctx.world_size,
            100 * float(stats[1]) / n, 100 * float(stats[2]) / n, lr,
            images * self.ctx.world_size / max(elapsed, 1e-9),
        )

    @torch.no_grad()
    def validate(self) -> ValResult:
        # The unwrapped model: no DDP collectives per batch, so ranks with fewer (or empty)
        # validation batches never hold the others up; totals are reduced once at the end.
        # DDP syncs buffers from rank 0 at the start of each training forward only, so after
        # the last step each rank's batch-norm statistics include its own last batch: take
        # rank 0's (the ones checkpointed), so all ranks score the model that is saved.
        self.ctx.broadcast_from_main(list(self.model.buffers()))
        self.model.eval()
        totals = torch.zeros(4, dtype=torch.float64, device=self.device)
        for images, target in self.val_loader:
            if target.numel() == 0:  # PARTIAL: a rank's last batch may be all padding
                continue
            images = images.contiguous(memory_format=self.memory_format)
            with self.precision.autocast():
                output = self.model(images)
                loss = self.criterion(output.float(), target)
            c1, c5 = correct_topk(output, target, (1, 5))
            totals += torch.stack([loss.double() * target.numel(), c1.double(), c5.double(),
                                   torch.tensor(target.numel(), dtype=torch.float64,
                                                device=self.device)])
        loss_sum, top1, top5, n = self.ctx.all_reduce_sum(totals).cpu().tolist()
        if n == 0:
            return ValResult(math.nan, 0.0, 0.0, 0)
        return ValResult(loss_sum / n, 100 * top1 / n, 100 * top5 / n, int(n))

    def _data_state(self) -> dict[str, Any] | None:
        """Every rank's training-pipeline checkpoint, gathered on rank 0 (None elsewhere).

        Taken between epochs, after the iterator's reset: the position where the next epoch
        starts, also when --max-iters ended this one before the reader's epoch did."""
        assert self.train_loader is not None
        mine = (self.train_loader.checkpoint(), self.data_start.augment_seed)
        ranks = self.ctx.gather_object(mine)
        if ranks is None:
            return None
        return checkpoint.data_state(
            [pipeline for pipeline, _ in ranks], [seed for _, seed in ranks],
            order_seed=self.data_start.order_seed, **self._data_depends_on(),
        )

    def _state(self, next_epoch: int, data: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "epoch": next_epoch, "arch": self.opts.arch, "num_classes": self.opts.num_classes,
            "state_dict": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "best_top1": self.best_top1,
            "opt_level": self.opts.opt_level, "world_size": self.ctx.world_size,
            "batch_size": self.opts.batch_size, "seed": self.opts.seed, "data": data,
        }

    def close(self) -> None:
        self.json.close()


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def configure_logging(rank: int) -> None:
    # Rank 0 speaks for the job; the others report only problems.
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {rank}] %(message)s", datefmt="%H:%M:%S",
    )


def run(opts: TrainOptions, train_source: Source, val_source: Source) -> int:
    """Train (or only validate) under torchrun; returns the exit status."""
    try:
        ctx = distributed.setup()
    except GpuError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_logging(ctx.rank)
    trainer = None
    try:
        trainer = Trainer(opts, ctx, train_source, val_source)
        trainer.fit()
        ctx.barrier()  # nobody tears the process group down while rank 0 still checkpoints
    finally:
        if trainer is not None:
            trainer.close()
        ctx.shutdown()
    return 0
