"""DALI pipelines for training and validation: one augmentation, two ways to read.

A *source* (:mod:`cassandra_dali.sources`) gives the pipeline its (encoded image, label) pair
for one shard: ``FileSource`` wraps ``fn.readers.file`` (an image-folder tree, read as in DALI's
ImageNet example) and ``CassandraSource`` wraps ``fn.crs4.cassandra``. Everything after the
reader is the example's:

- training: random-resized crop fused into the decoder (``decoders.image_random_crop``, area
  10-100 %, aspect 3/4-4/3), resize to ``crop`` x ``crop``, random horizontal flip
  (``coin_flip``), normalisation with ImageNet's mean and std, CHW float;
- validation: decode, resize the shorter side to ``val_size``, centre crop ``crop``, normalise.

Decoding runs on the CPU (``dali_cpu``, and always when there is no GPU: a pipeline with
``device_id=None`` never touches CUDA) or as DALI's "mixed" nvJPEG decoder with the rest on the
GPU. Either way, with a GPU the batches reach PyTorch as CUDA tensors.

Epochs: every rank must run the same number of iterations, or DDP's all-reduce waits forever
for the rank that stopped. Both readers pad their shards (``pad_last_batch``) and report it
through ``reader_meta``, and the iterator is built with ``reader_name``: training drops the
incomplete last batch (``LastBatchPolicy.DROP``; DALI then ends every rank's epoch at the
smallest shard's last full batch), validation keeps it (``PARTIAL``, padding trimmed, so every
sample is scored exactly once over all ranks; a rank's last batch may then be empty).

Resume: the training pipeline is built with DALI checkpointing enabled. ``Loader.checkpoint()``
is the state of the reader (its position in its stream and epoch), of the random operators
(crop and flip generators) and of the iterator, consistent with the batches handed out so far
(not with the ones DALI has prefetched); a training pipeline built from it (``checkpoint=``)
produces exactly the batches the first one would have produced next.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, Protocol

import torch
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.plugin.base_iterator import LastBatchPolicy
from nvidia.dali.plugin.pytorch import DALIGenericIterator

from .. import checkpoints
from ..sharding import shard_batches
from ..sources import READER_NAME, CassandraSource, FileSource

__all__ = ["CassandraSource", "FileSource", "Loader", "PipelineOptions", "Source",
           "training_loader", "validation_loader"]
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
# nvJPEG buffers sized for ImageNet's largest images, as in DALI's example: allocating them
# once up front avoids reallocations (and their synchronisations) during the first epochs.
_DEVICE_MEMORY_PADDING = 211025920
_HOST_MEMORY_PADDING = 140544512


class Source(Protocol):
    """Where one split's samples come from: a :mod:`cassandra_dali.sources` reader."""

    def read(self, *, shard_id: int = 0, num_shards: int = 1, shuffle: bool = True,
             seed: int | None = None, name: str = READER_NAME) -> tuple[Any, Any]:
        """Reader outputs (encoded bytes, int32 label) for the shard, named ``READER_NAME``
        (``seed`` None: the reader's default)."""
        ...

    def describe(self) -> str: ...


@dataclasses.dataclass(frozen=True)
class PipelineOptions:
    batch_size: int
    num_threads: int
    crop: int
    val_size: int
    dali_cpu: bool
    device_id: int | None  # None: no GPU in this process


def _images_to_device(images: Any, labels: Any, opts: PipelineOptions) -> tuple[Any, Any]:
    if opts.device_id is None:
        return images, labels
    # With a GPU, hand PyTorch CUDA tensors whatever ran where (DALI copies from pinned memory).
    return (images.gpu() if opts.dali_cpu else images), labels.gpu()


@pipeline_def
def _training_pipeline(source: Source, shard_id: int, num_shards: int, order_seed: int,
                       opts: PipelineOptions) -> tuple[Any, Any]:
    jpegs, labels = source.read(shard_id=shard_id, num_shards=num_shards, shuffle=True,
                                seed=order_seed)
    crop_args: dict[str, Any] = {
        "output_type": types.DALIImageType.RGB, "random_aspect_ratio": [0.75, 4.0 / 3.0],
        "random_area": [0.1, 1.0], "num_attempts": 100,
    }
    images: Any
    if opts.dali_cpu:
        images = fn.decoders.image_random_crop(jpegs, device="cpu", **crop_args)
    else:
        images = fn.decoders.image_random_crop(
            jpegs, device="mixed", device_memory_padding=_DEVICE_MEMORY_PADDING,
            host_memory_padding=_HOST_MEMORY_PADDING, **crop_args,
        )
    images = fn.resize(images, resize_x=opts.crop, resize_y=opts.crop,
                       interp_type=types.DALIInterpType.INTERP_TRIANGULAR, antialias=False)
    images = fn.crop_mirror_normalize(
        images, dtype=types.DALIDataType.FLOAT, output_layout="CHW", crop=(opts.crop, opts.crop),
        mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), mirror=fn.random.coin_flip(probability=0.5),
    )
    return _images_to_device(images, labels, opts)


