"""Tests of ``layerlab train`` as a real subprocess, and of its run config."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.cli import build_parser
from engine.commands.train import config_from_args
from engine.training import load_checkpoint, train_from_config

ROOT = Path(__file__).resolve().parents[1]


def layerlab(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *args]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_layerlab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        layerlab(*args),
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_train_help_documents_every_option():
    done = run_layerlab("train", "--help")
    assert done.returncode == 0
    for option in (
        "--dataset",
        "--hidden",
        "--activation",
        "--dropout",
        "--wstd",
        "--optimizer",
        "--lr",
        "--reg",
        "--momentum",
        "--decay",
        "--beta1",
        "--beta2",
        "--eps",
        "--epochs",
        "--batch-size",
        "--bs-test",
        "--max-batches",
        "--early-stopping",
        "--seed",
        "--device",
        "--checkpoints",
        "--resume",
        "--download",
        "--train-size",
    ):
        assert option in done.stdout, option
    assert "(default: 64)" in done.stdout
    assert "in samples" in done.stdout


def test_train_digits_prints_progress_and_result(tmp_path):
    done = run_layerlab(
        "train",
        "--dataset",
        "digits",
        "--hidden",
        "128",
        "128",
        "--activation",
        "relu",
        "--dropout",
        "0.1",
        "--optimizer",
        "momentum",
        "--lr",
        "0.05",
        "--reg",
        "1e-4",
        "--epochs",
        "5",
        "--batch-size",
        "64",
        "--seed",
        "0",
        "--checkpoints",
        str(tmp_path / "ckpt"),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == [f"{e}/5" for e in range(1, 6)]
    assert "stop reason: completed" in lines
    assert any(line.startswith("best test accuracy: ") for line in lines)
    final = next(line for line in lines if line.startswith("final: "))
    test_acc = float(final.rsplit(" ", 1)[1].rstrip("%"))
    assert test_acc >= 90
    assert (tmp_path / "ckpt.pt").is_file()
    assert load_checkpoint(tmp_path / "ckpt.last.pt")["epoch"] == 5


def test_train_resume_continues_at_next_epoch(tmp_path):
    common = ("train", "--checkpoints", str(tmp_path / "ckpt"), "--max-batches", "3")
    first = run_layerlab(*common, "--epochs", "2")
    assert first.returncode == 0, first.stderr
    resumed = run_layerlab(*common, "--epochs", "3", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at epoch 3/3" in resumed.stdout
    assert "epoch 1/3" not in resumed.stdout
    assert "epochs: 3" in resumed.stdout


def test_train_invalid_learn_rate_exits_with_usage_error():
    done = run_layerlab("train", "--optimizer", "adam", "--lr", "-1")
    assert done.returncode == 2
    assert "--lr" in done.stderr
    assert "got -1" in done.stderr


def test_train_resume_needs_checkpoints():
    done = run_layerlab("train", "--resume")
    assert done.returncode == 2
    assert "--checkpoints" in done.stderr


def test_train_divergence_exits_one():
    done = run_layerlab("train", "--optimizer", "sgd", "--lr", "1e30", "--epochs", "3")
    assert done.returncode == 1
    assert "diverged at epoch 1, batch" in done.stdout


def test_train_sigint_stops_after_batch_with_checkpoint(tmp_path):
    process = subprocess.Popen(
        layerlab(
            "train",
            "--epochs",
            "100000",
            "--checkpoints",
            str(tmp_path / "ckpt"),
            "--progress",
            "plain",
        ),
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = process.stdout.readline()
        assert first_line.startswith("epoch 1/100000")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    # The signal lands either inside an epoch or between two epochs.
    assert re.search(r"stop reason: stopped (at|before) epoch \d+", stdout)
    last = load_checkpoint(tmp_path / "ckpt.last.pt")
    assert last["epoch"] >= 1


# --- run config -------------------------------------------------------------


def parse_train(*args: str):
    return build_parser().parse_args(["train", *args])


def test_config_from_args_has_run_config_sections():
    args = parse_train(
        "--hidden",
        "32",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--momentum",
        "0.5",
        "--epochs",
        "4",
        "--early-stopping",
        "2",
    )
    config = config_from_args(args)
    assert set(config) == {"spec", "dataset", "optimizer", "training"}
    assert config["optimizer"] == {
        "name": "adam",
        "learn_rate": 0.01,
        "reg": 0.0,
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
    }
    assert config["dataset"]["name"] == "digits"
    assert config["training"]["epochs"] == 4
    assert config["training"]["early_stopping"] == 2
    assert config["training"]["device"] == "auto"
    assert config["spec"]["backend"] == "blocks"
    widths = [
        layer["out_features"]
        for layer in config["spec"]["layers"]
        if layer["type"] == "linear"
    ]
    assert widths == [32, 10]


def test_train_from_config_torch_backend():
    from engine.spec import preset_mlp

    torch.manual_seed(0)
    config = {
        "spec": preset_mlp("digits", hidden=[64], backend="torch"),
        "dataset": {"name": "digits"},
        "optimizer": {"name": "torch-adam", "learn_rate": 3e-3},
        "training": {"batch_size": 64, "epochs": 3, "device": "cpu"},
    }
    result = train_from_config(config, print_every=0)
    assert result.num_epochs == 3
    assert result.test_acc[-1] >= 85


def test_train_from_config_rejects_mismatched_spec():
    from engine.spec import preset_mlp

    config = {
        "spec": preset_mlp({"shape": [3, 32, 32], "num_classes": 10}),
        "dataset": {"name": "digits"},
        "optimizer": {"name": "sgd"},
        "training": {"epochs": 1},
    }
    with pytest.raises(ValueError, match="shape"):
        train_from_config(config, print_every=0)


def test_train_from_config_is_reproducible():
    args = parse_train("--epochs", "2", "--dropout", "0.2", "--max-batches", "5")
    config = config_from_args(args)
    first = train_from_config(config, print_every=0)
    second = train_from_config(config, print_every=0)
    assert first.course_dict() == second.course_dict()


def test_train_image_folder_mlp_uses_folder_shape(tmp_path):
    from test_data import write_image_folder

    write_image_folder(tmp_path / "images", size=10)
    runs = tmp_path / "runs"
    done = run_layerlab(
        "--runs-dir",
        str(runs),
        "train",
        "--dataset",
        "imagefolder",
        "--data-dir",
        str(tmp_path / "images"),
        "--epochs",
        "2",
        "--lr",
        "0.05",
    )
    assert done.returncode == 0, done.stderr
    assert "epochs: 2" in done.stdout
    (run_dir,) = runs.iterdir()
    config = json.loads((run_dir / "run.json").read_text())["config"]
    assert config["spec"]["input"] == {"shape": [3, 10, 10], "num_classes": 3}
    assert config["dataset"]["data_dir"] == str(tmp_path / "images")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--device", "foo"), "--device: invalid device 'foo'"),
        (("--dataset", "cifar10", "--data-dir", "/nonexistent"), "cifar10 not found"),
        (("--wstd", "-1"), "--wstd: must be a number >= 0, got -1"),
        (("--epochs", "abc"), "--epochs: expected an integer, got 'abc'"),
        (("--lr", "nan"), "--lr: expected a finite number, got 'nan'"),
    ],
    ids=["device", "data", "wstd", "text", "nan"],
)
def test_train_bad_option_creates_no_run(tmp_path, args, message):
    runs = tmp_path / "runs"
    done = run_layerlab("--runs-dir", str(runs), "train", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not runs.exists() or not any(runs.iterdir())


def test_train_diverged_lists_no_missing_checkpoint(tmp_path):
    done = run_layerlab(
        "train",
        "--optimizer",
        "sgd",
        "--lr",
        "1e30",
        "--checkpoints",
        str(tmp_path / "ckpt"),
    )
    assert done.returncode == 1
    assert "checkpoints: none written" in done.stdout
    assert not (tmp_path / "ckpt.pt").exists()
