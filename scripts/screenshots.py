"""Save an SVG screenshot of each tab of the layerlab app.

Trains two short digits runs through the run worker in a temporary run store,
then drives the app headless and writes build.svg, train.svg, live.svg,
runs.svg and gradcheck.svg::

    .venv/bin/python scripts/screenshots.py            # into docs/
    .venv/bin/python scripts/screenshots.py --out /tmp/shots --size 120x36
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from engine.runs import RunStore  # noqa: E402
from engine.spec import default_spec  # noqa: E402
from engine.worker import run_training  # noqa: E402
from tui.app import LayerlabApp  # noqa: E402


def digits_config(optimizer: str, learn_rate: float, epochs: int) -> dict[str, Any]:
    """Run config of a short training of the default stack on digits."""
    return {
        "spec": default_spec(),
        "dataset": {
            "name": "digits",
            "data_dir": None,
            "download": False,
            "augment": False,
            "train_size": None,
        },
        "optimizer": {"name": optimizer, "learn_rate": learn_rate, "reg": 0.0},
        "training": {
            "batch_size": 64,
            "bs_test": None,
            "epochs": epochs,
            "max_batches": None,
            "early_stopping": None,
            "seed": 0,
            "device": "cpu",
        },
    }


def train_runs(store: RunStore, epochs: int) -> list[str]:
    """Train an Adam and an SGD run in this process and return their ids."""
    run_ids = []
    for optimizer, learn_rate in (("adam", 0.001), ("sgd", 0.05)):
        config = digits_config(optimizer, learn_rate, epochs)
        run = store.create(config, name=f"digits-{optimizer}")
        run_training(store, run.id, print_every=0)
        run_ids.append(run.id)
    return run_ids


async def settle(pilot: Any, seconds: float = 0.5) -> None:
    """Let workers finish and the screen redraw."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(seconds)


async def take_screenshots(
    runs_dir: Path, run_ids: list[str], out: Path, size: tuple[int, int]
) -> list[Path]:
    """Drive the app over each tab and save one SVG per tab into ``out``."""
    app = LayerlabApp(runs_dir=runs_dir)
    saved = []

    def save(name: str) -> None:
        path = app.save_screenshot(f"{name}.svg", path=str(out))
        saved.append(Path(path))

    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        save("build")

        await pilot.press("2")
        await settle(pilot)
        save("train")

        app.show_run(run_ids[0])
        await settle(pilot, 1.5)
        save("live")

        await pilot.press("4")
        await settle(pilot, 1.0)
        save("runs")

        await pilot.press("5", "g")
        await settle(pilot)
        save("gradcheck")

        await pilot.press("q")
    return saved


def parse_size(text: str) -> tuple[int, int]:
    """Parse a terminal size such as ``100x30`` into (columns, rows)."""
    try:
        columns, rows = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}; expected COLUMNSxROWS such as 100x30"
        ) from None
    if columns < 40 or rows < 12:
        raise argparse.ArgumentTypeError(
            f"size {text!r} is too small; use at least 40x12"
        )
    return columns, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=PROJECT_ROOT / "docs",
        help="folder for the SVG files (default: docs/)",
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        default=(100, 30),
        help="terminal size in columns x rows (default: 100x30)",
    )
    parser.add_argument(
        "--epochs", type=int, default=5, help="epochs of each digits run (default: 5)"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="layerlab-screenshots-") as runs_dir:
        store = RunStore(runs_dir)
        run_ids = train_runs(store, args.epochs)
        saved = asyncio.run(
            take_screenshots(Path(runs_dir), run_ids, args.out, args.size)
        )
    for path in saved:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
