"""Which GPU a process uses, as DALI sees them (no torch needed).

Launchers give a process its GPU in two ways: ``torchrun --nproc_per_node=N`` shows every GPU of
the node to every process and ``LOCAL_RANK`` picks one; Slurm-style one-GPU-per-task layouts set
``CUDA_VISIBLE_DEVICES`` per task, so each process sees one GPU (index 0) while ``LOCAL_RANK``
still counts the tasks of the node. Both resolve here to the index a pipeline's ``device_id``
and torch must use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .errors import UserError


class GpuError(UserError, RuntimeError):
    """No usable GPU for this process, said in words a user can act on."""


def dali_gpu_count() -> tuple[int, str]:
    """The GPUs DALI's CUDA runtime sees, and why none when it sees none ("" otherwise)."""
    from nvidia.dali.backend import GetCUDADeviceCount  # type: ignore[attr-defined]

    try:
        return int(GetCUDADeviceCount()), ""
    except Exception as error:  # no driver at all: DALI says so in its own terms
        return 0, str(error)


def device_index(local_rank: int, visible: int, env: Mapping[str, str] | None = None) -> int:
    """The visible GPU for ``local_rank`` when ``visible`` GPUs are visible to this process."""
    env = os.environ if env is None else env
    if visible < 1:
        raise GpuError("no GPU is visible to this process")
    if local_rank < visible:
        return local_rank
    chosen = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if visible == 1 and len(chosen) == 1:
        return 0  # one GPU per task: CUDA_VISIBLE_DEVICES already chose it
    # Otherwise several ranks would share a GPU (NCCL refuses; a read loop would just be slow).
    raise GpuError(
        f"LOCAL_RANK={local_rank}, but this process sees {visible} GPU(s): start at most "
        f"{visible} processes per node (torchrun --nproc_per_node), or give each task its own "
        "GPU with CUDA_VISIBLE_DEVICES"
    )
