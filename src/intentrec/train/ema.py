"""An exponential moving average of the weights (``train.ema_decay``), validated and saved in place of the raw weights.

After every optimiser step the shadow copy moves toward the weights::

    shadow <- beta * shadow + (1 - beta) * weights,   beta = min(decay, (1 + t) / (10 + t))

where t counts the updates so far (the usual warm-up of beta: the first steps average over few updates, so the
start of training is not dragged toward the random initialisation). Validation, the best checkpoint and so the
exported model use the shadow; training goes on from the raw weights. Floating-point buffers are averaged the same
way; integer buffers are copied.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["WeightEMA"]


class WeightEMA:
    """The moving average of one model's parameters and floating-point buffers.

    Args:
        model: the model being trained (its current weights start the average).
        decay: the long-run decay, in (0, 1); 0.999 averages over about the last 1,000 steps.

    Raises:
        ValueError: ``decay`` is not in (0, 1).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.shadow: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def beta(self) -> float:
        """The decay of the next update (warmed up over the first steps)."""
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average toward ``model``'s current weights (call after each optimiser step)."""
        beta = self.beta()
        for name, value in model.state_dict().items():
            shadow = self.shadow[name]
            if shadow.is_floating_point():
                shadow.lerp_(value.detach(), 1.0 - beta)  # shadow + (1 - beta)(value - shadow)
            else:
                shadow.copy_(value)
        self.updates += 1

    @contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[nn.Module]:
        """Load the average into ``model`` for the duration of the block, then put the raw weights back."""
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(raw)

    def state(self) -> dict[str, object]:
        """What a resumable checkpoint stores: the update count and the shadow tensors (on the CPU)."""
        return {"updates": self.updates, "shadow": {k: v.detach().cpu() for k, v in self.shadow.items()}}

    def load_state(self, state: dict[str, object]) -> None:
        """Restore :meth:`state` (tensors are moved to the shadow's devices).

        Raises:
            ValueError: the stored tensors do not match the model's names or shapes.
        """
        shadow = state["shadow"]
        if not isinstance(shadow, dict) or set(shadow) != set(self.shadow):
            raise ValueError("the stored weight average does not match this model's parameters")
        for name, value in shadow.items():
            if tuple(value.shape) != tuple(self.shadow[name].shape):
                raise ValueError(f"the stored weight average of {name} has shape {tuple(value.shape)}, "
                                 f"the model {tuple(self.shadow[name].shape)}")
            self.shadow[name].copy_(value)
        self.updates = int(state["updates"])  # type: ignore[call-overload]
