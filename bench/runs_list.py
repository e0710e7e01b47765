"""Time listing a run store of 1,000 finished runs.

Creates the runs in a temporary directory, each with a run.json and a
metrics.jsonl of 10 epochs of 20 batches, then times ``RunStore.list()``
(which reads only run.json) against reading every run's metrics for its
epoch history, alternating the two. Also times the whole
``layerlab runs list`` command in a fresh interpreter. Target: the listing
under 0.5 s.

Usage::

    .venv/bin/python bench/runs_list.py [--runs 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run from a checkout without installing: put the project root on the path.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from engine.runs import RunStore  # noqa: E402

TARGET_SECONDS = 0.5


def make_config(index: int) -> dict:
    return {
        "spec": {
            "version": 1,
            "backend": "blocks",
            "input": {"dataset": "digits"},
            "layers": [
                {"type": "linear", "out_features": 128},
                {"type": "relu"},
                {"type": "linear", "out_features": 10},
            ],
        },
        "dataset": {"name": "digits"},
        "optimizer": {"name": "adam", "learn_rate": 0.001 * (1 + index % 5)},
        "training": {"batch_size": 64, "epochs": 10, "seed": index},
    }


def metrics_lines(epochs: int, batches: int) -> str:
    lines = []
    for epoch in range(1, epochs + 1):
        for batch in range(1, batches + 1):
            record = {
                "kind": "batch",
                "stage": "train",
                "epoch": epoch,
                "batch": batch,
                "num_batches": batches,
                "loss": 0.5,
                "acc": 90.0,
                "samples": 64,
                "time": 0.0,
            }
            lines.append(json.dumps(record))
        record = {
            "kind": "epoch",
            "epoch": epoch,
            "num_epochs": epochs,
            "train_loss": 0.5,
            "train_acc": 90.0,
            "test_loss": 0.6,
            "test_acc": 88.0,
            "seconds": 1.0,
            "samples_per_second": 1000.0,
            "time": 0.0,
        }
        lines.append(json.dumps(record))
    return "\n".join(lines) + "\n"


def populate(store: RunStore, count: int) -> None:
    metrics = metrics_lines(epochs=10, batches=20)
    for index in range(count):
        run = store.create(make_config(index), name=f"bench-{index}")
        run.update(
            status="finished",
            reason="completed 10 epochs",
            summary={"best_test_acc": 88.0, "epochs_done": 10, "seconds": 10.0},
        )
        Path(run.metrics_path).write_text(metrics)


def time_call(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="number of runs")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="layerlab-bench-") as root:
        store = RunStore(root)
        start = time.perf_counter()
        populate(store, args.runs)
        print(f"created {args.runs} runs in {time.perf_counter() - start:.1f} s")

        def listing() -> None:
            assert len(RunStore(root).list()) == args.runs

        def with_metrics() -> None:
            for run in RunStore(root).runs():
                run.history()

        command = [sys.executable, "-m", "engine.cli", "--runs-dir", root]
        command += ["runs", "list"]
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}

        def list_command() -> None:
            subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)

        list_times, metrics_times, command_times = [], [], []
        for _ in range(args.repeats):
            list_times.append(time_call(listing))
            metrics_times.append(time_call(with_metrics))
            command_times.append(time_call(list_command))

    list_median = statistics.median(list_times)
    metrics_median = statistics.median(metrics_times)
    print(
        f"list() of {args.runs} runs: median {list_median:.3f} s, "
        f"min {min(list_times):.3f} s"
    )
    print(
        f"reading every metrics.jsonl instead: median {metrics_median:.3f} s "
        f"({metrics_median / list_median:.1f}x the listing)"
    )
    print(
        f"'layerlab runs list' command, interpreter start included: median "
        f"{statistics.median(command_times):.3f} s"
    )
    met = list_median < TARGET_SECONDS
    print(f"target: under {TARGET_SECONDS} s: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
