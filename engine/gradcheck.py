"""Compare a block's hand-written gradients with PyTorch autograd.

``compare_block_to_torch`` runs a block's forward and backward, then the
same computation written with ``torch.nn.functional`` under autograd, and
returns how far apart the gradients are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.blocks import (
    MLP,
    Block,
    CrossEntropyLoss,
    Dropout,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    TanH,
)
from engine.blocks.dropout import dropout_mask

log = logging.getLogger(__name__)

Reference = Callable[[Any, Tensor, dict[str, Any]], Tensor]


def _dropout_reference(block: Dropout, x: Tensor, kw: dict[str, Any]) -> Tensor:
    # Draws the mask with the same RNG calls as Dropout.forward, so with the
    # same seed both masks are equal.
    if not block.training or block.p == 0:
        return x
    return x * dropout_mask(x, block.p)


def _sequential_reference(block: Sequential, x: Tensor, kw: dict[str, Any]) -> Tensor:
    for child in block.blocks:
        x = torch_forward(child, x, kw)
    return x


# Exact types only: a subclass may change forward, so it falls back to
# autograd through its own forward.
_REFERENCES: dict[type[Block], Reference] = {
    Linear: lambda b, x, kw: F.linear(x, b.weight, b.bias),
    ReLU: lambda b, x, kw: F.relu(x),
    LeakyReLU: lambda b, x, kw: F.leaky_relu(x, b.alpha),
    Sigmoid: lambda b, x, kw: torch.sigmoid(x),
    TanH: lambda b, x, kw: torch.tanh(x),
    Dropout: _dropout_reference,
    CrossEntropyLoss: lambda b, x, kw: F.cross_entropy(x, kw["y"]),
    Sequential: _sequential_reference,
    MLP: lambda b, x, kw: _sequential_reference(b.sequence, x, kw),
}


def torch_forward(block: Block, x: Tensor, kw: dict[str, Any]) -> Tensor:
    """Compute ``block``'s forward with torch operations that autograd tracks.

    Known block types use their ``torch.nn.functional`` counterpart on the
    block's own parameters. Other blocks run their own forward under autograd,
    which checks their backward against their forward.
    """
    reference = _REFERENCES.get(type(block))
    if reference is None:
        return block.forward(x, **kw)
    return reference(block, x, kw)


def _rng_devices(x: Tensor) -> list[torch.device]:
    return [x.device] if x.device.type == "cuda" else []


def compare_block_to_torch(
    block: Block, x: Tensor, y: Tensor | None = None, seed: int = 42
) -> list[float]:
    """Return the L2 distances between a block's gradients and autograd's.

    Runs ``block.forward`` and ``block.backward`` with a random upstream
    gradient drawn from ``seed``, then the same computation under autograd
    with torch's RNG re-seeded to ``seed``, so that dropout masks agree. The
    block's gradient tensors are restored afterwards, and torch's global RNG
    state is left as it was. As in any forward, the block's parameters move
    to ``x``'s device and dtype, and they stay there.

    Args:
        block: Any block, including ``Sequential`` and ``MLP``.
        x: Input tensor (floating point) for the block.
        y: Labels, passed as ``y=`` to forward, for a block that ends in a loss.
        seed: Seed for the upstream gradient and for torch's RNG.

    Returns:
        The norm of the input-gradient difference, then one norm per
        ``(param, grad)`` pair in ``block.params()`` order.

    Raises:
        TypeError: If ``x`` is not a floating-point tensor.
        ValueError: If autograd cannot differentiate the block's output.
    """
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(
            "compare_block_to_torch: x must be a floating-point tensor, "
            f"got {getattr(x, 'dtype', type(x).__name__)}"
        )
    kw: dict[str, Any] = {} if y is None else {"y": y}
    pairs = block.params()
    saved_grads = [grad.clone() for _, grad in pairs]

    with torch.random.fork_rng(devices=_rng_devices(x)):
        # -- the block's own forward and backward ---------------------------
        for _, grad in pairs:
            grad.zero_()
        torch.manual_seed(seed)
        out = block.forward(x.detach(), **kw)
        generator = torch.Generator().manual_seed(seed)
        dout = torch.randn(out.shape, generator=generator, dtype=out.dtype)
        dout = dout.to(out.device)
        dx = block.backward(dout)
        ours = [dx] + [grad.clone() for _, grad in pairs]

        # -- the same computation under autograd ----------------------------
        x_ref = x.detach().clone().requires_grad_(True)
        params = [param for param, _ in pairs]
        for param in params:
            param.requires_grad_(True)
        try:
            with torch.enable_grad():
                torch.manual_seed(seed)
                out_ref = torch_forward(block, x_ref, kw)
                if not out_ref.requires_grad:
                    raise ValueError(
                        f"compare_block_to_torch: the output of {type(block).__name__} "
                        "does not depend on its input or parameters through "
                        "operations autograd can differentiate"
                    )
                theirs = torch.autograd.grad(
                    out_ref, [x_ref, *params], dout, allow_unused=True
                )
        finally:
            for param in params:
                param.requires_grad_(False)

    for (_, grad), saved in zip(pairs, saved_grads, strict=True):
        grad.copy_(saved)

    distances = []
    for mine, reference in zip(ours, theirs, strict=True):
        if reference is None:
            reference = torch.zeros_like(mine)
        distances.append(torch.linalg.vector_norm(mine - reference).item())
    log.debug("gradient distances for %s: %s", type(block).__name__, distances)
    return distances
