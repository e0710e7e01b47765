"""Optimizer names, their hyper-parameter fields and validation.

This module imports no torch, so the command line and the TUI can list and
check optimizer settings before torch is loaded. `engine.optimizers` builds
the optimizers and re-exports everything defined here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

OPTIMIZER_NAMES: tuple[str, ...] = (
    "sgd",
    "momentum",
    "rmsprop",
    "adam",
    "torch-sgd",
    "torch-momentum",
    "torch-rmsprop",
    "torch-adam",
)


@dataclass(frozen=True)
class HyperParam:
    """One hyper-parameter of an optimizer and the range it accepts.

    `minimum` and `maximum` are None when that side is unbounded;
    `min_inclusive` and `max_inclusive` tell whether the bound itself is valid.
    """

    name: str
    default: float
    minimum: float | None
    maximum: float | None
    min_inclusive: bool
    max_inclusive: bool
    help: str

    def range_text(self) -> str:
        """Return the allowed range in interval notation, for example "(0, inf)"."""
        low = "-inf" if self.minimum is None else f"{self.minimum:g}"
        high = "inf" if self.maximum is None else f"{self.maximum:g}"
        left = "[" if self.minimum is not None and self.min_inclusive else "("
        right = "]" if self.maximum is not None and self.max_inclusive else ")"
        return f"{left}{low}, {high}{right}"

    def check(self, value: object) -> str | None:
        """Check one value against this field.

        Args:
            value: A number, or a string that parses as one (for form input).

        Returns:
            None when the value is valid, else an error message that names the
            field, the value and the allowed range.
        """
        number = _to_float(value)
        if number is None:
            return f"{self.name} must be a number, got {value!r}"
        if math.isnan(number):
            return f"{self.name} must be a number in {self.range_text()}, got nan"
        if self.minimum is not None and (
            number < self.minimum or (number == self.minimum and not self.min_inclusive)
        ):
            return f"{self.name} must be in {self.range_text()}, got {number:g}"
        if self.maximum is not None and (
            number > self.maximum or (number == self.maximum and not self.max_inclusive)
        ):
            return f"{self.name} must be in {self.range_text()}, got {number:g}"
        if math.isinf(number):
            return f"{self.name} must be finite, got {number:g}"
        return None


def _to_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


LEARN_RATE = HyperParam(
    "learn_rate", 1e-3, 0.0, None, False, False, "step size (learning rate), > 0"
)
REG = HyperParam(
    "reg",
    0.0,
    0.0,
    None,
    True,
    False,
    "L2 regularisation strength: reg/2 * ||p||^2 is added to the loss, >= 0",
)
MOMENTUM = HyperParam(
    "momentum", 0.9, 0.0, 1.0, True, False, "velocity decay factor, in [0, 1)"
)
DECAY = HyperParam(
    "decay",
    0.99,
    0.0,
    1.0,
    True,
    False,
    "decay rate of the running mean of squared gradients, in [0, 1)",
)
EPS = HyperParam(
    "eps", 1e-8, 0.0, None, False, False, "small constant for numerical stability, > 0"
)
BETA1 = HyperParam(
    "beta1", 0.9, 0.0, 1.0, True, False, "decay rate of the first moment, in [0, 1)"
)
BETA2 = HyperParam(
    "beta2", 0.999, 0.0, 1.0, True, False, "decay rate of the second moment, in [0, 1)"
)

OPTIMIZER_FIELDS: dict[str, tuple[HyperParam, ...]] = {
    "sgd": (LEARN_RATE, REG),
    "momentum": (LEARN_RATE, REG, MOMENTUM),
    "rmsprop": (LEARN_RATE, REG, DECAY, EPS),
    "adam": (LEARN_RATE, REG, BETA1, BETA2, EPS),
    "torch-sgd": (LEARN_RATE, REG),
    "torch-momentum": (LEARN_RATE, REG, MOMENTUM),
    "torch-rmsprop": (LEARN_RATE, REG, DECAY, EPS),
    "torch-adam": (LEARN_RATE, REG, BETA1, BETA2, EPS),
}


def validate_hyper(name: str, values: dict[str, object]) -> dict[str, str]:
    """Check hyper-parameter values for an optimizer without building it.

    Fields missing from `values` take their defaults and are not reported.

    Args:
        name: One of `OPTIMIZER_NAMES`.
        values: Field name to value (numbers, or strings that parse as numbers).

    Returns:
        Field name to error message; empty when everything is valid. An unknown
        optimizer name is reported under the key "optimizer" and an unknown
        field under its own name.
    """
    if name not in OPTIMIZER_FIELDS:
        allowed = ", ".join(OPTIMIZER_NAMES)
        return {"optimizer": f"unknown optimizer {name!r}; expected one of {allowed}"}
    fields = {field.name: field for field in OPTIMIZER_FIELDS[name]}
    errors: dict[str, str] = {}
    for key, value in values.items():
        field = fields.get(key)
        if field is None:
            allowed = ", ".join(fields)
            errors[key] = (
                f"unknown hyper-parameter {key!r} for optimizer {name!r}; "
                f"expected one of {allowed}"
            )
            continue
        message = field.check(value)
        if message is not None:
            errors[key] = message
    return errors


def resolve_hyper(name: str, values: dict[str, object]) -> dict[str, float]:
    """Fill in defaults and convert hyper-parameter values to floats.

    Args:
        name: One of `OPTIMIZER_NAMES`.
        values: Field name to value; missing fields take their defaults.

    Returns:
        Every field of the optimizer mapped to a float.

    Raises:
        ValueError: When `validate_hyper` reports any error; the message lists
            all of them.
    """
    errors = validate_hyper(name, values)
    if errors:
        raise ValueError("; ".join(errors.values()))
    resolved: dict[str, float] = {}
    for field in OPTIMIZER_FIELDS[name]:
        value = values.get(field.name, field.default)
        number = _to_float(value)
        assert number is not None  # validate_hyper accepted it
        resolved[field.name] = number
    return resolved
