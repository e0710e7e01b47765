"""Modal dialogs of the app: confirmations, the quit question, path prompts,
presets, the add-layer menu, the layer parameter form and the input shape.

Each dialog is a ``ModalScreen`` that is dismissed with its result, so a caller
writes ``self.app.push_screen(Dialog(...), callback)``. Escape cancels every
dialog (the result is then None, or "cancel" for the quit dialog).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from engine import spec as specs


class _Dialog(ModalScreen):
    """Base of the dialogs: a centred box that escape closes."""

    DEFAULT_CLASSES = "dialog"
    AUTO_FOCUS = ".form-field, Input, OptionList, Button"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    #: Result of cancelling the dialog.
    cancel_result: Any = None

    def action_cancel(self) -> None:
        self.dismiss(self.cancel_result)


class ConfirmDialog(_Dialog):
    """A yes/no question; the result is True for yes."""

    BINDINGS = [
        Binding("escape,n", "cancel", "No"),
        Binding("y", "confirm", "Yes"),
    ]
    cancel_result = False

    def __init__(self, question: str, yes_label: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes_label = yes_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Static(self.question, classes="dialog-question")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes_label} (y)", variant="error", id="yes")
                yield Button("No (n)", id="no")

    def action_confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#yes")
    def _yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def _no(self) -> None:
        self.dismiss(False)


class QuitDialog(_Dialog):
    """Asks what to do with running runs on quit: "stop", "leave" or "cancel"."""

    BINDINGS = [
        Binding("escape,c", "cancel", "Cancel"),
        Binding("s", "choose('stop')", "Stop runs"),
        Binding("l", "choose('leave')", "Leave running"),
    ]
    cancel_result = "cancel"

    def __init__(self, run_names: Sequence[str]) -> None:
        super().__init__()
        self.run_names = list(run_names)

    def compose(self) -> ComposeResult:
        count = len(self.run_names)
        names = ", ".join(self.run_names[:5])
        if count > 5:
            names += f" and {count - 5} more"
        if count == 1:
            question = (
                f"1 run is still training: {names}.\n"
                "Stop it (it saves a checkpoint and can be resumed), or leave "
                "it running in the background?"
            )
        else:
            question = (
                f"{count} runs are still training: {names}.\n"
                "Stop them (each saves a checkpoint and can be resumed), or "
                "leave them running in the background?"
            )
        with Vertical(classes="dialog-box"):
            yield Static(question, classes="dialog-question")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Stop (s)", variant="error", id="stop")
                yield Button("Leave (l)", variant="primary", id="leave")
                yield Button("Cancel (c)", id="cancel")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)


class PathDialog(_Dialog):
    """A prompt for a file path; the result is the stripped text or None."""

    def __init__(self, title: str, value: str = "", action_label: str = "OK") -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.action_label = action_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(self.value, placeholder="file path", id="path")
            yield Static("", id="path-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.action_label, variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def _submit(self) -> None:
        text = self.query_one("#path", Input).value.strip()
        if not text:
            error = self.query_one("#path-error", Static)
            error.update("Enter a file path.")
            error.display = True
            return
        self.dismiss(text)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._submit()

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self._submit()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class AddLayerDialog(_Dialog):
    """A menu of the layer types a backend supports; the result is a type name."""

    def __init__(self, backend: str, title: str = "Add layer") -> None:
        super().__init__()
        self.backend = backend
        self.title_text = title

    def compose(self) -> ComposeResult:
        options = []
        for name in specs.layer_types(self.backend):
            help_text = specs.LAYER_TYPES[name].help
            options.append(Option(f"{name:<12} {help_text}", id=name))
        with Vertical(classes="dialog-box"):
            yield Label(
                f"{self.title_text} ({self.backend} backend): enter picks, "
                "escape cancels",
                classes="dialog-title",
            )
            yield OptionList(*options, id="layer-types")

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


def _format_value(value: Any) -> str:
    """Text of a parameter value as the user types it."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    return str(value)


