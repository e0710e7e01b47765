"""The `Trainer` base: the fit loop, early stopping, checkpoints and resume."""

from __future__ import annotations

import abc
import contextlib
import itertools
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.training.callbacks import Callback, ProgressCallback
from engine.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    checkpoint_paths,
    load_checkpoint,
    save_checkpoint,
)
from engine.training.results import BatchResult, EpochResult, FitResult
from engine.training.rng import capture_rng_state, restore_rng_state

log = logging.getLogger(__name__)

STAGES = ("train", "test")


def resolve_device(device: str | torch.device | None) -> torch.device | None:
    """Turn a device request into a `torch.device`.

    Args:
        device: None (keep the model where it is), "auto" (CUDA when
            available, else CPU), or anything `torch.device` accepts.

    Returns:
        The device, or None for None.

    Raises:
        ValueError: If the name is invalid or CUDA is requested but missing.
    """
    if device is None:
        return None
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"invalid device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} requested but CUDA is not available; "
            "use 'cpu' or 'auto'"
        )
    return resolved


@dataclass
class _Stage:
    """Progress of one pass over a loader; a checkpoint stores it mid-pass."""

    stage: str
    losses: list[float] = field(default_factory=list)
    num_correct: int = 0
    num_samples: int = 0
    seconds: float = 0.0
    rng_start: dict[str, Any] | None = None
    # Set when the pass ended early: "stopped" or "diverged".
    outcome: str | None = None

    def epoch_result(self) -> EpochResult:
        accuracy = (
            100.0 * self.num_correct / self.num_samples if self.num_samples else 0.0
        )
        return EpochResult(
            losses=list(self.losses),
            accuracy=accuracy,
            num_samples=self.num_samples,
            seconds=self.seconds,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "losses": list(self.losses),
            "num_correct": self.num_correct,
            "num_samples": self.num_samples,
            "seconds": self.seconds,
            "rng_start": self.rng_start,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _Stage:
        return cls(
            stage=data["stage"],
            losses=list(data["losses"]),
            num_correct=int(data["num_correct"]),
            num_samples=int(data["num_samples"]),
            seconds=float(data["seconds"]),
            rng_start=data["rng_start"],
        )


@dataclass
class _FitState:
    """Everything beyond model and optimizer that a resumed fit needs."""

    result: FitResult
    best_test_loss: float = math.inf
    epochs_without_improvement: int = 0
    # A stage cut short by request_stop, with the finished training pass of
    # that epoch when the cut came in the test pass.
    partial: _Stage | None = None
    partial_train: EpochResult | None = None


class Trainer(abc.ABC):
    """Base class that fits a model with a loss function and an optimizer.

    Subclasses implement `train_batch` and `test_batch` for one kind of
    model. During a fit these attributes are kept current for callbacks:
    `epoch` (from 1), `num_epochs`, `start_epoch`, `start_batch` (training
    batches of `start_epoch` done before a resumed fit, else 0), `stage`
    ("train" or "test"), `num_batches` (of the current stage), `device` and
    `best_test_acc`.

    Args:
        model: The model to train.
        loss_fn: The loss function.
        optimizer: An optimizer over the model's parameters.
        device: Where to train: None keeps the model where it is, "auto"
            picks CUDA when available, else any `torch.device` value.
    """

    def __init__(
        self,
        model: Any,
        loss_fn: Any,
        optimizer: Any,
        device: str | torch.device | None = None,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        requested = resolve_device(device)
        if requested is not None:
            self._move_model(requested)
        self.device: torch.device = requested or self._model_device()
        self.epoch = 0
        self.num_epochs = 0
        self.start_epoch = 1
        self.start_batch = 0
        self.stage: str | None = None
        self.num_batches = 0
        self.best_test_acc: float | None = None
        # A plain attribute write, so request_stop is safe in a signal handler.
        self._stop_requested = False

    # --- subclass interface -------------------------------------------------

    @abc.abstractmethod
    def train_batch(self, batch: Sequence[torch.Tensor]) -> BatchResult:
        """Run forward, backward and an optimizer step on one batch.

        Args:
            batch: An (inputs, labels) pair.

        Returns:
            The batch's loss and number of correct predictions.
        """

    @abc.abstractmethod
    def test_batch(self, batch: Sequence[torch.Tensor]) -> BatchResult:
        """Evaluate one batch without updating the model.

        Args:
            batch: An (inputs, labels) pair.

        Returns:
            The batch's loss and number of correct predictions.
        """

    @abc.abstractmethod
    def _move_model(self, device: torch.device) -> None:
        """Move the model's parameters to `device`."""

    @abc.abstractmethod
    def _model_device(self) -> torch.device:
        """Return the device of the model's parameters."""

    def _set_training(self, mode: bool) -> None:
        self.model.train(mode)

    def _no_grad_context(self) -> contextlib.AbstractContextManager[Any]:
        return torch.no_grad()

    # --- state --------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Return the model and optimizer states."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load model and optimizer states returned by `state_dict`."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    def request_stop(self) -> None:
        """Ask the running fit to stop after the current batch.

        Only sets a flag, so it is safe from another thread or a signal
        handler. The fit writes a last checkpoint (when checkpoints are on)
        and returns with stop_reason "stopped".
        """
        self._stop_requested = True

    @property
    def stop_requested(self) -> bool:
        """Whether `request_stop` was called since the last fit ended."""
        return self._stop_requested

    # --- epochs -------------------------------------------------------------

    def train_epoch(
        self, dl_train: Iterable[Any], max_batches: int | None = None
    ) -> EpochResult:
        """Train for one pass over a loader.

        Args:
            dl_train: Loader of (inputs, labels) batches.
            max_batches: Stop after this many batches.

        Returns:
            The per-batch losses and the accuracy.
        """
        return self._run_stage("train", dl_train, max_batches, ()).epoch_result()

    def test_epoch(
        self, dl_test: Iterable[Any], max_batches: int | None = None
    ) -> EpochResult:
        """Evaluate one pass over a loader.

        Args:
            dl_test: Loader of (inputs, labels) batches.
            max_batches: Stop after this many batches.

        Returns:
            The per-batch losses and the accuracy.
        """
        return self._run_stage("test", dl_test, max_batches, ()).epoch_result()

    def _run_stage(
        self,
        stage: str,
        loader: Iterable[Any],
        max_batches: int | None,
        callbacks: Sequence[Callback],
        resume_from: _Stage | None = None,
        rng_now: dict[str, Any] | None = None,
        track_rng: bool = False,
    ) -> _Stage:
        """Run one pass, stopping early on request_stop or a non-finite loss.

        A pass resumed from a checkpoint first restores the generator states
        from the start of the interrupted pass and draws (and drops) the
        batches already trained on. Then it restores the states saved at the
        interruption. So the remaining batches and dropout masks equal those
        of an uninterrupted pass.
        """
        self.stage = stage
        self.num_batches = _num_batches(loader, max_batches)
        self._set_training(stage == "train")
        step = self.train_batch if stage == "train" else self.test_batch
        batch_callbacks = [cb for cb in callbacks if _overrides(cb, "on_batch_end")]

        if resume_from is not None:
            run = resume_from
            restore_rng_state(run.rng_start)
        else:
            run = _Stage(stage, rng_start=capture_rng_state() if track_rng else None)
        batch_index = len(run.losses)
        remaining = None if max_batches is None else max(max_batches - batch_index, 0)
        iterator = iter(loader)
        for _ in range(batch_index):
            next(iterator)
        if rng_now is not None:
            restore_rng_state(rng_now)

        started = time.perf_counter() - run.seconds
        context = (
            self._no_grad_context() if stage == "test" else contextlib.nullcontext()
        )
        with context:
            for batch in itertools.islice(iterator, remaining):
                batch_index += 1
                result = step(batch)
                run.losses.append(result.loss)
                run.num_correct += result.num_correct
                run.num_samples += result.num_samples or _batch_size(batch)
                for callback in batch_callbacks:
                    callback.on_batch_end(self, stage, self.epoch, batch_index, result)
                if not math.isfinite(result.loss):
                    run.outcome = "diverged"
                    break
                if self._stop_requested:
                    run.outcome = "stopped"
                    break
        run.seconds = time.perf_counter() - started
        return run

    # --- fit ----------------------------------------------------------------

    def fit(
        self,
        dl_train: Iterable[Any],
        dl_test: Iterable[Any],
        num_epochs: int,
        checkpoints: str | os.PathLike[str] | None = None,
        early_stopping: int | None = None,
        print_every: int = 1,
        max_batches: int | None = None,
        callbacks: Sequence[Callback] = (),
        resume: bool = False,
        progress: bool | None = None,
    ) -> FitResult:
        """Train for `num_epochs` epochs, evaluating after each one.

        Args:
            dl_train: Loader of training batches. A loader with
                ``set_epoch(epoch)`` has it called before each epoch.
            dl_test: Loader of test batches.
            num_epochs: Number of epochs in total (including epochs done
                before a resume).
            checkpoints: File path P. The model with the best test accuracy
                is written to P (".pt" added when P has no suffix) and the
                state after the latest epoch to P with ".last" before the
                suffix, both atomically.
            early_stopping: Stop after this many epochs in a row without a
                lower mean test loss; None never stops early.
            print_every: Print progress every this many epochs; 0 prints
                nothing.
            max_batches: Use at most this many batches per epoch, in both
                the training and the test pass.
            callbacks: Callbacks to run, in order, after the progress output.
            resume: Continue from the last checkpoint at `checkpoints` when
                it exists (from epoch 1 when it does not).
            progress: True for a progress bar, False for one plain line per
                epoch, None for a bar only when stdout is a terminal.

        Returns:
            The history of the fit, including epochs restored on resume.

        Raises:
            ValueError: If an argument is out of range, or `resume` is set
                without `checkpoints`.
            CheckpointError: If the last checkpoint cannot be read.
        """
        _check_fit_args(num_epochs, early_stopping, print_every, max_batches)
        if resume and checkpoints is None:
            raise ValueError("resume=True needs the checkpoints path to resume from")
        best_path = last_path = None
        if checkpoints is not None:
            best_path, last_path = checkpoint_paths(checkpoints)

        state, rng_now = self._initial_state(last_path if resume else None)
        all_callbacks: list[Callback] = []
        if print_every > 0:
            all_callbacks.append(
                ProgressCallback(print_every=print_every, bar=progress)
            )
        all_callbacks.extend(callbacks)

        self.num_epochs = num_epochs
        self.start_epoch = state.result.num_epochs + 1
        self.start_batch = _train_batches_done(state)
        self.epoch = state.result.num_epochs
        self.best_test_acc = state.result.best_test_acc
        try:
            for callback in all_callbacks:
                callback.on_fit_start(self)
            if rng_now is not None and state.partial is None:
                restore_rng_state(rng_now)
            self._fit_epochs(
                state,
                dl_train,
                dl_test,
                early_stopping,
                max_batches,
                all_callbacks,
                best_path,
                last_path,
                rng_now,
            )
        except BaseException as error:
            for callback in all_callbacks:
                callback.on_exception(self, error)
            raise
        finally:
            self._stop_requested = False
            self.stage = None
        for callback in all_callbacks:
            callback.on_fit_end(self, state.result)
        return state.result

    def _initial_state(
        self, last_path: Path | None
    ) -> tuple[_FitState, dict[str, Any] | None]:
        if last_path is None:
            return _FitState(result=FitResult.empty()), None
        if not last_path.exists():
            log.info("no checkpoint at %s; starting from epoch 1", last_path)
            return _FitState(result=FitResult.empty()), None
        checkpoint = load_checkpoint(last_path, map_location=self.device)
        self.load_state_dict(checkpoint)
        partial = checkpoint.get("partial")
        partial_train = checkpoint.get("partial_train")
        result = FitResult.from_dict(checkpoint["result"])
        # The resumed fit decides its own stop reason.
        result.stop_reason, result.message = "completed", ""
        state = _FitState(
            result=result,
            best_test_loss=float(checkpoint["best_test_loss"]),
            epochs_without_improvement=int(checkpoint["epochs_without_improvement"]),
            partial=_Stage.from_dict(partial) if partial else None,
            partial_train=EpochResult(**partial_train) if partial_train else None,
        )
        log.info("resuming from %s after epoch %d", last_path, state.result.num_epochs)
        return state, checkpoint["rng"]

    def _fit_epochs(
        self,
        state: _FitState,
        dl_train: Iterable[Any],
        dl_test: Iterable[Any],
        early_stopping: int | None,
        max_batches: int | None,
        callbacks: Sequence[Callback],
        best_path: Path | None,
        last_path: Path | None,
        rng_now: dict[str, Any] | None,
    ) -> None:
        result = state.result
        track_rng = last_path is not None
        for epoch in range(result.num_epochs + 1, self.num_epochs + 1):
            if _patience_spent(state, early_stopping):
                _mark_early_stop(result, epoch - 1, early_stopping)
                return
            if self._stop_requested:
                self._stop(state, epoch, None, last_path)
                return
            self.epoch = epoch
            _set_epoch(dl_train, epoch)
            _set_epoch(dl_test, epoch)

            partial, state.partial = state.partial, None
            train_partial = partial if partial and partial.stage == "train" else None
            if partial is not None and partial.stage == "test":
                train_result = state.partial_train
            else:
                train_run = self._run_stage(
                    "train",
                    dl_train,
                    max_batches,
                    callbacks,
                    resume_from=train_partial,
                    rng_now=rng_now if train_partial else None,
                    track_rng=track_rng,
                )
                if train_run.outcome is not None:
                    self._end_early(state, epoch, train_run, None, last_path)
                    return
                train_result = train_run.epoch_result()
            test_partial = partial if partial and partial.stage == "test" else None
            test_run = self._run_stage(
                "test",
                dl_test,
                max_batches,
                callbacks,
                resume_from=test_partial,
                rng_now=rng_now if test_partial else None,
                track_rng=track_rng,
            )
            if test_run.outcome is not None:
                self._end_early(state, epoch, test_run, train_result, last_path)
                return
            test_result = test_run.epoch_result()

            improved = self._record_epoch(state, train_result, test_result)
            if best_path is not None and improved:
                self._save(best_path, "best", state)
            # Callbacks run before the last checkpoint is written: a process
            # killed in between resumes at this epoch and trains it again, so
            # what a callback records of an epoch is never skipped.
            for callback in callbacks:
                callback.on_epoch_end(self, epoch, train_result, test_result)
            if last_path is not None:
                self._save(last_path, "last", state)
            if _patience_spent(state, early_stopping):
                _mark_early_stop(result, epoch, early_stopping)
                return

    def _record_epoch(
        self, state: _FitState, train_result: EpochResult, test_result: EpochResult
    ) -> bool:
        """Append an epoch to the result; return whether its accuracy is best."""
        result = state.result
        result.num_epochs += 1
        result.train_loss.extend(train_result.losses)
        result.train_acc.append(train_result.accuracy)
        result.test_loss.extend(test_result.losses)
        result.test_acc.append(test_result.accuracy)
        result.epoch_seconds.append(train_result.seconds + test_result.seconds)

        test_loss = test_result.mean_loss
        if test_loss < state.best_test_loss:
            state.best_test_loss = test_loss
            state.epochs_without_improvement = 0
        else:
            state.epochs_without_improvement += 1

        improved = (
            result.best_test_acc is None or test_result.accuracy > result.best_test_acc
        )
        if improved:
            result.best_test_acc = test_result.accuracy
            result.best_epoch = result.num_epochs
            self.best_test_acc = test_result.accuracy
        return improved

    def _end_early(
        self,
        state: _FitState,
        epoch: int,
        run: _Stage,
        train_result: EpochResult | None,
        last_path: Path | None,
    ) -> None:
        batch = len(run.losses)
        if run.outcome == "diverged":
            # The weights are garbage now; the checkpoints keep the state from
            # before this epoch.
            state.result.stop_reason = "diverged"
            state.result.message = (
                f"diverged at epoch {epoch}, batch {batch} (loss {run.losses[-1]})"
            )
            log.warning("%s", state.result.message)
            return
        state.partial = run
        state.partial_train = train_result
        self._stop(state, epoch, f"{run.stage} batch {batch}", last_path)

    def _stop(
        self, state: _FitState, epoch: int, where: str | None, last_path: Path | None
    ) -> None:
        state.result.stop_reason = "stopped"
        if where is None:
            state.result.message = f"stopped before epoch {epoch}"
        else:
            state.result.message = f"stopped at epoch {epoch}, {where}"
        if last_path is not None:
            self._save(last_path, "last", state)
        log.info("%s", state.result.message)

    def _save(self, path: Path, kind: str, state: _FitState) -> None:
        partial = state.partial if kind == "last" else None
        partial_train = state.partial_train if partial is not None else None
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "kind": kind,
            "epoch": state.result.num_epochs,
            "num_epochs": self.num_epochs,
            **self.state_dict(),
            "result": state.result.to_dict(),
            "best_test_acc": state.result.best_test_acc,
            "best_test_loss": state.best_test_loss,
            "epochs_without_improvement": state.epochs_without_improvement,
            "partial": partial.to_dict() if partial is not None else None,
            "partial_train": vars(partial_train) if partial_train is not None else None,
            "rng": capture_rng_state(),
        }
        save_checkpoint(path, checkpoint)


def _patience_spent(state: _FitState, early_stopping: int | None) -> bool:
    return (
        early_stopping is not None
        and state.epochs_without_improvement >= early_stopping
    )


def _train_batches_done(state: _FitState) -> int:
    """Return how many training batches of the next epoch the checkpoint ran."""
    if state.partial is None:
        return 0
    if state.partial.stage == "train":
        return len(state.partial.losses)
    return len(state.partial_train.losses) if state.partial_train else 0


def _mark_early_stop(result: FitResult, epoch: int, early_stopping: int | None) -> None:
    result.stop_reason = "early_stopping"
    unit = "epoch" if early_stopping == 1 else "epochs"
    # Short enough for one line of the app's Live pane at 80 columns.
    result.message = (
        f"early stop at epoch {epoch}: no lower test loss for {early_stopping} {unit}"
    )


def _check_fit_args(
    num_epochs: int,
    early_stopping: int | None,
    print_every: int,
    max_batches: int | None,
) -> None:
    if num_epochs < 1:
        raise ValueError(f"num_epochs must be at least 1, got {num_epochs}")
    if early_stopping is not None and early_stopping < 1:
        raise ValueError(
            f"early_stopping must be None or at least 1 epoch, got {early_stopping}"
        )
    if print_every < 0:
        raise ValueError(f"print_every must be 0 (silent) or more, got {print_every}")
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"max_batches must be None or at least 1, got {max_batches}")


def _num_batches(loader: Iterable[Any], max_batches: int | None) -> int:
    """Return the number of batches a pass yields, or 0 when unknown."""
    try:
        count = len(loader)  # type: ignore[arg-type]
    except TypeError:
        return max_batches or 0
    return count if max_batches is None else min(count, max_batches)


def _batch_size(batch: Sequence[torch.Tensor]) -> int:
    return int(batch[0].shape[0])


def _set_epoch(loader: Iterable[Any], epoch: int) -> None:
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
        return
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def _overrides(callback: Callback, hook: str) -> bool:
    return getattr(type(callback), hook) is not getattr(Callback, hook)
