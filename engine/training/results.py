"""Results of one batch, one epoch and one fit."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STOP_REASONS = ("completed", "early_stopping", "stopped", "diverged")


@dataclass
class BatchResult:
    """Loss and number of correct predictions of one batch.

    Attributes:
        loss: Mean loss over the batch.
        num_correct: Number of samples whose predicted class is the label.
        num_samples: Number of samples in the batch.
    """

    loss: float
    num_correct: int
    num_samples: int = 0


@dataclass
class EpochResult:
    """Per-batch losses and the accuracy of one pass over a data set.

    Attributes:
        losses: Mean loss of each batch, in order.
        accuracy: Correct predictions over all samples seen, in percent.
        num_samples: Number of samples seen.
        seconds: Wall time of the pass.
    """

    losses: list[float]
    accuracy: float
    num_samples: int = 0
    seconds: float = 0.0

    @property
    def mean_loss(self) -> float:
        """Mean of the batch losses (nan for an empty pass)."""
        if not self.losses:
            return float("nan")
        return sum(self.losses) / len(self.losses)


@dataclass
class FitResult:
    """History of a fit.

    The first five fields are the classic course results: losses per batch
    (all epochs concatenated) and accuracies per epoch, in percent.

    Attributes:
        num_epochs: Number of completed epochs.
        train_loss: Training loss of every batch.
        train_acc: Training accuracy of every epoch.
        test_loss: Test loss of every batch.
        test_acc: Test accuracy of every epoch.
        best_epoch: Epoch (from 1) with the highest test accuracy.
        best_test_acc: That highest test accuracy.
        epoch_seconds: Wall time of every epoch (training plus test pass).
        stop_reason: One of "completed", "early_stopping", "stopped" and
            "diverged".
        message: Human-readable detail on why the fit stopped.
    """

    num_epochs: int
    train_loss: list[float]
    train_acc: list[float]
    test_loss: list[float]
    test_acc: list[float]
    best_epoch: int | None = None
    best_test_acc: float | None = None
    epoch_seconds: list[float] = field(default_factory=list)
    stop_reason: str = "completed"
    message: str = ""

    def course_dict(self) -> dict[str, Any]:
        """Return only the five course fields, as plain lists and numbers."""
        return {
            "num_epochs": self.num_epochs,
            "train_loss": list(self.train_loss),
            "train_acc": list(self.train_acc),
            "test_loss": list(self.test_loss),
            "test_acc": list(self.test_acc),
        }

    def to_dict(self) -> dict[str, Any]:
        """Return every field as plain lists, numbers and strings."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitResult:
        """Build a result from the output of `to_dict`.

        Raises:
            ValueError: If a course field is missing or the stop reason is
                unknown.
        """
        missing = [key for key in cls.empty().course_dict() if key not in data]
        if missing:
            raise ValueError(f"fit result is missing the fields {missing}")
        known = {key: value for key, value in data.items() if key in _FIELD_NAMES}
        result = cls(**known)
        if result.stop_reason not in STOP_REASONS:
            raise ValueError(
                f"invalid stop_reason {result.stop_reason!r}; "
                f"expected one of {STOP_REASONS}"
            )
        return result

    @classmethod
    def empty(cls) -> FitResult:
        """Return the result of a fit that has run no epoch yet."""
        return cls(num_epochs=0, train_loss=[], train_acc=[], test_loss=[], test_acc=[])


_FIELD_NAMES = frozenset(FitResult.__dataclass_fields__)
