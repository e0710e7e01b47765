"""The Train form: data set, device, optimizer and fit settings, then Start.

Every field is checked as it is typed and its error is shown next to it.
Start is enabled only when every field, the layer stack (``app.spec``) and
the data set are valid. Start writes a run into the app's run store and
launches a detached worker process, so training never runs in the UI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from engine.dataset_info import (
    DATASET_NAMES,
    DATASET_SHAPES,
    check_data_available,
    default_data_dir,
)
from engine.optimizer_registry import OPTIMIZER_FIELDS, OPTIMIZER_NAMES
from tui.run_monitor import APP_CONTROLS

DATASET_LABELS = {
    "digits": "digits (bundled)",
    "cifar10": "CIFAR-10",
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "imagefolder": "image folder",
}

OPTIMIZER_LABELS = {
    "sgd": "VanillaSGD",
    "momentum": "MomentumSGD",
    "rmsprop": "RMSProp",
    "adam": "Adam",
    "torch-sgd": "torch.optim.SGD",
    "torch-momentum": "torch.optim.SGD (momentum)",
    "torch-rmsprop": "torch.optim.RMSprop",
    "torch-adam": "torch.optim.Adam",
}

DEFAULT_OPTIMIZER = "adam"

# Form labels of optimizer fields. A field missing here shows its parameter name.
HYPER_LABELS = {"learn_rate": "Learning rate", "reg": "L2 reg"}

# Fit settings: field id -> (label, default text, whether empty is allowed,
# help shown when empty is allowed).
FIT_FIELDS = {
    "batch_size": ("Batch size", "64", False, ""),
    "epochs": ("Epochs", "10", False, ""),
    "max_batches": ("Batches/epoch", "", True, "empty: all"),
    "early_stopping": ("Patience", "", True, "empty: no early stopping"),
    "seed": ("Seed", "0", False, ""),
}

MAX_NAME_LENGTH = 64


def check_int_field(name: str, text: str, allow_empty: bool, minimum: int) -> str:
    """Check the text of an integer form field.

    Args:
        name: Label of the field, which starts the message.
        text: The typed text.
        allow_empty: Whether an empty field (meaning "none") is valid.
        minimum: The smallest allowed value.

    Returns:
        An error message, or '' when the text is valid.
    """
    text = text.strip()
    if not text:
        return "" if allow_empty else f"{name} is required"
    try:
        value = int(text)
    except ValueError:
        return f"{name} must be a whole number, got {text!r}"
    if value < minimum:
        return f"{name} must be at least {minimum}, got {value}"
    return ""


def check_run_name(text: str) -> str:
    """Check a run name: optional, printable, no path separators."""
    text = text.strip()
    if len(text) > MAX_NAME_LENGTH:
        return f"Run name must be at most {MAX_NAME_LENGTH} characters, got {len(text)}"
    bad = [c for c in text if c in "/\\" or not c.isprintable()]
    if bad:
        return f"Run name must not contain {bad[0]!r}"
    return ""


def _shape_text(shape: Any, num_classes: Any) -> str:
    return f"({', '.join(str(size) for size in shape)}) with {num_classes} classes"


def input_mismatch(spec_input: Any, dataset: str) -> str:
    """Check that a stack's ``input`` fits the data set chosen in Train.

    Returns:
        Why the stack built for ``spec_input`` cannot train on ``dataset``,
        naming both, or '' when it can.
    """
    if not isinstance(spec_input, dict):
        return ""  # The stack's own validation reports a bad input.
    named = spec_input.get("dataset")
    if dataset == "imagefolder":
        if "shape" in spec_input:
            return ""
        return (
            "An image folder has no fixed image shape: on the Build tab (1) "
            "press I to enter the images' channels, height, width and "
            "class count."
        )
    if named is not None:
        if named == dataset:
            return ""
        return (
            f"The stack's input is {named} (Build) but the data set is {dataset} "
            "(Train): choose the same data set in both."
        )
    if dataset not in DATASET_SHAPES or "shape" not in spec_input:
        return ""
    shape, num_classes = DATASET_SHAPES[dataset]
    if list(spec_input["shape"]) == list(shape) and (
        spec_input.get("num_classes") == num_classes
    ):
        return ""
    stack_text = _shape_text(spec_input["shape"], spec_input.get("num_classes"))
    return (
        f"The stack's input is {stack_text} (Build), but {dataset} images are "
        f"{_shape_text(shape, num_classes)} (Train): choose the same data set "
        "in both."
    )


def list_cuda_devices() -> list[str]:
    """Find CUDA devices without importing torch.

    Asks ``nvidia-smi -L`` when it is on PATH, else counts the GPUs that the
    NVIDIA driver lists under /proc/driver/nvidia/gpus. CUDA_VISIBLE_DEVICES,
    when set to a list of indices, limits the count.

    Returns:
        Device names ``cuda:0``, ``cuda:1`` ... (empty when there is no GPU).
    """
    count = 0
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi:
        try:
            output = subprocess.run(
                [nvidia_smi, "-L"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            output = ""
        count = sum(1 for line in output.splitlines() if line.startswith("GPU "))
    else:
        gpus = Path("/proc/driver/nvidia/gpus")
        if gpus.is_dir():
            count = sum(1 for _ in gpus.iterdir())
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        indices = [part for part in visible.split(",") if part.strip()]
        if all(part.strip().isdigit() for part in indices):
            count = min(count, len(indices))
    return [f"cuda:{index}" for index in range(count)]


class FormField(Horizontal):
    """One row of the form: a label, an input widget and its message.

    The message is the field's error, or its hint (class ``-hint``) while
    the value is valid. app.tcss styles the row.
    """

    def __init__(self, label: str, widget: Input | Select, field_id: str) -> None:
        super().__init__(id=f"row-{field_id}")
        self.label = label
        self.widget = widget
        self.field_id = field_id

    def compose(self) -> ComposeResult:
        yield Label(self.label, classes="field-label")
        yield self.widget
        yield Static("", id=f"error-{self.field_id}", classes="field-message")


class TrainView(VerticalScroll):
    """Form that configures a fit and starts it as a detached worker."""

    DEFAULT_CSS = """
    TrainView {
        padding: 0 1;
    }
    TrainView #optimizer-fields {
        height: auto;
    }
    TrainView #spec-status {
        color: $text-error;
        height: auto;
    }
    TrainView #spec-status.-ok {
        color: $text-success;
    }
    TrainView #start-row {
        height: auto;
    }
    TrainView #start-row Checkbox {
        margin: 0 2 0 0;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, str] = {}
        """Field id -> error message of every field that is invalid now."""
        self._optimizer = DEFAULT_OPTIMIZER
        self._hyper_text: dict[str, str] = {}
        self._spec_input: Any = None
        """The stack's input when the data set last followed it."""
        self.ready = False
        """True once the form's fields are mounted."""

    def _form(self) -> Iterator[Widget]:
        yield FormField(
            "Data set",
            Select(
                [(DATASET_LABELS.get(n, n), n) for n in DATASET_NAMES],
                value="digits",
                allow_blank=False,
                compact=True,
                id="dataset",
            ),
            "dataset",
        )
        yield FormField(
            "Data directory",
            Input(placeholder=str(default_data_dir()), compact=True, id="data_dir"),
            "data_dir",
        )
        yield FormField(
            "Device",
            Select(
                [("auto", "auto"), ("cpu", "cpu")],
                value="auto",
                allow_blank=False,
                compact=True,
                id="device",
            ),
            "device",
        )
        yield FormField(
            "Optimizer",
            Select(
                [(OPTIMIZER_LABELS.get(n, n), n) for n in OPTIMIZER_NAMES],
                value=DEFAULT_OPTIMIZER,
                allow_blank=False,
                compact=True,
                id="optimizer",
            ),
            "optimizer",
        )
        yield Vertical(*self._hyper_rows(DEFAULT_OPTIMIZER), id="optimizer-fields")
        for field_id, (label, default, _, hint) in FIT_FIELDS.items():
            yield FormField(
                label,
                Input(default, placeholder=hint, compact=True, id=field_id),
                field_id,
            )
        yield FormField(
            "Run name",
            Input(placeholder="empty: automatic", compact=True, id="name"),
            "name",
        )
        yield Static("", id="spec-status")
        yield Horizontal(
            Checkbox("Download if missing", compact=True, id="download"),
            Button("Start (s)", variant="success", compact=True, id="start"),
            id="start-row",
        )

    def _hyper_rows(self, optimizer: str) -> list[FormField]:
        rows = []
        for param in OPTIMIZER_FIELDS[optimizer]:
            text = self._hyper_text.get(param.name, f"{param.default:g}")
            label = HYPER_LABELS.get(param.name, param.name)
            widget = Input(
                text,
                placeholder=param.range_text(),
                tooltip=param.help,
                compact=True,
                id=f"hyper-{param.name}",
            )
            rows.append(FormField(label, widget, f"hyper-{param.name}"))
        return rows

    def on_mount(self) -> None:
        # The form is mounted after the app's first frame: its ~80 widgets
        # would otherwise delay that frame, and this tab is not shown first.
        self.call_after_refresh(self._mount_form)

    async def _mount_form(self) -> None:
        await self.mount_all(self._form())
        if not self.query("#dataset"):
            return  # The app closed while the form was being mounted.
        self.ready = True
        self._follow_spec_input(self.current_spec())
        self.watch(self.app, "spec", self._on_spec_changed, init=False)
        self.validate_all()
        self._find_devices()

    # --- devices ---------------------------------------------------------

    @work(thread=True, exclusive=True, group="devices")
    def _find_devices(self) -> None:
        devices = list_cuda_devices()
        if devices:
            self.app.call_from_thread(self._set_devices, devices)

    def _set_devices(self, devices: list[str]) -> None:
        select = self.query_one("#device", Select)
        current = select.value
        options = ["auto", "cuda", *devices, "cpu"]
        select.set_options([(name, name) for name in options])
        select.value = current if current in options else "auto"

    # --- validation ------------------------------------------------------

    def _text(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value

    def _select(self, field_id: str) -> Any:
        return self.query_one(f"#{field_id}", Select).value

    def _data_dir(self) -> str | None:
        text = self._text("data_dir").strip()
        if text:
            return text
        if getattr(self.app, "data_dir", None):
            return str(self.app.data_dir)
        return None

    def _check_field(self, field_id: str) -> str:
        if field_id in FIT_FIELDS:
            label, _, allow_empty, _ = FIT_FIELDS[field_id]
            minimum = 0 if field_id == "seed" else 1
            return check_int_field(label, self._text(field_id), allow_empty, minimum)
        if field_id.startswith("hyper-"):
            name = field_id.removeprefix("hyper-")
            for param in OPTIMIZER_FIELDS[self._optimizer]:
                if param.name == name:
                    message = param.check(self._text(field_id)) or ""
                    # The message starts with the parameter name, so the
                    # label that the form shows replaces it.
                    if message.startswith(f"{name} "):
                        message = HYPER_LABELS.get(name, name) + message[len(name) :]
                    return message
            return ""
        if field_id == "name":
            return check_run_name(self._text("name"))
        if field_id in ("data_dir", "dataset"):
            return self._check_data()
        return ""

    def _check_data(self) -> str:
        dataset = self._select("dataset")
        data_dir = self._data_dir() or str(default_data_dir())
        message = check_data_available(
            dataset,
            data_dir,
            download_control=APP_CONTROLS["--download"],
            data_dir_control=APP_CONTROLS["--data-dir"],
        )
        if message and self.query_one("#download", Checkbox).value:
            if dataset != "imagefolder":
                return ""
        return message or ""

    def _check_spec(self) -> str:
        from engine.spec import SpecError, validate

        spec = self.current_spec()
        mismatch = input_mismatch(spec.get("input"), self._select("dataset"))
        if mismatch:
            return mismatch
        try:
            validate(spec)
        except SpecError as error:
            return f"layer stack invalid: {error}"
        return ""

    def _show_error(self, field_id: str, message: str) -> None:
        if message:
            self.errors[field_id] = message
        else:
            self.errors.pop(field_id, None)
        label = self.query_one(f"#error-{field_id}", Static)
        hint = ""
        if field_id in FIT_FIELDS and FIT_FIELDS[field_id][2]:
            hint = FIT_FIELDS[field_id][3]
        if field_id == "data_dir" and message:
            message = self._short_data_message(message)
        label.update(message or hint)
        label.set_class(not message, "-hint")

    def _short_data_message(self, message: str) -> str:
        """Shorten a missing-data message to fit next to its field.

        Start notifies the full message, with the missing files and how to
        get them.
        """
        dataset = str(self._select("dataset"))
        if dataset in ("digits", "imagefolder"):
            return message
        root = Path(self._data_dir() or default_data_dir()).expanduser()
        return (
            f"{dataset} not found in {root}; tick Download if missing "
            "or set Data directory"
        )

    def _field_ids(self) -> list[str]:
        hyper = [f"hyper-{p.name}" for p in OPTIMIZER_FIELDS[self._optimizer]]
        return ["data_dir", *hyper, *FIT_FIELDS, "name"]

    def validate_all(self) -> dict[str, str]:
        """Check every field, the layer stack and the data set.

        Updates each message next to its field and enables Start only when
        nothing is invalid.

        Returns:
            Field id -> error message; the key "spec" contains a layer stack
            error. Empty when everything is valid.
        """
        for field_id in self._field_ids():
            self._show_error(field_id, self._check_field(field_id))
        self._update_spec_status()
        return dict(self.errors)

    def _update_spec_status(self) -> None:
        message = self._check_spec()
        status = self.query_one("#spec-status", Static)
        if message:
            self.errors["spec"] = message
            status.update(message)
        else:
            self.errors.pop("spec", None)
            status.update(f"Layer stack: {self._spec_description()}")
        status.set_class(not message, "-ok")
        self.query_one("#start", Button).disabled = bool(self.errors)

    def _spec_description(self) -> str:
        spec = self.current_spec()
        layers = spec.get("layers", [])
        return f"{spec.get('backend', '?')} backend, {len(layers)} layers, valid"

    def _on_spec_changed(self, spec: dict[str, Any]) -> None:
        if spec.get("input") != self._spec_input:
            self._follow_spec_input(spec)
        self._update_spec_status()

    def _follow_spec_input(self, spec: dict[str, Any]) -> None:
        """Choose the data set that the stack's new input names.

        An explicit input shape that differs from the chosen data set's
        chooses the image folder, the one data set without a fixed shape.
        Only a change of the input moves the choice, so other edits of the
        stack keep the data set that the user chose here.
        """
        spec_input = spec.get("input")
        self._spec_input = spec_input
        if not isinstance(spec_input, dict):
            return
        select = self.query_one("#dataset", Select)
        named = spec_input.get("dataset")
        if named in DATASET_SHAPES:
            target = named
        elif "shape" in spec_input and input_mismatch(spec_input, str(select.value)):
            target = "imagefolder"
        else:
            return
        if select.value != target:
            select.value = target

    def _set_spec_input(self, dataset: str) -> None:
        """Set the stack's input to ``dataset`` when that has a fixed shape."""
        spec = self.current_spec()
        if dataset not in DATASET_SHAPES or spec.get("input") == {"dataset": dataset}:
            return
        self._spec_input = {"dataset": dataset}
        self.app.spec = {**spec, "input": {"dataset": dataset}}

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        field_id = event.input.id or ""
        if field_id.startswith("hyper-"):
            self._hyper_text[field_id.removeprefix("hyper-")] = event.value
        self._show_error(field_id, self._check_field(field_id))
        self._update_spec_status()

    @on(Select.Changed, "#dataset")
    def _dataset_changed(self) -> None:
        # Build shows, and Start trains, the stack for the chosen data.
        self._set_spec_input(str(self._select("dataset")))
        self._show_error("data_dir", self._check_data())
        self._update_spec_status()

    @on(Checkbox.Changed, "#download")
    def _download_changed(self) -> None:
        self._show_error("data_dir", self._check_data())
        self._update_spec_status()

    @on(Select.Changed, "#optimizer")
    async def _optimizer_changed(self, event: Select.Changed) -> None:
        if event.value == self._optimizer or event.value is Select.NULL:
            return
        self._optimizer = str(event.value)
        container = self.query_one("#optimizer-fields", Vertical)
        await container.remove_children()
        await container.mount_all(self._hyper_rows(self._optimizer))
        for key in [k for k in self.errors if k.startswith("hyper-")]:
            del self.errors[key]
        self.validate_all()

    # --- start -----------------------------------------------------------

    def current_spec(self) -> dict[str, Any]:
        """Return the app's layer stack, the one that Build shows."""
        spec = getattr(self.app, "spec", None)
        if not spec:
            from engine.spec import default_spec

            spec = default_spec()
        return dict(spec)

    def run_config(self) -> dict[str, Any]:
        """Return the run config that the form describes (call when valid)."""

        def optional_int(field_id: str) -> int | None:
            text = self._text(field_id).strip()
            return int(text) if text else None

        hyper = {
            param.name: float(self._text(f"hyper-{param.name}"))
            for param in OPTIMIZER_FIELDS[self._optimizer]
        }
        return {
            "spec": self.current_spec(),
            "dataset": {
                "name": self._select("dataset"),
                "data_dir": self._data_dir(),
                "download": self.query_one("#download", Checkbox).value,
                "augment": False,
                "train_size": None,
            },
            "optimizer": {"name": self._optimizer, **hyper},
            "training": {
                "batch_size": int(self._text("batch_size")),
                "bs_test": None,
                "epochs": int(self._text("epochs")),
                "max_batches": optional_int("max_batches"),
                "early_stopping": optional_int("early_stopping"),
                "seed": int(self._text("seed")),
                "device": str(self._select("device")),
            },
        }

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    def action_start(self) -> None:
        """Start a run from the form, or notify the reason it cannot start."""
        if not self.ready:
            self.notify("The Train form is still loading; try again.")
            return
        errors = self.validate_all()
        if errors:
            key, message = next(iter(errors.items()))
            title = "Data set missing" if key == "data_dir" else "Cannot start"
            others = len(errors) - 1
            if others:
                noun = "field is" if others == 1 else "fields are"
                message += f" ({others} other {noun} invalid too)"
            self.notify(message, title=title, severity="error")
            return
        from engine.worker import start_detached

        config = self.run_config()
        name = self._text("name").strip() or None
        store = self.app.store
        try:
            run = store.create(config, name=name)
            start_detached(store.root, run.id)
        except (OSError, ValueError) as error:
            self.notify(str(error), title="Run not started", severity="error")
            return
        self.notify(f"Run {run.info.get('name') or run.id} started.")
        self.app.show_run(run.id)
