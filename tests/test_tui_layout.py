"""What the user can read on screen at 80x24 and at a larger size.

The runs here are written straight into a real store (run.json and
metrics.jsonl records as a worker writes them), so no training is needed.
"""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console
from textual.widgets import DataTable

from engine import spec as specs
from engine.runs import MetricsWriter, RunStore
from tui.app import LayerlabApp
from tui.build_view import BuildView, describe_layer
from tui.live_view import LiveView
from tui.run_monitor import format_duration
from tui.runs_view import RunsView, format_date

SIZES = [(80, 24), (140, 45)]
LONG_NAME = "adam-with-a-rather-long-run-name"


def screen_text(app: LayerlabApp) -> str:
    """Return the characters on the app's screen, as a terminal shows them."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


def widget_lines(app: LayerlabApp, selector: str) -> list[str]:
    """Return the screen lines inside the region of the widget ``selector``."""
    region = app.query_one(selector).region
    lines = screen_text(app).splitlines()[region.y : region.bottom]
    return [line[region.x : region.right] for line in lines]


def words(text: str) -> str:
    """Return ``text`` with every run of whitespace, line ends too, as one space."""
    return " ".join(text.split())


async def wait_until(pilot, condition, timeout: float = 30.0) -> None:
    """Let the app run until ``condition()`` is true, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(0.1)


def finished_run(store: RunStore, name: str, test_accuracies: list[float]):
    """Create a finished digits run whose epochs reached ``test_accuracies``."""
    config = {
        "spec": specs.default_spec(),
        "dataset": {"name": "digits"},
        "optimizer": {"name": "adam", "learn_rate": 0.001, "reg": 0.0},
        "training": {"epochs": len(test_accuracies), "device": "cpu"},
    }
    run = store.create(config, name=name)
    with MetricsWriter(run.metrics_path) as writer:
        writer.write(
            {
                "kind": "status",
                "status": "running",
                "start_epoch": 1,
                "num_epochs": len(test_accuracies),
                "device": "cpu",
                "time": 1000.0,
            }
        )
        for epoch, accuracy in enumerate(test_accuracies, start=1):
            writer.write(
                {
                    "kind": "epoch",
                    "epoch": epoch,
                    "num_epochs": len(test_accuracies),
                    "train_loss": 1.0 / epoch,
                    "train_acc": accuracy,
                    "test_loss": 1.2 / epoch,
                    "test_acc": accuracy,
                    "seconds": 1.5,
                    "samples_per_second": 1234.0,
                    "time": 1000.0 + epoch,
                }
            )
    run.update(
        status="finished",
        reason="completed",
        summary={
            "best_test_acc": max(test_accuracies),
            "epochs_done": len(test_accuracies),
            "num_epochs": len(test_accuracies),
            "seconds": 1.5 * len(test_accuracies),
        },
    )
    return run


def parameter_column_problems(app: LayerlabApp) -> list[str]:
    """Return each way the Build table fails to show a row's parameter count."""
    summary = specs.summary(app.spec)
    # The header line, then one line per row.
    header, *row_lines = widget_lines(app, "#stack")
    if "params" not in header:
        return [f"no params header in {header!r}"]
    params_column = header.index("params")
    problems = []
    if len(row_lines) < 5:
        problems.append(f"only {len(row_lines)} rows are shown")
    for row, line in zip(summary.rows, row_lines, strict=False):
        layer = describe_layer(app.spec["layers"][row.index])
        cells = line[params_column:].split()
        if line.split()[:1] != [str(row.index)] or f" {layer} " not in line:
            problems.append(f"row {row.index} is not on line {line!r}")
        elif cells[:1] != [f"{row.num_params:,}"]:
            problems.append(f"row {row.index} shows no {row.num_params:,}: {line!r}")
    return problems


async def settled_problems(pilot, find_problems, timeout: float = 10.0) -> list[str]:
    """Return ``find_problems()`` once it is empty, or its last value after
    ``timeout`` seconds, so a slow first layout does not fail a check."""
    deadline = time.monotonic() + timeout
    problems = find_problems()
    while problems and time.monotonic() < deadline:
        await pilot.pause(0.1)
        problems = find_problems()
    return problems


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_build_summary_shows_parameter_counts(tmp_path, size):
    app = LayerlabApp(runs_dir=tmp_path / "runs")
    app.spec = specs.preset_ycn("digits")
    async with app.run_test(size=size) as pilot:
        table = app.query_one("#stack", DataTable)
        await wait_until(pilot, lambda: table.row_count == len(app.spec["layers"]))
        problems = await settled_problems(pilot, lambda: parameter_column_problems(app))
        assert problems == []
        total = specs.summary(app.spec).total_params
        totals = words(" ".join(widget_lines(app, "#build-totals")))
        assert f"parameters {total:,}" in totals


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_build_invalid_reason_fully_shown(tmp_path, size):
    spec = specs.preset_ycn("cifar10")
    # The second convolution, whose input the first pooling has shrunk.
    conv = [i for i, layer in enumerate(spec["layers"]) if layer["type"] == "conv2d"][1]
    spec["layers"][conv]["kernel_size"] = 40
    app = LayerlabApp(runs_dir=tmp_path / "runs")
    app.spec = spec
    async with app.run_test(size=size) as pilot:
        view = app.query_one(BuildView)
        await wait_until(pilot, lambda: view.bad_row is not None)
        await pilot.pause()
        error = specs.summary(spec).error
        assert error is not None
        assert len(error.reason) > 100
        error_text = words(" ".join(widget_lines(app, "#build-error")))
        assert error_text == f"Layer {error.index} ({error.layer_type}): {error.reason}"


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_live_stats_show_best_accuracy(tmp_path, size):
    store = RunStore(tmp_path / "runs")
    run = finished_run(store, LONG_NAME, [40.0, 71.25, 65.0])
    app = LayerlabApp(runs_dir=store.root)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        app.show_run(run.id)
        live = app.query_one(LiveView)
        await wait_until(pilot, lambda: "acc-plot" in live.drawn)
        await pilot.pause()
        screen = screen_text(app)
        assert "best test 71.2%" in screen
        assert "1,234 samples/s" in screen
        assert "epochs 3/3" in screen
        assert "device cpu" in screen
        assert LONG_NAME in screen


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_runs_table_shows_results(tmp_path, size):
    store = RunStore(tmp_path / "runs")
    runs = [
        finished_run(store, LONG_NAME, [40.0, 71.25]),
        finished_run(store, "short", [10.0, 20.0, 33.5]),
    ]
    app = LayerlabApp(runs_dir=store.root)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.press("4")
        view = app.query_one(RunsView)
        table = view.query_one("#runs-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 2)
        await pilot.pause()
        lines = screen_text(app).splitlines()
        wide = size[0] >= 120
        for run in runs:
            summary = run.summary()
            line = next(line for line in lines if summary.name[:10] in line)
            assert f"{summary.best_test_acc:.2f}" in line
            assert f"{summary.epochs_done}/{summary.num_epochs}" in line
            assert format_duration(summary.seconds) in line
            assert format_date(summary.created, with_year=wide) in line
            if wide:
                assert summary.name in line
                assert summary.optimizer in line

        # The columns left out at 80 columns show for the cursor row below.
        table.move_cursor(row=table.get_row_index(runs[0].id))
        await pilot.pause()
        detail = words(screen_text(app))
        summary = runs[0].summary()
        assert f"{LONG_NAME}: data set digits, model {summary.model}" in detail
        assert f"optimizer {summary.optimizer}" in detail
