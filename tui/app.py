"""The layerlab Textual app: one screen with a tab for each part of the lab.

Run it with ``layerlab`` (no subcommand) or ``python -m tui.app``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Footer, Header, TabbedContent, TabPane

from tui.build_view import BuildView
from tui.gradcheck_view import GradcheckView
from tui.live_view import LiveView
from tui.runs_view import RunsView
from tui.train_view import TrainView

RUNS_DIR_ENV = "LAYERLAB_RUNS_DIR"
DATA_DIR_ENV = "LAYERLAB_DATA_DIR"

# Tab id -> (tab title, view class); the order is the order of the 1..5 keys.
PANES = (
    ("build", "Build", BuildView),
    ("train", "Train", TrainView),
    ("live", "Live", LiveView),
    ("runs", "Runs", RunsView),
    ("gradcheck", "Grad check", GradcheckView),
)


class LayerlabApp(App):
    """The terminal deep-learning lab."""

    TITLE = "layerlab"
    CSS_PATH = "app.tcss"

    BINDINGS = [
        Binding("1", "show_tab('build')", "Build"),
        Binding("2", "show_tab('train')", "Train"),
        Binding("3", "show_tab('live')", "Live"),
        Binding("4", "show_tab('runs')", "Runs"),
        Binding("5", "show_tab('gradcheck')", "Grad check"),
        Binding("s", "start", "Start"),
        Binding("x", "stop", "Stop run"),
        Binding("r", "resume", "Resume run"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit_app", "Quit"),
    ]

    spec: reactive[dict[str, Any]] = reactive(dict, always_update=True)
    """The current layer stack (a spec dict of ``engine.spec``)."""

    def __init__(
        self, runs_dir: str | Path | None = None, data_dir: str | Path | None = None
    ) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir or os.environ.get(RUNS_DIR_ENV) or "saved_runs")
        self.data_dir = data_dir or os.environ.get(DATA_DIR_ENV)
        self._store = None

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="build"):
            for pane_id, title, view_class in PANES:
                with TabPane(title, id=pane_id):
                    yield view_class()
        yield Footer()

    @property
    def store(self):
        """The run store under ``runs_dir``, created on first use."""
        if self._store is None:
            from engine.runs import RunStore

            self._store = RunStore(self.runs_dir)
        return self._store

    def action_show_tab(self, pane_id: str) -> None:
        self.query_one(TabbedContent).active = pane_id

    def show_run(self, run_id: str) -> None:
        """Switch to the Live tab and follow the run ``run_id``."""
        self.action_show_tab("live")
        live = self.query_one(LiveView)
        watch_run = getattr(live, "watch_run", None)
        if watch_run is not None:
            watch_run(run_id)

    def _delegate(self, view_class: type, action: str) -> None:
        view = self.query_one(view_class)
        method = getattr(view, f"action_{action}", None)
        if method is None:
            self.notify(f"{view_class.__name__} cannot {action} yet.")
            return
        method()

    def action_start(self) -> None:
        self._delegate(TrainView, "start")

    def action_stop(self) -> None:
        self._delegate(LiveView, "stop")

    def action_resume(self) -> None:
        self._delegate(LiveView, "resume")

    def action_help(self) -> None:
        self.notify("Help is not built yet.")

    def action_quit_app(self) -> None:
        self.exit(0)


def run_app(
    runs_dir: str | Path | None = None, data_dir: str | Path | None = None
) -> int:
    """Run the app in the terminal until the user quits.

    Args:
        runs_dir: Directory of the run store; None reads $LAYERLAB_RUNS_DIR,
            else ``./saved_runs``.
        data_dir: Directory of downloaded data sets; None reads
            $LAYERLAB_DATA_DIR.

    Returns:
        The exit status.
    """
    result = LayerlabApp(runs_dir=runs_dir, data_dir=data_dir).run()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(run_app())
