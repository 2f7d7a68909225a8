"""One process per device under torchrun: NCCL on GPUs, gloo on CPUs, chosen by what is there.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and the rendezvous address); without them the
script runs as a single process with no process group, so it also works as plain ``python``.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from typing import Any

import torch
import torch.distributed as dist

from ..gpus import GpuError, dali_gpu_count, device_index
from ..sharding import Ranks

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None  # None: a single process, no process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, in place (a no-op for one process); returns the tensor."""
        if self.backend is not None:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_reduce_min_max(self, value: int) -> tuple[int, int]:
        """The smallest and largest ``value`` over ranks (checks that ranks agree)."""
        tensor = torch.tensor([-value, value], dtype=torch.int64, device=self.device)
        if self.backend is not None:
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return -int(tensor[0]), int(tensor[1])

    def broadcast_from_main(self, tensors: list[torch.Tensor]) -> None:
        """Overwrite every rank's tensors with rank 0's, in place."""
        if self.backend is not None:
            for tensor in tensors:
                dist.broadcast(tensor, src=0)

    def gather_object(self, obj: Any) -> list[Any] | None:
        """Every rank's picklable ``obj``, in rank order, on rank 0; None on the others. A
        collective: all ranks must call it."""
        if self.backend is None:
            return [obj]
        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, gathered, dst=0)
        return gathered

    def barrier(self) -> None:
        if self.backend is not None:
            dist.barrier(device_ids=[self.device.index] if self.cuda else None)

    def shutdown(self) -> None:
        if self.backend is not None and dist.is_initialized():
            dist.destroy_process_group()


def refuse_silent_cpu_fallback() -> None:
    """Training on the CPU while the machine has GPUs is never what was meant: it happens when
    torch cannot use them (a CPU-only build, or one built for a newer CUDA than the driver)."""
    gpus, _ = dali_gpu_count()
    if gpus == 0:
        return
    raise GpuError(
        f"DALI sees {gpus} GPU(s) but torch {torch.__version__} cannot use them "
        f"(built for CUDA {torch.version.cuda or 'none: a CPU-only build'}): install a torch "
        "build that this NVIDIA driver supports, or hide the GPUs (CUDA_VISIBLE_DEVICES=) to "
        "train on the CPU on purpose"
    )


def setup(timeout_s: float = 1800.0) -> DistContext:
    """Read torchrun's environment, pick the device and backend, and join the process group."""
    ranks = Ranks.from_env()
    world_size, local_rank = ranks.world_size, ranks.local_rank
    if torch.cuda.is_available():
        device = torch.device("cuda", device_index(local_rank, torch.cuda.device_count()))
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        refuse_silent_cpu_fallback()
        device = torch.device("cpu")
        backend = "gloo"
    if world_size == 1:
        return DistContext(0, 1, local_rank, device, None)
    dist.init_process_group(
        backend, timeout=datetime.timedelta(seconds=timeout_s),
        # Binding the device lets NCCL connect eagerly and avoids a guess at the rank's GPU.
        device_id=device if device.type == "cuda" else None,
    )
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, device, backend)
