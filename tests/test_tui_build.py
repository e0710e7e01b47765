"""The Build tab driven by keys through Textual's Pilot."""

from __future__ import annotations

import copy
import json

import pytest
from textual.widgets import DataTable, Input, Select, Static

from engine import spec as specs
from tui.app import LayerlabApp
from tui.build_view import BAD_ROW_STYLE, BuildView
from tui.dialogs import (
    AddLayerDialog,
    InputShapeDialog,
    LayerFormDialog,
    PathDialog,
    PresetDialog,
)

SIZES = [(80, 24), (160, 48)]


@pytest.fixture
def app(tmp_path, monkeypatch):
    # The save and load prompts start at "stack.json" in the working folder.
    monkeypatch.chdir(tmp_path)
    return LayerlabApp(runs_dir=tmp_path / "runs")


def stack_rows(app):
    table = app.query_one("#stack", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def static_text(app, selector):
    return str(app.query_one(selector, Static).render())


async def replace_text(pilot, text):
    """Clear the focused Input and type ``text``."""
    pilot.app.focused.value = ""
    await pilot.press(*text)


async def add_layer(pilot, layer_type):
    """Add a layer after the cursor by picking ``layer_type`` in the menu."""
    await pilot.press("a")
    assert isinstance(pilot.app.screen, AddLayerDialog)
    position = specs.layer_types(pilot.app.spec["backend"]).index(layer_type)
    await pilot.press(*["down"] * position, "enter")
    await pilot.pause()


async def wait_for_field(pilot, name):
    """Wait until the preset dialog has mounted the field ``name``."""
    for _ in range(50):
        fields = pilot.app.screen.query(f"#field-{name}")
        if fields:
            return fields.first()
        await pilot.pause(0.05)
    raise AssertionError(f"the preset form has no field {name!r}")


async def delete_all(pilot):
    for _ in range(len(pilot.app.spec["layers"])):
        await pilot.press("d")
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
async def test_build_compose_by_keys(app, size):
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        assert isinstance(app.focused, DataTable)
        await delete_all(pilot)
        assert app.spec["layers"] == []

        # Add: linear opens its form, whose first field is out_features.
        await add_layer(pilot, "linear")
        assert isinstance(app.screen, LayerFormDialog)
        await replace_text(pilot, "32")
        await pilot.press("enter")
        await pilot.pause()
        await add_layer(pilot, "relu")
        await add_layer(pilot, "linear")
        await replace_text(pilot, "10")
        await pilot.press("enter")
        await pilot.pause()
        types = [layer["type"] for layer in app.spec["layers"]]
        assert types == ["linear", "relu", "linear"]
        assert app.spec["layers"][0]["out_features"] == 32
        assert app.spec["layers"][2]["out_features"] == 10
        rows = stack_rows(app)
        assert rows[0][2:] == ["(32)", f"{64 * 32 + 32:,}"]
        assert rows[2][2:] == ["(10)", f"{32 * 10 + 10:,}"]
        assert "parameters 2,410" in static_text(app, "#build-totals")

        # Move: the last linear goes up one place, then back down.
        await pilot.press("K")
        await pilot.pause()
        types = [layer["type"] for layer in app.spec["layers"]]
        assert types == ["linear", "linear", "relu"]
        assert app.query_one("#stack", DataTable).cursor_row == 1
        await pilot.press("J")
        await pilot.pause()
        types = [layer["type"] for layer in app.spec["layers"]]
        assert types == ["linear", "relu", "linear"]

        # Remove the relu, then edit the first linear.
        await pilot.press("up", "d")
        await pilot.pause()
        types = [layer["type"] for layer in app.spec["layers"]]
        assert types == ["linear", "linear"]
        await pilot.press("up", "e")
        assert isinstance(app.screen, LayerFormDialog)
        await replace_text(pilot, "16")
        await pilot.press("enter")
        await pilot.pause()
        assert app.spec["layers"][0]["out_features"] == 16
        assert stack_rows(app)[0][2:] == ["(16)", f"{64 * 16 + 16:,}"]
        assert "parameters 1,210" in static_text(app, "#build-totals")
        assert app.query_one(BuildView).bad_row is None


@pytest.mark.parametrize("key", ["a", "i"])
async def test_build_cancel_form_undoes_add(app, key):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        before = copy.deepcopy(app.spec)
        await pilot.press("down", key)
        assert isinstance(app.screen, AddLayerDialog)
        position = specs.layer_types(app.spec["backend"]).index("linear")
        await pilot.press(*["down"] * position, "enter")
        await pilot.pause()
        assert isinstance(app.screen, LayerFormDialog)
        assert len(app.spec["layers"]) == len(before["layers"]) + 1
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, LayerFormDialog)
        assert app.spec == before
        assert len(stack_rows(app)) == len(before["layers"])
        assert app.query_one("#stack", DataTable).cursor_row == 1

        # Cancel on a later edit of an existing layer changes nothing.
        await pilot.press("e")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.spec == before


