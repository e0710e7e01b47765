"""The layerlab Textual app: one screen with a tab for each part of the lab.

Run it with ``layerlab`` (no subcommand) or ``python -m tui.app``. Nothing
here imports torch: the views import it in worker threads after the first
frame, so the app opens at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.reactive import reactive
from textual.widgets import Footer, Header, Input, TabbedContent, TabPane, TextArea
from textual.widgets._tabbed_content import ContentTabs

from engine import spec as specs
from tui.build_view import BuildView
from tui.dialogs import QuitDialog
from tui.gradcheck_view import GradcheckView
from tui.help_screen import HelpScreen
from tui.live_view import LiveView
from tui.runs_view import RunsView
from tui.train_view import TrainView

RUNS_DIR_ENV = "LAYERLAB_RUNS_DIR"
DATA_DIR_ENV = "LAYERLAB_DATA_DIR"
DEFAULT_RUNS_DIR = "saved_runs"

# Tab id, tab title and view class; the order is the order of the 1..5 keys.
PANES = (
    ("build", "Build", BuildView),
    ("train", "Train", TrainView),
    ("live", "Live", LiveView),
    ("runs", "Runs", RunsView),
    ("gradcheck", "Grad check", GradcheckView),
)


class LayerlabCommands(Provider):
    """Command palette entries for the app's main actions."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app = self.app
        commands: list[tuple[str, Callable[[], Any], str]] = []
        for pane_id, title, _view in PANES:
            commands.append(
                (
                    f"Show {title}",
                    partial(app.action_show_tab, pane_id),
                    f"Switch to the {title} tab",
                )
            )
        build = partial(app.call_on_view, BuildView)
        live = partial(app.call_on_view, LiveView)
        runs = partial(app.call_on_view, RunsView)
        commands += [
            ("Start training", app.action_start, "Start a run from the Train form"),
            ("Stop run", app.action_stop, "Stop the run shown in Live gracefully"),
            ("Resume run", app.action_resume, "Resume the stopped run shown in Live"),
            ("Next run", partial(live, "next_run", 1), "Show the next run in Live"),
            (
                "Previous run",
                partial(live, "next_run", -1),
                "Show the previous run in Live",
            ),
            (
                "Open run",
                partial(runs, "open"),
                "Show the run under the Runs cursor in Live",
            ),
            (
                "Compare runs",
                partial(runs, "compare"),
                "Overlay the curves of the marked runs in Runs",
            ),
            (
                "Export runs to CSV",
                partial(runs, "export"),
                "Write the marked runs' epoch metrics to a CSV file",
            ),
            (
                "Delete runs",
                partial(runs, "delete"),
                "Delete the marked runs, after a confirmation",
            ),
            ("Filter runs", partial(runs, "focus_filter"), "Type words to filter Runs"),
            ("Sort runs", partial(runs, "next_sort"), "Sort Runs by the next column"),
            (
                "Reverse run order",
                partial(runs, "reverse_sort"),
                "Reverse the sort order of Runs",
            ),
            ("Add layer", partial(build, "add_layer"), "Add a layer to the stack"),
            ("Load preset", partial(build, "preset"), "Replace the stack by a preset"),
            ("Save stack", partial(build, "save"), "Save the stack to a JSON file"),
            ("Load stack", partial(build, "load"), "Load a stack from a JSON file"),
            (
                "Set input shape",
                partial(build, "input_shape"),
                "Set the stack's input to an image shape and class count",
            ),
            (
                "Switch backend",
                partial(build, "toggle_backend"),
                "Switch the stack between blocks and torch",
            ),
            (
                "Check gradients",
                partial(app.call_on_view, GradcheckView, "check"),
                "Compare the block stack's backward with autograd",
            ),
            ("Help", app.action_help, "List every key binding"),
            ("Quit", app.action_quit, "Quit, asking about running runs"),
        ]
        return commands

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class LayerlabApp(App):
    """The terminal deep-learning lab.

    Args:
        runs_dir: Directory of the run store; None reads $LAYERLAB_RUNS_DIR,
            else ``./saved_runs``.
        data_dir: Directory of downloaded data sets; None reads
            $LAYERLAB_DATA_DIR, and the data module's default applies when
            that is unset too.
    """

    TITLE = "layerlab"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {LayerlabCommands}
    # The screen gets the class of its width and height range, which app.tcss
    # uses to give wide and tall terminals more room.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]

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
        Binding("q", "quit", "Quit"),
        Binding("escape", "leave_field", "Leave text field", show=False),
    ]

    spec: reactive[dict[str, Any]] = reactive(dict, always_update=True)
    """The current layer stack, an ``engine.spec`` dict that the Build tab edits."""

    def __init__(
        self, runs_dir: str | Path | None = None, data_dir: str | Path | None = None
    ) -> None:
        super().__init__()
        runs_dir = runs_dir or os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR
        self.runs_dir = Path(runs_dir)
        data_dir = data_dir or os.environ.get(DATA_DIR_ENV)
        self.data_dir: Path | None = Path(data_dir) if data_dir else None
        self._store: Any = None
        self.set_reactive(LayerlabApp.spec, specs.default_spec())

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="build"):
            for pane_id, title, view_class in PANES:
                with TabPane(title, id=pane_id):
                    yield view_class()
        yield Footer()

    def on_mount(self) -> None:
        self.call_after_refresh(self.action_show_tab, "build")

    @property
    def store(self) -> Any:
        """The ``engine.runs.RunStore`` under ``runs_dir``, created on first use."""
        if self._store is None:
            from engine.runs import RunStore

            self._store = RunStore(self.runs_dir)
        return self._store

    def call_on_view(self, view_class: type, action: str, *args: Any) -> None:
        """Show the tab of ``view_class`` and run its ``action_<action>(*args)``."""
        for pane_id, _title, pane_class in PANES:
            if pane_class is view_class:
                self.action_show_tab(pane_id)
        view = self.query_one(view_class)
        method = getattr(view, f"action_{action}", None)
        if method is None:
            self.notify(f"The {view_class.__name__} has no {action} action yet.")
            return
        method(*args)

    def action_show_tab(self, pane_id: str) -> None:
        """Show the tab ``pane_id`` and focus its first widget that is no text field.

        A text field would take the single-key bindings as typed text, so when
        a tab has only text fields the tab bar keeps the focus.
        """
        tabs = self.query_one(TabbedContent)
        tabs.active = pane_id
        pane = tabs.get_pane(pane_id)
        for widget in pane.query("*"):
            if widget.focusable and not isinstance(widget, Input | TextArea):
                widget.focus()
                return
        self.action_leave_field()

    def action_leave_field(self) -> None:
        """Move the focus from a text field to the tab bar."""
        if isinstance(self.focused, Input | TextArea):
            self.query_one(TabbedContent).query_one(ContentTabs).focus()

    def show_run(self, run_id: str) -> None:
        """Switch to the Live tab and follow the run ``run_id``."""
        self.action_show_tab("live")
        self.query_one(LiveView).watch_run(run_id)

    def on_runs_view_deleted(self, event: RunsView.Deleted) -> None:
        live = self.query_one(LiveView)
        for run_id in event.run_ids:
            live.forget(run_id)

    def action_start(self) -> None:
        self.call_on_view(TrainView, "start")

    def action_stop(self) -> None:
        self.call_on_view(LiveView, "stop")

    def action_resume(self) -> None:
        self.call_on_view(LiveView, "resume")

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        scopes = [("App", self.BINDINGS)]
        # Each view's own bindings, without the scrolling keys it inherits.
        scopes += [
            (title, vars(view).get("BINDINGS", [])) for _id, title, view in PANES
        ]
        self.push_screen(HelpScreen(scopes))

    def running_runs(self) -> list[Any]:
        """Summaries of the store's runs that are queued or training."""
        from engine.runs import ACTIVE_STATUSES

        try:
            return [run for run in self.store.list() if run.status in ACTIVE_STATUSES]
        except (OSError, ValueError) as error:
            self.log.error(f"listing the runs in {self.runs_dir} failed: {error!r}")
            self.notify(f"Could not list the runs: {error}", severity="error")
            return []

    async def action_quit(self) -> None:
        """Quit, first asking whether to stop the runs that are still training."""
        running = self.running_runs()
        if not running:
            self.exit(0)
            return

        def finish(choice: str | None) -> None:
            if choice == "stop":
                self._stop_runs(running)
            if choice in ("stop", "leave"):
                self.exit(0)

        names = [getattr(run, "name", None) or run.id for run in running]
        self.push_screen(QuitDialog(names), finish)

    def _stop_runs(self, runs: list[Any]) -> None:
        from engine.worker import request_stop

        for summary in runs:
            try:
                request_stop(self.store.get(summary.id))
            except (OSError, ValueError, LookupError) as error:
                self.log.error(f"stopping run {summary.id} failed: {error!r}")


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
    app = LayerlabApp(runs_dir=runs_dir, data_dir=data_dir)
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    raise SystemExit(run_app())
