"""Fully connected layer: ``y = x @ W.T + b``."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from engine.blocks.base import Block, check_cache, check_dout, check_tensor

log = logging.getLogger(__name__)


def check_size(block_name: str, name: str, value: Any) -> int:
    """Return ``value`` if it is a positive int, else raise TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{block_name}: {name} must be a positive integer, "
            f"got {type(value).__name__} {value!r}"
        )
    if value < 1:
        raise ValueError(
            f"{block_name}: {name} must be a positive integer, got {value}"
        )
    return value


class Linear(Block):
    """Fully connected layer on inputs of shape (N, in_features).

    Args:
        in_features: Size of each input sample.
        out_features: Size of each output sample.
        wstd: Standard deviation of the normal distribution the weights are
            drawn from (mean 0). The bias starts at zero.

    Raises:
        TypeError: If a size is not an int or ``wstd`` is not a number.
        ValueError: If a size is below 1 or ``wstd`` is negative.
    """

    def __init__(self, in_features: int, out_features: int, wstd: float = 0.1):
        super().__init__()
        self.in_features = check_size("Linear", "in_features", in_features)
        self.out_features = check_size("Linear", "out_features", out_features)
        if isinstance(wstd, bool) or not isinstance(wstd, int | float):
            raise TypeError(f"Linear: wstd must be a number, got {wstd!r}")
        if not wstd >= 0:
            raise ValueError(f"Linear: wstd must be >= 0, got {wstd}")
        self.wstd = wstd
        self.weight = torch.randn(out_features, in_features) * wstd
        self.bias = torch.zeros(out_features)
        self.dweight = torch.zeros_like(self.weight)
        self.dbias = torch.zeros_like(self.bias)
        self._x: Tensor | None = None

    def _own_params(self) -> list[tuple[str, Tensor, Tensor]]:
        return [("weight", self.weight, self.dweight), ("bias", self.bias, self.dbias)]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"

    def forward(self, x: Tensor, **kw: Any) -> Tensor:
        """Return ``x @ weight.T + bias`` for ``x`` of shape (N, in_features).

        The parameters move to ``x``'s device and dtype first when they differ.

        Raises:
            TypeError: If ``x`` is not a floating-point tensor.
            ValueError: If ``x`` does not have shape (N, in_features).
        """
        check_tensor(self, "input", x)
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"{self!r}: input must have shape (N, {self.in_features}), "
                f"got {tuple(x.shape)}"
            )
        if x.device != self.weight.device or x.dtype != self.weight.dtype:
            log.debug("moving Linear parameters to %s %s", x.device, x.dtype)
            self.to(device=x.device, dtype=x.dtype)
        self._x = x
        return torch.addmm(self.bias, x, self.weight.t())

    def backward(self, dout: Tensor, *, input_grad: bool = True) -> Tensor | None:
        """Accumulate weight and bias gradients and return ``dout @ weight``.

        With ``input_grad=False`` the input gradient is skipped and None is
        returned, which saves one matrix product in a network's first layer.
        """
        check_cache(self, self._x)
        x = self._x
        check_dout(self, dout, torch.Size((x.shape[0], self.out_features)))
        self.dweight.addmm_(dout.t(), x)
        self.dbias.add_(dout.sum(dim=0))
        if not input_grad:
            return None
        return dout.mm(self.weight)