@pipeline_def
def _validation_pipeline(source: Source, shard_id: int, num_shards: int,
                         opts: PipelineOptions) -> tuple[Any, Any]:
    jpegs, labels = source.read(shard_id=shard_id, num_shards=num_shards, shuffle=False, seed=0)
    images: Any = fn.decoders.image(jpegs, device="cpu" if opts.dali_cpu else "mixed",
                               output_type=types.DALIImageType.RGB)
    images = fn.resize(images, resize_shorter=opts.val_size, interp_type=types.DALIInterpType.INTERP_TRIANGULAR,
                       antialias=False)
    images = fn.crop_mirror_normalize(
        images, dtype=types.DALIDataType.FLOAT, output_layout="CHW", crop=(opts.crop, opts.crop),
        mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), mirror=False,
    )
    return _images_to_device(images, labels, opts)


class Loader:
    """Batches of (float images NCHW, int64 labels N) from a DALI pipeline, epoch by epoch."""

    def __init__(self, pipe: Any, *, training: bool, max_iters: int | None, device: torch.device):
        pipe.build()  # restores the pipeline's state when it was given a checkpoint
        self.batch_size: int = pipe.max_batch_size
        self.device = device
        epoch_len = _epoch_length(pipe, self.batch_size, training)
        # The --max-iters in effect: None when epochs are whole reader epochs.
        self.max_iters: int | None = None
        if max_iters is not None and max_iters < epoch_len:
            self.max_iters = max_iters
            # A short run: an "epoch" is max_iters batches of the reader's endless stream (the
            # next one continues where this stopped), so no rank decodes a whole epoch only to
            # skip it. Same count on every rank, hence no padding to trim.
            self._iterator = DALIGenericIterator(
                [pipe], ["data", "label"], size=max_iters * self.batch_size, auto_reset=True,
                last_batch_policy=LastBatchPolicy.DROP,
            )
        else:
            # Sized by the reader each epoch: after a resume on another number of ranks the
            # first epoch is what was left of it.
            self._iterator = checkpoints.follow_epochs(DALIGenericIterator(
                [pipe], ["data", "label"], reader_name=READER_NAME, auto_reset=True,
                last_batch_policy=LastBatchPolicy.DROP if training else LastBatchPolicy.PARTIAL,
            ))
        self.follows_reader = self.max_iters is None
        self.pipe = pipe

    def __len__(self) -> int:
        """Batches of the current epoch (fewer in one resumed on another number of ranks)."""
        return len(self._iterator)

    def steps_done(self) -> int:
        """Batches of the current epoch already handed out (> 0 after a resume mid-epoch):
        the iterator's own count, which its checkpoint restores, less the first batch it
        fetches ahead when built (DALI's prepare_first_batch) and has not handed out yet."""
        prepared = getattr(self._iterator, "_first_batch", None) is not None
        return int(self._iterator._counter) // self.batch_size - int(prepared)

    def full_epoch_length(self) -> int:
        """Training batches of a whole epoch of this rank, whatever the current one holds
        (DROP: DALI ends every rank's epoch at the floor of an even share)."""
        if not self.follows_reader:
            return len(self._iterator)
        meta = self.pipe.reader_meta(READER_NAME)
        try:
            state = checkpoints.reader_checkpoints(self.checkpoint())[READER_NAME]
        except checkpoints.FormatError:  # DALI's file reader: every epoch is whole
            return len(self._iterator)
        return int(state["list_size"]) // int(meta["number_of_shards"]) // self.batch_size

    def checkpoint(self) -> bytes:
        """The pipeline's state after the batches handed out so far (serialised; the pipeline
        must have been built with ``enable_checkpointing=True``). At the end of an epoch the
        iterator has already been reset, so this is where the next epoch starts."""
        (state,) = self._iterator.checkpoints()
        return bytes(state)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in self._iterator:
            images = batch[0]["data"]
            labels = batch[0]["label"].reshape(-1).to(self.device, torch.int64, non_blocking=True)
            yield images.to(self.device, non_blocking=True), labels


def _epoch_length(pipe: Any, batch_size: int, training: bool) -> int:
    return shard_batches(pipe.reader_meta(READER_NAME), batch_size, drop_last=training)


def training_loader(source: Source, opts: PipelineOptions, *, shard_id: int, num_shards: int,
                    order_seed: int, augment_seed: int, max_iters: int | None,
                    device: torch.device, checkpoint: bytes | None = None) -> Loader:
    """The training batches of one shard. ``checkpoint`` (from ``Loader.checkpoint()`` of a
    pipeline built with the same arguments) continues that pipeline's stream exactly."""
    pipe = _training_pipeline(
        source, shard_id, num_shards, order_seed, opts, batch_size=opts.batch_size,
        num_threads=opts.num_threads, device_id=opts.device_id, seed=augment_seed,
        enable_checkpointing=True, checkpoint=checkpoint,
    )
    return Loader(pipe, training=True, max_iters=max_iters, device=device)


def validation_loader(source: Source, opts: PipelineOptions, *, shard_id: int, num_shards: int,
                      max_iters: int | None, device: torch.device) -> Loader:
    pipe = _validation_pipeline(
        source, shard_id, num_shards, opts, batch_size=opts.batch_size,
        num_threads=opts.num_threads, device_id=opts.device_id, seed=1,
    )
    return Loader(pipe, training=False, max_iters=max_iters, device=device)
