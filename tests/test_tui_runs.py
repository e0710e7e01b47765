"""Tests of the Runs view: table, filter, sort, overlay, delete and export.

Two runs are trained once for the module by real detached workers running
at the same time on the bundled digits data.
"""

from __future__ import annotations

import csv
import time

import pytest
from textual.widgets import (
    DataTable,
    Input,
    OptionList,
    RichLog,
    Select,
    Static,
    TabbedContent,
)
from textual_plotext import PlotextPlot

from engine.runs import MetricsWriter, RunStore
from engine.spec import default_spec
from engine.worker import request_stop, start_detached, wait_until_done
from tui.app import LayerlabApp
from tui.dialogs import ConfirmDialog, PathDialog
from tui.live_view import LiveView
from tui.run_monitor import distinct_names
from tui.runs_view import RunsView

SIZES = [(80, 24), (140, 45)]


def digits_config(learn_rate: float, epochs: int = 3) -> dict:
    return {
        "spec": default_spec(),
        "dataset": {
            "name": "digits",
            "data_dir": None,
            "download": False,
            "augment": False,
            "train_size": None,
        },
        "optimizer": {"name": "sgd", "learn_rate": learn_rate, "reg": 0.0},
        "training": {
            "batch_size": 32,
            "bs_test": None,
            "epochs": epochs,
            "max_batches": 3,
            "early_stopping": None,
            "seed": 0,
            "device": "cpu",
        },
    }


def train_runs(store: RunStore, names_and_rates: list[tuple[str, float]]) -> list:
    runs = [
        store.create(digits_config(rate), name=name) for name, rate in names_and_rates
    ]
    for run in runs:
        start_detached(store.root, run.id)
    for run in runs:
        status = wait_until_done(run, timeout=120)
        if status != "finished":
            request_stop(run)
        assert status == "finished", run.reason
    return runs


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    train_runs(store, [("slow-sgd", 0.001), ("fast-sgd", 0.1)])
    return store


