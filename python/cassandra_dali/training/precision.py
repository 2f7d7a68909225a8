"""Mixed precision with ``torch.amp``, under the flags of the apex-based reference.

DALI's ImageNet example trained with NVIDIA apex (``--opt-level O0..O3``, ``--loss-scale``);
apex is gone, so the same flags map onto autocast and ``GradScaler``:

- ``O0``: fp32 throughout (no autocast, no scaler).
- ``O1``, ``O2``, ``O3``: the forward pass and loss under ``torch.autocast``, fp16 on CUDA and
  bf16 on CPU (CPUs have no fast fp16 path; bf16 keeps fp32's range). Weights and optimizer
  state stay fp32 in all three, which is what apex's O2 "master weights" amounted to; autocast
  already keeps numerically sensitive ops such as batch norm and softmax in fp32, so O3's
  all-half model is not reproduced (it was a speed-of-light test, not a training mode).
- ``--loss-scale``: only fp16 needs it (bf16 has fp32's exponent range), so a ``GradScaler``
  exists only for fp16 on CUDA. A number is the initial scale, kept fixed as apex's static
  scale was (growth disabled), but still halved if gradients overflow, instead of applying
  inf/NaN updates; ``dynamic`` (the default) is GradScaler's own dynamic scaling.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

OPT_LEVELS = ("O0", "O1", "O2", "O3")
DYNAMIC = "dynamic"
# growth_interval large enough that a fixed scale never grows within any realistic run.
_NEVER = 2**31 - 1

HELP_OPT_LEVEL = (
    "mixed precision, apex-style: O0 = fp32; O1/O2/O3 = torch.autocast (fp16 on CUDA, bf16 on "
    "CPU) with fp32 weights (default %(default)s)"
)
HELP_LOSS_SCALE = (
    "loss scaling for fp16 (CUDA with O1-O3 only; ignored for fp32 and bf16): a number is a "
    "fixed initial scale (halved only on overflow), 'dynamic' is GradScaler's dynamic scaling "
    "(default)"
)


def parse_loss_scale(text: str | None) -> float | None:
    """``None``/``"dynamic"`` -> None (dynamic); a positive number -> that number."""
    if text is None or text.strip().lower() == DYNAMIC:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--loss-scale must be a number or '{DYNAMIC}', not {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"--loss-scale must be a positive number, not {text!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Precision:
    """What an opt level means on one device type."""

    opt_level: str
    device_type: str  # "cuda" or "cpu"
    autocast_dtype: torch.dtype | None  # None: fp32, no autocast
    loss_scale: float | None  # fixed initial scale; None: dynamic (only used with a scaler)

    @classmethod
    def create(cls, opt_level: str, loss_scale: str | None, device_type: str) -> Precision:
        level = opt_level.upper()
        if level not in OPT_LEVELS:
            raise ValueError(f"--opt-level must be one of {', '.join(OPT_LEVELS)}, not {opt_level!r}")
        dtype: torch.dtype | None = None
        if level != "O0":
            dtype = torch.float16 if device_type == "cuda" else torch.bfloat16
        return cls(level, device_type, dtype, parse_loss_scale(loss_scale))

    @property
    def uses_scaler(self) -> bool:
        return self.autocast_dtype == torch.float16

    def autocast(self) -> Any:
        """The context for forward pass and loss (a disabled autocast for fp32)."""
        return torch.autocast(
            self.device_type, dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        )

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler, disabled (a pass-through) unless fp16 needs it."""
        if not self.uses_scaler:
            return torch.amp.GradScaler(self.device_type, enabled=False)
        if self.loss_scale is None:
            return torch.amp.GradScaler(self.device_type)
        return torch.amp.GradScaler(
            self.device_type, init_scale=self.loss_scale, growth_interval=_NEVER
        )

    def describe(self) -> str:
        if self.autocast_dtype is None:
            return f"{self.opt_level}: fp32"
        name = "fp16" if self.autocast_dtype == torch.float16 else "bf16"
        text = f"{self.opt_level}: autocast {name} on {self.device_type}"
        if self.uses_scaler:
            scale = "dynamic" if self.loss_scale is None else f"fixed {self.loss_scale:g}"
            text += f", loss scale {scale}"
        return text
