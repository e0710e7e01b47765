"""Tests of the Train form, driven through the app with the Pilot.

Runs train for real in detached worker processes on the bundled digits
data, with few epochs and batches so each fit takes a few seconds.
"""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console
from textual.widgets import Button, DataTable, Input, Select, Static

from engine.runs import RunStore
from tui.app import LayerlabApp
from tui.live_view import LiveView
from tui.runs_view import RunsView
from tui.train_view import (
    TrainView,
    check_int_field,
    check_run_name,
    input_mismatch,
)

SIZES = [(80, 24), (140, 45)]


async def wait_until(pilot, condition, timeout: float = 90.0) -> None:
    """Let the app run until ``condition()`` is true, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(0.1)


def set_field(app: LayerlabApp, field_id: str, value: str) -> None:
    app.query_one(TrainView).query_one(f"#{field_id}", Input).value = value


def error_text(app: LayerlabApp, field_id: str) -> str:
    label = app.query_one(TrainView).query_one(f"#error-{field_id}", Static)
    return str(label.render())


def notification_texts(app: LayerlabApp) -> list[str]:
    return [f"{n.title} {n.message}" for n in app._notifications]


def screen_text(app: LayerlabApp) -> str:
    """Return the characters on the app's screen, as a terminal shows them."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_start_key_trains_digits_to_end(tmp_path, size):
    app = LayerlabApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=size) as pilot:
        await pilot.press("2")
        set_field(app, "epochs", "3")
        set_field(app, "max_batches", "4")
        await pilot.pause()
        await pilot.press("s")

        store = RunStore(tmp_path / "runs")
        await wait_until(pilot, lambda: len(store.list()) == 1)
        run = store.runs()[0]
        live = app.query_one(LiveView)
        assert live.shown_id == run.id
        await wait_until(pilot, lambda: live.shown.status == "finished")
        await wait_until(pilot, lambda: live.drawn["acc-plot"][1].xs == [1, 2, 3])

        test_acc = live.drawn["acc-plot"][1].ys
        assert len(test_acc) == 3
        assert live.drawn["loss-plot"][2].xs == [1.0, 2.0, 3.0]
        assert run.reload().config["dataset"]["name"] == "digits"
        assert run.config["training"]["max_batches"] == 4

        await pilot.press("4")
        runs_view = app.query_one(RunsView)
        runs_view.refresh_runs()
        await pilot.pause()
        table = runs_view.query_one("#runs-table", DataTable)
        assert table.row_count == 1
        best = table.get_cell(run.id, "best")
        assert best == f"{max(test_acc):.2f}"
        assert str(table.get_cell(run.id, "status")) == "finished"


async def test_invalid_values_block_start(tmp_path):
    app = LayerlabApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        view = app.query_one(TrainView)
        view.query_one("#batch_size", Input).focus()
        view.query_one("#batch_size", Input).value = ""
        await pilot.press("a", "b", "c")
        set_field(app, "epochs", "0")
        set_field(app, "hyper-learn_rate", "-1")
        await pilot.pause()

        assert "whole number" in error_text(app, "batch_size")
        assert "at least 1" in error_text(app, "epochs")
        assert "Learning rate must be in" in error_text(app, "hyper-learn_rate")
        assert view.query_one("#start", Button).disabled

        app.action_start()
        await pilot.pause()
        assert RunStore(tmp_path / "runs").list() == []
        cannot_start = [t for t in notification_texts(app) if "Cannot start" in t]
        assert len(cannot_start) == 1
        assert "2 other fields are invalid" in cannot_start[0]

        set_field(app, "batch_size", "32")
        set_field(app, "epochs", "2")
        set_field(app, "hyper-learn_rate", "0.01")
        await pilot.pause()
        assert error_text(app, "batch_size") == ""
        assert not view.query_one("#start", Button).disabled


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_field_errors_shown_while_typing(tmp_path, size):
    app = LayerlabApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=size) as pilot:
        await pilot.press("2")
        view = app.query_one(TrainView)
        await wait_until(pilot, lambda: view.ready)
        epochs = view.query_one("#epochs", Input)
        epochs.focus()
        epochs.value = ""
        await pilot.press(*"ten")
        await pilot.pause()

        label = view.query_one("#error-epochs", Static)
        assert str(label.render()) == "Epochs must be a whole number, got 'ten'"
        assert label.display
        assert label.region.width > 0
        assert label.region.height > 0
        label.scroll_visible(animate=False)
        await pilot.pause()
        words_on_screen = " ".join(screen_text(app).split())
        assert "Epochs must be a whole number" in words_on_screen

        # The hint of a valid optional field shows in the same place.
        hint = view.query_one("#error-max_batches", Static)
        assert str(hint.render()) == "empty: all"
        assert hint.region.width > 0


