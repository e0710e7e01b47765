"""Tests of the run store: ids, names, concurrent creation, robust reading."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine.runs import (
    RUNS_DIR_ENV,
    MetricsWriter,
    RunNotFoundError,
    RunStore,
    current_process_identity,
    effective_status,
    epoch_history,
    export_csv_text,
    make_run_id,
    resolve_runs_dir,
    sanitize_name,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def tiny_config(**training: object) -> dict:
    return {
        "spec": {
            "version": 1,
            "backend": "blocks",
            "input": {"dataset": "digits"},
            "layers": [
                {"type": "linear", "out_features": 16},
                {"type": "relu"},
                {"type": "linear", "out_features": 10},
            ],
        },
        "dataset": {"name": "digits"},
        "optimizer": {"name": "adam", "learn_rate": 0.003},
        "training": {"batch_size": 64, "epochs": 2, "seed": 0, **training},
    }


def epoch_record(epoch: int, test_acc: float) -> dict:
    return {
        "kind": "epoch",
        "epoch": epoch,
        "num_epochs": 3,
        "train_loss": 1.0 / epoch,
        "train_acc": test_acc + 1,
        "test_loss": 1.5 / epoch,
        "test_acc": test_acc,
        "seconds": 0.5,
        "samples_per_second": 100.0,
        "time": 0.0,
    }


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs")


# --------------------------------------------------------------------------
# Root, ids and names


def test_resolve_runs_dir_order(tmp_path, monkeypatch):
    monkeypatch.delenv(RUNS_DIR_ENV, raising=False)
    assert resolve_runs_dir() == Path.cwd() / "saved_runs"
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path / "from-env"))
    assert resolve_runs_dir() == tmp_path / "from-env"
    assert resolve_runs_dir(tmp_path / "flag") == tmp_path / "flag"


def test_run_id_has_time_and_name():
    # 2026-12-04 10:15:30 UTC
    assert make_run_id("Adam lr3", now=1796379330.0) == "20261204-101530-adam-lr3"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../x", "x"),
        ("/etc", "etc"),
        ("a\x00b", "a-b"),
        ("..", "run"),
        ("", "run"),
        (None, "run"),
        ("Café lr=0.01", "cafe-lr-0.01"),
        ("sgd-lr1e+30", "sgd-lr1e30"),
        ("学习", "run"),
        ("x" * 500, "x" * 40),
    ],
)
def test_sanitize_name_cases(name, expected):
    assert sanitize_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "../../x",
        "/etc/passwd",
        "a\x00b",
        "..",
        ".",
        "x" * 5000,
        "学习/../..",
        "\x1b[31m",
    ],
)
def test_hostile_name_stays_inside_root(store, name):
    run = store.create(tiny_config(), name=name)
    assert run.path.parent == store.root.resolve()
    assert (run.path / "run.json").is_file()
    assert sorted(os.listdir(store.root)) == [run.id]
    assert "\x00" not in run.name
    assert "\x1b" not in run.name


def test_create_records_config_and_versions(store):
    config = tiny_config()
    run = store.create(config, name="first")
    info = json.loads(run.run_json_path.read_text())
    assert info["config"] == config
    assert info["status"] == "queued"
    assert info["name"] == "first"
    assert info["versions"]["python"]
    assert "torch" in info["versions"]
    assert info["summary"]["dataset"] == "digits"
    assert info["summary"]["optimizer"] == "adam lr=0.003"


def test_create_rejects_non_json_config(store):
    with pytest.raises(TypeError, match="JSON"):
        store.create({"spec": object()})


def test_same_name_in_threads_never_shares_dir(store):
    runs = []
    lock = threading.Lock()

    def create() -> None:
        run = store.create(tiny_config(), name="same")
        with lock:
            runs.append(run)

    threads = [threading.Thread(target=create) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    paths = {run.path for run in runs}
    assert len(paths) == 16
    assert len(os.listdir(store.root)) == 16


def _create_runs_in_process(root: str, count: int, queue) -> None:
    store = RunStore(root)
    queue.put([store.create(tiny_config(), name="same").id for _ in range(count)])


def test_same_name_in_processes_never_shares_dir(store):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [
        context.Process(
            target=_create_runs_in_process, args=(str(store.root), 5, queue)
        )
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    ids = [run_id for _ in processes for run_id in queue.get(timeout=60)]
    for process in processes:
        process.join(timeout=60)
    assert len(ids) == 20
    assert len(set(ids)) == 20
    assert len(os.listdir(store.root)) == 20


# --------------------------------------------------------------------------
# Lookup, listing and deletion


def test_get_accepts_unique_prefix(store):
    run = store.create(tiny_config(), name="alpha")
    assert store.get(run.id).path == run.path
    assert store.get(run.id[:-2]).path == run.path


def test_get_ambiguous_prefix_raises(store):
    store.create(tiny_config(), name="same")
    store.create(tiny_config(), name="same")
    with pytest.raises(ValueError, match="matches 2 runs"):
        store.get("20")


def test_get_unknown_run_raises(store):
    store.create(tiny_config())
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        store.get("nope")
    with pytest.raises(RunNotFoundError):
        store.get("../..")


def test_list_skips_foreign_and_corrupt_entries(store, caplog):
    good = store.create(tiny_config(), name="good")
    (store.root / "notes.txt").write_text("not a run")
    (store.root / "foreign-dir").mkdir()
    (store.root / "corrupt").mkdir()
    (store.root / "corrupt" / "run.json").write_text('{"config": {"spec"')
    (store.root / "array").mkdir()
    (store.root / "array" / "run.json").write_text("[1, 2]")
    (store.root / ".gitkeep").write_text("")
    with caplog.at_level(logging.WARNING, logger="engine.runs"):
        summaries = store.list()
    assert [summary.id for summary in summaries] == [good.id]
    warnings = "\n".join(record.getMessage() for record in caplog.records)
    assert "notes.txt" not in warnings
    assert "foreign-dir" in warnings
    assert "corrupt" in warnings
    assert "array" in warnings
    assert ".gitkeep" not in warnings


@pytest.mark.parametrize(
    "summary",
    [
        {"epochs_done": "x"},
        [1],
        {"best_test_acc": "high"},
        {"seconds": float("inf")},
        {"num_epochs": {"a": 1}},
        {"best_test_acc": True},
    ],
    ids=["text-epochs", "list", "text-acc", "inf-seconds", "dict-epochs", "bool"],
)
def test_list_survives_wrong_summary_types(store, caplog, summary):
    run = store.create(tiny_config(), name="odd")
    info = json.loads(run.run_json_path.read_text())
    info["summary"] = summary
    run.run_json_path.write_text(json.dumps(info))
    with caplog.at_level(logging.WARNING, logger="engine.runs"):
        (listed,) = RunStore(store.root).list()
    assert listed.id == run.id
    assert listed.best_test_acc is None or isinstance(listed.best_test_acc, float)
    assert isinstance(listed.epochs_done, int)
    assert isinstance(listed.seconds, float)
    assert "ignored" in caplog.text


def test_list_warns_once_per_entry(store, caplog):
    (store.root).mkdir(parents=True)
    (store.root / "foreign-dir").mkdir()
    with caplog.at_level(logging.WARNING, logger="engine.runs"):
        store.list()
        store.list()
    assert len(caplog.records) == 1


def test_list_of_missing_root_is_empty(tmp_path):
    assert RunStore(tmp_path / "absent").list() == []


def test_list_reads_summary(store):
    run = store.create(tiny_config(epochs=3), name="summary")
    run.update(status="finished", summary={"best_test_acc": 91.5, "epochs_done": 3})
    (summary,) = store.list()
    assert summary.status == "finished"
    assert summary.best_test_acc == 91.5
    assert summary.epochs_done == 3
    assert summary.num_epochs == 3
    assert summary.dataset == "digits"
    assert summary.model == "mlp 16"


def test_delete_removes_directory(store):
    run = store.create(tiny_config())
    run.update(status="finished")
    store.delete(run.id)
    assert not run.path.exists()


def test_delete_refuses_running_run(store):
    run = store.create(tiny_config())
    run.update(status="running", **current_process_identity())
    with pytest.raises(ValueError, match="stop it first"):
        store.delete(run.id)
    assert run.path.exists()


# --------------------------------------------------------------------------
# Status of runs whose worker is gone


def test_running_run_with_dead_pid_is_interrupted(store):
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    run = store.create(tiny_config())
    run.update(status="running", pid=process.pid, host=None, process_start=None)
    assert run.status == "interrupted"
    assert "worker process is gone" in run.reason
    assert store.list()[0].status == "interrupted"


def test_queued_run_whose_worker_died_is_interrupted(store):
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    run = store.create(tiny_config())
    run.update(pid=process.pid)
    assert run.status == "interrupted"
    assert "before training started" in run.reason


def test_running_run_with_reused_pid_is_interrupted(store):
    identity = current_process_identity()
    identity["process_start"] += 1
    run = store.create(tiny_config())
    run.update(status="running", **identity)
    assert run.status == "interrupted"


def test_running_run_with_live_worker_is_running(store):
    run = store.create(tiny_config())
    run.update(status="running", **current_process_identity())
    assert run.status == "running"


def test_running_run_from_earlier_boot_is_interrupted(store):
    run = store.create(tiny_config())
    run.update(status="running", **{**current_process_identity(), "boot_id": "old"})
    assert run.status == "interrupted"


def test_queued_run_without_worker_stays_queued(store):
    assert store.create(tiny_config()).status == "queued"


def test_unknown_stored_status_reads_failed():
    assert effective_status({"status": "exploded"}) == "failed"


# --------------------------------------------------------------------------
# Metrics


def test_read_metrics_leaves_half_written_line(store):
    run = store.create(tiny_config())
    first = json.dumps(epoch_record(1, 50.0))
    second = json.dumps(epoch_record(2, 60.0))
    run.metrics_path.write_text(first + "\n" + second[:20])
    records, offset = run.read_metrics()
    assert [record["epoch"] for record in records] == [1]
    assert offset == len(first) + 1
    with open(run.metrics_path, "a") as file:
        file.write(second[20:] + "\n")
    records, offset = run.read_metrics(offset)
    assert [record["epoch"] for record in records] == [2]
    assert offset == run.metrics_path.stat().st_size


def test_read_metrics_skips_corrupt_line(store, caplog):
    run = store.create(tiny_config())
    lines = [json.dumps(epoch_record(1, 50.0)), "{garbage", "[1]", ""]
    lines.append(json.dumps(epoch_record(2, 60.0)))
    run.metrics_path.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="engine.runs"):
        records, _ = run.read_metrics()
    assert [record["epoch"] for record in records] == [1, 2]
    garbage_byte = len(lines[0]) + 1
    assert f"byte {garbage_byte} of" in caplog.text
    assert f"byte {garbage_byte + len(lines[1]) + 1} of" in caplog.text


def test_read_metrics_of_missing_file_is_empty(store):
    run = store.create(tiny_config())
    assert run.read_metrics() == ([], 0)


def test_metrics_writer_drops_half_written_tail(store):
    run = store.create(tiny_config())
    complete = json.dumps(epoch_record(1, 50.0)) + "\n"
    run.metrics_path.write_text(complete + '{"kind": "ba')
    with MetricsWriter(run.metrics_path) as writer:
        writer.write(epoch_record(2, 60.0))
    records, _ = run.read_metrics()
    assert [record["epoch"] for record in records] == [1, 2]


def test_history_after_resume_replaces_epochs():
    records = [
        epoch_record(1, 50.0),
        epoch_record(2, 60.0),
        {"kind": "batch", "stage": "train", "epoch": 3, "batch": 1},
        {"kind": "status", "status": "running", "start_epoch": 2},
        epoch_record(2, 61.0),
        epoch_record(3, 70.0),
    ]
    history = epoch_history(records)
    assert [record["epoch"] for record in history] == [1, 2, 3]
    assert history[1]["test_acc"] == 61.0


def test_export_csv_has_row_per_epoch(store):
    first = store.create(tiny_config(), name="one")
    second = store.create(tiny_config(), name="two")
    first.metrics_path.write_text(
        "\n".join(json.dumps(epoch_record(epoch, 50.0)) for epoch in (1, 2)) + "\n"
    )
    second.metrics_path.write_text(json.dumps(epoch_record(1, 40.0)) + "\n")
    lines = export_csv_text([first, second]).splitlines()
    assert lines[0].startswith("run_id,name,epoch,train_loss")
    assert len(lines) == 4
    assert lines[1].startswith(f"{first.id},one,1,")
    assert lines[3].startswith(f"{second.id},two,1,")


# --------------------------------------------------------------------------
# Checkpoints and import cost


class _MarkerPayload:
    """Unpickling this object creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_crafted_checkpoint_is_refused(store, tmp_path):
    torch = pytest.importorskip("torch")
    from engine.training.checkpoint import CheckpointError

    marker = tmp_path / "code-ran"
    run = store.create(tiny_config())
    torch.save({"model": _MarkerPayload(marker)}, run.last_checkpoint_path)
    with pytest.raises(CheckpointError, match="rejected checkpoint"):
        run.load_checkpoint(last=True)
    assert not marker.exists()
    # The payload is live: a plain unpickling load runs it.
    torch.load(run.last_checkpoint_path, weights_only=False)
    assert marker.exists()


def test_store_and_worker_import_without_torch():
    code = (
        "import sys, engine.runs, engine.worker, engine.commands.runs;"
        "print('torch' in sys.modules)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert output.strip() == "False"
