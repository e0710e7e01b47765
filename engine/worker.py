"""Train a run from the store, in this process or in a detached one.

``run_training`` trains in the calling process and records everything in
the run's directory. ``start_detached`` runs the same training in a fresh
interpreter in its own session (``python -m engine.worker``), so closing the
terminal or losing an SSH connection does not stop it. ``request_stop``
requests that a worker end after its current batch, with a checkpoint.

Usage of the detached worker (``start_detached`` builds this command)::

    python -m engine.worker --runs-dir saved_runs RUN_ID [--resume]

Importing this module does not import torch; only ``run_training`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from engine.runs import (
    ACTIVE_STATUSES,
    MetricsWriter,
    Run,
    RunNotFoundError,
    RunStore,
    current_process_identity,
    effective_status,
    library_versions,
    process_is_alive,
    process_start_time,
    resolve_runs_dir,
    utc_now,
)

log = logging.getLogger(__name__)

# Maps a trainer's stop_reason to the run status stored in run.json.
STATUS_BY_STOP_REASON = {
    "completed": "finished",
    "early_stopping": "finished",
    "stopped": "stopped",
    "diverged": "diverged",
}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RunStateError(ValueError):
    """A run is in a state that does not allow the requested action."""


# --------------------------------------------------------------------------
# Metrics and stop requests during a fit


class RunRecorder:
    """Trainer callback hooks that record a fit in the run directory.

    It appends batch and epoch records to metrics.jsonl, updates the summary
    in run.json at each epoch end, and requests a stop from the trainer once
    :meth:`request_stop` was called (for example from a signal handler) or
    the run's stop file exists. :func:`make_recorder` combines it with
    ``engine.training.Callback``, which this module imports only when
    training starts.
    """

    def __init__(self, run: Run, writer: MetricsWriter) -> None:
        self.run = run
        self.writer = writer
        # A plain attribute, since a signal handler sets it: taking a lock
        # there could deadlock with the interrupted main thread.
        self.stop_requested = False
        self._trainer: Any = None
        # Training seconds of the epochs recorded so far, for the summary.
        self._seconds = 0.0

    def request_stop(self) -> None:
        """Ask the fit to end after the current batch; safe in a signal handler."""
        self.stop_requested = True
        if self._trainer is not None:
            self._trainer.request_stop()

    def _check_stop(self, trainer: Any) -> None:
        if self.stop_requested or self.run.stop_path.exists():
            self.stop_requested = True
            trainer.request_stop()

    def on_fit_start(self, trainer: Any) -> None:
        self._trainer = trainer
        start_epoch = int(getattr(trainer, "start_epoch", 1) or 1)
        self._seconds = sum(
            float(record.get("seconds") or 0.0)
            for record in self.run.history()
            if record["epoch"] < start_epoch
        )
        self.writer.write(
            {
                "kind": "status",
                "status": "running",
                "start_epoch": start_epoch,
                "num_epochs": trainer.num_epochs,
                "device": str(trainer.device),
                "time": time.time(),
            }
        )
        self.run.update(device=str(trainer.device))
        self._check_stop(trainer)

    def on_batch_end(
        self, trainer: Any, stage: str, epoch: int, batch: int, result: Any
    ) -> None:
        samples = int(result.num_samples or 0)
        self.writer.write(
            {
                "kind": "batch",
                "stage": stage,
                "epoch": epoch,
                "batch": batch,
                "num_batches": trainer.num_batches,
                "loss": float(result.loss),
                "acc": 100.0 * result.num_correct / samples if samples else None,
                "samples": samples,
                "time": time.time(),
            }
        )
        self._check_stop(trainer)

    def on_epoch_end(
        self, trainer: Any, epoch: int, train_result: Any, test_result: Any
    ) -> None:
        seconds = float(train_result.seconds) + float(test_result.seconds)
        train_seconds = float(train_result.seconds)
        self.writer.write(
            {
                "kind": "epoch",
                "epoch": epoch,
                "num_epochs": trainer.num_epochs,
                "train_loss": _mean(train_result.losses),
                "train_acc": float(train_result.accuracy),
                "test_loss": _mean(test_result.losses),
                "test_acc": float(test_result.accuracy),
                "seconds": seconds,
                "samples_per_second": (
                    train_result.num_samples / train_seconds
                    if train_seconds > 0
                    else None
                ),
                "time": time.time(),
            }
        )
        self._seconds += seconds
        best = trainer.best_test_acc
        self.run.update(
            summary={
                "best_test_acc": None if best is None else float(best),
                "epochs_done": epoch,
                "num_epochs": trainer.num_epochs,
                "seconds": self._seconds,
            }
        )

    def on_fit_end(self, trainer: Any, result: Any) -> None:
        self._trainer = None

    def on_exception(self, trainer: Any, error: BaseException) -> None:
        self._trainer = None


def make_recorder(run: Run, writer: MetricsWriter) -> RunRecorder:
    """Return a :class:`RunRecorder` that is also an ``engine.training.Callback``."""
    from engine.training import Callback

    recorder_class = type("RunCallback", (RunRecorder, Callback), {})
    return recorder_class(run, writer)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


class SignalStop:
    """Turns SIGTERM and the first SIGINT into a graceful stop of a fit.

    The handlers can be installed before the recorder exists (importing
    torch takes seconds), so that a stop request that arrives meanwhile is
    kept and passed on by :meth:`attach` instead of killing the process. A
    second SIGINT raises KeyboardInterrupt as usual.
    """

    def __init__(self) -> None:
        # Plain attributes, because the signal handler sets them, and taking
        # a lock there could deadlock with the interrupted main thread.
        self.requested = False
        self.recorder: RunRecorder | None = None

    def attach(self, recorder: RunRecorder) -> None:
        """Send stop requests to ``recorder``, including one already received."""
        self.recorder = recorder
        if self.requested:
            recorder.request_stop()

    def handle(self, signum: int, frame: object) -> None:
        """Request a stop; a second SIGINT raises KeyboardInterrupt."""
        if signum == signal.SIGINT and self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.recorder is not None:
            self.recorder.request_stop()

    @contextlib.contextmanager
    def installed(self) -> Iterator[SignalStop]:
        """Install the handlers for the duration of the block.

        Signal handlers can only be installed from the main thread;
        elsewhere nothing is installed and only the stop file stops the fit.
        """
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {
            signum: signal.signal(signum, self.handle)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    previous_level = root.level
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()


# --------------------------------------------------------------------------
# Training in this process


def failure_reason(error: BaseException, config: dict[str, Any]) -> str:
    """Return a one-line reason for a failed run.

    A CUDA out-of-memory error gets a hint to use a smaller batch size.
    """
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    name = type(error).__name__
    if name == "OutOfMemoryError" or "CUDA out of memory" in first:
        batch_size = (config.get("training") or {}).get("batch_size")
        return (
            f"CUDA out of memory with batch size {batch_size}; "
            "try a smaller batch size or a smaller model"
        )
    return f"{name}: {first}" if first else name


def check_startable(info: dict[str, Any], resume: bool) -> None:
    """Raise RunStateError unless a run with this run.json may start now.

    A new run must be queued; a resumed one must not be active or finished.
    """
    run_id = info.get("id", "?")
    status = effective_status(info)
    if status in ACTIVE_STATUSES and process_is_alive(info):
        raise RunStateError(
            f"run {run_id} is already {status} (worker pid {info.get('pid')})"
        )
    if resume and status == "finished":
        raise RunStateError(
            f"run {run_id} already finished; there is nothing to resume"
        )
    if not resume and status != "queued":
        raise RunStateError(
            f"run {run_id} is {status}; use 'layerlab runs resume {run_id}' to "
            "continue it"
        )


def _prepare(run: Run, resume: bool) -> None:
    """Mark ``run`` running in this process, after checking that it may start."""
    previous: dict[str, Any] = {}

    def check(info: dict[str, Any]) -> None:
        # start_detached records its child's pid in a queued run; that child
        # is this process, and any other live pid is another worker.
        if info.get("status") != "queued" or info.get("pid") != os.getpid():
            check_startable(info, resume)
        previous.update(info)

    run.update(
        check=check,
        status="running",
        reason="",
        started=utc_now(),
        ended=None,
        versions=library_versions(),
        **current_process_identity(),
    )
    # A stop file in a queued run is a stop request made before the worker
    # started. Any other stop file is left over from an earlier attempt.
    if previous.get("status") != "queued":
        run.stop_path.unlink(missing_ok=True)


def run_training(
    store: RunStore,
    run_id: str,
    resume: bool = False,
    *,
    log_file: bool = True,
    print_every: int = 1,
    progress: bool | None = None,
) -> Any:
    """Train a run in this process and record it in the store.

    The run's status is "running" while it trains and ends as "finished",
    "stopped", "diverged" or "failed" with a reason. SIGTERM, the first
    SIGINT and the run's stop file end the fit after the current batch, with
    a checkpoint.

    Args:
        store: the run store.
        run_id: the run's id or a unique prefix.
        resume: continue from the last checkpoint instead of starting.
        log_file: also write this process's log records to worker.log
            (False when stderr already goes there).
        print_every: progress output every this many epochs; 0 is silent.
        progress: a progress bar (True), plain lines (False), or a bar only
            when stdout is a terminal (None).

    Returns:
        The trainer's FitResult.

    Raises:
        RunStateError: when the run is running already, or finished and
            ``resume`` is set, or not queued and ``resume`` is not set.
        Exception: whatever training raised, after the run was recorded as
            failed and the traceback written to worker.log.
    """
    run = store.get(run_id)
    with contextlib.ExitStack() as stack:
        # The handlers go in before the run reads "running", because from
        # then on 'layerlab runs stop' sends SIGTERM to this process.
        signals = stack.enter_context(SignalStop().installed())
        _prepare(run, resume)
        if log_file:
            stack.enter_context(_log_to(run.log_path))
        writer = stack.enter_context(MetricsWriter(run.metrics_path))
        recorder = make_recorder(run, writer)
        signals.attach(recorder)
        log.info("run %s started (pid %d, resume=%s)", run.id, os.getpid(), resume)
        try:
            result = _fit(run, recorder, resume, print_every, progress)
        except KeyboardInterrupt:
            reason = "interrupted by Ctrl-C; resume continues from the last epoch"
            log.warning("run %s stopped: %s", run.id, reason)
            _finish(run, writer, "stopped", reason)
            raise
        except BaseException as error:
            reason = failure_reason(error, run.config)
            log.exception("run %s failed: %s", run.id, reason)
            _finish(run, writer, "failed", reason)
            raise
        status = STATUS_BY_STOP_REASON.get(result.stop_reason, "finished")
        reason = _end_reason(result)
        run.write_result(result.course_dict())
        _finish(run, writer, status, reason)
        log.info("run %s %s: %s", run.id, status, reason)
    return result


def _end_reason(result: Any) -> str:
    if result.message:
        return result.message
    if result.stop_reason == "early_stopping":
        return f"early stopping after epoch {result.num_epochs}"
    if result.stop_reason == "stopped":
        return f"stopped on request after epoch {result.num_epochs}"
    unit = "epoch" if result.num_epochs == 1 else "epochs"
    return f"completed {result.num_epochs} {unit}"


def _finish(run: Run, writer: MetricsWriter, status: str, reason: str) -> None:
    writer.write(
        {"kind": "status", "status": status, "reason": reason, "time": time.time()}
    )
    run.update(status=status, reason=reason, ended=utc_now())
    run.stop_path.unlink(missing_ok=True)


def _fit(
    run: Run,
    recorder: RunRecorder,
    resume: bool,
    print_every: int,
    progress: bool | None,
) -> Any:
    """Build the data, model, optimizer and trainer from the config and fit."""
    from engine.training import train_from_config

    return train_from_config(
        run.config,
        callbacks=[recorder],
        checkpoints=run.checkpoint_path,
        resume=resume,
        print_every=print_every,
        progress=progress,
    )


# --------------------------------------------------------------------------
# Detached workers


def start_detached(
    store_root: str | os.PathLike[str], run_id: str, resume: bool = False
) -> int:
    """Start training a run in a new process that outlives this one.

    The child is a fresh interpreter (``python -m engine.worker``) in its own
    session, with stdin from /dev/null and stdout and stderr appended to the
    run's worker.log. It inherits the environment and working directory.
    The run reads "queued" until the child marks it running, and
    "interrupted" if the child dies before that.

    Args:
        store_root: the run-store root.
        run_id: the run's id or a unique prefix.
        resume: continue from the last checkpoint.

    Returns:
        The child's pid.

    Raises:
        RunStateError: when the run is active, or finished and ``resume``
            is set.
    """
    store = RunStore(store_root)
    run = store.get(run_id)
    run.update(
        check=lambda info: check_startable(info, resume),
        status="queued",
        reason="",
        pid=None,
        process_start=None,
    )
    run.stop_path.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "engine.worker",
        "--runs-dir",
        str(store.root),
        run.id,
    ]
    if resume:
        command.append("--resume")
    env = dict(os.environ)
    project_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        path for path in (project_root, env.get("PYTHONPATH")) if path
    )
    try:
        with open(run.log_path, "ab") as log_file:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                env=env,
            )
    except OSError as error:
        reason = f"could not start the worker process: {error}"
        log.error("run %s failed: %s", run.id, reason)
        run.update(status="failed", reason=reason, ended=utc_now())
        raise
    # Reap the child when it exits, so that it does not linger as a zombie
    # while this process runs on (the TUI starts many workers).
    threading.Thread(
        target=process.wait, name=f"reap-{process.pid}", daemon=True
    ).start()
    identity = current_process_identity()
    identity.update(pid=process.pid, process_start=process_start_time(process.pid))
    # The child may already have marked itself running with its own identity.
    run.update_if("queued", **identity)
    log.info("started worker pid %d for run %s", process.pid, run.id)
    return process.pid


def request_stop(run: Run) -> bool:
    """Ask a run's worker to stop after its current batch, with a checkpoint.

    Writes the run's stop file, which the worker checks after every batch,
    and sends SIGTERM to the worker when its recorded process identity
    (pid and start time) matches a live process.

    Args:
        run: the run to stop.

    Returns:
        Whether a live worker process was signalled.
    """
    run.stop_path.touch()
    info = run.reload().info
    # A queued worker may not have installed its SIGTERM handler yet, so it
    # only gets the stop file, which it reads before its first batch.
    if info.get("status") != "running" or not process_is_alive(info):
        return False
    try:
        os.kill(int(info["pid"]), signal.SIGTERM)
    except ProcessLookupError:
        return False
    log.info("sent SIGTERM to worker pid %s of run %s", info["pid"], run.id)
    return True


def wait_until_done(run: Run, timeout: float, poll: float = 0.2) -> str:
    """Wait until ``run`` is no longer queued or running.

    Args:
        run: the run.
        timeout: seconds to wait at most.
        poll: seconds between checks.

    Returns:
        The status at the end, which is still active when time ran out.
    """
    deadline = time.monotonic() + timeout
    while True:
        status = run.reload().status
        if status not in ACTIVE_STATUSES or time.monotonic() >= deadline:
            return status
        time.sleep(poll)


# --------------------------------------------------------------------------
# python -m engine.worker


def main(argv: Sequence[str] | None = None) -> int:
    """Run one detached worker; returns 0 unless the run failed."""
    parser = argparse.ArgumentParser(
        prog="python -m engine.worker",
        description="Train one run of the store (started by start_detached).",
    )
    parser.add_argument("run_id", help="id of the run to train")
    parser.add_argument("--runs-dir", default=None, help="run-store root")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    store = RunStore(resolve_runs_dir(args.runs_dir))
    try:
        result = run_training(
            store, args.run_id, resume=args.resume, log_file=False, progress=False
        )
    except (RunStateError, RunNotFoundError) as error:
        log.error("worker for run %s did not start: %s", args.run_id, error)
        return 2
    except Exception as error:
        # run_training has logged the traceback of a failed fit already.
        log.error("worker for run %s failed: %s", args.run_id, error)
        return 1
    log.info("run %s ended with stop reason %s", args.run_id, result.stop_reason)
    return 0


if __name__ == "__main__":
    # Run the imported module's main, so log records are named engine.worker
    # and not __main__.
    from engine.worker import main as worker_main

    sys.exit(worker_main())
