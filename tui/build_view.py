"""The Build tab: compose and check a layer stack."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static


class BuildView(Vertical):
    """Editor of the app's layer stack with its live summary."""

    def compose(self) -> ComposeResult:
        yield Static("The layer stack editor is not built yet.")
