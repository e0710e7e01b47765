"""The Gradient check tab: compare a block stack's gradients with autograd."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static


class GradcheckView(Vertical):
    """Gradient check of the current block stack against torch autograd."""

    def compose(self) -> ComposeResult:
        yield Static("The gradient check is not built yet.")
