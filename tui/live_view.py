"""The Live view: curves, progress and log of the runs being followed.

Every followed run has its own ``RunMonitor`` (metrics read so far, curves
and log), listed on the left; the right side shows the selected one. A
timer polls every followed run's metrics.jsonl four times a second. The
plots are redrawn at most once per tick after epoch and status records and
at most once a second after batch records alone, so the UI's work stays
bounded however fast the worker writes metrics.
"""

from __future__ import annotations

import logging
import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, OptionList, ProgressBar, RichLog, Static
from textual.widgets.option_list import Option
from textual_plotext import PlotextPlot

from engine.runs import ACTIVE_STATUSES, RESUMABLE_STATUSES, RunNotFoundError
from tui.plots import (
    MIN_REDRAW_INTERVAL,
    RedrawLimiter,
    Series,
    decimate,
    draw_series,
)
from tui.run_monitor import (
    FAILED_STATUSES,
    RunMonitor,
    describe_status,
    distinct_names,
    format_duration,
    join_choices,
)

log = logging.getLogger(__name__)

POLL_INTERVAL = MIN_REDRAW_INTERVAL

# Seconds between redraws of the loss plot for new batches alone; epoch ends
# and status changes redraw both plots after at most MIN_REDRAW_INTERVAL.
# Every redraw rebuilds a plot from its series, which costs the UI process
# CPU that the worker would otherwise use.
BATCH_REDRAW_INTERVAL = 1.0

NO_RUN_TEXT = "No run yet: start one in Train (s)."
STORED_RUNS_TEXT = (
    "No run shown: start one in Train (s), or open a stored run from Runs (4, then o)."
)

STATUS_STYLES = {
    "queued": "yellow",
    "running": "green",
    "finished": "bold green",
    "stopped": "yellow",
    "interrupted": "red",
    "diverged": "red",
    "failed": "bold red",
}


def flow_parts(parts: list[Text], width: int, separator: str = "  ") -> Text:
    """Join ``parts`` with ``separator``, starting a new line before a part
    that would pass ``width`` cells, so no part is split or cut off.

    A width of 0 (a widget not laid out yet) keeps every part on one line.
    """
    text = Text()
    line_width = 0
    for part in parts:
        if line_width and width and line_width + len(separator) + part.cell_len > width:
            text.append("\n")
            line_width = 0
        elif line_width:
            text.append(separator)
            line_width += len(separator)
        text.append_text(part)
        line_width += part.cell_len
    return text