async def wait_until(pilot, condition, timeout: float = 30.0) -> None:
    """Let the app run until ``condition()`` is true, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(0.1)


async def open_runs(pilot) -> RunsView:
    await pilot.press("4")
    view = pilot.app.query_one(RunsView)
    table = view.query_one("#runs-table", DataTable)
    await wait_until(pilot, lambda: table.row_count > 0)
    table.focus()
    await pilot.pause()
    return view


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_overlay_two_finished_runs(finished_store, size):
    app = LayerlabApp(runs_dir=finished_store.root)
    async with app.run_test(size=size) as pilot:
        view = await open_runs(pilot)
        await pilot.press("space", "space", "c")
        await pilot.pause()

        assert len(view.marked) == 2
        accuracy = view.drawn["compare-a"]
        assert sorted(s.label for s in accuracy) == ["fast-sgd", "slow-sgd"]
        for series in accuracy:
            assert series.xs == [1.0, 2.0, 3.0]
        assert len(view.drawn["compare-b"]) == 2
        # The first draw happens while the plots are still hidden, and
        # every epoch must reach the figure all the same.
        for plot_id in ("#compare-a", "#compare-b"):
            figure = view.query_one(plot_id, PlotextPlot).plt.monitor
            assert figure.x == [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]

        view.query_one("#metric-b", Select).value = "train_loss"
        await pilot.pause()
        run = next(r for r in finished_store.runs() if r.name == accuracy[0].label)
        train_loss = [r["train_loss"] for r in run.history()]
        assert view.drawn["compare-b"][0].ys == train_loss


async def test_table_shows_best_accuracy(finished_store):
    app = LayerlabApp(runs_dir=finished_store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await open_runs(pilot)
        table = view.query_one("#runs-table", DataTable)
        for summary in finished_store.list():
            best = table.get_cell(summary.id, "best")
            assert best == f"{summary.best_test_acc:.2f}"
            assert table.get_cell(summary.id, "epochs") == "3/3"


async def test_filter_and_sort(finished_store):
    app = LayerlabApp(runs_dir=finished_store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await open_runs(pilot)
        table = view.query_one("#runs-table", DataTable)
        await pilot.press("slash", "f", "a", "s", "t")
        await pilot.pause()
        assert table.row_count == 1
        assert view.visible_summaries()[0].name == "fast-sgd"

        view.query_one("#runs-filter", Input).value = ""
        table.focus()
        await pilot.press("t")
        assert view.sort_column == "name"
        names = [s.name for s in view.visible_summaries()]
        assert names == ["slow-sgd", "fast-sgd"]
        await pilot.press("T")
        names = [s.name for s in view.visible_summaries()]
        assert names == ["fast-sgd", "slow-sgd"]


async def test_open_shows_run_in_live(finished_store):
    app = LayerlabApp(runs_dir=finished_store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await open_runs(pilot)
        run_id = view.cursor_run_id()
        await pilot.press("o")
        live = app.query_one(LiveView)
        await wait_until(pilot, lambda: "acc-plot" in live.drawn)
        assert live.shown_id == run_id
        assert live.drawn["acc-plot"][1].xs == [1.0, 2.0, 3.0]


async def test_opened_run_log_fills_width(finished_store):
    app = LayerlabApp(runs_dir=finished_store.root)
    async with app.run_test(size=(160, 48)) as pilot:
        # Live is shown once, so its log pane is laid out, then hidden.
        await pilot.pause()
        await pilot.press("3")
        await pilot.pause()
        view = await open_runs(pilot)
        run_id = view.cursor_run_id()
        await pilot.press("o")
        live = app.query_one(LiveView)
        await wait_until(pilot, lambda: "acc-plot" in live.drawn)
        await pilot.pause()

        log_pane = live.query_one("#live-log", RichLog)
        assert log_pane.scrollable_content_region.width > 100
        shown_lines = [strip.text.rstrip() for strip in log_pane.lines]
        history = live.monitors[run_id].history
        epoch_lines = [line for line in history.log if line.startswith("epoch ")]
        assert len(epoch_lines) == 3
        assert len(epoch_lines[0]) > 40
        for line in epoch_lines:
            assert line in shown_lines
        assert len(shown_lines) == len(history.log)

        # A narrower terminal wraps the lines again at the new width.
        await pilot.resize_terminal(60, 30)
        await pilot.pause()
        await pilot.pause()
        width = log_pane.scrollable_content_region.width
        assert width < len(epoch_lines[0])
        assert max(strip.cell_length for strip in log_pane.lines) <= width
        assert len(log_pane.lines) > len(history.log)


async def test_palette_compares_marked_runs(finished_store):
    app = LayerlabApp(runs_dir=finished_store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await open_runs(pilot)
        await pilot.press("space", "space", "1")
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Compare runs")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(view.compared) == 2)
        assert app.query_one(TabbedContent).active == "runs"
        assert len(view.drawn["compare-a"]) == 2


async def test_live_keys_switch_runs(finished_store):
    app = LayerlabApp(runs_dir=finished_store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        first, second = (run.id for run in finished_store.runs())
        app.show_run(first)
        app.show_run(second)
        live = app.query_one(LiveView)
        await pilot.pause()
        assert live.shown_id == second
        # The keys work wherever the focus is in Live, not only in its list.
        live.query_one("#live-log", RichLog).focus()
        await pilot.press("n")
        await pilot.pause()
        assert live.shown_id == first
        assert live.query_one("#live-runs", OptionList).highlighted == 0
        await pilot.press("p")
        await pilot.pause()
        assert live.shown_id == second
        await pilot.press("p")
        await pilot.pause()
        assert live.shown_id == first


async def test_export_csv(finished_store, tmp_path):
    target = tmp_path / "out.csv"
    app = LayerlabApp(runs_dir=finished_store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_runs(pilot)
        await pilot.press("space", "space", "e")
        await wait_until(pilot, lambda: isinstance(app.screen, PathDialog))
        app.screen.query_one("#path", Input).value = str(target)
        await pilot.press("enter")
        await wait_until(pilot, target.exists)

    with open(target, newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 6
    assert {row["name"] for row in rows} == {"slow-sgd", "fast-sgd"}


async def test_export_names_cursor_run(finished_store, tmp_path):
    app = LayerlabApp(runs_dir=finished_store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await open_runs(pilot)
        name = next(s.name for s in view.summaries if s.id == view.cursor_run_id())
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, PathDialog))
        title = app.screen.title_text
        assert title.startswith(f"Export the metrics of {name} to a CSV file")
        assert "mark runs with space" in title
        await pilot.press("escape")
        await pilot.pause()

        await pilot.press("space", "space", "e")
        await wait_until(pilot, lambda: isinstance(app.screen, PathDialog))
        title = app.screen.title_text
        assert title == "Export the metrics of 2 marked run(s) to a CSV file"


async def test_delete_asks_then_removes(tmp_path):
    store = RunStore(tmp_path / "runs")
    train_runs(store, [("doomed", 0.01)])
    app = LayerlabApp(runs_dir=store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_runs(pilot)
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")
        await pilot.pause()
        assert len(store.list()) == 1

        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: store.list() == [])
        table = app.query_one(RunsView).query_one("#runs-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 0)


async def test_deleted_run_leaves_live(tmp_path):
    store = RunStore(tmp_path / "runs")
    doomed, kept = train_runs(store, [("doomed", 0.01), ("kept", 0.01)])
    app = LayerlabApp(runs_dir=store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        live = app.query_one(LiveView)
        app.show_run(kept.id)
        app.show_run(doomed.id)
        await wait_until(pilot, lambda: "acc-plot" in live.drawn)
        assert live.shown_id == doomed.id

        view = await open_runs(pilot)
        table = view.query_one("#runs-table", DataTable)
        table.move_cursor(row=table.get_row_index(doomed.id))
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: doomed.id not in live.monitors)

        run_list = live.query_one("#live-runs", OptionList)
        assert list(live.monitors) == [kept.id]
        assert run_list.option_count == 1
        assert run_list.get_option_at_index(0).id == kept.id
        assert live.shown_id == kept.id

        # Deleting the last followed run leaves Live empty.
        table.move_cursor(row=table.get_row_index(kept.id))
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: not live.monitors)
        assert run_list.option_count == 0
        assert live.shown_id is None
        assert live.drawn == {}
        assert live.query_one("#live-log", RichLog).lines == []
        await pilot.press("3")
        await pilot.pause()
        title = str(live.query_one("#live-title", Static).render())
        assert title.startswith("No run")


def stored_runs(store: RunStore, names: list[str]) -> list:
    """Create finished runs with two epochs of metrics, without training."""
    runs = []
    for index, name in enumerate(names):
        run = store.create(digits_config(0.01, epochs=2), name=name)
        with MetricsWriter(run.metrics_path) as writer:
            for epoch in (1, 2):
                writer.write(
                    {
                        "kind": "epoch",
                        "epoch": epoch,
                        "train_loss": 1.0 / epoch + index,
                        "test_loss": 1.1 / epoch + index,
                        "train_acc": 50.0 + epoch,
                        "test_acc": 40.0 + epoch + index,
                        "seconds": 1.0,
                        "time": 1000.0 + epoch,
                    }
                )
        run.update(status="finished", reason="completed 2 epochs")
        runs.append(run)
    return runs


async def test_compare_follows_marks_and_deletes(tmp_path):
    store = RunStore(tmp_path / "runs")
    stored_runs(store, ["first", "second", "third"])
    app = LayerlabApp(runs_dir=store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await open_runs(pilot)
        table = view.query_one("#runs-table", DataTable)
        await pilot.press("space", "space", "c")
        await pilot.pause()
        assert len(view.drawn["compare-a"]) == 2
        first_two = list(view.compared)

        # Unmarking a run drops its curve.
        table.move_cursor(row=table.get_row_index(first_two[0]))
        await pilot.press("space")
        await pilot.pause()
        assert view.compared == first_two[1:]
        assert len(view.drawn["compare-a"]) == 1
        assert len(view.drawn["compare-b"]) == 1
        figure = view.query_one("#compare-a", PlotextPlot).plt.monitor
        assert len(figure.x) == 1

        # Deleting the last compared run clears and hides the plots.
        table.move_cursor(row=table.get_row_index(first_two[1]))
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: len(store.list()) == 2)
        await pilot.pause()
        assert view.compared == []
        assert view.drawn["compare-a"] == []
        assert view.drawn["compare-b"] == []
        assert not view.query_one("#runs-compare").has_class("-shown")


async def test_same_names_stay_distinct(tmp_path):
    store = RunStore(tmp_path / "runs")
    first = stored_runs(store, ["twin"])[0]
    time.sleep(1.1)
    second = stored_runs(store, ["twin"])[0]
    assert first.id != second.id
    app = LayerlabApp(runs_dir=store.root)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await open_runs(pilot)
        await pilot.press("space", "space", "c")
        await pilot.pause()
        labels = sorted(series.label for series in view.drawn["compare-a"])
        assert labels == sorted(
            f"twin ({run.id.split('-')[1]})" for run in (first, second)
        )

        # The delete prompt names each run with its id.
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        question = str(app.screen.query_one(".dialog-question", Static).render())
        assert f"twin ({first.id})" in question
        assert f"twin ({second.id})" in question
        await pilot.press("n")
        await pilot.pause()

        # Live's run list distinguishes the twins too.
        app.show_run(first.id)
        app.show_run(second.id)
        live = app.query_one(LiveView)
        await wait_until(pilot, lambda: len(live.monitors) == 2)
        run_list = live.query_one("#live-runs", OptionList)
        prompts = [
            str(run_list.get_option_at_index(index).prompt).split("\n")[0]
            for index in range(run_list.option_count)
        ]
        assert prompts == [f"twin ({run.id.split('-')[1]})" for run in (first, second)]


def test_distinct_names_cases():
    names = {
        "20261204-101530-adam": "adam",
        "20261204-101531-adam": "adam",
        "20261204-101532-sgd": "sgd",
    }
    assert distinct_names(names) == {
        "20261204-101530-adam": "adam (101530)",
        "20261204-101531-adam": "adam (101531)",
        "20261204-101532-sgd": "sgd",
    }
    same_second = {"20261204-101530-adam": "adam", "20261204-101530-adam-2": "adam"}
    assert distinct_names(same_second) == {
        "20261204-101530-adam": "adam (20261204-101530-adam)",
        "20261204-101530-adam-2": "adam (20261204-101530-adam-2)",
    }
