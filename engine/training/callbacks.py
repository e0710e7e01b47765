"""Callbacks: hooks a `Trainer` calls while it fits, and the progress output."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from engine.training.results import BatchResult, EpochResult, FitResult

if TYPE_CHECKING:
    from engine.training.trainer import Trainer

log = logging.getLogger(__name__)


class Callback:
    """Base class with no-op hooks; override the ones you need.

    Epochs and batches are numbered from 1. Hooks run in the training thread,
    so slow work in `on_batch_end` slows every batch down.
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        """Run once before the first epoch (also when a fit resumes)."""

    def on_batch_end(
        self,
        trainer: Trainer,
        stage: str,
        epoch: int,
        batch: int,
        result: BatchResult,
    ) -> None:
        """Run after each batch; `stage` is "train" or "test"."""

    def on_epoch_end(
        self,
        trainer: Trainer,
        epoch: int,
        train_result: EpochResult,
        test_result: EpochResult,
    ) -> None:
        """Run after the test pass of each completed epoch."""

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        """Run once when the fit ends, for any stop reason."""

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        """Run when an exception (including KeyboardInterrupt) ends the fit."""


def format_epoch_line(
    epoch: int,
    num_epochs: int,
    train_result: EpochResult,
    test_result: EpochResult,
    seconds: float,
) -> str:
    """Return the one-line summary of an epoch that progress output prints."""
    return (
        f"epoch {epoch}/{num_epochs}"
        f"  train loss {train_result.mean_loss:.4f} acc {train_result.accuracy:6.2f}%"
        f"  test loss {test_result.mean_loss:.4f} acc {test_result.accuracy:6.2f}%"
        f"  {seconds:.2f} s"
    )


class ProgressCallback(Callback):
    """Progress output: a rich progress bar, or one plain line per epoch.

    Args:
        stream: Where to write; defaults to sys.stdout at fit start.
        print_every: Print the epoch line every this many epochs (the last
            epoch is always printed).
        bar: True for a progress bar, False for plain lines, None for a bar
            only when the stream is a terminal.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        print_every: int = 1,
        bar: bool | None = None,
    ) -> None:
        if print_every < 1:
            raise ValueError(f"print_every must be at least 1, got {print_every}")
        self.stream = stream
        self.print_every = print_every
        self.bar = bar
        self._progress: Any = None
        self._task: Any = None
        self._stage: str | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        self._out = stream
        use_bar = self.bar if self.bar is not None else _is_terminal(stream)
        if use_bar:
            self._start_bar(stream)
        if trainer.start_epoch > 1:
            self._write(f"resuming at epoch {trainer.start_epoch}/{trainer.num_epochs}")

    def on_batch_end(
        self,
        trainer: Trainer,
        stage: str,
        epoch: int,
        batch: int,
        result: BatchResult,
    ) -> None:
        if self._progress is None:
            return
        if stage != self._stage or batch == 1:
            self._stage = stage
            self._progress.reset(
                self._task,
                total=trainer.num_batches or None,
                completed=batch - 1,
                description=f"epoch {epoch}/{trainer.num_epochs} {stage}",
            )
        self._progress.update(self._task, completed=batch, loss=result.loss)

    def on_epoch_end(
        self,
        trainer: Trainer,
        epoch: int,
        train_result: EpochResult,
        test_result: EpochResult,
    ) -> None:
        if epoch % self.print_every and epoch != trainer.num_epochs:
            return
        seconds = train_result.seconds + test_result.seconds
        self._write(
            format_epoch_line(
                epoch, trainer.num_epochs, train_result, test_result, seconds
            )
        )

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        self._stop_bar()
        if result.stop_reason != "completed" and result.message:
            self._write(result.message)

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._stop_bar()

    def _start_bar(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = Console(file=stream)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
        )
        self._task = self._progress.add_task("starting", total=None, loss=float("nan"))
        self._stage = None
        self._progress.start()

    def _stop_bar(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _write(self, line: str) -> None:
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False)
            return
        self._out.write(line + "\n")
        self._out.flush()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class StopOnSignal(Callback):
    """Turn signals into `Trainer.request_stop` for the duration of a fit.

    The first signal requests that the trainer stop after the current batch (with a
    checkpoint when checkpoints are on); a second one raises
    KeyboardInterrupt at once. The previous handlers come back when the fit
    ends. Handlers can only be installed from the main thread, so in another
    thread this callback does nothing.

    Args:
        signals: The signals to handle, by default SIGINT (Ctrl-C) and SIGTERM.
    """

    def __init__(
        self, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)
    ) -> None:
        self.signals = tuple(signals)
        self.received: int | None = None
        self._trainer: Trainer | None = None
        self._previous: dict[int, Any] = {}

    def on_fit_start(self, trainer: Trainer) -> None:
        if threading.current_thread() is not threading.main_thread():
            log.debug("not in the main thread; signal handlers left alone")
            return
        self._trainer = trainer
        self.received = None
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        self._restore()

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._restore()

    def _handle(self, signum: int, frame: Any) -> None:
        # Only flag writes here: locks (logging, print) could deadlock.
        if self.received is not None or self._trainer is None:
            raise KeyboardInterrupt
        self.received = signum
        self._trainer.request_stop()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        self._trainer = None