class LiveView(Horizontal):
    """Curves, progress and log of the runs followed in this session."""

    BINDINGS = [
        Binding("n", "next_run(1)", "Next run"),
        Binding("p", "next_run(-1)", "Previous run"),
    ]

    DEFAULT_CSS = """
    LiveView #live-runs {
        width: 20;
        height: 1fr;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    LiveView #live-main {
        width: 1fr;
    }
    LiveView #live-title, LiveView #live-stats {
        height: auto;
    }
    LiveView .bar-row {
        height: 1;
    }
    LiveView .bar-row Label {
        width: 7;
    }
    LiveView .bar-row ProgressBar {
        width: 1fr;
    }
    LiveView #live-plots {
        height: 1fr;
        min-height: 6;
    }
    LiveView #live-log {
        height: 5;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.monitors: dict[str, RunMonitor] = {}
        """Run id -> monitor of every followed run, in the order added."""
        self.shown_id: str | None = None
        """Id of the run shown on the right, or None."""
        self.limiter = RedrawLimiter()
        """Gate of full redraws, after epoch and status records."""
        self.batch_limiter = RedrawLimiter(BATCH_REDRAW_INTERVAL)
        """Gate of loss-plot redraws after batch records alone."""
        self._shown_text: dict[str, object] = {}
        self.drawn: dict[str, list[Series]] = {}
        """Plot id -> the series it was last drawn from (before decimation)."""
        self._logged: dict[str, int] = {}
        self._log_width = 0
        """Width that the log pane's lines were wrapped at, 0 when stale."""

    def compose(self) -> ComposeResult:
        yield OptionList(id="live-runs")
        with Vertical(id="live-main"):
            yield Static(NO_RUN_TEXT, id="live-title")
            with Horizontal(classes="bar-row"):
                yield Label("epoch")
                yield ProgressBar(total=1, show_eta=False, id="epoch-bar")
            with Horizontal(classes="bar-row"):
                yield Label("fit")
                yield ProgressBar(total=1, show_eta=False, id="fit-bar")
            yield Static("", id="live-stats")
            with Horizontal(id="live-plots"):
                yield PlotextPlot(id="loss-plot")
                yield PlotextPlot(id="acc-plot")
            yield RichLog(max_lines=500, wrap=True, min_width=20, id="live-log")

    def on_mount(self) -> None:
        self.set_interval(POLL_INTERVAL, self._tick)
        self.call_after_refresh(self._follow_active_runs)

    # --- following runs --------------------------------------------------

    def _follow_active_runs(self) -> None:
        """Follow every run of the store that is still going."""
        try:
            runs = self.app.store.runs()
        except OSError as error:
            self.notify(f"Cannot read the run store: {error}", severity="error")
            return
        # Oldest first, so the newest active run ends up shown.
        for run in reversed(runs):
            if run.status in ACTIVE_STATUSES and run.id not in self.monitors:
                self._add_monitor(run)
        if self.shown_id is None and self.monitors:
            self.show(next(reversed(self.monitors)))
        elif self.shown_id is None:
            self._show_no_run_title(bool(runs))

    def _add_monitor(self, run) -> RunMonitor:
        monitor = RunMonitor(run)
        self.monitors[run.id] = monitor
        self._poll(monitor)
        self.query_one("#live-runs", OptionList).add_option(
            Option(self._option_label(monitor), id=run.id)
        )
        self._relabel_options()
        return monitor

    def _relabel_options(self) -> None:
        """Relabel every run in the list, so runs that share a name differ."""
        option_list = self.query_one("#live-runs", OptionList)
        for monitor in self.monitors.values():
            option_list.replace_option_prompt(
                monitor.run_id, self._option_label(monitor)
            )

    def watch_run(self, run_id: str) -> None:
        """Follow the run ``run_id`` (if not yet) and show it.

        Args:
            run_id: A run id or unique id prefix in the app's store.
        """
        try:
            run = self.app.store.get(run_id)
        except (RunNotFoundError, ValueError, OSError) as error:
            self.notify(str(error), title="Run not found", severity="error")
            return
        if run.id in self.monitors:
            # The run may have been resumed elsewhere since it last ended.
            self._poll(self.monitors[run.id])
        else:
            self._add_monitor(run)
        self.show(run.id)

    def forget(self, run_id: str) -> None:
        """Stop following the run ``run_id`` and drop its curves and log.

        The next followed run is shown in its place, if there is one.
        """
        if self.monitors.pop(run_id, None) is None:
            return
        self._logged.pop(run_id, None)
        self.query_one("#live-runs", OptionList).remove_option(run_id)
        self._relabel_options()
        if run_id != self.shown_id:
            return
        if self.monitors:
            self.show(next(reversed(self.monitors)))
        else:
            self._show_no_run()

    def _show_no_run(self) -> None:
        self.shown_id = None
        self._shown_text.clear()
        self.drawn.clear()
        self._show_no_run_title(self._store_has_runs())
        self.query_one("#live-stats", Static).update("")
        for bar_id in ("epoch-bar", "fit-bar"):
            self.query_one(f"#{bar_id}", ProgressBar).update(total=1, progress=0)
        for plot_id in ("loss-plot", "acc-plot"):
            draw_series(self.query_one(f"#{plot_id}", PlotextPlot), [])
        self.query_one("#live-log", RichLog).clear()
        self._log_width = 0

    def _store_has_runs(self) -> bool:
        try:
            return bool(self.app.store.list())
        except (OSError, ValueError) as error:
            log.warning("listing the runs failed: %s", error)
            return False

    def _show_no_run_title(self, store_has_runs: bool) -> None:
        text = STORED_RUNS_TEXT if store_has_runs else NO_RUN_TEXT
        self.query_one("#live-title", Static).update(text)

    def show(self, run_id: str) -> None:
        """Show the followed run ``run_id`` on the right."""
        if run_id not in self.monitors:
            return
        self.shown_id = run_id
        option_list = self.query_one("#live-runs", OptionList)
        index = option_list.get_option_index(run_id)
        if option_list.highlighted != index:
            # Without its message: handled later, after another show() in
            # the meantime, it would switch back to this run.
            with self.prevent(OptionList.OptionHighlighted):
                option_list.highlighted = index
        self._log_width = 0
        self._rewrite_log()
        # Shown from another tab, the pane gets its width in the next layout.
        self.call_after_refresh(self._rewrite_log)
        self._update_text()
        self.limiter.force()
        self._draw_if_due()

    def on_option_list_option_highlighted(
        self, event: OptionList.OptionHighlighted
    ) -> None:
        if event.option_id and event.option_id != self.shown_id:
            self.show(event.option_id)

    @property
    def shown(self) -> RunMonitor | None:
        """Monitor of the run shown, or None."""
        return self.monitors.get(self.shown_id) if self.shown_id else None

    # --- polling ---------------------------------------------------------

    def _tick(self) -> None:
        for monitor in list(self.monitors.values()):
            if monitor.active:
                self._poll(monitor)
        if self.shown is None or not self._visible():
            return
        self._update_text()
        self._draw_if_due()

    def _visible(self) -> bool:
        return all(node.display for node in self.ancestors_with_self)

    def on_show(self) -> None:
        if self.shown is not None:
            self._update_text()
            self.limiter.force()
            self._draw_if_due()
        else:
            # Runs may have been stored since, by this app or another.
            self._show_no_run_title(self._store_has_runs())
        # The text and log lines flow at the widths of the next layout.
        self.call_after_refresh(self._update_text)
        self.call_after_refresh(self._rewrite_log)

    def on_resize(self) -> None:
        self.call_after_refresh(self._update_text)
        self.call_after_refresh(self._rewrite_log)

    def _poll(self, monitor: RunMonitor) -> None:
        try:
            records, changed = monitor.update()
        except (OSError, ValueError) as error:
            # The run directory was deleted or run.json is unreadable: stop
            # following the run instead of retrying four times a second.
            log.warning("stopped following run %s: %s", monitor.run_id, error)
            monitor.status = "failed"
            monitor.reason = f"cannot read the run: {error}"
            monitor.history.note(monitor.reason)
            self.notify(
                f"{monitor.name}: {monitor.reason}", title="Run", severity="error"
            )
            self._status_changed(monitor)
            return
        if monitor.run_id == self.shown_id:
            if any(record.get("kind") != "batch" for record in records):
                self.limiter.mark_dirty()
            elif records:
                self.batch_limiter.mark_dirty()
        if changed is not None:
            self._status_changed(monitor)
        self._write_new_log_lines(monitor)

    def _status_changed(self, monitor: RunMonitor) -> None:
        status = monitor.status
        option_list = self.query_one("#live-runs", OptionList)
        option_list.replace_option_prompt(monitor.run_id, self._option_label(monitor))
        message = f"{monitor.name} is {describe_status(status, monitor.reason)}"
        if status in FAILED_STATUSES:
            self.notify(message, title="Run ended", severity="error", timeout=10)
        elif status in ("finished", "stopped"):
            self.notify(message, title="Run ended")
        if monitor.run_id == self.shown_id:
            self.limiter.mark_dirty()

    def _write_new_log_lines(self, monitor: RunMonitor) -> None:
        if monitor.run_id != self.shown_id:
            return
        log_pane = self.query_one("#live-log", RichLog)
        width = log_pane.scrollable_content_region.width
        if width == 0 or width != self._log_width:
            # Hidden, or resized since the lines were wrapped.
            self._rewrite_log()
            return
        history = monitor.history
        for line in history.new_log_lines(self._logged.get(monitor.run_id, 0)):
            log_pane.write(line)
        self._logged[monitor.run_id] = history.log_count

    def _rewrite_log(self) -> None:
        """Write the shown run's log lines again, wrapped at the pane's width.

        RichLog wraps a line once, when it is written. A hidden pane has no
        width, so RichLog would wrap at its ``min_width``. Nothing is written
        while the pane is hidden, and a width change rewrites every line.
        """
        monitor = self.shown
        log_pane = self.query_one("#live-log", RichLog)
        width = log_pane.scrollable_content_region.width
        if monitor is None or width == 0 or width == self._log_width:
            return
        log_pane.clear()
        for line in monitor.history.log:
            log_pane.write(line)
        self._logged[monitor.run_id] = monitor.history.log_count
        self._log_width = width

    # --- drawing ---------------------------------------------------------

    def _option_label(self, monitor: RunMonitor) -> Text:
        style = STATUS_STYLES.get(monitor.status, "")
        names = {run_id: m.name for run_id, m in self.monitors.items()}
        label = Text(distinct_names(names).get(monitor.run_id, monitor.name))
        label.append("\n")
        label.append(monitor.status, style=style)
        return label

    def _update_text(self) -> None:
        monitor = self.shown
        if monitor is None:
            return
        history = monitor.history
        style = STATUS_STYLES.get(monitor.status, "")
        described = describe_status(monitor.status, monitor.reason)
        title = [Text(monitor.name, style="bold")]
        if described == monitor.reason:
            title.append(Text(described, style=style))
        elif monitor.reason:
            # The reason is a part of its own, so it moves to the next line
            # whole instead of wrapping in the middle.
            title.append(Text(f"{monitor.status}:", style=style))
            title.append(Text(monitor.reason, style="red"))
        else:
            title.append(Text(monitor.status, style=style))
        device = history.device or monitor.run.config.get("training", {}).get(
            "device", "auto"
        )
        title.append(Text(f"device {device}"))
        if history.memory:
            title.append(Text(f"mem {history.memory}"))
        self._set_static("live-title", title)
        self._set_static("live-stats", [Text(p) for p in self._stats_parts(monitor)])
        # Rounded to 0.5 % steps, so a bar repaints only when it visibly moves.
        self._set_bar("epoch-bar", round(history.epoch_fraction() * 200) / 200)
        self._set_bar("fit-bar", round(history.fit_fraction() * 200) / 200)

    def _set_static(self, widget_id: str, parts: list[Text]) -> None:
        widget = self.query_one(f"#{widget_id}", Static)
        text = flow_parts(parts, widget.size.width)
        previous = self._shown_text.get(widget_id)
        if previous == text.plain:
            return
        self._shown_text[widget_id] = text.plain
        # The widget's height follows its line count, so only a change of
        # that count needs a layout pass.
        lines_changed = not isinstance(previous, str) or (
            previous.count("\n") != text.plain.count("\n")
        )
        widget.update(text, layout=lines_changed)

    def _set_bar(self, widget_id: str, progress: float) -> None:
        if self._shown_text.get(widget_id) == progress:
            return
        self._shown_text[widget_id] = progress
        self.query_one(f"#{widget_id}", ProgressBar).update(total=1, progress=progress)

    def _stats_parts(self, monitor: RunMonitor) -> list[str]:
        history = monitor.history
        parts = []
        done = history.epochs[-1] if history.epochs else 0
        total = history.num_epochs or "?"
        current = history.last_batch
        if monitor.active and current is not None:
            parts.append(
                f"epoch {current.get('epoch')}/{total} {current.get('stage')} "
                f"{current.get('batch')}/{current.get('num_batches')}"
            )
        else:
            parts.append(f"epochs {done}/{total}")
        if history.samples_per_second:
            parts.append(f"{history.samples_per_second:,.0f} samples/s")
        if monitor.active:
            parts.append(f"ETA {format_duration(history.eta_seconds(time.time()))}")
        if history.best_test_acc is not None:
            parts.append(f"best test {history.best_test_acc:.1f}%")
        return parts

    def _draw_if_due(self) -> None:
        monitor = self.shown
        if monitor is None:
            return
        if self.limiter.should_draw():
            self._draw_loss(monitor)
            self._draw_accuracy(monitor)
            # A full redraw includes the newest batches.
            self.batch_limiter.force()
            self.batch_limiter.should_draw()
        elif self.batch_limiter.should_draw():
            self._draw_loss(monitor)

    def _draw_loss(self, monitor: RunMonitor) -> None:
        history = monitor.history
        epochs = [float(e) for e in history.epochs]
        # The batch series can grow to many thousands of points, so only a
        # decimated copy is kept; draw_series cuts it to the plot width.
        batch_x, batch_loss = decimate(history.batch_x, history.batch_loss, 2000)
        self.drawn["loss-plot"] = [
            Series("batch", batch_x, batch_loss, "gray"),
            Series("train", epochs, list(history.train_loss), "cyan"),
            Series("test", epochs, list(history.test_loss), "orange"),
        ]
        draw_series(
            self.query_one("#loss-plot", PlotextPlot),
            self.drawn["loss-plot"],
            title="loss",
            xlabel="epoch",
        )

    def _draw_accuracy(self, monitor: RunMonitor) -> None:
        history = monitor.history
        epochs = [float(e) for e in history.epochs]
        self.drawn["acc-plot"] = [
            Series("train", epochs, list(history.train_acc), "cyan"),
            Series("test", epochs, list(history.test_acc), "orange"),
        ]
        draw_series(
            self.query_one("#acc-plot", PlotextPlot),
            self.drawn["acc-plot"],
            title="accuracy %",
            xlabel="epoch",
        )

    # --- actions ---------------------------------------------------------

    def action_next_run(self, offset: int = 1) -> None:
        """Show the followed run ``offset`` places down the run list, wrapping."""
        if not self.monitors:
            self.notify("No run is followed in Live: open one from Runs (o).")
            return
        ids = list(self.monitors)
        index = ids.index(self.shown_id) if self.shown_id in ids else -offset
        self.show(ids[(index + offset) % len(ids)])

    def action_stop(self) -> None:
        """Ask the worker of the shown run to stop after its current batch."""
        monitor = self.shown
        if monitor is None:
            self.notify("No run is shown in Live.", severity="warning")
            return
        if not monitor.active:
            self.notify(f"{monitor.name} is {monitor.status}, not running.")
            return
        from engine.worker import request_stop

        try:
            request_stop(monitor.run)
        except (OSError, ValueError) as error:
            self.notify(str(error), title="Stop failed", severity="error")
            return
        monitor.history.note("stop requested")
        self._write_new_log_lines(monitor)
        self.notify(f"Stopping {monitor.name} after the current batch.")

    def action_resume(self) -> None:
        """Continue the shown run from its last checkpoint in a new worker."""
        monitor = self.shown
        if monitor is None:
            self.notify("No run is shown in Live.", severity="warning")
            return
        if monitor.status not in RESUMABLE_STATUSES:
            self.notify(
                f"{monitor.name} is {monitor.status}; only a run that is "
                f"{join_choices(RESUMABLE_STATUSES)} can be resumed.",
                severity="warning",
            )
            return
        from engine.worker import start_detached

        try:
            start_detached(self.app.store.root, monitor.run_id, resume=True)
        except (OSError, ValueError) as error:
            self.notify(str(error), title="Resume failed", severity="error")
            return
        monitor.history.note("resume requested")
        self._poll(monitor)
        self.notify(f"Resuming {monitor.name}.")
