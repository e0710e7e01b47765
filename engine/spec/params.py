"""Typed layer parameters: their description, value checks and text parsing."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

PARAM_KINDS = ("int", "float", "bool", "choice", "int_list")

_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


@dataclass(frozen=True)
class ParamSpec:
    """Description of one layer parameter, enough to render and check a form field.

    A required parameter still has a ``default``: the value a new layer starts
    with. A parameter whose default is None may be left as None, with the
    meaning that ``help`` gives (for example a pool stride equal to its
    kernel size).
    ``minimum`` and ``maximum`` bound an int or float, and each entry of an
    int list, which has at least ``min_length`` entries. ``backends`` names
    the backends that read the parameter; the others ignore it while it keeps
    its default.
    """

    name: str
    kind: str
    default: Any = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""
    min_inclusive: bool = True
    max_inclusive: bool = True
    backends: tuple[str, ...] = ("blocks", "torch")
    min_length: int = 1

    def range_text(self) -> str:
        """Return the allowed range in interval notation, e.g. "[0, 1)"."""
        low = "-inf" if self.minimum is None else _format_number(self.minimum)
        high = "inf" if self.maximum is None else _format_number(self.maximum)
        left = "[" if self.min_inclusive and self.minimum is not None else "("
        right = "]" if self.max_inclusive and self.maximum is not None else ")"
        return f"{left}{low}, {high}{right}"

    def allowed_text(self) -> str:
        """Return a short phrase for the values this parameter accepts."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        noun = {"int": "an integer", "float": "a number"}.get(
            self.kind, "a list of integers"
        )
        if self.minimum is None and self.maximum is None:
            return noun
        if self.kind == "int_list":
            return f"{noun}, each in {self.range_text()}"
        return f"{noun} in {self.range_text()}"


def _format_number(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def _type_name(value: Any) -> str:
    return type(value).__name__


def check_param(param: ParamSpec, value: Any) -> Any:
    """Check one parameter value against its description.

    Args:
        param: the description of the parameter.
        value: the value as it appears in a spec (after JSON decoding).

    Returns:
        The value, with an int converted to float for a float parameter and a
        tuple converted to a list for an int list.

    Raises:
        ValueError: the value has the wrong type or lies outside the range; the
            message names the parameter, the value and what is allowed.
    """
    if value is None:
        if param.default is None and not param.required:
            return None
        raise ValueError(f"{param.name} must be {param.allowed_text()}, got None")
    if param.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(
                f"{param.name} must be true or false, got {value!r} "
                f"({_type_name(value)})"
            )
        return value
    if param.kind == "choice":
        if value not in param.choices:
            raise ValueError(
                f"{param.name} must be one of {', '.join(param.choices)}, got {value!r}"
            )
        return value
    if param.kind == "int_list":
        return _check_int_list(param, value)
    if param.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(
                f"{param.name} must be an integer, got {value!r} ({_type_name(value)})"
            )
    else:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(
                f"{param.name} must be a number, got {value!r} ({_type_name(value)})"
            )
        if not math.isfinite(value):
            raise ValueError(f"{param.name} must be a finite number, got {value!r}")
        value = float(value)
    _check_range(param, value, param.name)
    return value


def _check_int_list(param: ParamSpec, value: Any) -> list[int]:
    if not isinstance(value, list | tuple):
        raise ValueError(
            f"{param.name} must be a list of integers, got {value!r} "
            f"({_type_name(value)})"
        )
    if len(value) < param.min_length:
        raise ValueError(
            f"{param.name} must have at least {param.min_length} entries, "
            f"got {list(value)!r}"
        )
    for position, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int):
            raise ValueError(
                f"{param.name}[{position}] must be an integer, got {item!r} "
                f"({_type_name(item)})"
            )
        _check_range(param, item, f"{param.name}[{position}]")
    return list(value)


def _check_range(param: ParamSpec, value: float, label: str) -> None:
    too_low = param.minimum is not None and (
        value < param.minimum or (value == param.minimum and not param.min_inclusive)
    )
    too_high = param.maximum is not None and (
        value > param.maximum or (value == param.maximum and not param.max_inclusive)
    )
    if too_low or too_high:
        raise ValueError(f"{label} must be in {param.range_text()}, got {value!r}")


def parse_param(param: ParamSpec, text: str) -> Any:
    """Parse the text typed into a form field into a checked parameter value.

    Empty text gives the default of an optional parameter. Int lists accept
    "32, 64", "32 64" and "[32, 64]". Booleans accept true/false, yes/no,
    on/off and 1/0.

    Args:
        param: the description of the parameter.
        text: what the user typed.

    Returns:
        The value, of the type a spec stores.

    Raises:
        ValueError: the text is empty for a required parameter, does not
            parse, or gives a value outside the range. The message names the
            parameter, the text and what is allowed.
    """
    stripped = text.strip()
    if not stripped:
        if param.required:
            raise ValueError(f"{param.name} is required: enter {param.allowed_text()}")
        return param.default
    if stripped.lower() == "none" and param.default is None and not param.required:
        return None
    if param.kind == "int":
        value: Any = _parse_int(param.name, stripped)
    elif param.kind == "float":
        try:
            value = float(stripped)
        except ValueError:
            raise ValueError(
                f"{param.name} must be a number, got {stripped!r}"
            ) from None
    elif param.kind == "bool":
        value = _parse_bool(param.name, stripped)
    elif param.kind == "int_list":
        items = [item for item in re.split(r"[\s,]+", stripped.strip("[]()")) if item]
        value = [_parse_int(param.name, item) for item in items]
    else:
        value = stripped
    return check_param(param, value)


def _parse_int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None


def _parse_bool(name: str, text: str) -> bool:
    word = text.lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError(f"{name} must be true or false, got {text!r}")
