"""The Build tab: compose a layer stack and see its summary as it changes.

The stack is the app's ``spec`` (an ``engine.spec`` dict). Every edit here
replaces ``app.spec`` with a new dict, and the table redraws from the spec,
so an edit made elsewhere (a loaded run, say) shows up here as well.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from engine import spec as specs
from tui.dialogs import (
    AddLayerDialog,
    InputShapeDialog,
    LayerFormDialog,
    PathDialog,
    PresetDialog,
)

BACKENDS = ("blocks", "torch")
BAD_ROW_STYLE = "bold white on dark_red"
INPUT_HINT = " (in Build, press t to choose a data set or I to type an image shape)"


def format_bytes(count: int) -> str:
    """Text of a byte count in binary units, such as ``1.5 MiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _format_param(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "x".join(str(item) for item in value)
    return str(value)


def describe_layer(layer: dict[str, Any]) -> str:
    """Short text of a layer: its type, its first parameter's value, and the
    other parameters that differ from their defaults as ``name=value``."""
    layer_type = specs.LAYER_TYPES.get(layer.get("type"))
    if layer_type is None:
        return str(layer.get("type", "?"))
    parts = [layer_type.name]
    for position, param in enumerate(layer_type.params):
        if param.name not in layer:
            continue
        value = layer[param.name]
        if position == 0:
            parts.append(_format_param(value))
        elif value != param.default:
            parts.append(f"{param.name}={_format_param(value)}")
    return " ".join(parts)


def format_shape(shape: Any) -> str:
    """Text of an output shape without the batch dimension."""
    if shape is None:
        return ""
    return "(" + ", ".join(str(size) for size in shape) + ")"


def describe_input(spec: dict[str, Any], summary: Any) -> str:
    """Text of a spec's input: the data set, image shape and class count."""
    source = spec.get("input")
    name = source.get("dataset") if isinstance(source, dict) else None
    text = f"input {name or 'shape'}"
    if summary.input_shape is not None:
        text += f" {format_shape(summary.input_shape)}"
    if summary.num_classes is not None:
        text += f", {summary.num_classes} classes"
    return text


def editing_problem(spec: Any) -> str | None:
    """Check that the Build tab can show and edit ``spec``.

    Any other problem of a spec is left to the summary, which shows it.

    Returns:
        Why the spec cannot be edited (it is no JSON object, or its layers
        are no list of objects), or None when it can.
    """
    if not isinstance(spec, dict):
        return f"a stack must be a JSON object, got {type(spec).__name__}"
    layers = spec.get("layers", [])
    if not isinstance(layers, list):
        return f"layers must be a list, got {type(layers).__name__}"
    for index, layer in enumerate(layers):
        if not isinstance(layer, dict):
            return f"layers[{index}] must be a JSON object, got {layer!r}"
    return None


def loading_problem(spec: Any) -> str | None:
    """Check that a stack read from a file can replace the current one.

    A stack whose layers do not fit together still loads, because the summary
    shows why. A stack without a backend, input or layer list, or with an
    unknown backend, input or layer type, is rejected.

    Returns:
        Why the stack cannot be loaded, or None when it can.
    """
    problem = editing_problem(spec)
    if problem is not None:
        return problem
    missing = [key for key in ("backend", "input", "layers") if key not in spec]
    if missing:
        return "missing " + ", ".join(missing) + INPUT_HINT * ("input" in missing)
    if spec["backend"] not in BACKENDS:
        return f"unknown backend {spec['backend']!r}, expected one of " + ", ".join(
            BACKENDS
        )
    try:
        specs.input_shape(spec)
    except specs.SpecError:
        return f"invalid input {spec['input']!r}{INPUT_HINT}"
    for index, layer in enumerate(spec["layers"]):
        if layer.get("type") not in specs.LAYER_TYPES:
            return f"layers[{index}] has the unknown layer type {layer.get('type')!r}"
    return None


class BuildView(Vertical):
    """Editor of the app's layer stack with its live summary."""

    BINDINGS = [
        Binding("a", "add_layer('after')", "Add"),
        Binding("i", "add_layer('before')", "Insert"),
        Binding("d,delete", "remove_layer", "Delete"),
        Binding("e", "edit_layer", "Edit"),
        Binding("shift+up,K", "move_layer(-1)", "Move up", key_display="K"),
        Binding("shift+down,J", "move_layer(1)", "Move down", key_display="J"),
        # The header line names these keys, so the Footer leaves them out.
        Binding("b", "toggle_backend", "Backend", show=False),
        Binding("t", "next_input", "Input data", show=False),
        Binding("I", "input_shape", "Input shape", show=False),
        Binding("p", "preset", "Preset"),
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+o", "load", "Load"),
    ]

    class SpecChanged(Message):
        """Posted after the Build tab changed the app's spec."""

        def __init__(self, spec: dict[str, Any]) -> None:
            super().__init__()
            self.spec = spec

    def __init__(self) -> None:
        super().__init__()
        self.bad_row: int | None = None
        """Index of the first layer that cannot work, or None."""
        self.last_path = "stack.json"

    def compose(self) -> ComposeResult:
        yield Static(id="build-header")
        with Horizontal(id="build-body"):
            table = DataTable(id="stack", cursor_type="row", zebra_stripes=True)
            table.add_columns("#", "layer", "output", "params")
            yield table
            with VerticalScroll(id="build-side"):
                yield Static(id="build-totals")
                yield Static(id="build-error")
                yield Static(id="build-help")

    def on_mount(self) -> None:
        self.watch(self.app, "spec", self._show_spec)

    @property
    def spec(self) -> dict[str, Any]:
        return self.app.spec

    @property
    def backend(self) -> str:
        return self.spec.get("backend", "blocks")

    @property
    def stack_layers(self) -> list[dict[str, Any]]:
        return self.spec.get("layers", [])

    @property
    def cursor(self) -> int:
        return self.query_one("#stack", DataTable).cursor_row

    def _set_spec(self, spec: dict[str, Any], cursor: int | None = None) -> None:
        self.app.spec = spec
        if cursor is not None and spec.get("layers"):
            cursor = max(0, min(cursor, len(spec["layers"]) - 1))
            self.query_one("#stack", DataTable).move_cursor(row=cursor)
        self.post_message(self.SpecChanged(spec))

    def _edited(self) -> dict[str, Any]:
        """Return a deep copy of the spec to edit."""
        return copy.deepcopy(self.spec)

    # ------------------------------------------------------------------
    # Drawing

    def _show_spec(self, spec: dict[str, Any]) -> None:
        table = self.query_one("#stack", DataTable)
        cursor = table.cursor_row
        summary = specs.summary(spec)
        error = summary.error
        rows = {row.index: row for row in summary.rows}
        self.bad_row = error.index if error is not None else None

        table.clear()
        for index, layer in enumerate(spec.get("layers", [])):
            row = rows.get(index)
            cells = [
                str(index),
                describe_layer(layer),
                format_shape(row.output_shape) if row else "",
                f"{row.num_params:,}" if row else "",
            ]
            if index == self.bad_row:
                table.add_row(
                    *(Text(cell, style=BAD_ROW_STYLE) for cell in cells),
                    key=str(index),
                )
            else:
                table.add_row(*cells, key=str(index))
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))

        backend = spec.get("backend", "?")
        self.query_one("#build-header", Static).update(
            f"backend {backend} (b)   {describe_input(spec, summary)} (t, I)   keys: ?"
        )
        self._show_totals(summary)
        self._show_error(spec, error)
        self._show_help()

    def _show_totals(self, summary: Any) -> None:
        text = (
            f"parameters {summary.total_params:,}\n"
            f"activations {format_bytes(summary.activation_bytes)} per sample"
        )
        if not self.stack_layers:
            text += "\n\nThe stack is empty: press a to add a layer or p for a preset."
        self.query_one("#build-totals", Static).update(text)

    def _show_error(self, spec: dict[str, Any], error: Any) -> None:
        widget = self.query_one("#build-error", Static)
        widget.set_class(error is not None, "invalid")
        if error is None:
            widget.update("The stack is valid.")
            return
        if error.index is None:
            widget.update(f"Invalid stack: {error.reason}")
            return
        widget.update(f"Layer {error.index} ({error.layer_type}): {error.reason}")

    def _show_help(self) -> None:
        widget = self.query_one("#build-help", Static)
        layers = self.stack_layers
        if not layers or not 0 <= self.cursor < len(layers):
            widget.update("")
            return
        layer_type = specs.LAYER_TYPES.get(layers[self.cursor].get("type"))
        widget.update(f"{layer_type.name}: {layer_type.help}" if layer_type else "")

    @on(DataTable.RowHighlighted, "#stack")
    def _row_highlighted(self) -> None:
        self._show_help()

    @on(DataTable.RowSelected, "#stack")
    def _row_selected(self) -> None:
        self.action_edit_layer()

    # ------------------------------------------------------------------
    # Editing

    def action_add_layer(self, where: str = "after") -> None:
        """Open the menu of layer types and add the chosen one."""
        if self.stack_layers:
            position = self.cursor + 1 if where == "after" else self.cursor
        else:
            position = 0
        title = "Add layer after" if where == "after" else "Insert layer before"

        def add(layer_type: str | None) -> None:
            if layer_type is None:
                return
            previous, previous_cursor = self._edited(), self.cursor
            spec = self._edited()
            spec.setdefault("layers", []).insert(
                position, specs.default_layer(layer_type, self.backend)
            )
            self._set_spec(spec, cursor=position)
            if any(
                self.backend in param.backends
                for param in specs.LAYER_TYPES[layer_type].params
            ):
                # Cancel on this form undoes the add.
                self.action_edit_layer(
                    on_cancel=lambda: self._set_spec(previous, cursor=previous_cursor)
                )

        self.app.push_screen(AddLayerDialog(self.backend, title), add)

    def action_remove_layer(self) -> None:
        """Remove the layer under the cursor."""
        if not self.stack_layers:
            self.notify("The stack is empty.", severity="warning")
            return
        position = self.cursor
        spec = self._edited()
        removed = spec["layers"].pop(position)
        self._set_spec(spec, cursor=position)
        self.notify(f"Removed layer {position} ({removed.get('type')}).")

    def action_move_layer(self, offset: int) -> None:
        """Move the layer under the cursor up (-1) or down (+1)."""
        position = self.cursor
        target = position + offset
        if not self.stack_layers or not 0 <= target < len(self.stack_layers):
            return
        spec = self._edited()
        layers = spec["layers"]
        layers[position], layers[target] = layers[target], layers[position]
        self._set_spec(spec, cursor=target)

    def action_edit_layer(self, on_cancel: Callable[[], None] | None = None) -> None:
        """Open the parameter form of the layer under the cursor.

        Args:
            on_cancel: called when the form is cancelled, if given.
        """
        if not self.stack_layers:
            self.notify("The stack is empty: press a to add a layer.")
            return
        position = self.cursor
        layer = self.stack_layers[position]
        if layer.get("type") not in specs.LAYER_TYPES:
            self.notify(
                f"Layer {position} has the unknown type {layer.get('type')!r}: "
                "delete it and add a known one.",
                severity="error",
            )
            return

        def edit(new_layer: dict[str, Any] | None) -> None:
            if new_layer is None:
                if on_cancel is not None:
                    on_cancel()
                return
            spec = self._edited()
            spec["layers"][position] = new_layer
            self._set_spec(spec, cursor=position)

        self.app.push_screen(LayerFormDialog(layer, self.backend), edit)

    def action_toggle_backend(self) -> None:
        """Switch the stack between our blocks and torch modules."""
        spec = self._edited()
        current = spec.get("backend", "blocks")
        spec["backend"] = BACKENDS[(BACKENDS.index(current) + 1) % len(BACKENDS)]
        self._set_spec(spec, cursor=self.cursor)
        self.notify(f"Backend: {spec['backend']}.")

    def action_next_input(self) -> None:
        """Switch the stack's input to the next data set."""
        from engine.dataset_info import DATASET_SHAPES

        names = list(DATASET_SHAPES)
        current = self.spec.get("input", {}).get("dataset")
        following = (
            names[(names.index(current) + 1) % len(names)]
            if current in names
            else names[0]
        )
        spec = self._edited()
        spec["input"] = {"dataset": following}
        self._set_spec(spec, cursor=self.cursor)

    def action_input_shape(self) -> None:
        """Set the stack's input to an image shape and class count typed in a form."""
        try:
            shape = specs.input_shape(self.spec)
            classes = specs.num_classes(self.spec)
        except specs.SpecError:
            shape, classes = (3, 32, 32), 10

        def apply(spec_input: dict[str, Any] | None) -> None:
            if spec_input is None:
                return
            spec = self._edited()
            spec["input"] = spec_input
            self._set_spec(spec, cursor=self.cursor)

        self.app.push_screen(InputShapeDialog(shape, classes), apply)

    def action_preset(self) -> None:
        """Replace the stack with a preset chosen in a dialog."""

        def apply(spec: dict[str, Any] | None) -> None:
            if spec is not None:
                self._set_spec(spec, cursor=0)
                self.notify(f"Preset with {len(spec.get('layers', []))} layers loaded.")

        self.app.push_screen(PresetDialog(self.spec.get("input", "digits")), apply)

    def action_save(self) -> None:
        """Save the stack to a JSON file named in a prompt."""

        def save(path: str | None) -> None:
            if path is None:
                return
            try:
                # An invalid stack is saved too, so unfinished work can be kept.
                specs.save_spec(path, self.spec, check=False)
            except (OSError, ValueError, TypeError) as error:
                self.notify(f"Could not save the stack: {error}", severity="error")
                self.log.error(f"save_spec({path!r}) failed: {error!r}")
                return
            self.last_path = path
            # The full path, since a relative one is relative to the directory
            # layerlab started in, which the user may not remember.
            full_path = os.path.abspath(os.path.expanduser(path))
            if self.bad_row is None and specs.summary(self.spec).error is None:
                self.notify(f"Saved the stack to {full_path}.")
            else:
                self.notify(
                    f"Saved the stack to {full_path}; it is still invalid.",
                    severity="warning",
                )

        self.app.push_screen(PathDialog("Save stack as", self.last_path, "Save"), save)

    def action_load(self) -> None:
        """Load a stack from a JSON file named in a prompt."""

        def load(path: str | None) -> None:
            if path is None:
                return
            try:
                # Without check, a stack whose layers do not fit loads as a draft.
                spec = specs.load_spec(path, check=False)
            except (OSError, ValueError, TypeError, KeyError) as error:
                self.notify(f"Could not load {path}: {error}", severity="error")
                self.log.error(f"load_spec({path!r}) failed: {error!r}")
                return
            problem = loading_problem(spec)
            if problem is not None:
                self.notify(f"Could not load {path}: {problem}.", severity="error")
                self.log.error(f"load_spec({path!r}) rejected: {problem}")
                return
            self.last_path = path
            self._set_spec(spec, cursor=0)
            self.notify(f"Loaded the stack from {path}.")

        self.app.push_screen(
            PathDialog("Load stack from", self.last_path, "Load"), load
        )
