"""Follow a run's metrics.jsonl as the worker appends to it.

``RunMonitor.update`` reads only the bytes added since the last call
(through ``Run.read_metrics(offset)``) and folds the records into a
``RunHistory``:
the per-epoch curves, the train loss of every batch, the latest progress
and a log of what happened. Nothing here imports torch.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.runs import ACTIVE_STATUSES, Run
from tui.plots import format_number

# Statuses that end a run with an error the user must see.
FAILED_STATUSES = ("failed", "diverged", "interrupted")

# Number of recent train batches used for the live samples-per-second rate.
RATE_WINDOW = 50

# Number of log lines kept per run.
LOG_LINES = 500

# Command-line options that engine messages name, such as "Download it with
# --download", and the Train form controls that set the same in the app.
APP_CONTROLS = {
    "--download": "the Download if missing checkbox",
    "--data-dir": "the Data directory field",
}


def describe_status(status: str, reason: str) -> str:
    """Return ``status: reason``, or the reason alone when it starts with the
    status word, such as "stopped at epoch 6" for a stopped run."""
    if not reason:
        return status
    if re.match(rf"{re.escape(status)}\b", reason, flags=re.IGNORECASE):
        return reason
    return f"{status}: {reason}"


def join_choices(choices: Sequence[str]) -> str:
    """Join ``choices`` as a list in a sentence: "a, b or c"."""
    if len(choices) <= 1:
        return "".join(choices)
    return f"{', '.join(choices[:-1])} or {choices[-1]}"


def app_wording(message: str) -> str:
    """Return ``message`` with each option of ``APP_CONTROLS`` replaced by the
    name of its Train form control."""
    for option, control in APP_CONTROLS.items():
        message = re.sub(rf"{re.escape(option)}(?![\w-])", control, message)
    return message


@dataclass
class RunHistory:
    """Everything the Live view shows about one run, built from its records."""

    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    batch_x: list[float] = field(default_factory=list)
    """Position of each train batch in epochs (epoch 3, batch 5 of 10 is 2.5)."""
    batch_loss: list[float] = field(default_factory=list)
    """Train loss of each batch, matching ``batch_x``."""
    num_epochs: int | None = None
    last_batch: dict[str, Any] | None = None
    last_epoch: dict[str, Any] | None = None
    samples_per_second: float | None = None
    device: str | None = None
    memory: str | None = None
    """Accelerator memory in use, as text, when the worker records it."""
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    """The newest log lines (status changes, epoch lines, errors)."""
    log_count: int = 0
    """Number of lines ever added to ``log``, including ones it dropped."""
    _recent: deque[tuple[float, int]] = field(
        default_factory=lambda: deque(maxlen=RATE_WINDOW)
    )

    def add(self, record: dict[str, Any]) -> None:
        """Fold one metrics record into the history."""
        kind = record.get("kind")
        self._note_device(record)
        if kind == "batch":
            self._add_batch(record)
        elif kind == "epoch":
            self._add_epoch(record)
        elif kind == "status":
            self._add_status(record)

    def _note_device(self, record: dict[str, Any]) -> None:
        if record.get("device"):
            self.device = str(record["device"])
        for key in ("cuda_memory", "memory_allocated", "memory"):
            value = record.get(key)
            if value is not None:
                self.memory = format_bytes(value) if _is_number(value) else str(value)
                break

    def _add_batch(self, record: dict[str, Any]) -> None:
        self.last_batch = record
        if record.get("stage") != "train":
            return
        epoch = int(record.get("epoch", 1))
        batch = int(record.get("batch", 1))
        num_batches = max(int(record.get("num_batches") or batch), 1)
        x = epoch - 1 + batch / num_batches
        # A resumed fit repeats the epoch after its last checkpoint, so drop
        # the points that the new ones replace.
        while self.batch_x and self.batch_x[-1] >= x:
            self.batch_x.pop()
            self.batch_loss.pop()
        self.batch_x.append(x)
        self.batch_loss.append(_float(record.get("loss")))
        if "time" in record:
            if self._recent and record["time"] < self._recent[-1][0]:
                self._recent.clear()
            self._recent.append((float(record["time"]), int(record.get("samples", 0))))
            self._update_rate()

    def _update_rate(self) -> None:
        if len(self._recent) < 2:
            return
        seconds = self._recent[-1][0] - self._recent[0][0]
        if seconds <= 0:
            return
        samples = sum(count for _, count in list(self._recent)[1:])
        self.samples_per_second = samples / seconds

    def _add_epoch(self, record: dict[str, Any]) -> None:
        epoch = int(record["epoch"])
        while self.epochs and self.epochs[-1] >= epoch:
            for values in self._epoch_lists():
                values.pop()
        self.epochs.append(epoch)
        self.train_loss.append(_float(record.get("train_loss")))
        self.train_acc.append(_float(record.get("train_acc")))
        self.test_loss.append(_float(record.get("test_loss")))
        self.test_acc.append(_float(record.get("test_acc")))
        self.epoch_seconds.append(_float(record.get("seconds"), 0.0))
        if record.get("num_epochs"):
            self.num_epochs = int(record["num_epochs"])
        if record.get("samples_per_second"):
            self.samples_per_second = float(record["samples_per_second"])
        self.last_epoch = record
        self.note(format_epoch_line(record, self.num_epochs))

    def _epoch_lists(self) -> tuple[list, ...]:
        return (
            self.epochs,
            self.train_loss,
            self.train_acc,
            self.test_loss,
            self.test_acc,
            self.epoch_seconds,
        )

    def _add_status(self, record: dict[str, Any]) -> None:
        # Status changes are logged from run.json (see RunMonitor.update);
        # a metrics status record adds where a fit started or resumed.
        if record.get("num_epochs"):
            self.num_epochs = int(record["num_epochs"])
        start_epoch = record.get("start_epoch")
        if record.get("status") == "running" and isinstance(start_epoch, int):
            # The rate window must not span the pause before a resume.
            self._recent.clear()
            verb = "resumed at" if start_epoch > 1 else "started"
            where = f" on {record['device']}" if record.get("device") else ""
            self.note(f"fit {verb} epoch {start_epoch}{where}")

    def note(self, line: str) -> None:
        """Add one line to the run's log."""
        self.log.append(line)
        self.log_count += 1

    def new_log_lines(self, seen: int) -> list[str]:
        """Return the log lines added after the first ``seen`` ones."""
        new = min(self.log_count - seen, len(self.log))
        return list(self.log)[len(self.log) - new :] if new > 0 else []

    @property
    def best_test_acc(self) -> float | None:
        """Highest test accuracy of any epoch so far, in percent."""
        values = [value for value in self.test_acc if not math.isnan(value)]
        return max(values) if values else None

    def fit_fraction(self) -> float:
        """Fraction of the whole fit done, from 0 to 1."""
        if not self.num_epochs:
            return 0.0
        done = self.epochs[-1] if self.epochs else 0
        batch = self.last_batch
        if batch is not None and int(batch.get("epoch", 0)) == done + 1:
            done += self.epoch_fraction()
        return min(done / self.num_epochs, 1.0)

    def epoch_fraction(self) -> float:
        """Fraction of the train batches of the current epoch done, 0 to 1."""
        batch = self.last_batch
        if batch is None:
            return 0.0
        if batch.get("stage") == "test":
            return 1.0
        num_batches = max(int(batch.get("num_batches") or 1), 1)
        return min(int(batch.get("batch", 0)) / num_batches, 1.0)

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Estimate of the seconds left in the fit, or None before any data.

        The estimate assumes the remaining epochs take as long as the mean
        of the finished ones, and the current one as long as its train
        batches so far suggest when no epoch has finished yet.
        """
        if not self.num_epochs:
            return None
        now = time.time() if now is None else now
        remaining = self.num_epochs - (self.epochs[-1] if self.epochs else 0)
        if remaining <= 0:
            return 0.0
        if self.epoch_seconds:
            mean = sum(self.epoch_seconds) / len(self.epoch_seconds)
            since = 0.0
            if self.last_epoch is not None and "time" in self.last_epoch:
                since = max(now - float(self.last_epoch["time"]), 0.0)
            return max(mean * remaining - since, 0.0)
        fraction = self.epoch_fraction()
        if fraction <= 0 or len(self._recent) < 2:
            return None
        elapsed = self._recent[-1][0] - self._recent[0][0]
        # NOTE: before the first epoch ends, only the last RATE_WINDOW
        # batches are timed, so this estimate is rough for long epochs.
        per_batch = elapsed / (len(self._recent) - 1)
        num_batches = max(int(self.last_batch.get("num_batches") or 1), 1)
        left_in_epoch = num_batches * (1 - fraction)
        return per_batch * (left_in_epoch + num_batches * (remaining - 1))


class RunMonitor:
    """Incremental reader of one run's metrics and status.

    Args:
        run: An ``engine.runs.Run``.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self.offset = 0
        self.history = RunHistory()
        self.status: str = run.status
        self.reason: str = app_wording(run.reason)
        num_epochs = _config_epochs(run.info)
        if num_epochs:
            self.history.num_epochs = num_epochs
        self.history.note(f"status {describe_status(self.status, self.reason)}")

    @property
    def run_id(self) -> str:
        """Id of the followed run."""
        return str(self.run.id)

    @property
    def name(self) -> str:
        """Name of the followed run, or its id when it has none."""
        return self.run.name

    @property
    def active(self) -> bool:
        """True while the run's worker may still append metrics."""
        return self.status in ACTIVE_STATUSES

    def update(self) -> tuple[list[dict[str, Any]], str | None]:
        """Reread the run's status, then read the records added since last time.

        The status is read first: once it reads as ended, every record the
        worker wrote before ending is already in the file.

        Returns:
            The new records (oldest first) and the new status when it
            changed since the last call, else None.

        Raises:
            OSError: If run.json or metrics.jsonl cannot be read (for
                example, the run was deleted).
            ValueError: If run.json is not a JSON object.
        """
        self.run.reload()
        status = self.run.status
        records, self.offset = self.run.read_metrics(self.offset)
        for record in records:
            self.history.add(record)
        if status == self.status:
            return records, None
        self.status = status
        self.reason = app_wording(self.run.reason)
        self.history.note(f"status {describe_status(status, self.reason)}")
        return records, status


