"""Live view (being written)."""

from __future__ import annotations

from textual.containers import Vertical
from textual.widgets import Static


class LiveView(Vertical):
    """Live view."""

    def compose(self):
        yield Static("Live view")

    def watch_run(self, run_id: str) -> None:
        """Show the run with id ``run_id``."""

    def action_stop(self) -> None:
        """Stop the run shown."""

    def action_resume(self) -> None:
        """Resume the run shown."""
