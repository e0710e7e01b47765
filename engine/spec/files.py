"""Reading and writing spec files (JSON)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from engine.spec.layers import SpecError
from engine.spec.shapes import SPEC_VERSION, validate

log = logging.getLogger(__name__)


class SpecFileError(ValueError):
    """A spec file that is not valid JSON or contains an invalid spec.

    Attributes:
        path: the file.
        spec_error: the ``SpecError`` for a file that parses but contains an
            invalid spec, else None.
    """

    def __init__(self, path: Path, message: str, spec_error: SpecError | None = None):
        self.path = path
        self.spec_error = spec_error
        super().__init__(message)


def save_spec(path: str | os.PathLike[str], spec: dict[str, Any], check: bool = True):
    """Write ``spec`` to ``path`` as indented JSON, replacing the file atomically.

    A spec without a ``version`` is written with the current one.

    Args:
        path: the file to write; its folder must exist.
        spec: the spec.
        check: validate the spec first; pass False to save a draft.

    Raises:
        SpecError: ``check`` is set and the spec is invalid.
        TypeError: the spec contains values that JSON cannot represent.
    """
    if check:
        validate(spec)
    spec = {"version": SPEC_VERSION, **spec}
    text = json.dumps(spec, indent=2) + "\n"
    target = Path(path)
    descriptor, temp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temp_name, target)
    except BaseException:
        os.unlink(temp_name)
        raise
    log.debug("saved spec to %s", target)


def load_spec(path: str | os.PathLike[str], check: bool = True) -> dict[str, Any]:
    """Read a spec from a JSON file.

    Args:
        path: the file to read.
        check: validate the spec; pass False to load a draft.

    Returns:
        The spec as written in the file.

    Raises:
        FileNotFoundError: the file does not exist.
        SpecFileError: the file is not UTF-8 JSON, or (with ``check``) contains an
            invalid spec; the message names the file and the problem.
    """
    source = Path(path)
    try:
        spec = json.loads(source.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise SpecFileError(
            source, f"spec file {source} is not UTF-8 text: {error}"
        ) from None
    except json.JSONDecodeError as error:
        raise SpecFileError(
            source,
            f"spec file {source} is not valid JSON: {error.msg} at line "
            f"{error.lineno}, column {error.colno}",
        ) from None
    if check:
        try:
            validate(spec)
        except SpecError as error:
            raise SpecFileError(
                source, f"spec file {source} contains an invalid spec: {error}", error
            ) from error
    return spec
