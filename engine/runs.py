"""A store of training runs on disk, one directory per run.

Layout of a run directory ``<root>/<run-id>/``:

- ``run.json``: the whole config, the status with its times and reason, the
  worker's process identity, library versions and a small summary (best test
  accuracy, epochs done) that listing reads instead of the metrics.
- ``metrics.jsonl``: one JSON object per line (batch, epoch and status
  records), appended and flushed while training runs.
- ``checkpoint.pt`` (best test accuracy) and ``checkpoint.last.pt`` (last
  epoch), written by the trainer.
- ``result.json``: ``{"config": ..., "results": ...}`` with the five result
  fields of the course's JSON files, written when a fit ends.
- ``worker.log``: the worker's log and, for a detached run, its output.

This module imports no torch, so the TUI and ``layerlab runs`` list runs
without loading it.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import fcntl
import io
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)

RUNS_DIR_ENV = "LAYERLAB_RUNS_DIR"
DEFAULT_RUNS_DIR = "saved_runs"

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
LOG_FILE = "worker.log"
STOP_FILE = "stop"
LOCK_FILE = ".lock"
CHECKPOINT_FILE = "checkpoint.pt"
LAST_CHECKPOINT_FILE = "checkpoint.last.pt"

# Statuses stored in run.json. "interrupted" is never stored: it is how a
# "queued" or "running" run reads once the worker process is gone.
STORED_STATUSES = ("queued", "running", "finished", "stopped", "diverged", "failed")
STATUSES = (*STORED_STATUSES, "interrupted")
ACTIVE_STATUSES = ("queued", "running")
RESUMABLE_STATUSES = ("stopped", "diverged", "failed", "interrupted")

RUN_FORMAT = 1
MAX_NAME_CHARS = 40
MAX_DISPLAY_NAME_CHARS = 120
# Suffixes "-2", "-3", ... tried when two runs get the same id in one second.
MAX_ID_ATTEMPTS = 1000

_SLUG_BAD_CHARS = re.compile(r"[^a-z0-9._-]+")
_SLUG_REPEATS = re.compile(r"[._-]{2,}")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class RunNotFoundError(LookupError):
    """No run in the store matches the requested id or id prefix."""


# --------------------------------------------------------------------------
# Paths, names and ids


def resolve_runs_dir(value: str | os.PathLike[str] | None = None) -> Path:
    """Return the run-store root: ``value``, else $LAYERLAB_RUNS_DIR, else
    ``./saved_runs``.

    Args:
        value: an explicit directory, for example from ``--runs-dir``.

    Returns:
        The directory as an absolute path (it need not exist yet).
    """
    if value is None or str(value) == "":
        value = os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR
    return Path(value).expanduser().absolute()


def sanitize_name(name: str | None) -> str:
    """Turn a user-supplied run name into a short, safe part of a run id.

    The result contains only ``a-z``, ``0-9``, ``.``, ``_`` and ``-``. It
    never starts or ends with punctuation, has at most 40 characters, and is
    ``"run"`` when nothing usable is left. So it cannot name a path outside
    the store: it has no ``/``, no ``..`` and no NUL.

    Args:
        name: any string, or None.

    Returns:
        The sanitised name.
    """
    text = unicodedata.normalize("NFKD", name or "")
    text = text.encode("ascii", "ignore").decode("ascii").lower().replace("+", "")
    text = _SLUG_BAD_CHARS.sub("-", text)
    text = _SLUG_REPEATS.sub(lambda match: match.group(0)[0], text)
    text = text[:MAX_NAME_CHARS].strip("._-")
    return text or "run"


def display_name(name: str | None) -> str:
    """Return ``name`` without control characters, cut to 120 characters."""
    text = _CONTROL_CHARS.sub("", name or "").strip()
    return text[:MAX_DISPLAY_NAME_CHARS]


def make_run_id(name: str | None, now: float | None = None) -> str:
    """Return a readable run id: UTC time and the sanitised name.

    Args:
        name: the run name, sanitised with :func:`sanitize_name`.
        now: a Unix time; the current time when None.

    Returns:
        An id such as ``20261204-101530-adam-lr3``.
    """
    moment = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC)
    return f"{moment:%Y%m%d-%H%M%S}-{sanitize_name(name)}"


def default_run_name(config: dict[str, Any]) -> str:
    """Return a short name from the optimizer and learning rate in ``config``."""
    optimizer = config.get("optimizer") or {}
    name = str(optimizer.get("name") or "run")
    learn_rate = optimizer.get("learn_rate")
    if isinstance(learn_rate, int | float):
        return f"{name}-lr{learn_rate:g}"
    return name


def utc_now() -> str:
    """Return the current UTC time as ISO 8601 text with seconds."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def library_versions() -> dict[str, str | None]:
    """Return the versions of Python, torch and layerlab without importing torch."""
    # Imported here because it costs more than the rest of this module.
    import importlib.metadata

    python = ".".join(str(part) for part in sys.version_info[:3])
    versions: dict[str, str | None] = {"python": python}
    for package in ("torch", "layerlab"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    if versions["layerlab"] is None:
        from engine import __version__

        versions["layerlab"] = __version__
    return versions


# --------------------------------------------------------------------------
# Process identity


def process_start_time(pid: int) -> int | None:
    """Return the start time of process ``pid`` in clock ticks since boot.

    A pid can be reused by a new process after the old one exits; the pair
    (pid, start time) names one process. Returns None where /proc is not
    available or the process does not exist.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces,
    # so the fields are counted from the last ")".
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _process_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[0].decode("ascii", "replace") if fields else None


def hostname() -> str:
    """Return this machine's host name."""
    return os.uname().nodename


def boot_id() -> str | None:
    """Return the kernel's id of the current boot, or None where unknown."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def current_process_identity() -> dict[str, Any]:
    """Return the pid, start time, boot id and host of this process."""
    pid = os.getpid()
    return {
        "pid": pid,
        "process_start": process_start_time(pid),
        "boot_id": boot_id(),
        "host": hostname(),
    }


def process_is_alive(info: dict[str, Any]) -> bool | None:
    """Check whether the worker process recorded in ``info`` still runs.

    Args:
        info: a run.json dict with ``pid`` and optionally ``process_start``,
            ``boot_id`` and ``host``.

    Returns:
        True or False; None when it cannot be checked: no pid is recorded,
        or the run was started on another host.
    """
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    host = info.get("host")
    if host and host != hostname():
        # NOTE: a run started on another host (a shared run store) keeps its
        # stored status, since its process cannot be checked from here.
        return None
    recorded_boot = info.get("boot_id")
    if recorded_boot and boot_id() not in (None, recorded_boot):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # The pid exists but belongs to another user.
    if _process_state(pid) in ("Z", "X"):
        return False
    recorded_start = info.get("process_start")
    if recorded_start is not None:
        actual_start = process_start_time(pid)
        if actual_start is not None and actual_start != recorded_start:
            return False
    return True


def effective_status(info: dict[str, Any]) -> str:
    """Return the status of a run as users see it.

    A "queued" or "running" run whose worker process is gone reads as
    "interrupted", so a killed worker never shows as running forever. A
    queued run with no worker yet stays "queued".
    """
    status = info.get("status")
    if status not in STORED_STATUSES:
        return "failed"
    if status in ACTIVE_STATUSES and process_is_alive(info) is False:
        return "interrupted"
    return status


# --------------------------------------------------------------------------
# Files


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename,
    so a reader sees the old or the new file and never a partial one."""
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=True) + "\n"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def _read_json_object(path: Path) -> dict[str, Any]:
    with open(path, "rb") as file:
        data = json.loads(file.read())
    if not isinstance(data, dict):
        raise ValueError(f"{path} contains a JSON {type(data).__name__}, not an object")
    return data


