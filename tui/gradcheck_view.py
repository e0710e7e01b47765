"""The Gradient check tab: compare a block stack's gradients with autograd.

``engine.gradcheck.compare_block_to_torch`` runs the stack's hand-written
backward and torch autograd on the same random batch in float64 and returns
the L2 norm of the difference of each gradient. torch is imported in the
worker thread, so opening the app does not wait for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from engine import spec as specs

TOLERANCE = 1e-6
"""Largest L2 norm of a gradient difference that passes, in float64."""

BATCH_SIZE = 8
SEED = 42


@dataclass
class GradientDifference:
    """The difference between one gradient of our backward and autograd's."""

    name: str
    shape: tuple[int, ...]
    difference: float

    @property
    def passed(self) -> bool:
        return self.difference <= TOLERANCE


def check_gradients(
    spec: dict[str, Any], batch_size: int = BATCH_SIZE, seed: int = SEED
) -> list[GradientDifference]:
    """Compare the block model of ``spec`` with autograd on a random batch.

    Args:
        spec: A valid spec of the blocks backend.
        batch_size: Number of random samples in the batch.
        seed: Seed of the batch, the weights and the dropout masks.

    Returns:
        The input gradient first, then one entry per parameter in ``params()``
        order.

    Raises:
        ValueError: The spec uses the torch backend.
        SpecError: The spec is invalid.
    """
    if spec.get("backend") != "blocks":
        raise ValueError(
            "the gradient check compares our blocks' hand-written backward with "
            f"autograd, but this stack uses the {spec.get('backend')!r} backend"
        )
    import torch

    from engine.gradcheck import compare_block_to_torch

    torch.manual_seed(seed)
    model = specs.build_model(spec).to(dtype=torch.float64)
    features = 1
    for size in specs.input_shape(spec):
        features *= size
    # Block models take flattened images, as BlockTrainer feeds them.
    x = torch.randn(batch_size, features, dtype=torch.float64)
    differences = compare_block_to_torch(model, x, seed=seed)

    params = [param for param, _grad in model.params()]
    names = list(model.state_dict())
    if len(names) != len(params):
        names = [f"parameter {index}" for index in range(len(params))]
    rows = [GradientDifference("input", tuple(x.shape), float(differences[0]))]
    for name, param, difference in zip(names, params, differences[1:], strict=True):
        rows.append(GradientDifference(name, tuple(param.shape), float(difference)))
    return rows


class GradcheckView(Vertical):
    """Gradient check of the current block stack against torch autograd."""

    BINDINGS = [Binding("g", "check", "Check gradients")]

    def __init__(self) -> None:
        super().__init__()
        self.results: list[GradientDifference] = []
        """The differences of the last check, empty before the first."""
        self.status_text = ""
        """The status line below the table, empty before the first check."""

    def compose(self) -> ComposeResult:
        yield Static(
            f"Compares each gradient of the block stack's backward with torch "
            f"autograd on a random batch of {BATCH_SIZE} in float64. A gradient "
            f"passes when the L2 norm of the difference is at most {TOLERANCE:g}. "
            "Press g to run.",
            id="gradcheck-info",
        )
        table = DataTable(id="gradcheck-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("gradient", "shape", "L2 difference", "result")
        yield table
        yield Static("", id="gradcheck-status")

    def on_mount(self) -> None:
        self.watch(self.app, "spec", self._spec_changed, init=False)

    def _spec_changed(self, _spec: dict[str, Any]) -> None:
        # A result or error of the old stack, such as "uses the torch
        # backend", would be false for the new one.
        if self.results or self.status_text:
            self._clear_results()
            self._status("The stack changed since the last check: press g to run.")

    def _clear_results(self) -> None:
        self.results = []
        self.query_one("#gradcheck-table", DataTable).clear()

    def _status(self, text: str, error: bool = False) -> None:
        widget = self.query_one("#gradcheck-status", Static)
        widget.set_class(error, "invalid")
        widget.update(text)
        self.status_text = text

    def action_check(self) -> None:
        """Run the gradient check of the app's spec in a thread."""
        spec = self.app.spec
        self._clear_results()
        if spec.get("backend") != "blocks":
            self._status(
                "This stack uses the torch backend, whose gradients come from "
                "autograd itself, so there is nothing to check. Switch the "
                "backend to blocks (b on the Build tab) to check our backward.",
                error=True,
            )
            return
        try:
            specs.validate(spec)
        except specs.SpecError as error:
            self._status(f"The stack is invalid: {error}", error=True)
            return
        self._status("Checking gradients...")
        self._run_check(spec)

    @work(thread=True, exclusive=True, group="gradcheck")
    def _run_check(self, spec: dict[str, Any]) -> None:
        try:
            results = check_gradients(spec)
        except Exception as error:
            # Any failure of the engine is shown in the tab: the app must stay
            # up, so an unexpected error must not reach the worker machinery.
            self.log.error(f"gradient check failed: {error!r}")
            self.app.call_from_thread(
                self._status, f"The gradient check failed: {error}", True
            )
            return
        self.app.call_from_thread(self._show_results, spec, results)

    def _show_results(
        self, spec: dict[str, Any], results: list[GradientDifference]
    ) -> None:
        if spec != self.app.spec:
            self._status("The stack changed during the check: press g to run again.")
            return
        self.results = results
        table = self.query_one("#gradcheck-table", DataTable)
        table.clear()
        for result in results:
            verdict = (
                Text("pass", style="bold green")
                if result.passed
                else Text("FAIL", style="bold red")
            )
            table.add_row(
                result.name,
                "x".join(str(size) for size in result.shape),
                f"{result.difference:.2e}",
                verdict,
            )
        failed = [result.name for result in results if not result.passed]
        if failed:
            self._status(
                f"{len(failed)} of {len(results)} gradients differ by more than "
                f"{TOLERANCE:g}: {', '.join(failed)}.",
                error=True,
            )
        else:
            self._status(
                f"All {len(results)} gradients match autograd within {TOLERANCE:g}."
            )
