"""`TorchTrainer`: fits any `torch.nn.Module` with autograd."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from engine.training.block_trainer import _batch_result
from engine.training.results import BatchResult
from engine.training.trainer import Trainer

AMP_MODES = ("auto", "bf16", "off")
CHANNELS_LAST_MODES = ("auto", "on", "off")


class TorchTrainer(Trainer):
    """Trainer for a `torch.nn.Module`, with our optimizers or `torch.optim`.

    Args:
        model: The module; moved to `device` when one is given.
        loss_fn: Callable (scores, y) -> 0-dim loss, such as
            ``nn.CrossEntropyLoss()``.
        optimizer: An optimizer over ``model.parameters()``: one of ours or
            a ``torch.optim.Optimizer``.
        device: None (keep the model where it is), "auto", "cpu", "cuda", ...
        amp: "auto" uses bfloat16 autocast on CUDA and none elsewhere, "bf16"
            requires CUDA, "off" (or False) never autocasts.
        channels_last: "auto" uses the channels-last memory format for the
            model and 4-d inputs on CUDA only, "on" (or True) uses it on any
            device, "off" (or False) never does. On a 2-core CPU, "on" made a
            residual CIFAR-10 network step about 1.3x to 1.5x faster.

    Raises:
        ValueError: If amp or channels_last is not a known mode, or amp is
            "bf16" on a device other than CUDA.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        optimizer: Any,
        device: str | torch.device | None = None,
        amp: str | bool = "auto",
        channels_last: str | bool = "auto",
    ) -> None:
        super().__init__(model, loss_fn, optimizer, device)
        on_cuda = self.device.type == "cuda"
        self.amp = _cuda_option("amp", amp, AMP_MODES, "bf16", on_cuda)
        self.channels_last = _cuda_option(
            "channels_last",
            channels_last,
            CHANNELS_LAST_MODES,
            "on",
            on_cuda,
            cuda_only=False,
        )
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)

    def _move_model(self, device: torch.device) -> None:
        self.model.to(device)

    def _model_device(self) -> torch.device:
        for param in self.model.parameters():
            return param.device
        return torch.device("cpu")

    def _prepare(self, batch: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch[0], batch[1]
        # Comparing devices is cheaper than a no-op .to(), which adds up on
        # small batches.
        if x.device != self.device:
            x = x.to(self.device, non_blocking=True)
        if y.device != self.device:
            y = y.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def _forward(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.amp:
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                scores = self.model(x)
                return scores, self.loss_fn(scores, y)
        scores = self.model(x)
        return scores, self.loss_fn(scores, y)

    def train_batch(self, batch: Sequence[Any]) -> BatchResult:
        x, y = self._prepare(batch)
        self.optimizer.zero_grad()
        scores, loss = self._forward(x, y)
        loss.backward()
        self.optimizer.step()
        return _batch_result(loss, scores, y)

    def test_batch(self, batch: Sequence[Any]) -> BatchResult:
        x, y = self._prepare(batch)
        scores, loss = self._forward(x, y)
        return _batch_result(loss, scores, y)


def _cuda_option(
    name: str,
    value: str | bool,
    modes: tuple[str, ...],
    forced: str,
    on_cuda: bool,
    cuda_only: bool = True,
) -> bool:
    """Resolve an "auto"/forced/"off" option whose "auto" means CUDA only.

    With ``cuda_only`` the forced mode is rejected on other devices too.
    """
    if value is True:
        value = forced
    elif value is False or value is None:
        value = "off"
    if value not in modes:
        raise ValueError(f"invalid {name} {value!r}; expected one of {modes}")
    if value == forced and cuda_only and not on_cuda:
        raise ValueError(
            f"{name}={forced!r} needs a CUDA device; use {name}='auto' or 'off' here"
        )
    return value == forced or (value == "auto" and on_cuda)