async def test_start_names_fields_by_label(tmp_path):
    app = LayerlabApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        view = app.query_one(TrainView)
        await wait_until(pilot, lambda: view.ready)
        set_field(app, "hyper-learn_rate", "-1")
        await pilot.pause()
        assert error_text(app, "hyper-learn_rate").startswith("Learning rate ")

        app.action_start()
        await pilot.pause()
        assert "Learning rate must be in (0, inf)" in notification_texts(app)[-1]

        set_field(app, "hyper-learn_rate", "0.01")
        set_field(app, "hyper-reg", "")
        await pilot.pause()
        app.action_start()
        await pilot.pause()
        message = notification_texts(app)[-1]
        assert "L2 reg must be a number, got ''" in message
        assert "reg must" not in message.replace("L2 reg must", "")
        assert "learn_rate" not in " ".join(notification_texts(app))


async def test_missing_data_directory_reported(tmp_path):
    missing = tmp_path / "no-such-dir"
    app = LayerlabApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        view = app.query_one(TrainView)
        set_field(app, "data_dir", str(missing))
        view.query_one("#dataset", Select).value = "mnist"
        await pilot.pause()

        assert error_text(app, "data_dir") != ""
        assert view.query_one("#start", Button).disabled

        await pilot.press("s")
        await pilot.pause()
        assert any("Data set missing" in text for text in notification_texts(app))
        assert RunStore(tmp_path / "runs").list() == []


async def test_data_messages_name_form_controls(tmp_path):
    app = LayerlabApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        view = app.query_one(TrainView)
        await wait_until(pilot, lambda: view.ready)
        set_field(app, "data_dir", str(tmp_path / "missing"))
        view.query_one("#dataset", Select).value = "imagefolder"
        await pilot.pause()
        message = error_text(app, "data_dir")
        assert "the Data directory field" in message
        assert "--data-dir" not in message
        view.query_one("#dataset", Select).value = "mnist"
        await pilot.pause()
        message = error_text(app, "data_dir")
        assert "tick Download if missing or set Data directory" in message
        assert "--download" not in message
        await pilot.press("s")
        await pilot.pause()
        notified = " ".join(notification_texts(app))
        assert "the Download if missing checkbox" in notified
        assert "the Data directory field" in notified
        assert "--data-dir" not in notified
        assert "--download" not in notified


async def test_missing_data_short_reason(tmp_path):
    missing = tmp_path / "missing"
    app = LayerlabApp(runs_dir=tmp_path / "runs", data_dir=missing)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        view = app.query_one(TrainView)
        await wait_until(pilot, lambda: view.ready)
        view.query_one("#dataset", Select).value = "cifar10"
        await pilot.pause()
        message = error_text(app, "data_dir")
        assert message == (
            f"cifar10 not found in {missing}; tick Download if missing "
            "or set Data directory"
        )
        assert "cifar10" in view.errors["data_dir"]

        # Focus changes and input cycling in Build raise no toast.
        await pilot.press("tab", "tab", "tab", "shift+tab", "shift+tab")
        await pilot.pause()
        await pilot.press("escape", "1", "t", "t", "t", "2")
        await pilot.pause()
        assert notification_texts(app) == []

        # Start notifies the full message once.
        view.query_one("#dataset", Select).value = "cifar10"
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
        texts = notification_texts(app)
        assert len(texts) == 1
        assert texts[0].startswith("Data set missing cifar10 not found in")
        assert "and 6 more" in texts[0]


async def test_image_folder_needs_input_shape(tmp_path):
    folder = tmp_path / "images"
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            (folder / split / label).mkdir(parents=True)
    app = LayerlabApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        view = app.query_one(TrainView)
        await wait_until(pilot, lambda: view.ready)
        set_field(app, "data_dir", str(folder))
        view.query_one("#dataset", Select).value = "imagefolder"
        await pilot.pause()
        assert error_text(app, "data_dir") == ""
        status = str(view.query_one("#spec-status", Static).render())
        assert "press I" in status
        assert "Build tab (1)" in status
        assert view.query_one("#start", Button).disabled

        # The key that the message names opens the shape form in Build.
        await pilot.press("escape", "1", "I")
        await pilot.pause()
        dialog = app.screen
        fields = (("channels", "3"), ("height", "32"), ("width", "32"))
        for name, text in (*fields, ("num_classes", "2")):
            dialog.query_one(f"#field-{name}", Input).value = text
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.spec["input"] == {"shape": [3, 32, 32], "num_classes": 2}

        # The default stack still ends with 10 outputs, so Train names the
        # stack's problem until the last layer matches the 2 classes.
        status = str(view.query_one("#spec-status", Static).render())
        assert "layer stack invalid" in status
        spec = dict(app.spec)
        spec["layers"] = [*spec["layers"][:-1], {"type": "linear", "out_features": 2}]
        app.spec = spec
        await pilot.pause()
        assert view.errors == {}
        assert not view.query_one("#start", Button).disabled
        assert view.run_config()["spec"]["input"] == {
            "shape": [3, 32, 32],
            "num_classes": 2,
        }


