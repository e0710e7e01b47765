"""Learning rate schedules applied by a trainer callback."""

from __future__ import annotations

import math
from typing import Any

from engine.experiments import SCHEDULES
from engine.training import Callback


def scheduled_lr(schedule: str, peak: float, step: int, total_steps: int) -> float:
    """Return the learning rate of training step ``step`` (from 0).

    "onecycle" rises linearly from ``peak / 25`` to ``peak`` over the first
    30% of the steps, then follows a cosine down to ``peak / 25e4``, as
    ``torch.optim.lr_scheduler.OneCycleLR`` of torch 2.14 does with its defaults except
    that its warm-up is a cosine. "cosine" falls from ``peak`` to 0 along a
    half cosine. "constant" returns ``peak``.

    Raises:
        ValueError: for an unknown schedule.
    """
    if schedule == "constant":
        return peak
    fraction = min(max(step / max(total_steps - 1, 1), 0.0), 1.0)
    if schedule == "cosine":
        return peak * 0.5 * (1.0 + math.cos(math.pi * fraction))
    if schedule == "onecycle":
        start, end, warmup = peak / 25.0, peak / 25e4, 0.3
        if fraction < warmup:
            return start + (peak - start) * fraction / warmup
        progress = (fraction - warmup) / (1.0 - warmup)
        return end + (peak - end) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"invalid schedule {schedule!r}; expected one of {SCHEDULES}")


def set_learning_rate(optimizer: Any, value: float) -> None:
    """Set the learning rate of a ``torch.optim`` optimizer or one of ours."""
    if hasattr(optimizer, "param_groups"):
        for group in optimizer.param_groups:
            group["lr"] = value
    else:
        optimizer.learn_rate = value


def get_learning_rate(optimizer: Any) -> float:
    """Return the learning rate of a ``torch.optim`` optimizer or one of ours."""
    if hasattr(optimizer, "param_groups"):
        return float(optimizer.param_groups[0]["lr"])
    return float(optimizer.learn_rate)


class LearningRateSchedule(Callback):
    """A trainer callback that sets the learning rate before every training batch.

    The step count comes from the trainer's epoch and batch numbers, so a
    resumed fit continues the schedule where it stopped.

    Args:
        schedule: one of ``SCHEDULES``.
        peak: the highest learning rate.
        epochs: epochs of the whole fit.
        steps_per_epoch: training batches per epoch.
    """

    def __init__(
        self, schedule: str, peak: float, epochs: int, steps_per_epoch: int
    ) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(
                f"invalid schedule {schedule!r}; expected one of {SCHEDULES}"
            )
        self.schedule = schedule
        self.peak = peak
        self.steps_per_epoch = max(int(steps_per_epoch), 1)
        self.total_steps = max(int(epochs), 1) * self.steps_per_epoch

    def _apply(self, trainer: Any, step: int) -> None:
        value = scheduled_lr(self.schedule, self.peak, step, self.total_steps)
        set_learning_rate(trainer.optimizer, value)

    def on_fit_start(self, trainer: Any) -> None:
        start_epoch = int(getattr(trainer, "start_epoch", 1) or 1)
        # A fit resumed in the middle of an epoch goes on at the next batch.
        start_batch = int(getattr(trainer, "start_batch", 0) or 0)
        self._apply(trainer, (start_epoch - 1) * self.steps_per_epoch + start_batch)

    def on_batch_end(
        self, trainer: Any, stage: str, epoch: int, batch: int, result: Any
    ) -> None:
        if stage == "train":
            self._apply(trainer, (epoch - 1) * self.steps_per_epoch + batch)
