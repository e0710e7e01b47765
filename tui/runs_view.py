"""Runs table (being written)."""

from __future__ import annotations

from textual.containers import Vertical
from textual.widgets import Static


class RunsView(Vertical):
    """Runs table."""

    def compose(self):
        yield Static("Runs table")
