"""Measure what the TUI adds to training time, and its time to first frame.

Overhead: the same digits fit runs in a detached worker process, once with
nothing watching it (headless) and once while this process drives the app
headless with ``App.run_test`` and its Live view follows the run (polling
metrics.jsonl and redrawing the plots). The two alternate for ``--rounds``
rounds, and the script prints the ratio of median training times, TUI /
headless (target: at most 1.05). Training time is the sum of the epoch
times the worker records, so interpreter start and the torch import of the
worker are not counted in either case. It also prints the CPU seconds this
process used while each run was going, which depends less on other load on
the machine than the ratio does.

First frame: a fresh interpreter imports the app and runs it headless, and
reports when the app hands its first frame to the output driver. The script
prints the median seconds from just before the interpreter starts to that
point (target: under 1 s), and whether torch was imported by then.

Run: ``.venv/bin/python bench/tui_overhead.py [--rounds 3] [--epochs 500]``

With one torch thread a digits epoch takes about 10 ms, so 500 epochs give
each fit about 5 s of training for the UI to disturb; 15 epochs (0.15 s)
ended before the first redraws.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.runs import RunStore  # noqa: E402
from engine.spec import default_spec  # noqa: E402
from engine.worker import start_detached, wait_until_done  # noqa: E402

OVERHEAD_TARGET = 1.05
FIRST_FRAME_TARGET = 1.0

# Runs in a fresh interpreter: prints the Unix time at which the app hands
# its first full frame to the output driver, and whether torch was imported
# by then. App._display is private to Textual (8.2.8 here); it is the one
# place every frame passes through.
FIRST_FRAME_SCRIPT = """
import sys, time
from pathlib import Path
import tui.app
from tui.app import LayerlabApp

class TimedApp(LayerlabApp):
    CSS_PATH = str(Path(tui.app.__file__).with_name(LayerlabApp.CSS_PATH))
    painted = None

    def _display(self, screen, renderable):
        super()._display(screen, renderable)
        if renderable is not None and self.painted is None:
            self.painted = (time.time(), "torch" in sys.modules)
            self.call_later(self.exit)

