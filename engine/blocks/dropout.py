"""Inverted dropout."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from engine.blocks.base import Block, check_cache, check_dout, check_tensor


def dropout_mask(x: Tensor, p: float) -> Tensor:
    """Draw an inverted-dropout mask shaped like ``x`` from torch's global RNG.

    Each entry is ``1 / (1 - p)`` with probability ``1 - p`` and 0 otherwise,
    so re-seeding torch (``torch.manual_seed``) reproduces the mask.
    """
    keep = 1.0 - p
    return torch.empty_like(x).bernoulli_(keep).div_(keep)


class Dropout(Block):
    """Inverted dropout: zero entries with probability ``p`` while training.

    Kept entries are scaled by ``1 / (1 - p)`` so the expected output equals
    the input. In evaluation mode (``eval()``) the block is the identity.

    Args:
        p: Probability of zeroing an entry, with 0 <= p < 1.

    Raises:
        ValueError: If ``p`` is outside [0, 1).
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, int | float):
            raise TypeError(
                f"Dropout: p must be a number in [0, 1), got {type(p).__name__} {p!r}"
            )
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)
        # The mask of the last training-mode forward, or None after an
        # identity forward (evaluation mode or p == 0).
        self._mask: Tensor | None = None
        self._shape: torch.Size | None = None

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: Tensor, **kw: Any) -> Tensor:
        """Return ``x`` times a fresh mask in training mode, else ``x``."""
        check_tensor(self, "input", x)
        self._shape = x.shape
        if not self.training or self.p == 0:
            self._mask = None
            return x
        self._mask = dropout_mask(x, self.p)
        return x * self._mask

    def backward(self, dout: Tensor, *, input_grad: bool = True) -> Tensor:
        """Return ``dout`` times the mask of the last forward."""
        check_cache(self, self._shape)
        check_dout(self, dout, self._shape)
        if self._mask is None:
            return dout
        return dout * self._mask
