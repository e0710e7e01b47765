"""Atomic checkpoint files that load with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "layerlab-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a readable layerlab checkpoint."""


def checkpoint_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Return the best and last checkpoint paths for a requested path.

    ".pt" is added when the path has no suffix, and the last-epoch file has
    ".last" before the suffix: "ckpt" gives "ckpt.pt" and "ckpt.last.pt".

    Args:
        path: The requested checkpoint path.

    Returns:
        The pair (best, last).
    """
    best = Path(path)
    if not best.suffix:
        best = best.with_suffix(".pt")
    last = best.with_name(f"{best.stem}.last{best.suffix}")
    return best, last


def save_checkpoint(path: str | os.PathLike[str], obj: dict[str, Any]) -> None:
    """Write a checkpoint atomically: a temporary file, then a rename.

    A reader sees either the old file or the complete new one, never a
    half-written one, even when the process is killed mid-write.

    Args:
        path: Destination file; its directory is created when missing.
        obj: Checkpoint contents: tensors, numbers, strings, lists and dicts.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    log.debug("wrote checkpoint %s", path)


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`.

    The file is read with ``weights_only=True``, so a file that would run code
    while unpickling is rejected instead of executed.

    Args:
        path: The checkpoint file.
        map_location: Device the tensors are loaded onto.

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError: If the file does not exist.
        CheckpointError: If the file is not a torch file, contains objects other
            than tensors and plain containers, or lacks the layerlab format
            marker.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"rejected checkpoint {path}: it contains objects other than tensors, "
            f"numbers, strings, lists and dicts ({_first_line(error)})"
        ) from error
    except Exception as error:
        # torch.load reports a truncated or non-torch file with many different
        # exception types (RuntimeError, EOFError, KeyError, ...).
        raise CheckpointError(
            f"cannot read checkpoint {path}: not a complete torch file "
            f"({_first_line(error)})"
        ) from error
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a layerlab checkpoint: expected a dict with "
            f"format={CHECKPOINT_FORMAT!r}, as written by a Trainer"
        )
    version = obj.get("version")
    if version != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {version!r}; this layerlab reads "
            f"version {CHECKPOINT_VERSION}"
        )
    return obj


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
