"""Element-wise activations: ReLU, LeakyReLU, Sigmoid and TanH.

Each works on inputs of any shape and caches its output or input for backward.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from engine.blocks.base import Block, check_cache, check_dout, check_tensor


class ReLU(Block):
    """Rectified linear unit, ``max(x, 0)``."""

    def __init__(self) -> None:
        super().__init__()
        self._out: Tensor | None = None

    def forward(self, x: Tensor, **kw: Any) -> Tensor:
        """Return ``max(x, 0)`` element-wise."""
        check_tensor(self, "input", x)
        self._out = torch.relu(x)
        return self._out

    def backward(self, dout: Tensor, *, input_grad: bool = True) -> Tensor:
        """Return ``dout`` where the input was positive, else zero."""
        check_cache(self, self._out)
        check_dout(self, dout, self._out.shape)
        # sign() of the output is 1 where the input was positive and 0
        # elsewhere, and multiplying by it is faster than by a bool mask.
        return dout * self._out.sign()


class LeakyReLU(Block):
    """Leaky ReLU, ``x`` for positive inputs and ``alpha * x`` otherwise.

    Args:
        alpha: Slope for non-positive inputs, with 0 <= alpha < 1.

    Raises:
        ValueError: If ``alpha`` is outside [0, 1).
    """

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        if isinstance(alpha, bool) or not isinstance(alpha, int | float):
            raise TypeError(
                f"LeakyReLU: alpha must be a number in [0, 1), "
                f"got {type(alpha).__name__} {alpha!r}"
            )
        if not 0 <= alpha < 1:
            raise ValueError(f"LeakyReLU: alpha must be in [0, 1), got {alpha}")
        self.alpha = float(alpha)
        self._x: Tensor | None = None

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"

    def forward(self, x: Tensor, **kw: Any) -> Tensor:
        """Return ``x`` where positive, ``alpha * x`` elsewhere."""
        check_tensor(self, "input", x)
        self._x = x
        return torch.where(x > 0, x, x * self.alpha)

    def backward(self, dout: Tensor, *, input_grad: bool = True) -> Tensor:
        """Return ``dout`` where the input was positive, ``alpha * dout`` elsewhere."""
        check_cache(self, self._x)
        check_dout(self, dout, self._x.shape)
        return torch.where(self._x > 0, dout, dout * self.alpha)


class Sigmoid(Block):
    """Logistic sigmoid, ``1 / (1 + exp(-x))``."""

    def __init__(self) -> None:
        super().__init__()
        self._out: Tensor | None = None

    def forward(self, x: Tensor, **kw: Any) -> Tensor:
        """Return ``sigmoid(x)`` element-wise."""
        check_tensor(self, "input", x)
        self._out = torch.sigmoid(x)
        return self._out

    def backward(self, dout: Tensor, *, input_grad: bool = True) -> Tensor:
        """Return ``dout * s * (1 - s)`` where ``s`` is the forward output."""
        check_cache(self, self._out)
        check_dout(self, dout, self._out.shape)
        out = self._out
        return dout * out * (1 - out)


class TanH(Block):
    """Hyperbolic tangent."""

    def __init__(self) -> None:
        super().__init__()
        self._out: Tensor | None = None

    def forward(self, x: Tensor, **kw: Any) -> Tensor:
        """Return ``tanh(x)`` element-wise."""
        check_tensor(self, "input", x)
        self._out = torch.tanh(x)
        return self._out

    def backward(self, dout: Tensor, *, input_grad: bool = True) -> Tensor:
        """Return ``dout * (1 - t**2)`` where ``t`` is the forward output."""
        check_cache(self, self._out)
        check_dout(self, dout, self._out.shape)
        out = self._out
        return dout * (1 - out * out)