def parse_metrics(
    data: bytes, source: str = METRICS_FILE, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Parse complete JSON lines from ``data``.

    Args:
        data: bytes read from a metrics file.
        source: a name for warnings.
        offset: the position of ``data`` in the file, for warnings.

    Returns:
        The records and the number of bytes consumed. A last line without its
        newline is not consumed, since its writer may still be writing it.
        A complete line that is not a JSON object is skipped with a warning.
    """
    end = data.rfind(b"\n") + 1
    records = []
    position = 0
    while position < end:
        line_end = data.index(b"\n", position)
        line = data[position:line_end]
        if line.strip():
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict):
                records.append(record)
            else:
                byte = offset + position
                log.warning("skipped an invalid line at byte %d of %s", byte, source)
        position = line_end + 1
    return records, end


# --------------------------------------------------------------------------
# Runs


@dataclass
class RunSummary:
    """One row of a run listing, read from run.json only."""

    id: str
    name: str
    status: str
    dataset: str = ""
    model: str = ""
    optimizer: str = ""
    best_test_acc: float | None = None
    epochs_done: int = 0
    num_epochs: int | None = None
    seconds: float = 0.0
    created: str = ""
    reason: str = ""
    path: Path = field(default=Path(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as a JSON-serialisable dict."""
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def describe_model(spec: dict[str, Any] | None) -> str:
    """Return a short label for a layer-stack spec, such as ``mlp 128-128``."""
    if not isinstance(spec, dict):
        return ""
    if isinstance(spec.get("name"), str):
        return spec["name"]
    layers = spec.get("layers")
    if not isinstance(layers, list):
        return str(spec.get("backend", ""))
    types = [layer.get("type") for layer in layers if isinstance(layer, dict)]
    convs = sum(1 for kind in types if kind == "conv2d")
    blocks = sum(1 for kind in types if kind in ("residual", "bottleneck"))
    if convs or blocks:
        parts = [f"conv x{convs}"] if convs else []
        parts += [f"res x{blocks}"] if blocks else []
        parts.append(f"fc x{types.count('linear')}")
        return "cnn " + " ".join(parts)
    widths = [
        str(layer.get("out_features", "?"))
        for layer in layers[:-1]
        if isinstance(layer, dict) and layer.get("type") == "linear"
    ]
    return "mlp " + ("-".join(widths) if widths else "linear")


def describe_optimizer(optimizer: dict[str, Any] | None) -> str:
    """Return a short label for an optimizer config, such as ``adam lr=0.001``."""
    if not isinstance(optimizer, dict):
        return ""
    name = str(optimizer.get("name", ""))
    learn_rate = optimizer.get("learn_rate")
    if isinstance(learn_rate, int | float):
        return f"{name} lr={learn_rate:g}"
    return name


def initial_summary(config: dict[str, Any]) -> dict[str, Any]:
    """Return the summary stored in a new run's run.json."""
    training = config.get("training") or {}
    dataset = config.get("dataset") or {}
    return {
        "dataset": str(dataset.get("name", "")),
        "model": describe_model(config.get("spec")),
        "optimizer": describe_optimizer(config.get("optimizer")),
        "best_test_acc": None,
        "epochs_done": 0,
        "num_epochs": training.get("epochs"),
        "seconds": 0.0,
    }


class Run:
    """A run directory and accessors for the files in it.

    ``info`` is the run.json dict as last read; :meth:`reload` reads it
    again and :meth:`update` changes it on disk under a file lock, so the
    process that starts a worker and the worker itself can both write it.
    """

    def __init__(self, path: Path, info: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.id = self.path.name
        self._info = info

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.status!r})"

    # Paths of the files in the run directory.
    @property
    def run_json_path(self) -> Path:
        return self.path / RUN_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def result_path(self) -> Path:
        return self.path / RESULT_FILE

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    @property
    def stop_path(self) -> Path:
        return self.path / STOP_FILE

    @property
    def checkpoint_path(self) -> Path:
        """Path of the best checkpoint; the last one is beside it."""
        return self.path / CHECKPOINT_FILE

    @property
    def last_checkpoint_path(self) -> Path:
        return self.path / LAST_CHECKPOINT_FILE

    # run.json
    @property
    def info(self) -> dict[str, Any]:
        """The run.json dict, read on first access."""
        if self._info is None:
            self._info = _read_json_object(self.run_json_path)
        return self._info

    def reload(self) -> Run:
        """Read run.json again and return this run."""
        self._info = _read_json_object(self.run_json_path)
        return self

    @property
    def config(self) -> dict[str, Any]:
        """The training config the run was created with."""
        return self.info.get("config") or {}

    @property
    def name(self) -> str:
        return str(self.info.get("name") or self.id)

    @property
    def status(self) -> str:
        """The effective status: see :func:`effective_status`."""
        return effective_status(self.info)

    @property
    def reason(self) -> str:
        """Why the run ended, or an empty string."""
        if self.status == "interrupted":
            if self.info.get("status") == "queued":
                return f"the worker exited before training started; see {LOG_FILE}"
            return "the worker process is gone (killed or the machine restarted)"
        return str(self.info.get("reason") or "")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.path / LOCK_FILE, "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def update(
        self, check: Callable[[dict[str, Any]], None] | None = None, **changes: Any
    ) -> dict[str, Any]:
        """Set top-level fields of run.json atomically and return the new dict.

        A ``summary`` value is merged into the stored summary instead of
        replacing it.

        Args:
            check: called with the current run.json dict under the lock,
                before the change; an exception it raises aborts the update.
            **changes: the fields to set.
        """
        with self._locked():
            info = _read_json_object(self.run_json_path)
            self._info = info
            if check is not None:
                check(info)
            summary = changes.pop("summary", None)
            info.update(changes)
            if summary:
                info["summary"] = {**(info.get("summary") or {}), **summary}
            write_json_atomic(self.run_json_path, info)
        return info

    def update_if(self, expected_status: str, **changes: Any) -> bool:
        """Apply ``changes`` only while the stored status is ``expected_status``.

        Returns:
            Whether run.json was changed.
        """
        with self._locked():
            info = _read_json_object(self.run_json_path)
            if info.get("status") != expected_status:
                self._info = info
                return False
            info.update(changes)
            write_json_atomic(self.run_json_path, info)
        self._info = info
        return True

    def summary(self) -> RunSummary:
        """Return the listing row of this run.

        Summary fields of the wrong type (a hand-edited or foreign run.json)
        are shown as missing, with a warning, instead of failing the listing.
        """
        info = self.info
        stored = info.get("summary") or {}
        if not isinstance(stored, dict):
            log.warning("run %s: ignored its summary, which is not an object", self.id)
            stored = {}
        best = _finite_or_none(self.id, stored, "best_test_acc")
        epochs_done = _finite_or_none(self.id, stored, "epochs_done")
        num_epochs = _finite_or_none(self.id, stored, "num_epochs")
        seconds = _finite_or_none(self.id, stored, "seconds")
        return RunSummary(
            id=self.id,
            name=self.name,
            status=self.status,
            dataset=str(stored.get("dataset", "")),
            model=str(stored.get("model", "")),
            optimizer=str(stored.get("optimizer", "")),
            best_test_acc=best,
            epochs_done=int(epochs_done or 0),
            num_epochs=None if num_epochs is None else int(num_epochs),
            seconds=seconds or 0.0,
            created=str(info.get("created", "")),
            reason=self.reason,
            path=self.path,
        )

    # metrics.jsonl
    def read_metrics(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Read the metrics records appended since ``offset``.

        Args:
            offset: a byte offset returned by an earlier call, or 0.

        Returns:
            The new records and the offset to pass next time. A half-written
            last line is left for the next call.
        """
        try:
            with open(self.metrics_path, "rb") as file:
                file.seek(offset)
                data = file.read()
        except FileNotFoundError:
            return [], offset
        records, consumed = parse_metrics(data, str(self.metrics_path), offset)
        return records, offset + consumed

    def history(self) -> list[dict[str, Any]]:
        """Return the epoch records of the run, one per epoch, in order.

        When a run was resumed, records of the epochs it trained again replace
        the earlier ones.
        """
        records, _ = self.read_metrics()
        return epoch_history(records)

    def read_result(self) -> dict[str, Any] | None:
        """Return result.json, or None when it is missing or invalid."""
        try:
            return _read_json_object(self.result_path)
        except FileNotFoundError:
            return None
        except ValueError as error:
            log.warning("skipped invalid %s: %s", self.result_path, error)
            return None

    def load_checkpoint(self, last: bool = False) -> dict[str, Any]:
        """Load the best (or last) checkpoint onto the CPU.

        The file is read with ``torch.load(weights_only=True)``, so a file
        that would run code while unpickling is rejected, not executed.

        Raises:
            FileNotFoundError: when the checkpoint does not exist.
            engine.training.checkpoint.CheckpointError: when the file is not
                a plain layerlab checkpoint.
        """
        from engine.training.checkpoint import load_checkpoint

        path = self.last_checkpoint_path if last else self.checkpoint_path
        return load_checkpoint(path, map_location="cpu")

    def write_result(self, results: dict[str, Any]) -> None:
        """Write result.json as ``{"config": ..., "results": results}``."""
        write_json_atomic(self.result_path, {"config": self.config, "results": results})


def _finite_or_none(run_id: str, stored: dict[str, Any], key: str) -> float | None:
    """Return ``stored[key]`` as a finite float, or None when missing or invalid."""
    value = stored.get(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
    log.warning("run %s: ignored summary field %s=%r, not a number", run_id, key, value)
    return None


def epoch_history(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return one epoch record per epoch from metrics records, in order.

    A status record with ``start_epoch`` (written when a fit starts or
    resumes) drops epochs from that one on that were recorded before it.
    """
    epochs: dict[int, dict[str, Any]] = {}
    for record in records:
        kind = record.get("kind")
        if kind == "status" and isinstance(record.get("start_epoch"), int):
            start = record["start_epoch"]
            epochs = {number: rec for number, rec in epochs.items() if number < start}
        elif kind == "epoch" and isinstance(record.get("epoch"), int):
            epochs[record["epoch"]] = record
    return [epochs[number] for number in sorted(epochs)]


class MetricsWriter:
    """Appends records to a metrics.jsonl file, one flushed line each.

    A half-written last line left by a killed writer is cut off first, so
    the next record starts on its own line.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = open(self.path, "a+b")  # noqa: SIM115 - closed in close()
        self._drop_partial_line()

    def _drop_partial_line(self) -> None:
        size = self._file.seek(0, os.SEEK_END)
        if size == 0:
            return
        self._file.seek(max(0, size - 65536))
        tail = self._file.read()
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        keep = size - len(tail) + cut + 1 if cut >= 0 else max(0, size - len(tail))
        log.warning("dropped a half-written last line of %s", self.path)
        self._file.truncate(keep)
        self._file.seek(0, os.SEEK_END)

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one JSON line and flush it."""
        line = json.dumps(record, separators=(",", ":"), allow_nan=True) + "\n"
        self._file.write(line.encode("utf-8"))
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --------------------------------------------------------------------------
# The store


class RunStore:
    """Runs under one root directory.

    Args:
        root: the store's directory; :func:`resolve_runs_dir` when None. It
            is created on the first :meth:`create`.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = resolve_runs_dir(root)
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def create(self, config: dict[str, Any], name: str | None = None) -> Run:
        """Create a queued run for ``config`` in a new directory.

        The directory is claimed with an exclusive ``mkdir``: when the id is
        taken (two runs in the same second with the same name), ``-2``,
        ``-3``, ... is appended until one is free.

        Args:
            config: the run config (spec, dataset, optimizer, training); it
                must be JSON-serialisable.
            name: a display name; the id contains its sanitised form. From
                the optimizer and learning rate when None.

        Returns:
            The new run.

        Raises:
            TypeError: when ``config`` is not a JSON-serialisable dict.
        """
        if not isinstance(config, dict):
            raise TypeError(f"run config must be a dict, got {type(config).__name__}")
        try:
            json.dumps(config, allow_nan=True)
        except (TypeError, ValueError) as error:
            raise TypeError(f"run config is not JSON-serialisable: {error}") from None
        name = display_name(name) or default_run_name(config)
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._claim_directory(make_run_id(name))
        info = {
            "format": RUN_FORMAT,
            "id": path.name,
            "name": name,
            "status": "queued",
            "reason": "",
            "created": utc_now(),
            "started": None,
            "ended": None,
            "pid": None,
            "process_start": None,
            "boot_id": None,
            "host": hostname(),
            "versions": library_versions(),
            "config": config,
            "summary": initial_summary(config),
        }
        write_json_atomic(path / RUN_FILE, info)
        log.info("created run %s in %s", path.name, self.root)
        return Run(path, info)

    def _claim_directory(self, run_id: str) -> Path:
        root = self.root.resolve()
        for attempt in range(1, MAX_ID_ATTEMPTS + 1):
            candidate = run_id if attempt == 1 else f"{run_id}-{attempt}"
            path = root / candidate
            # sanitize_name already rules this out; the check guards future edits.
            if path.parent != root:
                raise ValueError(f"run id {candidate!r} is not a plain name")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path
        raise FileExistsError(
            f"no free run id for {run_id!r} after {MAX_ID_ATTEMPTS} attempts in {root}"
        )

    def _entries(self) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(self.root) as entries:
                return [entry for entry in entries if not entry.name.startswith(".")]
        except FileNotFoundError:
            return []

    def _load(self, entry_path: Path) -> Run | None:
        try:
            info = _read_json_object(entry_path / RUN_FILE)
        except FileNotFoundError:
            self._warn_once(
                str(entry_path), "skipped %s: it has no %s", entry_path, RUN_FILE
            )
            return None
        except (OSError, ValueError) as error:
            self._warn_once(
                str(entry_path),
                "skipped %s: invalid %s (%s)",
                entry_path,
                RUN_FILE,
                error,
            )
            return None
        if not isinstance(info.get("config"), dict):
            self._warn_once(
                str(entry_path), "skipped %s: %s has no config", entry_path, RUN_FILE
            )
            return None
        return Run(entry_path, info)

    def runs(self) -> list[Run]:
        """Return every readable run, newest first, skipping other entries."""
        runs = []
        for entry in self._entries():
            if not entry.is_dir(follow_symlinks=False):
                # Experiment results files may share the root; only a foreign
                # directory gets a warning.
                log.debug("skipped %s: not a directory", entry.path)
                continue
            run = self._load(Path(entry.path))
            if run is not None:
                runs.append(run)
        runs.sort(key=lambda run: run.id, reverse=True)
        return runs

    def list(self) -> list[RunSummary]:
        """Return a summary of every readable run, newest first.

        Only run.json is read for each run, never the metrics.
        """
        summaries = []
        for run in self.runs():
            try:
                summaries.append(run.summary())
            except (TypeError, ValueError, AttributeError) as error:
                self._warn_once(
                    str(run.path),
                    "skipped %s: invalid %s (%s)",
                    run.path,
                    RUN_FILE,
                    error,
                )
        return summaries

    def get(self, run_id: str) -> Run:
        """Return the run with id ``run_id`` or with a unique id prefix.

        Raises:
            RunNotFoundError: when no run matches or its run.json is
                unreadable.
            ValueError: when the prefix matches several runs.
        """
        names = [entry.name for entry in self._entries() if entry.is_dir()]
        if run_id in names:
            matches = [run_id]
        else:
            matches = [name for name in names if run_id and name.startswith(run_id)]
        if not matches:
            raise RunNotFoundError(f"no run {run_id!r} in {self.root}")
        if len(matches) > 1:
            shown = ", ".join(sorted(matches)[:5])
            raise ValueError(
                f"run prefix {run_id!r} matches {len(matches)} runs ({shown}); "
                "give more of the id"
            )
        run = self._load(self.root / matches[0])
        if run is None:
            raise RunNotFoundError(
                f"run {matches[0]!r} in {self.root} has no readable {RUN_FILE}"
            )
        return run

    def delete(self, run_id: str, force: bool = False) -> None:
        """Delete a run's directory.

        Args:
            run_id: the id or a unique prefix.
            force: delete even when the run is queued or running.

        Raises:
            RunNotFoundError: see :meth:`get`.
            ValueError: when the run is active and ``force`` is False.
        """
        run = self.get(run_id)
        if run.status in ACTIVE_STATUSES and not force:
            raise ValueError(
                f"run {run.id} is {run.status}; stop it first with "
                f"'layerlab runs stop {run.id}'"
            )
        if run.path.resolve().parent != self.root.resolve():
            raise ValueError(f"run {run.id} is not inside {self.root}")
        shutil.rmtree(run.path)
        log.info("deleted run %s", run.id)


# --------------------------------------------------------------------------
# Export

CSV_COLUMNS = (
    "run_id",
    "name",
    "epoch",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "seconds",
    "samples_per_second",
)


def export_csv(runs: Iterable[Run], file: TextIO) -> int:
    """Write the per-epoch metrics of ``runs`` to ``file`` as CSV.

    Args:
        runs: the runs to export, in the order their rows are written.
        file: a text file opened with ``newline=""``.

    Returns:
        The number of data rows written.
    """
    writer = csv.writer(file)
    writer.writerow(CSV_COLUMNS)
    rows = 0
    for run in runs:
        for record in run.history():
            row = {"run_id": run.id, "name": run.name, **record}
            writer.writerow(
                ["" if row.get(col) is None else row[col] for col in CSV_COLUMNS]
            )
            rows += 1
    return rows


def export_csv_text(runs: Iterable[Run]) -> str:
    """Return the CSV that :func:`export_csv` writes, as a string."""
    buffer = io.StringIO(newline="")
    export_csv(runs, buffer)
    return buffer.getvalue()