async def test_build_invalid_stack_highlights_row(app):
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        # The default stack ends with linear(10); make it give 7 classes.
        await pilot.press("down", "down", "e")
        await replace_text(pilot, "7")
        await pilot.press("enter")
        await pilot.pause()
        view = app.query_one(BuildView)
        assert view.bad_row == 2
        first_cell = app.query_one("#stack", DataTable).get_row_at(2)[0]
        assert str(first_cell.style) == BAD_ROW_STYLE
        error = app.query_one("#build-error", Static)
        assert error.has_class("invalid")
        assert "Layer 2 (linear)" in str(error.render())
        assert "10 classes" in str(error.render())

        # Fixing the value clears the error.
        await pilot.press("e")
        await replace_text(pilot, "10")
        await pilot.press("enter")
        await pilot.pause()
        assert view.bad_row is None
        assert not error.has_class("invalid")


async def test_build_form_rejects_bad_value(app):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("e")
        dialog = app.screen
        assert isinstance(dialog, LayerFormDialog)
        await replace_text(pilot, "-3")
        await pilot.pause()
        reason = str(dialog.query_one("#error-out_features", Static).render())
        assert "out_features" in reason
        assert dialog.query_one("#ok").disabled
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is dialog
        await replace_text(pilot, "abc")
        await pilot.pause()
        reason = str(dialog.query_one("#error-out_features", Static).render())
        assert "integer" in reason
        await pilot.press("escape")
        await pilot.pause()
        assert app.spec["layers"][0]["out_features"] == 128


async def test_build_backend_switch_changes_menu(app):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("a")
        options = app.screen.query_one("#layer-types")
        block_types = [
            options.get_option_at_index(i).id for i in range(options.option_count)
        ]
        assert block_types == specs.layer_types("blocks")
        assert "conv2d" not in block_types
        await pilot.press("escape", "b")
        await pilot.pause()
        assert app.spec["backend"] == "torch"
        await pilot.press("a")
        options = app.screen.query_one("#layer-types")
        torch_types = [
            options.get_option_at_index(i).id for i in range(options.option_count)
        ]
        assert "conv2d" in torch_types


async def test_build_presets(app):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("p")
        dialog = app.screen
        assert isinstance(dialog, PresetDialog)
        await pilot.pause()
        # The first preset is the MLP; hidden widths are its H field.
        assert dialog.preset_name == "mlp"
        (await wait_for_field(pilot, "hidden")).focus()
        await replace_text(pilot, "40, 20")
        await pilot.press("enter")
        await pilot.pause()
        expected = specs.preset_mlp("digits", hidden=[40, 20])
        assert app.spec == expected
        assert app.query_one(BuildView).bad_row is None

        # The CNN preset on CIFAR-10 shape: K, L, P and H fields.
        await pilot.press("t")
        await pilot.press("p")
        dialog = app.screen
        await pilot.pause()
        await wait_for_field(pilot, "hidden")
        dialog.query_one("#preset-name", Select).value = "cnn"
        for name in ("K", "L", "P", "H"):
            assert isinstance(await wait_for_field(pilot, name), Input)
        dialog.query_one("#field-K", Input).focus()
        await replace_text(pilot, "8, 16")
        await pilot.press("enter")
        await pilot.pause()
        assert app.spec["backend"] == "torch"
        assert app.spec["input"] == {"dataset": "cifar10"}
        assert app.query_one(BuildView).bad_row is None
        summary = specs.summary(app.spec)
        assert summary.error is None
        assert len(stack_rows(app)) == len(app.spec["layers"])


async def test_build_save_load_round_trip(app, tmp_path):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("e")
        await replace_text(pilot, "48")
        await pilot.press("enter", "ctrl+s")
        assert isinstance(app.screen, PathDialog)
        await pilot.press("enter")
        await pilot.pause()
        saved = app.spec
        on_disk = json.loads((tmp_path / "stack.json").read_text())
        assert on_disk["layers"] == saved["layers"]
        message = list(app._notifications)[-1].message
        assert message == f"Saved the stack to {tmp_path / 'stack.json'}."

        await delete_all(pilot)
        assert app.spec["layers"] == []
        await pilot.press("ctrl+o")
        assert isinstance(app.screen, PathDialog)
        await pilot.press("enter")
        await pilot.pause()
        assert app.spec["layers"] == saved["layers"]
        assert app.spec["layers"][0]["out_features"] == 48
        assert stack_rows(app)[0][2] == "(48)"


