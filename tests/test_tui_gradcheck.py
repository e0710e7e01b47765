"""The Gradient check tab on block and torch stacks."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Static

from engine import spec as specs
from tui.app import LayerlabApp
from tui.gradcheck_view import TOLERANCE, GradcheckView, check_gradients


@pytest.fixture
def app(tmp_path):
    return LayerlabApp(runs_dir=tmp_path / "runs")


def status_text(app):
    return str(app.query_one("#gradcheck-status", Static).render())


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_gradcheck_block_mlp_passes(app, size):
    app.spec = specs.preset_mlp("digits", hidden=[32, 16], activation="tanh")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.press("5", "g")
        await app.workers.wait_for_complete()
        await pilot.pause()
        view = app.query_one(GradcheckView)
        # The input gradient, then a weight and a bias per linear layer.
        assert len(view.results) == 1 + 2 * 3
        assert [result.name for result in view.results][0] == "input"
        for result in view.results:
            assert result.difference <= TOLERANCE, result.name
        table = app.query_one("#gradcheck-table", DataTable)
        verdicts = [str(table.get_row_at(i)[3]) for i in range(table.row_count)]
        assert verdicts == ["pass"] * 7
        assert "All 7 gradients match" in status_text(app)


async def test_gradcheck_torch_stack_is_explained(app):
    app.spec = specs.preset_mlp("digits", backend="torch")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("5", "g")
        await pilot.pause()
        assert "torch backend" in status_text(app)
        assert app.query_one("#gradcheck-table", DataTable).row_count == 0
        assert app.query_one("#gradcheck-status").has_class("invalid")


async def test_gradcheck_invalid_stack_is_reported(app):
    spec = specs.default_spec()
    spec["layers"][-1]["out_features"] = 3
    app.spec = spec
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("5", "g")
        await pilot.pause()
        assert "invalid" in status_text(app)
        assert app.query_one("#gradcheck-table", DataTable).row_count == 0


def test_check_gradients_names_parameters():
    spec = specs.preset_mlp("digits", hidden=[8], dropout=0.5)
    results = check_gradients(spec)
    names = [result.name for result in results]
    assert names[0] == "input"
    assert len(names) == 5
    assert all(result.passed for result in results)


def test_check_gradients_rejects_torch_backend():
    with pytest.raises(ValueError, match="torch"):
        check_gradients(specs.preset_mlp("digits", backend="torch"))


async def test_gradcheck_clears_after_backend_switch(app):
    app.spec = specs.preset_mlp("digits", hidden=[16])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("5", "g")
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.query_one("#gradcheck-table", DataTable)
        assert table.row_count == 5

        # b on the Build tab switches the stack to torch.
        await pilot.press("1", "b", "5")
        await pilot.pause()
        view = app.query_one(GradcheckView)
        assert app.spec["backend"] == "torch"
        assert view.results == []
        assert table.row_count == 0
        assert "The stack changed" in status_text(app)

        await pilot.press("g")
        await pilot.pause()
        assert table.row_count == 0
        assert "torch backend" in status_text(app)


async def test_gradcheck_torch_message_clears(app):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("b", "5", "g")
        await pilot.pause()
        assert "torch backend" in status_text(app)

        await pilot.press("1", "b", "5")
        await pilot.pause()
        assert app.spec["backend"] == "blocks"
        assert "torch backend" not in status_text(app)
        assert "The stack changed" in status_text(app)
        assert not app.query_one("#gradcheck-status").has_class("invalid")
