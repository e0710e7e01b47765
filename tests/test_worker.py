"""Tests of training runs in the store: foreground, detached, stop, resume.

Workers are real processes training a small block MLP on digits.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.runs import RunStore, current_process_identity, process_start_time
from engine.spec import preset_mlp
from engine.worker import (
    RunStateError,
    failure_reason,
    request_stop,
    run_training,
    start_detached,
    wait_until_done,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WAIT_SECONDS = 120


def digits_config(epochs: int = 2, max_batches: int | None = 3, **optimizer) -> dict:
    return {
        "spec": preset_mlp("digits", hidden=(32,)),
        "dataset": {"name": "digits"},
        "optimizer": {"name": "adam", "learn_rate": 0.003, **optimizer},
        "training": {
            "batch_size": 64,
            "epochs": epochs,
            "max_batches": max_batches,
            "seed": 0,
            "device": "cpu",
        },
    }


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        path for path in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if path
    )
    return env


def layerlab(*args: str, root: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "--runs-dir", str(root), *args],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=WAIT_SECONDS,
        **kwargs,
    )


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT_SECONDS} s waiting for {what}")
        time.sleep(0.05)


def epochs_recorded(run) -> int:
    return len(run.history())


def log_text(run) -> str:
    return run.log_path.read_text() if run.log_path.exists() else "(no worker.log)"


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs")


# --------------------------------------------------------------------------
# Foreground runs


def test_foreground_run_records_everything(store):
    run = store.create(digits_config(epochs=2), name="fore")
    result = run_training(store, run.id)
    run.reload()
    assert run.status == "finished"
    assert run.reason == "completed 2 epochs"
    assert run.info["pid"] == os.getpid()
    assert run.info["started"]
    assert run.info["ended"]
    assert run.info["versions"]["torch"]
    assert run.info["device"] == "cpu"
    assert run.checkpoint_path.is_file()
    assert run.last_checkpoint_path.is_file()
    assert "started" in run.log_path.read_text()

    saved = json.loads(run.result_path.read_text())
    assert saved["config"] == run.config
    assert saved["results"] == result.course_dict()

    records, _ = run.read_metrics()
    kinds = [record["kind"] for record in records]
    assert kinds.count("epoch") == 2
    assert kinds.count("batch") == 2 * (3 + 3)
    assert kinds[0] == "status"
    assert records[-1] == {**records[-1], "kind": "status", "status": "finished"}

    summary = store.list()[0]
    assert summary.epochs_done == 2
    assert summary.best_test_acc == max(result.test_acc)
    assert summary.seconds > 0


def test_batch_record_fields(store):
    run = store.create(digits_config(epochs=1, max_batches=2))
    run_training(store, run.id)
    records, _ = run.read_metrics()
    batch = next(record for record in records if record["kind"] == "batch")
    assert batch["stage"] == "train"
    assert batch["epoch"] == 1
    assert batch["batch"] == 1
    assert batch["num_batches"] == 2
    assert batch["samples"] == 64
    assert 0 <= batch["acc"] <= 100
    epoch = run.history()[0]
    assert epoch["num_epochs"] == 1
    assert epoch["samples_per_second"] > 0


def test_stop_file_before_start_stops_run(store):
    run = store.create(digits_config(epochs=3))
    run.stop_path.touch()
    result = run_training(store, run.id)
    assert result.stop_reason == "stopped"
    assert run.reload().status == "stopped"
    assert not run.stop_path.exists()


def test_finished_run_cannot_resume(store):
    run = store.create(digits_config(epochs=1))
    run_training(store, run.id)
    with pytest.raises(RunStateError, match="already finished"):
        run_training(store, run.id, resume=True)
    with pytest.raises(RunStateError, match="already finished"):
        start_detached(store.root, run.id, resume=True)


def test_started_run_cannot_start_again(store):
    run = store.create(digits_config(epochs=1))
    run_training(store, run.id)
    with pytest.raises(RunStateError, match="runs resume"):
        run_training(store, run.id)


def test_invalid_config_fails_with_reason(store):
    run = store.create(digits_config(learn_rate=-1.0))
    with pytest.raises(ValueError):
        run_training(store, run.id)
    run.reload()
    assert run.status == "failed"
    assert run.reason.startswith("ValueError: ")
    assert "learn_rate" in run.reason
    assert "\n" not in run.reason
    assert "Traceback" in run.log_path.read_text()


def test_cuda_out_of_memory_reason_suggests_smaller_batch():
    torch = pytest.importorskip("torch")
    error = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
    reason = failure_reason(error, digits_config())
    assert "batch size 64" in reason
    assert "smaller batch size" in reason


def test_crafted_last_checkpoint_is_refused_on_resume(store, tmp_path):
    torch = pytest.importorskip("torch")
    from engine.training import CheckpointError

    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    run = store.create(digits_config(epochs=2))
    run.update(status="stopped", reason="stopped before epoch 1")
    torch.save(
        {"format": "layerlab-checkpoint", "x": Payload()}, run.last_checkpoint_path
    )
    with pytest.raises(CheckpointError, match="rejected checkpoint"):
        run_training(store, run.id, resume=True)
    assert not marker.exists()
    assert run.reload().status == "failed"
    assert "CheckpointError" in run.reason


# --------------------------------------------------------------------------
# Detached runs and stop requests


def test_train_detach_outlives_its_starter(store):
    started = layerlab(
        "train",
        "--detach",
        "--name",
        "detached",
        "--hidden",
        "32",
        "--epochs",
        "3",
        "--max-batches",
        "3",
        root=store.root,
    )
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    run = store.get(run_id)
    assert run.name == "detached"
    # The starting command has exited; its worker was reparented and runs on.
    assert wait_until_done(run, WAIT_SECONDS) == "finished", log_text(run)
    assert epochs_recorded(run) == 3
    assert run.result_path.is_file()
    assert run.info["pid"] != os.getpid()


def test_train_foreground_creates_run(store):
    done = layerlab(
        "train",
        "--name",
        "fore",
        "--epochs",
        "2",
        "--max-batches",
        "3",
        root=store.root,
    )
    assert done.returncode == 0, done.stderr
    (summary,) = store.list()
    assert summary.name == "fore"
    assert summary.status == "finished"
    assert summary.epochs_done == 2
    assert f"run: {summary.id} (finished)" in done.stdout
    assert "stop reason: completed" in done.stdout


def test_train_foreground_sigint_stops_run(store):
    command = [sys.executable, "-m", "engine.cli", "--runs-dir", str(store.root)]
    command += ["train", "--epochs", "100000", "--progress", "plain"]
    process = subprocess.Popen(
        command,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        while line and not line.startswith("epoch 1/"):
            line = process.stdout.readline()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=WAIT_SECONDS)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, stderr
    assert "stop reason: stopped" in stdout
    (summary,) = store.list()
    assert summary.status == "stopped"
    assert store.get(summary.id).last_checkpoint_path.is_file()


def test_train_spec_file_trains_that_model(store, tmp_path):
    from engine.spec import save_spec

    spec = preset_mlp("digits", hidden=(16,), backend="torch")
    save_spec(tmp_path / "model.json", spec)
    done = layerlab(
        "train",
        "--spec",
        str(tmp_path / "model.json"),
        "--optimizer",
        "torch-adam",
        "--epochs",
        "1",
        "--max-batches",
        "2",
        root=store.root,
    )
    assert done.returncode == 0, done.stderr
    (run,) = store.runs()
    assert run.status == "finished"
    assert run.config["spec"]["backend"] == "torch"
    assert run.config["spec"]["layers"] == spec["layers"]


def test_train_missing_spec_file_is_an_error(store, tmp_path):
    done = layerlab("train", "--spec", str(tmp_path / "absent.json"), root=store.root)
    assert done.returncode == 1
    assert "absent.json" in done.stderr
    assert store.list() == []


def test_train_detach_rejects_checkpoints(store, tmp_path):
    done = layerlab(
        "train", "--detach", "--checkpoints", str(tmp_path / "c"), root=store.root
    )
    assert done.returncode == 2
    assert "--detach" in done.stderr


def test_stop_and_resume_real_worker(store):
    run = store.create(digits_config(epochs=100, max_batches=None), name="stop")
    pid = start_detached(store.root, run.id)
    wait_for(lambda: epochs_recorded(run) >= 1, "the first epoch")
    assert os.getsid(pid) == pid

    stopped = layerlab("runs", "stop", run.id[:-1], "--wait", "60", root=store.root)
    assert stopped.returncode == 0, stopped.stderr
    run.reload()
    assert run.status == "stopped", log_text(run)
    assert run.reason.startswith("stopped")
    assert run.last_checkpoint_path.is_file()
    done_before = epochs_recorded(run)
    assert done_before < 100

    resumed = layerlab("runs", "resume", run.id, "--detach", root=store.root)
    assert resumed.returncode == 0, resumed.stderr
    assert wait_until_done(run, WAIT_SECONDS) == "finished", log_text(run)
    epochs = [record["epoch"] for record in run.history()]
    assert epochs == list(range(1, 101))
    results = json.loads(run.result_path.read_text())["results"]
    assert results["num_epochs"] == 100
    assert len(results["test_acc"]) == 100


def test_stop_while_worker_starts_is_graceful(store):
    run = store.create(digits_config(epochs=500, max_batches=2), name="early")
    start_detached(store.root, run.id)
    # The worker reads "running" seconds before its fit starts, while it
    # still imports torch; a stop then must not kill it.
    wait_for(lambda: run.reload().status == "running", "the worker to start")
    assert request_stop(run)
    assert wait_until_done(run, WAIT_SECONDS) == "stopped", log_text(run)
    assert run.reason.startswith("stopped")
    assert epochs_recorded(run) < 500


def test_sigkill_mid_epoch_lists_reads_and_resumes(store):
    run = store.create(digits_config(epochs=40, max_batches=None), name="killed")
    pid = start_detached(store.root, run.id)
    wait_for(lambda: epochs_recorded(run) >= 2, "two epochs")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: run.reload().status != "running", "the killed worker to be seen")

    listed = layerlab("runs", "list", "--json", root=store.root)
    assert listed.returncode == 0, listed.stderr
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["id"] == run.id
    assert row["status"] == "interrupted"
    shown = layerlab("runs", "show", run.id, root=store.root)
    assert shown.returncode == 0, shown.stderr
    assert "interrupted" in shown.stdout
    assert epochs_recorded(run) >= 2

    resumed = layerlab("runs", "resume", run.id, root=store.root)
    assert resumed.returncode == 0, resumed.stderr + log_text(run)
    run.reload()
    assert run.status == "finished"
    epochs = [record["epoch"] for record in run.history()]
    assert epochs == list(range(1, 41))


def test_start_detached_failure_marks_run_failed(store, tmp_path, monkeypatch):
    run = store.create(digits_config())
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    with pytest.raises(FileNotFoundError):
        start_detached(store.root, run.id)
    run.reload()
    assert run.status == "failed"
    assert "could not start the worker process" in run.reason


def test_request_stop_ignores_reused_pid(store):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = store.create(digits_config())
        identity = current_process_identity()
        start = process_start_time(sleeper.pid)
        identity.update(pid=sleeper.pid, process_start=start + 1)
        run.update(status="running", **identity)
        assert run.status == "interrupted"
        assert request_stop(run) is False
        assert sleeper.poll() is None
        assert run.stop_path.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


# --------------------------------------------------------------------------
# The command line


def test_cli_list_show_export_delete(store, tmp_path):
    first = store.create(digits_config(epochs=2), name="first")
    run_training(store, first.id)
    second = store.create(digits_config(epochs=1), name="second")
    run_training(store, second.id)

    listed = layerlab("runs", "list", root=store.root)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:3] == ["ID", "NAME", "STATUS"]
    assert len(rows) == 2
    assert rows[0].startswith(second.id)
    assert "finished" in rows[1]
    assert "2/2" in rows[1]

    shown = layerlab("runs", "show", first.id, root=store.root)
    assert shown.returncode == 0, shown.stderr
    assert '"learn_rate": 0.003' in shown.stdout
    assert "TEST ACC" in shown.stdout

    csv_path = tmp_path / "metrics.csv"
    exported = layerlab(
        "runs", "export", first.id, second.id, "--csv", str(csv_path), root=store.root
    )
    assert exported.returncode == 0, exported.stderr
    with open(csv_path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["run_id"] for row in rows] == [first.id, first.id, second.id]
    assert [row["epoch"] for row in rows] == ["1", "2", "1"]

    missing_dir = tmp_path / "absent" / "metrics.csv"
    failed = layerlab(
        "runs", "export", first.id, "--csv", str(missing_dir), root=store.root
    )
    assert failed.returncode == 1
    assert f"could not write {missing_dir}" in failed.stderr
    assert "Traceback" not in failed.stderr

    unconfirmed = layerlab(
        "runs", "delete", first.id, root=store.root, stdin=subprocess.DEVNULL
    )
    assert unconfirmed.returncode == 1
    assert "--yes" in unconfirmed.stderr
    assert first.path.exists()
    deleted = layerlab("runs", "delete", first.id, "--yes", root=store.root)
    assert deleted.returncode == 0, deleted.stderr
    assert not first.path.exists()
    assert second.path.exists()


def test_cli_unknown_run_is_an_error(store):
    store.create(digits_config())
    shown = layerlab("runs", "show", "nope", root=store.root)
    assert shown.returncode == 1
    assert "no run 'nope'" in shown.stderr


def test_cli_list_empty_store(store):
    listed = layerlab("runs", "list", root=store.root)
    assert listed.returncode == 0
    assert "no runs" in listed.stdout


def test_cli_runs_dir_from_environment(store):
    store.create(digits_config(), name="env")
    env = {**child_env(), "LAYERLAB_RUNS_DIR": str(store.root)}
    listed = subprocess.run(
        [sys.executable, "-m", "engine.cli", "runs", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT_SECONDS,
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["name"] == "env"


def test_worker_main_unknown_run_exits_two(store):
    done = subprocess.run(
        [sys.executable, "-m", "engine.worker", "--runs-dir", str(store.root), "nope"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=WAIT_SECONDS,
    )
    assert done.returncode == 2
    assert "worker for run nope did not start: no run 'nope'" in done.stderr
