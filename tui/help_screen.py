"""The help screen: every key binding of the app and of each tab.

The table is generated from the ``BINDINGS`` of the app and of the view
classes, so it lists what the keys really do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


def binding_rows(
    scopes: Iterable[tuple[str, Iterable[BindingType]]],
    format_key: Callable[[Binding], str] | None = None,
) -> list[tuple[str, str, str]]:
    """Collect rows (scope, keys, description) from the bindings of each scope.

    Bindings that share an action are merged into one row listing every key.

    Args:
        scopes: Pairs of a scope name (such as "App" or "Build") and the
            ``BINDINGS`` of that scope.
        format_key: Text of a binding's key, such as ``App.get_key_display``;
            None shows the key name.

    Returns:
        One row per action, in the order the bindings are declared.
    """
    rows: list[tuple[str, str, str]] = []
    for scope, bindings in scopes:
        keys_by_action: dict[str, list[str]] = {}
        descriptions: dict[str, str] = {}
        for binding in Binding.make_bindings(bindings):
            if binding.system:
                continue
            keys = keys_by_action.setdefault(binding.action, [])
            display = format_key(binding) if format_key else binding.key
            if display not in keys:
                keys.append(display)
            descriptions.setdefault(
                binding.action, binding.description or binding.action
            )
        for action, keys in keys_by_action.items():
            rows.append((scope, ", ".join(keys), descriptions[action]))
    return rows


class HelpScreen(ModalScreen):
    """A table of every key binding; escape, q or ? closes it."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close help")]

    def __init__(self, scopes: Iterable[tuple[str, Iterable[BindingType]]]) -> None:
        super().__init__()
        self.scopes = list(scopes)

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static(
                "Keys (escape closes this). ctrl+p opens the command palette; "
                "tab and shift+tab move the focus.",
                id="help-title",
            )
            table = DataTable(id="help-table", cursor_type="row", zebra_stripes=True)
            table.add_columns("where", "keys", "action")
            table.add_rows(binding_rows(self.scopes, self._format_key))
            yield table

    def _format_key(self, binding: Binding) -> str:
        # The key itself, since key_display may name only one of several keys.
        return self.app.get_key_display(binding.with_key(binding.key, None))
