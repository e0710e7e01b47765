"""Tests of the Live view and its helpers: monitor, decimation, redraw limit.

The app tests start real detached workers on the bundled digits data.
"""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console
from textual.widgets import Static

from engine.runs import MetricsWriter, RunStore
from engine.spec import default_spec
from engine.training.results import FitResult
from engine.training.trainer import _mark_early_stop
from engine.worker import request_stop, start_detached, wait_until_done
from tui.app import LayerlabApp
from tui.live_view import LiveView
from tui.plots import RedrawLimiter, decimate, format_number
from tui.run_monitor import RunHistory, format_bytes, format_duration


def digits_config(epochs: int, max_batches: int | None = None, **dataset) -> dict:
    return {
        "spec": default_spec(),
        "dataset": {
            "name": "digits",
            "data_dir": None,
            "download": False,
            "augment": False,
            "train_size": None,
            **dataset,
        },
        "optimizer": {"name": "adam", "learn_rate": 0.001, "reg": 0.0},
        "training": {
            "batch_size": 32,
            "bs_test": None,
            "epochs": epochs,
            "max_batches": max_batches,
            "early_stopping": None,
            "seed": 0,
            "device": "cpu",
        },
    }


async def wait_until(pilot, condition, timeout: float = 90.0) -> None:
    """Let the app run until ``condition()`` is true, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(0.1)


@pytest.fixture
def store(tmp_path):
    store = RunStore(tmp_path / "runs")
    yield store
    for run in store.runs():
        request_stop(run)
        wait_until_done(run, timeout=30)


async def test_stop_and_resume_run(store):
    run = store.create(digits_config(epochs=500, max_batches=2), name="long")
    app = LayerlabApp(runs_dir=store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        start_detached(store.root, run.id)
        app.show_run(run.id)
        live = app.query_one(LiveView)
        await wait_until(pilot, lambda: len(live.shown.history.epochs) >= 2)

        await pilot.press("x")
        await wait_until(pilot, lambda: live.shown.status == "stopped")
        stopped_at = live.shown.history.epochs[-1]
        assert "stop requested" in live.shown.history.log
        # The reason starts with the status, which is not repeated.
        reason = live.shown.reason
        assert reason.startswith("stopped ")
        await wait_until(pilot, lambda: reason in title_text(live))
        assert "stopped: stopped" not in title_text(live)
        assert live.shown.history.log[-1] == f"status {reason}"
        await wait_until(
            pilot,
            lambda: any(n.message == f"long is {reason}" for n in app._notifications),
        )
        messages = [n.message for n in app._notifications]
        assert f"long is {reason}" in messages

        await pilot.press("r")
        await wait_until(pilot, lambda: live.shown.history.epochs[-1] > stopped_at + 1)
        assert live.shown.status == "running"
        epochs = live.shown.history.epochs
        assert epochs == list(range(1, len(epochs) + 1))

        await pilot.press("x")
        await wait_until(pilot, lambda: live.shown.status == "stopped")


def title_text(live: LiveView) -> str:
    return str(live.query_one("#live-title", Static).render())


def stats_text(live: LiveView) -> str:
    return str(live.query_one("#live-stats", Static).render())


def stored_run(store: RunStore, records: list[dict], **fields):
    """Create a run whose metrics.jsonl contains ``records``, with run.json
    ``fields`` such as its status, as a worker would have left them."""
    run = store.create(digits_config(epochs=5), name="stored")
    with MetricsWriter(run.metrics_path) as writer:
        for record in records:
            writer.write(record)
    run.update(**fields)
    return run


def train_batches(epoch: int, start: float, count: int) -> list[dict]:
    """Batch records of 45 samples 0.1 s apart: 450 samples/s."""
    return [
        {
            "kind": "batch",
            "stage": "train",
            "epoch": epoch,
            "batch": batch,
            "num_batches": 20,
            "loss": 1.0,
            "samples": 45,
            "time": start + 0.1 * batch,
        }
        for batch in range(1, count + 1)
    ]


async def test_resumed_run_rate_ignores_pause(store):
    started = {"kind": "status", "status": "running", "start_epoch": 1}
    resumed = {"kind": "status", "status": "running", "start_epoch": 2}
    epoch = {"kind": "epoch", "epoch": 1, "test_acc": 50.0, "time": 1003.0}
    records = [
        {**started, "time": 1000.0},
        *train_batches(1, 1000.0, 20),
        {**epoch, "samples_per_second": 450.0, "seconds": 2.0},
        # Resumed an hour after the stop.
        {**resumed, "time": 4600.0},
        *train_batches(2, 4600.0, 10),
    ]
    run = stored_run(store, records, status="stopped", reason="stopped at epoch 1")
    app = LayerlabApp(runs_dir=store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.show_run(run.id)
        live = app.query_one(LiveView)
        await wait_until(pilot, lambda: live.shown is not None)
        assert live.shown.history.samples_per_second == pytest.approx(450.0)
        await wait_until(pilot, lambda: "450 samples/s" in stats_text(live))


def screen_text(app: LayerlabApp) -> str:
    """Return the characters on the app's screen, as a terminal shows them."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