async def test_build_input_and_dataset_follow(tmp_path):
    app = LayerlabApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        view = app.query_one(TrainView)
        await wait_until(pilot, lambda: view.ready)
        select = view.query_one("#dataset", Select)

        # Build's t key moves the input to cifar10, then mnist.
        await pilot.press("escape", "1", "t", "t")
        await pilot.pause()
        assert app.spec["input"] == {"dataset": "mnist"}
        assert select.value == "mnist"
        assert view.run_config()["spec"]["input"] == {"dataset": "mnist"}

        # A data set chosen in Train moves Build's input.
        select.value = "fashion-mnist"
        await pilot.pause()
        assert app.spec["input"] == {"dataset": "fashion-mnist"}
        header = str(app.query_one("#build-header", Static).render())
        assert "input fashion-mnist" in header

        # Edits that keep the input keep the data set chosen in Train.
        select.value = "imagefolder"
        await pilot.pause()
        assert app.spec["input"] == {"dataset": "fashion-mnist"}
        spec = dict(app.spec)
        spec["layers"] = [{"type": "linear", "out_features": 64}, *spec["layers"]]
        app.spec = spec
        await pilot.pause()
        assert select.value == "imagefolder"

        # An input shape that no named data set has chooses the image folder.
        select.value = "digits"
        await pilot.pause()
        app.spec = {**app.spec, "input": {"shape": [3, 40, 40], "num_classes": 10}}
        await pilot.pause()
        assert select.value == "imagefolder"


async def test_mismatched_input_blocks_start(tmp_path):
    app = LayerlabApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        view = app.query_one(TrainView)
        await wait_until(pilot, lambda: view.ready)
        select = view.query_one("#dataset", Select)
        # Without its Changed message, the choice does not reach Build.
        with view.prevent(Select.Changed):
            select.value = "cifar10"
            await pilot.pause()
        assert app.spec["input"] == {"dataset": "digits"}

        errors = view.validate_all()
        assert errors["spec"] == (
            "The stack's input is digits (Build) but the data set is cifar10 "
            "(Train): choose the same data set in both."
        )
        assert view.query_one("#start", Button).disabled
        app.action_start()
        await pilot.pause()
        assert RunStore(tmp_path / "runs").list() == []


def test_input_mismatch_compares_shapes():
    mnist_shape = {"shape": [1, 28, 28], "num_classes": 10}
    assert input_mismatch(mnist_shape, "mnist") == ""
    assert input_mismatch(mnist_shape, "fashion-mnist") == ""
    assert input_mismatch(mnist_shape, "imagefolder") == ""
    assert input_mismatch({"dataset": "mnist"}, "mnist") == ""
    message = input_mismatch(mnist_shape, "cifar10")
    assert "(1, 28, 28) with 10 classes (Build)" in message
    assert "cifar10 images are (3, 32, 32) with 10 classes (Train)" in message
    assert "press I" in input_mismatch({"dataset": "digits"}, "imagefolder")


async def test_optimizer_change_rebuilds_fields(tmp_path):
    app = LayerlabApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        view = app.query_one(TrainView)
        assert view.query("#hyper-beta1")
        view.query_one("#optimizer", Select).value = "momentum"
        await pilot.pause()

        assert view.query("#hyper-momentum")
        assert not view.query("#hyper-beta1")
        assert view.run_config()["optimizer"]["name"] == "momentum"
        assert view.run_config()["optimizer"]["momentum"] == 0.9


def test_check_int_field_messages():
    assert check_int_field("epochs", "3", False, 1) == ""
    assert check_int_field("patience", "", True, 1) == ""
    assert "required" in check_int_field("epochs", " ", False, 1)
    assert "whole number" in check_int_field("epochs", "2.5", False, 1)
    assert "at least 1" in check_int_field("epochs", "0", False, 1)


def test_check_run_name_rejects_separators():
    assert check_run_name("adam lr 0.01") == ""
    assert "'/'" in check_run_name("a/b")
    assert "at most" in check_run_name("x" * 100)
