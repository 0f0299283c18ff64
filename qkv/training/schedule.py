"""Learning-rate schedules, as pure functions of the step (so resuming needs only the step).

The paper's (section 5.3), with ``warmup_steps = 4000``::

    lrate = d_model^-0.5 · min(step^-0.5, step · warmup_steps^-1.5)

— linear warm-up, then decay with the inverse square root of the step. The alternatives: a
constant rate after a linear warm-up, and a cosine decay to zero after a linear warm-up.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["Schedule", "SCHEDULES"]

SCHEDULES = ("warmup", "constant", "cosine")


@dataclass(frozen=True)
class Schedule:
    """A learning rate for every step (steps count from 1).

    Args:
        kind: ``"warmup"`` (the paper's), ``"constant"`` or ``"cosine"``.
        warmup_steps: length of the linear warm-up.
        d_model: model width, for the paper's ``d_model^-0.5`` factor.
        scale: multiplies the paper's formula (1 = the paper); for ``constant`` and ``cosine``,
            the peak learning rate.
        total_steps: where ``cosine`` reaches zero.

    Example:
        >>> schedule = Schedule("warmup", warmup_steps=4000, d_model=512)
        >>> round(schedule(4000), 6)                                   # the peak, at warm-up's end
        0.000699
        >>> schedule(1000) < schedule(4000) > schedule(16000)
        True
    """

    kind: str = "warmup"
    warmup_steps: int = 4000
    d_model: int = 512
    scale: float = 1.0
    total_steps: int = 100000

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.kind!r}")
        for name in ("warmup_steps", "d_model", "total_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")

    def __call__(self, step: int) -> float:
        if step < 1:
            raise ValueError(f"steps count from 1, got {step}")
        warmup = min(1.0, step / self.warmup_steps)
        if self.kind == "warmup":
            return (self.scale * self.d_model ** -0.5
                    * min(step ** -0.5, step * self.warmup_steps ** -1.5))
        if self.kind == "constant":
            return self.scale * warmup
        progress = min(1.0, max(0.0, (step - self.warmup_steps)
                                / max(1, self.total_steps - self.warmup_steps)))
        return self.scale * warmup * 0.5 * (1.0 + math.cos(math.pi * progress))

    def to_dict(self) -> dict:
        return asdict(self)