def _config_epochs(info: dict[str, Any]) -> int | None:
    training = info.get("config", {}).get("training", {})
    epochs = training.get("epochs")
    return int(epochs) if epochs else None


def _float(value: Any, missing: float = float("nan")) -> float:
    """Return ``value`` as a float, or ``missing`` when it is None or not a number."""
    if value is None:
        return missing
    try:
        return float(value)
    except (TypeError, ValueError):
        return missing


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def format_bytes(count: float) -> str:
    """Format a byte count with a binary unit, such as ``1.5 GiB``."""
    size = float(count)
    if abs(size) < 1024:
        return f"{size:.0f} B"
    for unit in ("KiB", "MiB"):
        size /= 1024
        if abs(size) < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} GiB"


def distinct_names(names: dict[str, str]) -> dict[str, str]:
    """Label runs by name, adding a part of the run id where names collide.

    Args:
        names: run id -> run name.

    Returns:
        Run id -> label. A unique name is its own label. A shared name gets
        the UTC time part of the run id, as in ``adam (101530)`` for the id
        ``20261204-101530-adam``, or the whole id when that time is shared too.
    """
    counts = Counter(names.values())
    labels = {}
    for run_id, name in names.items():
        if counts[name] == 1:
            labels[run_id] = name
            continue
        parts = run_id.split("-")
        time_part = parts[1] if len(parts) > 2 else run_id
        labels[run_id] = f"{name} ({time_part})"
    label_counts = Counter(labels.values())
    for run_id, label in labels.items():
        if label_counts[label] > 1:
            labels[run_id] = f"{names[run_id]} ({run_id})"
    return labels


def format_duration(seconds: float | None) -> str:
    """Format seconds as ``H:MM:SS`` or ``M:SS``; ``-`` for None."""
    if seconds is None:
        return "-"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def format_epoch_line(record: dict[str, Any], num_epochs: int | None) -> str:
    """Format an epoch record as one log line: loss and accuracy per split."""
    total = f"/{num_epochs}" if num_epochs else ""

    def number(key: str, spec: str) -> str:
        value = record.get(key)
        if value is None:
            return "-"
        if spec == "loss":
            return format_number(float(value))
        return format(float(value), spec)

    # Single spaces and "2.0s" keep the line within Live's log pane at 80
    # columns, and a line that wraps all the same keeps each value whole.
    return (
        f"epoch {record.get('epoch')}{total} "
        f"train {number('train_loss', 'loss')} {number('train_acc', '.1f')}% "
        f"test {number('test_loss', 'loss')} {number('test_acc', '.1f')}% "
        f"{number('seconds', '.1f')}s"
    )
