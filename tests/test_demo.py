"""``layerlab demo`` run as a real subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EPOCH_LINE = re.compile(
    r"^epoch (\d+)/(\d+): train loss ([\d.]+), train acc ([\d.]+)%, "
    r"test loss ([\d.]+), test acc ([\d.]+)%"
)


def run_layerlab(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def test_demo_prints_each_epoch_and_learns() -> None:
    result = run_layerlab("demo", "--epochs", "3", "--hidden", "32", "--seed", "1")
    assert result.returncode == 0, result.stderr
    lines = [m for m in map(EPOCH_LINE.match, result.stdout.splitlines()) if m]
    assert [int(m[1]) for m in lines] == [1, 2, 3]
    assert all(int(m[2]) == 3 for m in lines)
    assert float(lines[-1][3]) < float(lines[0][3])
    assert float(lines[-1][6]) > 80.0
    assert "1438 training and 359 test samples" in result.stdout


def test_demo_is_reproducible_with_seed() -> None:
    args = ("demo", "--epochs", "1", "--hidden", "16", "--seed", "3")
    first = EPOCH_LINE.match(run_layerlab(*args).stdout.splitlines()[1])
    second = EPOCH_LINE.match(run_layerlab(*args).stdout.splitlines()[1])
    assert first is not None
    assert second is not None
    assert first.groups() == second.groups()


def test_demo_rejects_zero_epochs() -> None:
    result = run_layerlab("demo", "--epochs", "0")
    assert result.returncode == 2
    assert "--epochs: must be an integer >= 1, got 0" in result.stderr


def test_demo_rejects_text_for_number() -> None:
    result = run_layerlab("demo", "--lr", "fast")
    assert result.returncode == 2
    assert "--lr: expected a number, got 'fast'" in result.stderr


def test_demo_help_lists_defaults() -> None:
    result = run_layerlab("demo", "--help")
    assert result.returncode == 0
    assert "--batch-size" in result.stdout
    assert "(default: 0.1)" in result.stdout
