"""The ``Block`` base class: parameters, gradients, modes and state dicts.

A block computes on torch tensors without autograd. ``forward`` caches what
``backward`` needs, and ``backward`` returns the gradient with respect to the
input while adding the gradients of the block's own parameters to their grad
tensors, the way autograd accumulates into ``.grad``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger(__name__)


class Block:
    """Base class of every block.

    Subclasses implement ``forward`` and ``backward`` and, when they have
    parameters, ``_own_params``. Blocks that contain other blocks implement
    ``children``. Everything else (``params``, ``state_dict``, ``to``,
    ``train``) works from those two lists.
    """

    #: True for blocks whose forward takes labels and returns a 0-dim loss.
    is_loss = False

    def __init__(self) -> None:
        self.training = True

    # -- computation --------------------------------------------------------

    def forward(self, *args: Any, **kw: Any) -> Tensor:
        """Compute the output and cache what ``backward`` needs.

        Non-loss blocks accept and ignore extra keyword arguments, so that a
        ``Sequential`` can pass ``y=`` through to a trailing loss.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, dout: Tensor, *, input_grad: bool = True) -> Tensor | None:
        """Accumulate parameter gradients and return the input gradient.

        Args:
            dout: Gradient of the final output with respect to this block's
                output, with the output's shape.
            input_grad: When False, a block may skip computing the input
                gradient and return None (``Linear`` does, to save a matrix
                product in the first layer).

        Returns:
            The gradient with respect to the input of the last forward.

        Raises:
            ValueError: If forward has not run yet, or ``dout`` has the wrong
                shape.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def __call__(self, *args: Any, **kw: Any) -> Tensor:
        return self.forward(*args, **kw)

    # -- structure ----------------------------------------------------------

    def _own_params(self) -> list[tuple[str, Tensor, Tensor]]:
        """Return ``(name, param, grad)`` for parameters of this block only."""
        return []

    def children(self) -> list[tuple[str, Block]]:
        """Return ``(name, block)`` for the blocks directly inside this one."""
        return []

    def named_params(self) -> Iterator[tuple[str, Tensor, Tensor]]:
        """Yield ``(dotted name, param, grad)`` in the order of ``params()``."""
        yield from self._own_params()
        for prefix, child in self.children():
            for name, param, grad in child.named_params():
                yield f"{prefix}.{name}", param, grad

    def params(self) -> list[tuple[Tensor, Tensor]]:
        """Return ``(param, grad)`` pairs in a fixed order.

        The tensors are the block's own, so an optimizer that updates them in
        place updates the block. ``to()`` keeps the same tensor objects.
        """
        return [(param, grad) for _, param, grad in self.named_params()]

    def num_params(self) -> int:
        """Return the number of scalar parameters."""
        return sum(param.numel() for param, _ in self.params())

    def zero_grad(self) -> None:
        """Set every parameter gradient to zero, in place."""
        for _, grad in self.params():
            grad.zero_()

    # -- modes, devices and state ------------------------------------------

    def train(self, mode: bool = True) -> Block:
        """Set training mode (or evaluation mode when ``mode`` is False).

        Returns:
            This block, so that calls can be chained.
        """
        self.training = bool(mode)
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self) -> Block:
        """Set evaluation mode. Returns this block."""
        return self.train(False)

    def to(
        self,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Block:
        """Move parameters and gradients to a device and/or dtype, in place.

        The tensor objects stay the same (their ``.data`` is replaced), so
        ``(param, grad)`` pairs kept by an optimizer stay valid.

        Args:
            device: Target device, or None to keep the current one.
            dtype: Target floating-point dtype, or None to keep the current one.

        Returns:
            This block.

        Raises:
            TypeError: If ``dtype`` is not a floating-point dtype.
        """
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(
                f"{type(self).__name__}.to: dtype must be a floating-point "
                f"dtype such as torch.float32, got {dtype}"
            )
        for _, param, grad in self.named_params():
            param.data = param.data.to(device=device, dtype=dtype)
            grad.data = grad.data.to(device=device, dtype=dtype)
        return self

    def state_dict(self) -> dict[str, Tensor]:
        """Return the parameters by dotted name ("0.weight", "sequence.0.bias").

        The values are the parameter tensors themselves, not copies.
        """
        return {name: param for name, param, _ in self.named_params()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Copy parameter values from ``state`` into this block, in place.

        Args:
            state: A mapping like the one ``state_dict()`` returns.

        Raises:
            ValueError: If keys are missing or unexpected, or a shape differs.
        """
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the keys do not match "
                f"the block (missing {missing}, unexpected {unexpected})"
            )
        for name, param in own.items():
            value = state[name]
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {name!r} has shape "
                    f"{tuple(value.shape)}, expected {tuple(param.shape)}"
                )
        with torch.no_grad():
            for name, param in own.items():
                param.copy_(state[name])

    # -- display ------------------------------------------------------------

    def extra_repr(self) -> str:
        """Return the constructor arguments shown inside ``repr``."""
        return ""

    def __repr__(self) -> str:
        name = type(self).__name__
        children = self.children()
        if not children:
            return f"{name}({self.extra_repr()})"
        lines = [f"{name}({self.extra_repr()}"]
        for child_name, child in children:
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({child_name}): {child_repr}")
        lines.append(")")
        return "\n".join(lines)


def check_tensor(block: Block, name: str, value: Any) -> Tensor:
    """Raise TypeError unless ``value`` is a floating-point tensor."""
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{type(block).__name__}: {name} must be a torch.Tensor, "
            f"got {type(value).__name__}"
        )
    if not value.is_floating_point():
        raise TypeError(
            f"{type(block).__name__}: {name} must be a floating-point tensor "
            f"(float32 or float64), got {value.dtype}"
        )
    return value


def check_cache(block: Block, cache: Any) -> None:
    """Raise ValueError when ``backward`` runs before any ``forward``."""
    if cache is None:
        raise ValueError(
            f"{type(block).__name__}.backward called before forward. "
            "Run forward on an input first."
        )


def check_dout(block: Block, dout: Tensor, shape: torch.Size) -> None:
    """Raise ValueError unless ``dout`` has the output's shape."""
    if not isinstance(dout, Tensor) or dout.shape != shape:
        got = tuple(dout.shape) if isinstance(dout, Tensor) else type(dout).__name__
        raise ValueError(
            f"{type(block).__name__}.backward: dout must have the output's "
            f"shape {tuple(shape)}, got {got}"
        )
