"""Train form (being written)."""

from __future__ import annotations

from textual.containers import Vertical
from textual.widgets import Static


class TrainView(Vertical):
    """Train form."""

    def compose(self):
        yield Static("Train form")

    def action_start(self) -> None:
        """Start a run from the form."""
