"""The Runs view: every run of the store in a table, and overlaid curves.

The table is read from run.json files only (``RunStore.list``) and is
refreshed every few seconds while the view is visible. Marked runs (space)
are compared in two plots that overlay one metric each.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Select, Static
from textual_plotext import PlotextPlot

from engine.runs import (
    ACTIVE_STATUSES,
    RESUMABLE_STATUSES,
    RunNotFoundError,
    RunSummary,
    export_csv,
)
from tui.dialogs import ConfirmDialog, PathDialog
from tui.live_view import STATUS_STYLES
from tui.plots import Series, draw_series
from tui.run_monitor import distinct_names, format_duration, join_choices

log = logging.getLogger(__name__)

REFRESH_INTERVAL = 2.0

# Column key -> (header, sort key of a RunSummary).
COLUMNS: dict[str, tuple[str, Any]] = {
    "mark": ("", None),
    "name": ("name", lambda s: s.name.lower()),
    "status": ("status", lambda s: s.status),
    "dataset": ("data set", lambda s: s.dataset),
    "model": ("model", lambda s: s.model),
    "optimizer": ("optimizer", lambda s: s.optimizer),
    "best": (
        "best acc",
        lambda s: -1.0 if s.best_test_acc is None else s.best_test_acc,
    ),
    "epochs": ("epochs", lambda s: s.epochs_done),
    "time": ("time", lambda s: s.seconds),
    "date": ("date", lambda s: s.created),
}
SORTABLE = [key for key, (_, sort_key) in COLUMNS.items() if sort_key is not None]

# Below this view width the table drops the data set, model and optimizer
# columns and crops names, so best acc, epochs, time and date stay in sight.
# The detail line under the table shows the dropped values of the cursor row.
COMPACT_BELOW = 120
COMPACT_COLUMNS = ("mark", "name", "status", "best", "epochs", "time", "date")
COMPACT_NAME_WIDTH = 16

# Characters of a run name that a comparison legend shows.
COMPARE_NAME_WIDTH = 24

# Metric key of an epoch record -> plot title.
METRICS = {
    "test_acc": "test accuracy %",
    "test_loss": "test loss",
    "train_acc": "train accuracy %",
    "train_loss": "train loss",
}


def matches_filter(summary: RunSummary, text: str) -> bool:
    """Return True if every word of ``text`` occurs in the run's row.

    The comparison ignores case and looks at the id, name, status, data
    set, model and optimizer.
    """
    haystack = " ".join(
        (
            summary.id,
            summary.name,
            summary.status,
            summary.dataset,
            summary.model,
            summary.optimizer,
        )
    ).lower()
    return all(word in haystack for word in text.lower().split())


def format_date(created: str, with_year: bool = True) -> str:
    """Format a run's ISO 8601 UTC creation time as local ``YYYY-MM-DD HH:MM``,
    or ``MM-DD HH:MM`` without the year."""
    try:
        moment = dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return created
    local = moment.replace(tzinfo=dt.UTC).astimezone()
    return local.strftime("%Y-%m-%d %H:%M" if with_year else "%m-%d %H:%M")


class RunsView(Vertical):
    """Table of the store's runs with sorting, filtering and comparison."""

    BINDINGS = [
        Binding("space", "toggle_mark", "Mark"),
        Binding("o", "open", "Open"),
        Binding("c", "compare", "Compare"),
        Binding("r", "resume", "Resume"),
        Binding("ctrl+d", "delete", "Delete"),
        Binding("e", "export", "Export CSV"),
        Binding("slash", "focus_filter", "Filter"),
        Binding("t", "next_sort", "Sort"),
        Binding("T", "reverse_sort", "Reverse sort", show=False),
    ]

    DEFAULT_CSS = """
    RunsView #runs-bar {
        height: 1;
    }
    RunsView #runs-filter {
        width: 1fr;
    }
    RunsView #runs-sort {
        width: auto;
        padding: 0 1;
        color: $text-muted;
    }
    RunsView #runs-table {
        height: 1fr;
    }
    RunsView #runs-detail {
        height: auto;
        color: $text-muted;
    }
    RunsView #runs-compare {
        height: 2fr;
        display: none;
    }
    RunsView #runs-compare.-shown {
        display: block;
    }
    RunsView #metric-row {
        height: 1;
    }
    RunsView #metric-row Select {
        width: 1fr;
    }
    """

    class Deleted(Message):
        """Posted after runs were deleted from the store."""

        def __init__(self, run_ids: list[str]) -> None:
            super().__init__()
            self.run_ids = run_ids
            """Ids of the deleted runs."""

    def __init__(self) -> None:
        super().__init__()
        self.summaries: list[RunSummary] = []
        """Every run of the store as last read, newest first."""
        self.marked: set[str] = set()
        """Ids of the runs marked for comparison, delete or export."""
        self.compared: list[str] = []
        """Ids of the runs overlaid in the comparison plots."""
        self.sort_column = "date"
        self.sort_reverse = True
        self.drawn: dict[str, list[Series]] = {}
        """Plot id -> the series it was last drawn from (before decimation)."""
        self._shown_rows: list[tuple[Any, ...]] = []
        self.compact = False
        """True while the table shows only ``COMPACT_COLUMNS``."""

    def compose(self) -> ComposeResult:
        with Horizontal(id="runs-bar"):
            yield Input(placeholder="filter (/)", compact=True, id="runs-filter")
            yield Static("", id="runs-sort")
        table = DataTable(cursor_type="row", zebra_stripes=True, id="runs-table")
        self._add_columns(table)
        yield table
        yield Static("", id="runs-detail")
        with Vertical(id="runs-compare"):
            with Horizontal(id="metric-row"):
                options = [(title, key) for key, title in METRICS.items()]
                yield Select(
                    options,
                    value="test_acc",
                    allow_blank=False,
                    compact=True,
                    id="metric-a",
                )
                yield Select(
                    options,
                    value="test_loss",
                    allow_blank=False,
                    compact=True,
                    id="metric-b",
                )
            with Horizontal():
                yield PlotextPlot(id="compare-a")
                yield PlotextPlot(id="compare-b")

    def on_mount(self) -> None:
        self.set_interval(REFRESH_INTERVAL, self._refresh_if_visible)
        self.call_after_refresh(self.refresh_runs)

    def on_show(self) -> None:
        self.refresh_runs()

    def on_resize(self, event: events.Resize) -> None:
        compact = event.size.width < COMPACT_BELOW
        if compact == self.compact:
            return
        self.compact = compact
        table = self.query_one("#runs-table", DataTable)
        current = self.cursor_run_id()
        table.clear(columns=True)
        self._add_columns(table)
        self._shown_rows = []
        self._fill_table()
        if current is not None and current in table.rows:
            table.move_cursor(row=table.get_row_index(current))

    def _add_columns(self, table: DataTable) -> None:
        for key in self._column_keys():
            width = None
            if key == "mark":
                # The mark column's header is empty, so its width is set.
                width = 1
            elif key == "name" and self.compact:
                width = COMPACT_NAME_WIDTH
            table.add_column(COLUMNS[key][0], key=key, width=width)

    def _column_keys(self) -> tuple[str, ...]:
        return COMPACT_COLUMNS if self.compact else tuple(COLUMNS)

    def _refresh_if_visible(self) -> None:
        if all(node.display for node in self.ancestors_with_self):
            self.refresh_runs()

    # --- table -----------------------------------------------------------

    def refresh_runs(self) -> None:
        """Reread the store and update the table."""
        try:
            self.summaries = self.app.store.list()
        except OSError as error:
            self.notify(f"Cannot read the run store: {error}", severity="error")
            return
        ids = {summary.id for summary in self.summaries}
        self.marked &= ids
        self._fill_table()
        if any(run_id not in ids for run_id in self.compared):
            self._update_comparison([i for i in self.compared if i in ids])

    def visible_summaries(self) -> list[RunSummary]:
        """Return the runs that pass the filter, in the table's sort order."""
        text = self.query_one("#runs-filter", Input).value
        shown = [s for s in self.summaries if matches_filter(s, text)]
        sort_key = COLUMNS[self.sort_column][1]
        shown.sort(key=sort_key, reverse=self.sort_reverse)
        return shown

    def _row(self, summary: RunSummary) -> tuple[Any, ...]:
        best = "-" if summary.best_test_acc is None else f"{summary.best_test_acc:.2f}"
        total = summary.num_epochs or "?"
        name: str | Text = summary.name
        if self.compact:
            name = Text(summary.name, no_wrap=True, overflow="ellipsis")
            name.truncate(COMPACT_NAME_WIDTH, overflow="ellipsis")
        cells = {
            "mark": "*" if summary.id in self.marked else "",
            "name": name,
            "status": Text(summary.status, style=STATUS_STYLES.get(summary.status, "")),
            "dataset": summary.dataset,
            "model": summary.model,
            "optimizer": summary.optimizer,
            "best": best,
            "epochs": f"{summary.epochs_done}/{total}",
            "time": format_duration(summary.seconds),
            "date": format_date(summary.created, with_year=not self.compact),
        }
        return tuple(cells[key] for key in self._column_keys())

    def _show_detail(self) -> None:
        """Describe the run under the cursor in the line under the table."""
        run_id = self.cursor_run_id()
        summary = next((s for s in self.summaries if s.id == run_id), None)
        detail = self.query_one("#runs-detail", Static)
        if summary is None:
            detail.update("")
            return
        detail.update(
            f"{summary.name}: data set {summary.dataset}, model {summary.model}, "
            f"optimizer {summary.optimizer}"
        )

    def _fill_table(self) -> None:
        rows = [(s.id, self._row(s)) for s in self.visible_summaries()]
        comparable = [(key, tuple(str(cell) for cell in row)) for key, row in rows]
        arrow = "v" if self.sort_reverse else "^"
        header = COLUMNS[self.sort_column][0]
        self.query_one("#runs-sort", Static).update(
            f"{len(rows)}/{len(self.summaries)} runs, sort: {header} {arrow} (t)"
        )
        if comparable == self._shown_rows:
            return
        self._shown_rows = comparable
        table = self.query_one("#runs-table", DataTable)
        current = self.cursor_run_id()
        table.clear()
        for key, row in rows:
            table.add_row(*row, key=key)
        if current is not None and current in table.rows:
            table.move_cursor(row=table.get_row_index(current))
        self._show_detail()

    def cursor_run_id(self) -> str | None:
        """Id of the run under the table's cursor, or None when it is empty."""
        table = self.query_one("#runs-table", DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    def _chosen_ids(self) -> list[str]:
        """Marked runs in table order, else the run under the cursor."""
        if self.marked:
            return [s.id for s in self.visible_summaries() if s.id in self.marked]
        current = self.cursor_run_id()
        return [current] if current else []

    @on(Input.Changed, "#runs-filter")
    def _filter_changed(self) -> None:
        self._fill_table()

    @on(Input.Submitted, "#runs-filter")
    def _filter_submitted(self) -> None:
        self.query_one("#runs-table", DataTable).focus()

    @on(DataTable.HeaderSelected)
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key not in SORTABLE:
            return
        if key == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column = key
        self._fill_table()

    @on(DataTable.RowHighlighted, "#runs-table")
    def _row_highlighted(self) -> None:
        self._show_detail()

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_open()

    # --- actions ---------------------------------------------------------

    def action_focus_filter(self) -> None:
        """Move the focus to the filter input."""
        self.query_one("#runs-filter", Input).focus()

    def action_next_sort(self) -> None:
        """Sort by the next column."""
        index = SORTABLE.index(self.sort_column)
        self.sort_column = SORTABLE[(index + 1) % len(SORTABLE)]
        self._fill_table()

    def action_reverse_sort(self) -> None:
        """Reverse the sort order."""
        self.sort_reverse = not self.sort_reverse
        self._fill_table()

    def action_toggle_mark(self) -> None:
        """Mark or unmark the run under the cursor."""
        run_id = self.cursor_run_id()
        if run_id is None:
            return
        self.marked.symmetric_difference_update({run_id})
        table = self.query_one("#runs-table", DataTable)
        table.update_cell(run_id, "mark", "*" if run_id in self.marked else "")
        self._shown_rows = []
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)
        if self.compared:
            marked = [s.id for s in self.visible_summaries() if s.id in self.marked]
            self._update_comparison(marked)

    def action_open(self) -> None:
        """Show the run under the cursor in Live."""
        run_id = self.cursor_run_id()
        if run_id is not None:
            self.app.show_run(run_id)

    def action_resume(self) -> None:
        """Resume the run under the cursor and show it in Live."""
        run_id = self.cursor_run_id()
        if run_id is None:
            return
        status = self._status(run_id)
        if status not in RESUMABLE_STATUSES:
            self.notify(
                f"{run_id} is {status}; only a run that is "
                f"{join_choices(RESUMABLE_STATUSES)} can be resumed.",
                severity="warning",
            )
            return
        from engine.worker import start_detached

        try:
            start_detached(self.app.store.root, run_id, resume=True)
        except (OSError, ValueError) as error:
            self.notify(str(error), title="Resume failed", severity="error")
            return
        self.notify(f"Resuming {run_id}.")
        self.refresh_runs()
        self.app.show_run(run_id)

    def action_compare(self) -> None:
        """Overlay the curves of the marked runs (or the one under the cursor)."""
        ids = self._chosen_ids()
        if not ids:
            self.notify("No runs to compare: mark some with space.")
            return
        self.compared = ids
        self.query_one("#runs-compare").add_class("-shown")
        self.draw_comparison()

    def _update_comparison(self, ids: list[str]) -> None:
        """Compare the runs ``ids`` instead, or hide the plots when it is empty."""
        self.compared = ids
        if ids:
            self.draw_comparison()
            return
        self.query_one("#runs-compare").remove_class("-shown")
        for plot_id in ("compare-a", "compare-b"):
            self.drawn[plot_id] = []
            draw_series(self.query_one(f"#{plot_id}", PlotextPlot), [])

    @on(Select.Changed, "#metric-a")
    @on(Select.Changed, "#metric-b")
    def _metric_changed(self) -> None:
        if self.compared:
            self.draw_comparison()

    def comparison_series(self, metric: str) -> list[Series]:
        """Return one series of ``metric`` per compared run, epoch on x."""
        series = []
        names = {s.id: s.name[:COMPARE_NAME_WIDTH] for s in self.summaries}
        labels = distinct_names(
            {run_id: names.get(run_id, run_id) for run_id in self.compared}
        )
        for run_id in self.compared:
            try:
                run = self.app.store.get(run_id)
                history = run.history()
            except (RunNotFoundError, OSError, ValueError) as error:
                self.notify(str(error), title="Run not read", severity="warning")
                continue
            points = [
                (float(r["epoch"]), float(r[metric]))
                for r in history
                if r.get(metric) is not None
            ]
            series.append(
                Series(
                    labels[run_id],
                    [x for x, _ in points],
                    [y for _, y in points],
                )
            )
        return series

    def draw_comparison(self) -> None:
        """Redraw both comparison plots from the compared runs' metrics."""
        for select_id, plot_id in (
            ("#metric-a", "#compare-a"),
            ("#metric-b", "#compare-b"),
        ):
            metric = str(self.query_one(select_id, Select).value)
            self.drawn[plot_id.removeprefix("#")] = self.comparison_series(metric)
            draw_series(
                self.query_one(plot_id, PlotextPlot),
                self.drawn[plot_id.removeprefix("#")],
                title=METRICS[metric],
                xlabel="epoch",
            )

    def action_delete(self) -> None:
        """Delete the marked runs (or the one under the cursor) after a prompt."""
        ids = self._chosen_ids()
        if not ids:
            return
        names = {s.id: s.name for s in self.summaries}
        active = [i for i in ids if self._status(i) in ACTIVE_STATUSES]
        if active:
            self.notify(
                f"{names.get(active[0], active[0])} is still running; stop it "
                "first (x in Live).",
                title="Not deleted",
                severity="warning",
            )
            return
        # Runs may share a name, so each one is named with its id.
        shown = ", ".join(f"{names.get(i, i)} ({i})" for i in ids[:3])
        more = f" and {len(ids) - 3} more" if len(ids) > 3 else ""
        question = (
            f"Delete {len(ids)} run(s): {shown}{more}? Their metrics and "
            "checkpoints are removed from disk."
        )

        def delete(confirmed: bool | None) -> None:
            if confirmed:
                self._delete(ids)

        self.app.push_screen(ConfirmDialog(question, yes_label="Delete"), delete)

    def _status(self, run_id: str) -> str:
        for summary in self.summaries:
            if summary.id == run_id:
                return summary.status
        return ""

    def _delete(self, ids: list[str]) -> None:
        deleted = []
        for run_id in ids:
            try:
                self.app.store.delete(run_id)
            except (RunNotFoundError, OSError, ValueError) as error:
                self.notify(str(error), title="Not deleted", severity="error")
                continue
            deleted.append(run_id)
            self.marked.discard(run_id)
        if deleted:
            self.notify(f"Deleted {len(deleted)} run(s).")
            self.post_message(self.Deleted(deleted))
        self.refresh_runs()

    def action_export(self) -> None:
        """Export the per-epoch metrics of the chosen runs to a CSV file."""
        ids = self._chosen_ids()
        if not ids:
            self.notify("No runs to export.")
            return

        def export(path_text: str | None) -> None:
            if path_text:
                self._confirm_export(Path(path_text).expanduser(), ids)

        if self.marked:
            title = f"Export the metrics of {len(ids)} marked run(s) to a CSV file"
        else:
            names = {s.id: s.name for s in self.summaries}
            title = (
                f"Export the metrics of {names.get(ids[0], ids[0])} to a CSV file "
                "(mark runs with space to export several)"
            )
        self.app.push_screen(PathDialog(title, "runs.csv", "Export"), export)

    def _confirm_export(self, path: Path, ids: list[str]) -> None:
        if not path.exists():
            self._export(path, ids)
            return

        def overwrite(confirmed: bool | None) -> None:
            if confirmed:
                self._export(path, ids)

        self.app.push_screen(
            ConfirmDialog(f"{path} exists. Overwrite it?", yes_label="Overwrite"),
            overwrite,
        )

    def _export(self, path: Path, ids: list[str]) -> None:
        # Written beside the target and renamed over it, so a failed export
        # leaves an existing file as it was.
        partial = path.with_name(f".{path.name}.partial")
        try:
            runs = [self.app.store.get(run_id) for run_id in ids]
            with open(partial, "w", newline="", encoding="utf-8") as file:
                rows = export_csv(runs, file)
            os.replace(partial, path)
        except (RunNotFoundError, OSError, ValueError) as error:
            partial.unlink(missing_ok=True)
            self.notify(str(error), title="Export failed", severity="error")
            return
        self.notify(f"Wrote {rows} rows of {len(runs)} run(s) to {path.resolve()}.")