async def test_huge_losses_print_compactly(store):
    records = [
        {"kind": "status", "status": "running", "start_epoch": 1, "time": 1000.0},
        *[
            {**batch, "loss": 497821825259012096.0 * batch["batch"]}
            for batch in train_batches(1, 1000.0, 20)
        ],
        {
            "kind": "epoch",
            "epoch": 1,
            "train_loss": 1034266766213930.25,
            "test_loss": 497821825259012096.0,
            "train_acc": 10.0,
            "test_acc": 9.5,
            "seconds": 2.0,
            "time": 1003.0,
        },
    ]
    run = stored_run(store, records, status="finished", reason="completed 1 epoch")
    app = LayerlabApp(runs_dir=store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.show_run(run.id)
        live = app.query_one(LiveView)
        await wait_until(pilot, lambda: "loss-plot" in live.drawn)
        await pilot.pause(0.3)
        log_lines = list(live.shown.history.log)
        epoch_line = next(line for line in log_lines if line.startswith("epoch 1"))
        assert "train 1.03e+15" in epoch_line
        assert "test 4.98e+17" in epoch_line
        text = screen_text(app)
        assert "e+18" in text
        assert "497821825259012096" not in text
        assert "1034266766213930" not in text


def early_stop_message(epoch: int, patience: int) -> str:
    result = FitResult(epoch, [], [], [], [])
    _mark_early_stop(result, epoch, patience)
    return result.message


async def test_early_stop_fits_80_columns(store):
    reason = early_stop_message(12, 1)
    assert reason.endswith("for 1 epoch")
    assert early_stop_message(12, 3).endswith("for 3 epochs")
    records = [
        {"kind": "status", "status": "running", "start_epoch": 1, "time": 1000.0},
        *[
            {
                "kind": "epoch",
                "epoch": epoch,
                "train_loss": 0.6931,
                "test_loss": 0.7,
                "train_acc": 100.0,
                "test_acc": 97.5,
                "seconds": 12.34,
                "time": 1000.0 + epoch,
            }
            for epoch in range(1, 13)
        ],
    ]
    run = store.create(digits_config(epochs=20), name="patient")
    with MetricsWriter(run.metrics_path) as writer:
        for record in records:
            writer.write(record)
    run.update(status="finished", reason=reason)
    app = LayerlabApp(runs_dir=store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.show_run(run.id)
        live = app.query_one(LiveView)
        await wait_until(pilot, lambda: "loss-plot" in live.drawn)
        await pilot.pause(0.3)
        lines = screen_text(app).splitlines()
        assert any(reason in line for line in lines)
        assert not any("1 epochs" in line for line in lines)
        last_epoch = "epoch 12/20 train 0.6931 100.0% test 0.7000 97.5% 12.3s"
        assert any(last_epoch in line for line in lines)


def test_format_number_sizes():
    assert format_number(497821825259012096.0) == "4.98e+17"
    assert format_number(-2.5e6) == "-2.5e+06"
    assert format_number(0.6931) == "0.6931"
    assert format_number(12345.678) == "12345.6780"
    assert format_number(float("nan")) == "nan"


async def test_empty_live_points_to_stored_runs(store):
    app = LayerlabApp(runs_dir=store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("3")
        await pilot.pause()
        live = app.query_one(LiveView)
        assert title_text(live) == "No run yet: start one in Train (s)."

        stored_run(store, [], status="finished", reason="completed 5 epochs")
        await pilot.press("4", "3")
        await wait_until(pilot, lambda: "Runs (4, then o)" in title_text(live))
        assert title_text(live).startswith("No run shown: start one in Train (s)")


async def test_resume_rejects_finished_run(store):
    run = stored_run(store, [], status="finished", reason="completed 5 epochs")
    app = LayerlabApp(runs_dir=store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.show_run(run.id)
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        expected = (
            "stored is finished; only a run that is stopped, diverged, failed or "
            "interrupted can be resumed."
        )
        assert expected in messages


async def test_reopened_app_shows_running_runs(store):
    runs = [
        store.create(digits_config(epochs=500, max_batches=2), name=name)
        for name in ("first", "second")
    ]
    for run in runs:
        start_detached(store.root, run.id)
    deadline = time.monotonic() + 90
    while min(len(r.history()) for r in runs) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert min(len(r.history()) for r in runs) >= 3

    app = LayerlabApp(runs_dir=store.root)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("3")
        live = app.query_one(LiveView)
        await wait_until(pilot, lambda: len(live.monitors) == 2)
        await wait_until(pilot, lambda: "acc-plot" in live.drawn)
        shown_first = live.shown_id
        drawn_epochs = live.drawn["acc-plot"][1].xs
        assert drawn_epochs[0] == 1.0
        assert len(drawn_epochs) >= 3
        assert live.shown.status == "running"

        live.query_one("#live-runs").focus()
        await pilot.press("up" if shown_first == runs[1].id else "down")
        await wait_until(pilot, lambda: live.shown_id != shown_first)
        assert {live.shown_id, shown_first} == {run.id for run in runs}
        assert live.drawn["acc-plot"][1].xs[0] == 1.0


async def test_failed_worker_shows_reason(store, tmp_path):
    config = digits_config(epochs=2)
    config["dataset"].update(name="mnist", data_dir=str(tmp_path / "missing"))
    run = store.create(config, name="broken")
    app = LayerlabApp(runs_dir=store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        start_detached(store.root, run.id)
        app.show_run(run.id)
        live = app.query_one(LiveView)
        await wait_until(pilot, lambda: live.shown.status == "failed")

        assert live.shown.reason != ""
        assert "Traceback" not in live.shown.reason
        # The app names its own controls, not the command-line options.
        assert "the Download if missing checkbox" in live.shown.reason
        assert "--download" not in live.shown.reason
        assert "--data-dir" not in live.shown.reason

        # App.notify posts a message, so the notification arrives a little
        # after the status change.
        def failure_notified() -> bool:
            errors = [n for n in app._notifications if n.severity == "error"]
            return any("failed" in n.message for n in errors)

        await wait_until(pilot, failure_notified)
        assert failure_notified()


async def test_stop_without_run_notifies(tmp_path):
    app = LayerlabApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3", "x")
        await pilot.pause()
        assert any("No run" in n.message for n in app._notifications)


def test_decimate_keeps_ends_and_count():
    xs = list(range(1000))
    ys = [x * 2 for x in xs]
    kept_x, kept_y = decimate(xs, ys, 60)
    assert len(kept_x) <= 60
    assert kept_x[0] == 0
    assert kept_x[-1] == 999
    assert kept_y == [x * 2 for x in kept_x]


def test_decimate_short_series_unchanged():
    assert decimate([1, 2], [3, 4], 10) == ([1, 2], [3, 4])


def test_redraw_limiter_bounds_rate():
    now = [0.0]
    limiter = RedrawLimiter(min_interval=0.25, clock=lambda: now[0])
    # Metrics arrive every millisecond for 2 seconds of fake time.
    for _ in range(2000):
        limiter.mark_dirty()
        limiter.should_draw()
        now[0] += 0.001
    assert limiter.draw_count <= 9
    assert limiter.draw_count >= 7


def test_redraw_limiter_idle_without_data():
    limiter = RedrawLimiter(min_interval=0.0)
    assert not limiter.should_draw()


def test_history_resumed_epoch_replaces_old():
    history = RunHistory()
    for epoch in (1, 2, 3):
        history.add({"kind": "epoch", "epoch": epoch, "num_epochs": 5, "test_acc": 1.0})
    history.add({"kind": "status", "status": "running", "start_epoch": 3})
    history.add({"kind": "epoch", "epoch": 3, "num_epochs": 5, "test_acc": 9.0})
    assert history.epochs == [1, 2, 3]
    assert history.test_acc == [1.0, 1.0, 9.0]
    assert history.log[-2] == "fit resumed at epoch 3"


def test_history_progress_fractions():
    history = RunHistory(num_epochs=4)
    history.add({"kind": "epoch", "epoch": 1, "num_epochs": 4, "time": 10.0})
    history.add(
        {
            "kind": "batch",
            "stage": "train",
            "epoch": 2,
            "batch": 5,
            "num_batches": 10,
            "time": 11.0,
        }
    )
    assert history.epoch_fraction() == 0.5
    assert history.fit_fraction() == pytest.approx(1.5 / 4)
    assert history.batch_x == [1.5]


def test_history_missing_values_are_nan():
    history = RunHistory()
    history.add({"kind": "epoch", "epoch": 1, "test_loss": None, "test_acc": None})
    history.add({"kind": "epoch", "epoch": 2, "test_loss": 0.5, "test_acc": 80.0})
    assert history.best_test_acc == 80.0
    assert history.test_loss[1] == 0.5


def test_history_reads_memory_and_device():
    history = RunHistory()
    history.add({"kind": "status", "status": "running", "device": "cuda:0"})
    history.add({"kind": "batch", "stage": "train", "cuda_memory": 3 * 2**30})
    assert history.device == "cuda:0"
    assert history.memory == "3.0 GiB"


def test_format_helpers():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(5 * 2**40) == "5120.0 GiB"
    assert format_duration(None) == "-"
    assert format_duration(75) == "1:15"
    assert format_duration(3725) == "1:02:05"