app = TimedApp(runs_dir=sys.argv[1])
app.run(headless=True, size=(80, 24))
print(*app.painted, flush=True)
"""


def digits_config(epochs: int, batch_size: int) -> dict:
    """Return a run config for the default block MLP on digits, on the CPU."""
    return {
        "spec": default_spec(),
        "dataset": {
            "name": "digits",
            "data_dir": None,
            "download": False,
            "augment": False,
            "train_size": None,
        },
        "optimizer": {"name": "adam", "learn_rate": 0.001, "reg": 0.0},
        "training": {
            "batch_size": batch_size,
            "bs_test": None,
            "epochs": epochs,
            "max_batches": None,
            "early_stopping": None,
            "seed": 0,
            "device": "cpu",
        },
    }


def training_seconds(run) -> float:
    """Return the sum of the epoch times the worker recorded for ``run``."""
    return sum(float(record["seconds"]) for record in run.history())


def train_headless(store: RunStore, config: dict) -> float:
    """Train one run with nothing watching it; return its training seconds."""
    run = store.create(config, name="headless")
    start_detached(store.root, run.id)
    status = wait_until_done(run, timeout=3600)
    if status != "finished":
        raise RuntimeError(f"run {run.id} ended {status}: {run.reason}")
    return training_seconds(run)


async def train_with_tui(store: RunStore, config: dict, size: tuple[int, int]):
    """Train one run while the app's Live view follows it.

    Returns:
        The training seconds, the number of plot redraws and the CPU seconds
        this process used while the run was going.
    """
    from tui.app import LayerlabApp
    from tui.live_view import LiveView

    run = store.create(config, name="with-tui")
    app = LayerlabApp(runs_dir=store.root)
    async with app.run_test(size=size) as pilot:
        # Let the app finish mounting first, as it would have by the time a
        # user starts a run.
        await pilot.pause(1.0)
        start_detached(store.root, run.id)
        app.show_run(run.id)
        live = app.query_one(LiveView)
        cpu_start = time.process_time()
        # A plain sleep lets the app's own timers run, as they would for a
        # user; the Pilot's pause would add its own screen waits.
        while run.reload().status in ("queued", "running"):
            await asyncio.sleep(0.5)
        # Let the view read the final records, as a user would see them.
        await asyncio.sleep(0.5)
        cpu_seconds = time.process_time() - cpu_start
        redraws = live.limiter.draw_count
    if run.status != "finished":
        raise RuntimeError(f"run {run.id} ended {run.status}: {run.reason}")
    return training_seconds(run), redraws, cpu_seconds


def first_frame_seconds(runs_dir: Path) -> tuple[float, bool]:
    """Start a fresh interpreter with the app; return seconds to first frame."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        path for path in (str(ROOT), env.get("PYTHONPATH")) if path
    )
    start = time.time()
    output = subprocess.run(
        [sys.executable, "-c", FIRST_FRAME_SCRIPT, str(runs_dir)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
        timeout=120,
    ).stdout
    stamp, torch_loaded = output.strip().splitlines()[-1].split()
    return float(stamp) - start, torch_loaded == "True"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds (default 3)"
    )
    parser.add_argument(
        "--epochs", type=int, default=500, help="epochs of each fit (default 500)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="batch size (default 64)"
    )
    parser.add_argument(
        "--size",
        default="120x40",
        help="terminal size of the headless app, COLUMNSxROWS (default 120x40)",
    )
    parser.add_argument(
        "--frames", type=int, default=5, help="first-frame samples (default 5)"
    )
    args = parser.parse_args()
    columns, rows = (int(part) for part in args.size.lower().split("x"))
    config = digits_config(args.epochs, args.batch_size)

    with tempfile.TemporaryDirectory(prefix="tui-overhead-") as tmp:
        store = RunStore(Path(tmp) / "runs")
        headless: list[float] = []
        with_tui: list[float] = []
        ui_cpu: list[float] = []
        for round_number in range(1, args.rounds + 1):
            headless.append(train_headless(store, config))
            seconds, redraws, cpu_seconds = asyncio.run(
                train_with_tui(store, config, (columns, rows))
            )
            with_tui.append(seconds)
            ui_cpu.append(cpu_seconds)
            print(
                f"round {round_number}: headless {headless[-1]:.2f} s, "
                f"with TUI {seconds:.2f} s ({redraws} plot redraws, "
                f"UI used {cpu_seconds:.2f} CPU s)",
                flush=True,
            )

        frames = [first_frame_seconds(Path(tmp) / "runs") for _ in range(args.frames)]

    ratio = statistics.median(with_tui) / statistics.median(headless)
    first_frame = statistics.median(seconds for seconds, _ in frames)
    torch_loaded = any(loaded for _, loaded in frames)
    print(
        json.dumps(
            {
                "headless_median_s": round(statistics.median(headless), 3),
                "tui_median_s": round(statistics.median(with_tui), 3),
                "ratio": round(ratio, 3),
                "ui_cpu_median_s": round(statistics.median(ui_cpu), 3),
                "first_frame_median_s": round(first_frame, 3),
                "torch_imported_before_first_frame": torch_loaded,
            }
        )
    )
    overhead_met = "met" if ratio <= OVERHEAD_TARGET else "not met"
    frame_met = "met" if first_frame < FIRST_FRAME_TARGET else "not met"
    print(
        f"TUI / headless training time: {ratio:.3f} "
        f"(target <= {OVERHEAD_TARGET}: {overhead_met})"
    )
    print(
        f"first frame: {first_frame:.3f} s "
        f"(target < {FIRST_FRAME_TARGET} s: {frame_met})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