async def test_build_load_errors_are_notifications(app, tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "layers.json").write_text('{"layers": [1]}')
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        before = app.spec
        for name in ("bad.json", "missing.json", "list.json", "layers.json"):
            await pilot.press("ctrl+o")
            await replace_text(pilot, name)
            await pilot.press("enter")
            await pilot.pause()
            messages = [notification.message for notification in app._notifications]
            assert any(name in message for message in messages)
            assert app.spec == before
        assert app.is_running


async def test_build_loads_misfit_stack_as_draft(app, tmp_path):
    spec = specs.default_spec()
    spec["layers"][-1]["out_features"] = 7
    (tmp_path / "stack.json").write_text(json.dumps(spec))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+o", "enter")
        await pilot.pause()
        assert app.spec["layers"][-1]["out_features"] == 7
        assert app.query_one(BuildView).bad_row is not None
        assert static_text(app, "#build-error")


LOAD_REJECTS = [
    ('{"version": 1, "layers": [{"type": "bogus"}]}', "missing backend, input"),
    (
        '{"backend": "blocks", "input": {"dataset": "digits"}, '
        '"layers": [{"type": "bogus"}]}',
        "unknown layer type 'bogus'",
    ),
    ('{"backend": "blocks", "input": {"dataset": "digits"}}', "missing layers"),
    (
        '{"backend": "jax", "input": {"dataset": "digits"}, "layers": []}',
        "unknown backend 'jax'",
    ),
    (
        '{"backend": "blocks", "input": "nope", "layers": []}',
        "invalid input 'nope'",
    ),
]


@pytest.mark.parametrize(("text", "reason"), LOAD_REJECTS)
async def test_build_load_rejects_invalid_stack(app, tmp_path, text, reason):
    (tmp_path / "stack.json").write_text(text)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        before = copy.deepcopy(app.spec)
        await pilot.press("ctrl+o", "enter")
        await pilot.pause()
        assert app.spec == before
        assert len(stack_rows(app)) == len(before["layers"])
        messages = [notification.message for notification in app._notifications]
        assert not any("Loaded the stack" in message for message in messages)
        errors = [message for message in messages if "stack.json" in message]
        assert errors
        assert reason in errors[-1]


async def test_build_load_names_input_keys(app, tmp_path):
    (tmp_path / "stack.json").write_text('{"backend": "blocks", "layers": []}')
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+o", "enter")
        await pilot.pause()
        message = list(app._notifications)[-1].message
        assert "press t" in message
        assert "I to type" in message
        assert '{"dataset"' not in message


async def test_build_input_shape_form(app):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("I")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, InputShapeDialog)
        # The form starts at the digits shape of the default stack.
        values = {
            name: dialog.query_one(f"#field-{name}", Input).value
            for name in ("channels", "height", "width", "num_classes")
        }
        assert values == {
            "channels": "1",
            "height": "8",
            "width": "8",
            "num_classes": "10",
        }

        dialog.query_one("#field-height", Input).focus()
        await pilot.pause()
        await replace_text(pilot, "0")
        await pilot.pause()
        error = dialog.query_one("#error-height", Static)
        assert str(error.render()) == "Height must be at least 1, got 0"
        assert error.display
        assert dialog.query_one("#ok").disabled
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is dialog

        dialog.query_one("#field-num_classes", Input).focus()
        await pilot.pause()
        await replace_text(pilot, "x")
        await pilot.pause()
        reason = str(dialog.query_one("#error-num_classes", Static).render())
        assert reason == "Classes must be a whole number, got 'x'"

        for name, text in (
            ("channels", "3"),
            ("height", "16"),
            ("width", "24"),
            ("num_classes", "10"),
        ):
            dialog.query_one(f"#field-{name}", Input).focus()
            await pilot.pause()
            await replace_text(pilot, text)
        await pilot.pause()
        assert not dialog.errors
        assert not dialog.query_one("#error-height", Static).display
        await pilot.press("enter")
        await pilot.pause()

        assert not isinstance(app.screen, InputShapeDialog)
        assert app.spec["input"] == {"shape": [3, 16, 24], "num_classes": 10}
        header = static_text(app, "#build-header")
        assert "input shape (3, 16, 24), 10 classes (t, I)" in header
        assert stack_rows(app)[0][3] == f"{3 * 16 * 24 * 128 + 128:,}"

        # Escape leaves the input as it is; t goes back to a named data set.
        await pilot.press("I")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.spec["input"] == {"shape": [3, 16, 24], "num_classes": 10}
        await pilot.press("t")
        await pilot.pause()
        assert app.spec["input"] == {"dataset": "digits"}
