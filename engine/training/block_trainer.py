"""`BlockTrainer`: fits models built from our blocks (no autograd)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from engine.training.results import BatchResult
from engine.training.trainer import Trainer


class BlockTrainer(Trainer):
    """Trainer for a `Block` model with a `Block` loss such as CrossEntropyLoss.

    Inputs are flattened to (N, -1) before the forward pass, so image batches
    of shape (N, C, H, W) feed an MLP directly. Batches are moved to the
    trainer's device, which works for CPU and CUDA tensors alike.

    Args:
        model: The block model; moved with ``model.to(device)`` when a device
            is given. Its (param, grad) tensors keep their identity, so an
            optimizer built from ``model.params()`` before the move stays valid.
        loss_fn: A loss block whose forward(scores, y) returns a 0-dim tensor
            and whose backward() returns the gradient with respect to scores.
        optimizer: An optimizer over ``model.params()``.
        device: None (keep the model where it is), "auto", "cpu", "cuda", ...
    """

    def _move_model(self, device: torch.device) -> None:
        self.model.to(device)

    def _model_device(self) -> torch.device:
        for param, _ in self.model.params():
            return param.device
        return torch.device("cpu")

    def _prepare(self, batch: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch[0], batch[1]
        if x.device != self.device:
            x = x.to(self.device, non_blocking=True)
        if y.device != self.device:
            y = y.to(self.device, non_blocking=True)
        return x.reshape(x.shape[0], -1), y

    def train_batch(self, batch: Sequence[Any]) -> BatchResult:
        x, y = self._prepare(batch)
        self.optimizer.zero_grad()
        scores = self.model(x)
        loss = self.loss_fn(scores, y)
        # The first layer's input gradient is never used, so skip computing it.
        self.model.backward(self.loss_fn.backward(), input_grad=False)
        self.optimizer.step()
        return _batch_result(loss, scores, y)

    def test_batch(self, batch: Sequence[Any]) -> BatchResult:
        x, y = self._prepare(batch)
        scores = self.model(x)
        loss = self.loss_fn(scores, y)
        return _batch_result(loss, scores, y)


def _batch_result(
    loss: torch.Tensor, scores: torch.Tensor, y: torch.Tensor
) -> BatchResult:
    num_correct = (scores.argmax(dim=1) == y).sum()
    return BatchResult(loss.item(), int(num_correct.item()), int(y.shape[0]))
