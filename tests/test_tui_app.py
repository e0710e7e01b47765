"""The app shell: tabs, help, command palette, quitting and import cost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static, TabbedContent

from engine.runs import RunStore, boot_id, process_start_time
from tui.app import PANES, LayerlabApp, LayerlabCommands
from tui.dialogs import QuitDialog
from tui.help_screen import HelpScreen
from tui.train_view import TrainView

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SIZES = [(80, 24), (160, 48)]


@pytest.fixture
def app(tmp_path):
    return LayerlabApp(runs_dir=tmp_path / "runs")


def running_run(store, pid):
    """A run recorded as running in the process ``pid``."""
    run = store.create({"spec": {}, "dataset": {"name": "digits"}}, name="busy")
    run.update(
        status="running",
        pid=pid,
        process_start=process_start_time(pid),
        boot_id=boot_id(),
    )
    return run


@pytest.mark.parametrize("size", SIZES)
async def test_app_number_keys_switch_tabs(app, size):
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        tabs = app.query_one(TabbedContent)
        for number, (pane_id, _title, _view) in enumerate(PANES, start=1):
            await pilot.press(str(number))
            await pilot.pause()
            assert tabs.active == pane_id
        await pilot.press("1")
        await pilot.pause()
        assert tabs.active == "build"
        assert app.focused is app.query_one("#stack", DataTable)


async def test_app_escape_leaves_text_field(app):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("2")
        await pilot.pause()
        field = app.query_one(TrainView).query(Input).first()
        field.focus()
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.focused, Input)
        await pilot.press("1")
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "build"


async def test_app_help_lists_every_binding(app):
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("#help-table", DataTable)
        rows = [tuple(map(str, table.get_row_at(i))) for i in range(table.row_count)]
        descriptions = {(scope, action) for scope, _keys, action in rows}
        for binding in app.BINDINGS:
            assert ("App", binding.description) in descriptions
        for _pane_id, title, view in PANES:
            for binding in vars(view).get("BINDINGS", []):
                assert (title, binding.description) in descriptions
        keys = {(scope, action): keys for scope, keys, action in rows}
        assert keys[("App", "Help")] == "?"
        assert "K" in keys[("Build", "Move up")]
        assert keys[("Live", "Next run")] == "n"
        assert keys[("Live", "Previous run")] == "p"
        assert keys[("Build", "Input shape")] == "I"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_app_command_palette_runs_command(app):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Show Grad check")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "gradcheck"


async def test_app_palette_lists_view_actions(app):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        names = {name for name, _, _ in LayerlabCommands(app.screen)._commands()}
        for name in (
            "Open run",
            "Compare runs",
            "Export runs to CSV",
            "Delete runs",
            "Filter runs",
            "Sort runs",
            "Reverse run order",
            "Next run",
            "Previous run",
            "Set input shape",
        ):
            assert name in names

        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Filter runs")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "runs"
        assert app.focused is app.query_one("#runs-filter", Input)


async def test_app_quit_without_running_runs(app):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running
    assert app.return_code == 0


async def test_app_quit_asks_about_running_runs(app, tmp_path):
    store = RunStore(tmp_path / "runs")
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = running_run(store, worker.pid)
        assert store.get(run.id).status == "running"
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await pilot.press("q")
            await pilot.pause()
            assert isinstance(app.screen, QuitDialog)
            question = str(app.screen.query_one(".dialog-question", Static).render())
            assert question.startswith("1 run is still training: busy.")
            assert "Stop it (it saves a checkpoint" in question
            assert "leave it running" in question
            await pilot.press("c")
            await pilot.pause()
            assert app.is_running
            assert not isinstance(app.screen, QuitDialog)

            await pilot.press("q")
            await pilot.pause()
            await pilot.press("s")
            await pilot.pause()
        assert app.return_code == 0
        assert run.stop_path.exists()
        assert worker.wait(timeout=10) != 0
    finally:
        worker.kill()
        worker.wait()


async def test_app_quit_can_leave_runs_going(app, tmp_path):
    store = RunStore(tmp_path / "runs")
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = running_run(store, worker.pid)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await pilot.press("q")
            await pilot.pause()
            await pilot.press("l")
            await pilot.pause()
        assert app.return_code == 0
        assert not run.stop_path.exists()
        assert worker.poll() is None
        assert store.get(run.id).status == "running"
    finally:
        worker.kill()
        worker.wait()


def test_app_import_loads_no_torch():
    code = (
        "import sys, tui.app; "
        "heavy = ['torch', 'torchvision', 'engine.blocks', 'engine.training']; "
        "print(','.join(name for name in heavy if name in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == ""