class _FieldForm(_Dialog):
    """Base of a form whose fields are checked as they are typed.

    Subclasses implement ``parse_field``, which raises ValueError with the
    reason for an invalid value, and compose one ``field-<name>`` widget and
    one ``error-<name>`` Static per field.
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "OK", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    def _field_row(self, name: str, label: str, widget: Any) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label(label, classes="form-label")
            yield widget
        yield Static("", id=f"error-{name}", classes="field-error")

    def _check(self, name: str, text_or_value: Any) -> None:
        try:
            self.values[name] = self.parse_field(name, text_or_value)
        except ValueError as error:
            self.errors[name] = str(error)
        else:
            self.errors.pop(name, None)
        reason = self.errors.get(name, "")
        error = self.query_one(f"#error-{name}", Static)
        error.update(reason)
        error.display = bool(reason)
        self.query_one("#ok", Button).disabled = bool(self.errors)

    def parse_field(self, name: str, value: Any) -> Any:
        raise NotImplementedError

    def on_mount(self) -> None:
        for widget in self.query(".form-field"):
            self._check(widget.id.removeprefix("field-"), widget.value)

    @on(Input.Changed, ".form-field")
    def _input_changed(self, event: Input.Changed) -> None:
        self._check(event.input.id.removeprefix("field-"), event.value)

    @on(Checkbox.Changed, ".form-field")
    def _checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._check(event.checkbox.id.removeprefix("field-"), event.value)

    @on(Select.Changed, ".form-field")
    def _select_changed(self, event: Select.Changed) -> None:
        self._check(event.select.id.removeprefix("field-"), event.value)

    @on(Input.Submitted)
    def _input_submitted(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        if self.errors:
            name, reason = next(iter(self.errors.items()))
            self.notify(f"{name}: {reason}", severity="error")
            return
        self.dismiss(self.result())

    def result(self) -> Any:
        return dict(self.values)

    def _buttons(self) -> ComposeResult:
        with Horizontal(classes="dialog-buttons"):
            yield Button("OK (ctrl+s)", variant="primary", id="ok")
            yield Button("Cancel (esc)", id="cancel")


def param_widget(param: Any, value: Any) -> Input | Checkbox | Select:
    """Build the form field of an ``engine.spec.ParamSpec`` showing ``value``.

    The widget's id is ``field-<name>`` and it has the class ``form-field``.
    """
    widget_id = f"field-{param.name}"
    if param.kind == "bool":
        return Checkbox(
            param.help, bool(value), id=widget_id, classes="form-field", compact=True
        )
    if param.kind == "choice":
        return Select(
            [(str(choice), choice) for choice in param.choices],
            value=value if value in param.choices else Select.NULL,
            allow_blank=not param.required and param.default is None,
            id=widget_id,
            classes="form-field",
            compact=True,
        )
    placeholder = f"{param.help} (required)" if param.required else param.help
    return Input(
        _format_value(value),
        placeholder=placeholder,
        id=widget_id,
        classes="form-field",
        tooltip=f"{param.help}; {param.allowed_text()}",
        compact=True,
    )


def parse_field_value(param: Any, value: Any) -> Any:
    """Parse and check the value of a form field of ``param``.

    Raises:
        ValueError: The value is invalid. The message gives the reason.
    """
    if param.kind == "bool":
        return bool(value)
    if param.kind == "choice":
        if value is Select.NULL or value is None:
            if param.required or param.default is not None:
                raise ValueError(f"{param.name}: choose {param.allowed_text()}")
            return None
        return specs.check_param(param, value)
    return specs.parse_param(param, value)


class LayerFormDialog(_FieldForm):
    """The parameter form of one layer; the result is the edited layer dict."""

    def __init__(self, layer: dict[str, Any], backend: str = "blocks") -> None:
        super().__init__()
        self.edited_layer = dict(layer)
        self.layer_type = specs.LAYER_TYPES[layer["type"]]
        # Only the parameters that this backend reads: the others keep their
        # values in the layer dict untouched.
        self.params = {
            param.name: param
            for param in self.layer_type.params
            if backend in param.backends
        }

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(
                f"{self.layer_type.name}: {self.layer_type.help}",
                classes="dialog-title",
            )
            with VerticalScroll(classes="form-fields"):
                if not self.params:
                    yield Static("This layer has no parameters.")
                for param in self.params.values():
                    value = self.edited_layer.get(param.name, param.default)
                    yield from self._field_row(
                        param.name, param.name, param_widget(param, value)
                    )
            yield from self._buttons()

    def parse_field(self, name: str, value: Any) -> Any:
        return parse_field_value(self.params[name], value)

    def result(self) -> dict[str, Any]:
        layer = dict(self.edited_layer)
        layer.update(self.values)
        return layer


class InputShapeDialog(_FieldForm):
    """Form of an explicit stack input, such as an image folder needs.

    The result is a spec ``input`` dict ``{"shape": [C, H, W],
    "num_classes": K}``.

    Args:
        shape: The (C, H, W) shown at first.
        num_classes: The class count shown at first.
    """

    # Field name -> (label, smallest valid value). A classifier needs at
    # least two classes, as engine.spec checks too.
    FIELDS = {
        "channels": ("Channels", 1),
        "height": ("Height", 1),
        "width": ("Width", 1),
        "num_classes": ("Classes", 2),
    }

    def __init__(
        self, shape: Sequence[int] = (3, 32, 32), num_classes: int = 10
    ) -> None:
        super().__init__()
        self.initial = dict(zip(self.FIELDS, [*shape, num_classes], strict=True))

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(
                "Input shape: the images' channels, height and width in pixels, "
                "and the number of classes",
                classes="dialog-title",
            )
            with VerticalScroll(classes="form-fields"):
                for name, (label, minimum) in self.FIELDS.items():
                    widget = Input(
                        str(self.initial[name]),
                        placeholder=f"whole number >= {minimum}",
                        id=f"field-{name}",
                        classes="form-field",
                        compact=True,
                    )
                    yield from self._field_row(name, label, widget)
            yield from self._buttons()

    def parse_field(self, name: str, value: Any) -> int:
        label, minimum = self.FIELDS[name]
        text = str(value).strip()
        if not text:
            raise ValueError(f"{label} is required")
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"{label} must be a whole number, got {text!r}") from None
        if number < minimum:
            raise ValueError(f"{label} must be at least {minimum}, got {number}")
        return number

    def result(self) -> dict[str, Any]:
        shape = [self.values[name] for name in ("channels", "height", "width")]
        return {"shape": shape, "num_classes": self.values["num_classes"]}


class PresetDialog(_FieldForm):
    """Choice of a preset and its fields; the result is the preset's spec.

    The fields are the preset's ``params``: K, L, P and H (hidden widths) for
    the CNN presets, the hidden widths and activation for the MLP.

    Args:
        spec_input: The ``input`` of the spec the preset is for.
    """

    def __init__(self, spec_input: dict[str, Any] | str = "digits") -> None:
        super().__init__()
        self.spec_input = spec_input
        self.preset_name = next(iter(specs.PRESETS))
        self.params: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(
                "Preset: choose one and fill in its fields", classes="dialog-title"
            )
            yield Select(
                [(name, name) for name in specs.PRESETS],
                value=self.preset_name,
                allow_blank=False,
                id="preset-name",
                compact=True,
            )
            yield Static("", id="preset-help", classes="dialog-question")
            yield VerticalScroll(classes="form-fields", id="preset-fields")
            yield Static("", id="preset-error", classes="field-error")
            yield from self._buttons()

    async def on_mount(self) -> None:
        await self.show_preset(self.preset_name)

    async def show_preset(self, preset_name: str) -> None:
        """Show the fields of the preset ``preset_name`` at their defaults."""
        self.preset_name = preset_name
        preset = specs.PRESETS[preset_name]
        self.params = {param.name: param for param in preset.params}
        self.query_one("#preset-help", Static).update(preset.help)
        self.values.clear()
        self.errors.clear()
        container = self.query_one("#preset-fields", VerticalScroll)
        await container.remove_children()
        rows = []
        for param in preset.params:
            rows.append(
                Horizontal(
                    Label(param.name, classes="form-label"),
                    param_widget(param, param.default),
                    classes="form-row",
                )
            )
            rows.append(Static("", id=f"error-{param.name}", classes="field-error"))
        await container.mount_all(rows)
        for param in preset.params:
            self._check(param.name, self.query_one(f"#field-{param.name}").value)

    @on(Select.Changed, "#preset-name")
    async def _preset_changed(self, event: Select.Changed) -> None:
        if event.value != self.preset_name:
            await self.show_preset(str(event.value))

    def parse_field(self, name: str, value: Any) -> Any:
        return parse_field_value(self.params[name], value)

    def action_submit(self) -> None:
        if self.errors:
            super().action_submit()
            return
        preset = specs.PRESETS[self.preset_name]
        try:
            spec = preset.function(self.spec_input, **self.values)
        except (TypeError, ValueError) as error:
            message = self.query_one("#preset-error", Static)
            message.update(str(error))
            message.display = True
            return
        self.dismiss(spec)
