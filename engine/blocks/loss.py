"""Cross-entropy loss on class scores."""

from __future__ import annotations

import torch
from torch import Tensor

from engine.blocks.base import Block, check_cache, check_tensor


class CrossEntropyLoss(Block):
    """Mean cross-entropy of softmax(scores) against integer labels.

    Equal to ``torch.nn.functional.cross_entropy(x, y)``. The log-softmax is
    computed with the row maximum subtracted first (inside
    ``torch.log_softmax``), so scores of 1e4 or -1e4 give finite values and
    gradients.
    """

    is_loss = True

    def __init__(self) -> None:
        super().__init__()
        self._logp: Tensor | None = None
        self._y: Tensor | None = None

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Return the mean loss as a 0-dim tensor.

        Args:
            x: Scores of shape (N, C), float32 or float64.
            y: Labels of shape (N,), an integer tensor with values in [0, C).

        Raises:
            TypeError: If ``x`` is not floating-point or ``y`` not integer.
            ValueError: If the shapes disagree or a label is out of range.
        """
        check_tensor(self, "scores", x)
        if y is None:
            raise ValueError(
                "CrossEntropyLoss: labels are missing; call forward(scores, y), "
                "or pass y= to the Sequential that ends in this loss"
            )
        if x.dim() != 2 or x.shape[0] == 0:
            raise ValueError(
                f"CrossEntropyLoss: scores must have shape (N, C) with N >= 1, "
                f"got {tuple(x.shape)}"
            )
        y = self._check_labels(x, y)
        logp = torch.log_softmax(x, dim=1)
        self._logp = logp
        self._y = y.unsqueeze(1)
        return -logp.gather(1, self._y).mean()

    def _check_labels(self, x: Tensor, y: Tensor) -> Tensor:
        num_classes = x.shape[1]
        if not isinstance(y, Tensor) or y.is_floating_point() or y.is_complex():
            kind = y.dtype if isinstance(y, Tensor) else type(y).__name__
            raise TypeError(
                f"CrossEntropyLoss: labels must be an integer tensor, got {kind}"
            )
        if y.dtype == torch.bool:
            raise TypeError("CrossEntropyLoss: labels must be integers, got torch.bool")
        if y.shape != (x.shape[0],):
            raise ValueError(
                f"CrossEntropyLoss: labels must have shape ({x.shape[0]},) to match "
                f"scores {tuple(x.shape)}, got {tuple(y.shape)}"
            )
        low, high = torch.aminmax(y)
        low, high = int(low), int(high)
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ValueError(
                f"CrossEntropyLoss: label {bad} is out of range for {num_classes} "
                f"classes (allowed: 0 to {num_classes - 1})"
            )
        return y.to(device=x.device, dtype=torch.int64)

    def backward(
        self, dout: Tensor | float = 1.0, *, input_grad: bool = True
    ) -> Tensor:
        """Return ``dout * (softmax(x) - onehot(y)) / N``, the gradient of the loss.

        Args:
            dout: Gradient with respect to the loss, a number or 0-dim tensor.
        """
        check_cache(self, self._logp)
        if isinstance(dout, Tensor) and dout.numel() != 1:
            raise ValueError(
                "CrossEntropyLoss.backward: dout must be a number or a 0-dim "
                f"tensor, got shape {tuple(dout.shape)}"
            )
        logp, y = self._logp, self._y
        dx = logp.exp()
        dx.scatter_add_(
            1, y, torch.full(y.shape, -1.0, dtype=dx.dtype, device=dx.device)
        )
        return dx.mul_(dout / logp.shape[0])
