"""Tests of the experiment runner, the named grids and ``layerlab experiment``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from engine.cnn import ConvClassifier
from engine.commands.experiment import matching_files, results_table
from engine.dataset_info import DATASET_SHAPES
from engine.experiments import (
    COURSE_RESULT_FIELDS,
    block_channels,
    experiment_filename,
    load_experiment,
    model_class,
    run_experiment,
    run_mlp_experiment,
)
from engine.grids import (
    GRIDS,
    GridSettings,
    choose_pool_every,
    grid_experiments,
    run_grid,
)
from engine.schedules import LearningRateSchedule, scheduled_lr
from engine.training import FitResult, TorchTrainer

REPO_ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "seed": 0,
    "device": "cpu",
    "bs_train": 16,
    "batches": 2,
    "epochs": 2,
    "early_stopping": None,
    "hidden_dims": [8],
    "dataset": "digits",
    "print_every": 0,
}


def run_cli(*args: str, env_extra: dict[str, str] | None = None, timeout: int = 120):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(autouse=True)
def runs_dir(tmp_path, monkeypatch):
    """Keep run store entries under tmp_path."""
    path = tmp_path / "runs"
    monkeypatch.setenv("LAYERLAB_RUNS_DIR", str(path))
    return path


# --- names -----------------------------------------------------------------------


def test_block_channels_repeats_each_entry():
    assert block_channels([32, 64], 2) == [32, 32, 64, 64]
    assert block_channels([8], 3) == [8, 8, 8]


def test_experiment_filename_joins_k_with_dashes():
    assert (
        experiment_filename("exp1_3", 2, [64, 128, 256]) == "exp1_3_L2_K64-128-256.json"
    )


def test_model_class_rejects_unknown_type():
    with pytest.raises(ValueError, match="cnn, resnet, ycn"):
        model_class("mlp")


# --- run_experiment --------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "layers"),
    [([4], 1), ([4, 8], 2)],
)
def test_run_experiment_writes_named_json(tmp_path, filters, layers):
    out_dir = tmp_path / "results"
    result = run_experiment(
        "tiny",
        out_dir=out_dir,
        filters_per_layer=filters,
        layers_per_block=layers,
        pool_every=2,
        **TINY,
    )
    path = out_dir / experiment_filename("tiny", layers, filters)
    assert path.exists()
    assert [p.name for p in out_dir.iterdir()] == [path.name]

    output = json.loads(path.read_text())
    assert set(output) >= {"config", "results"}
    assert tuple(output["results"]) == COURSE_RESULT_FIELDS
    config = output["config"]
    assert config["filters_per_layer"] == filters
    assert config["layers_per_block"] == layers
    assert config["bs_test"] == 4
    assert config["kw"] == {"print_every": 0}
    assert output["results"]["num_epochs"] == 2
    assert len(output["results"]["train_loss"]) == 4
    assert len(output["results"]["test_acc"]) == 2
    assert output["results"] == result.course_dict()


def test_load_experiment_round_trip(tmp_path):
    result = run_experiment(
        "trip",
        out_dir=tmp_path,
        filters_per_layer=[4],
        layers_per_block=1,
        pool_every=1,
        **TINY,
    )
    config, loaded = load_experiment(tmp_path / "trip_L1_K4.json")
    assert isinstance(loaded, FitResult)
    assert loaded.course_dict() == result.course_dict()
    assert loaded.epoch_seconds == result.epoch_seconds
    assert loaded.stop_reason == result.stop_reason
    assert config["run_name"] == "trip"
    assert config["seed"] == 0


def test_load_experiment_reads_course_file(tmp_path):
    path = tmp_path / "exp1_1_L2_K32.json"
    course = {
        "config": {"run_name": "exp1_1", "filters_per_layer": [32], "kw": {}},
        "results": {
            "num_epochs": 2,
            "train_loss": [2.3, 2.1, 1.9, 1.8],
            "train_acc": [20.0, 30.0],
            "test_loss": [2.2, 2.0],
            "test_acc": [25.0, 31.5],
        },
    }
    path.write_text(json.dumps(course))
    config, result = load_experiment(path)
    assert config == course["config"]
    assert result.num_epochs == 2
    assert result.test_acc == [25.0, 31.5]
    assert result.train_loss == [2.3, 2.1, 1.9, 1.8]
    assert result.epoch_seconds == []


def test_load_experiment_rejects_other_json(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"spec": {}}))
    with pytest.raises(ValueError, match="config"):
        load_experiment(path)


def test_load_experiment_rejects_results_list(tmp_path):
    path = tmp_path / "list.json"
    path.write_text(json.dumps({"config": {}, "results": [1, 2]}))
    with pytest.raises(ValueError, match="must be JSON objects"):
        load_experiment(path)


def test_run_experiment_chooses_seed_and_is_reproducible(tmp_path):
    common = {**TINY, "filters_per_layer": [4], "layers_per_block": 1}
    first = run_experiment("a", out_dir=tmp_path, pool_every=1, **common)
    second = run_experiment("b", out_dir=tmp_path, pool_every=1, **common)
    assert first.train_loss == second.train_loss
    unseeded = {**common, "seed": None}
    run_experiment("c", out_dir=tmp_path, pool_every=1, **unseeded)
    config, _ = load_experiment(tmp_path / "c_L1_K4.json")
    assert isinstance(config["seed"], int)


@pytest.mark.parametrize(
    ("model_type", "extra"),
    [("resnet", {"batchnorm": True}), ("ycn", {"dropout": 0.1})],
)
def test_run_experiment_other_model_types(tmp_path, model_type, extra):
    result = run_experiment(
        model_type,
        out_dir=tmp_path,
        filters_per_layer=[4, 8],
        layers_per_block=2,
        pool_every=2,
        model_type=model_type,
        schedule="onecycle",
        augment=True,
        lr=0.05,
        optimizer="torch-momentum",
        **extra,
        **TINY,
    )
    assert result.num_epochs == 2
    config, _ = load_experiment(tmp_path / f"{model_type}_L2_K4-8.json")
    assert config["model_type"] == model_type
    assert config["kw"]["schedule"] == "onecycle"


def test_run_experiment_rejects_unknown_schedule(tmp_path):
    with pytest.raises(ValueError, match="schedule"):
        run_experiment(
            "bad", out_dir=tmp_path, filters_per_layer=[4], schedule="step", **TINY
        )


def test_run_mlp_experiment_writes_json(tmp_path):
    result = run_mlp_experiment(
        "mlp_sgd",
        out_dir=tmp_path,
        optimizer="sgd",
        lr=0.05,
        hidden_dims=[16],
        **{k: v for k, v in TINY.items() if k != "hidden_dims"},
    )
    config, loaded = load_experiment(tmp_path / "mlp_sgd.json")
    assert loaded.course_dict() == result.course_dict()
    assert config["optimizer"] == "sgd"
    assert config["hidden_dims"] == [16]


# --- learning rate schedules -------------------------------------------------------


def test_onecycle_schedule_shape():
    total = 101
    rates = [scheduled_lr("onecycle", 1.0, step, total) for step in range(total)]
    assert rates[0] == pytest.approx(1 / 25)
    assert rates[30] == pytest.approx(1.0)
    assert max(rates) == pytest.approx(1.0)
    assert rates[-1] == pytest.approx(1 / 25e4)


def test_cosine_schedule_endpoints():
    assert scheduled_lr("cosine", 0.2, 0, 11) == pytest.approx(0.2)
    assert scheduled_lr("cosine", 0.2, 5, 11) == pytest.approx(0.1)
    assert scheduled_lr("cosine", 0.2, 10, 11) == pytest.approx(0.0)


def test_schedule_sets_optimizer_lr_each_batch():
    from engine.data import load_dataset, make_loaders

    data = load_dataset("digits", train_size=40)
    dl_train, dl_test = make_loaders(data, 10, seed=0)
    model = ConvClassifier(data.input_shape, 10, [4], 1, [])
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    trainer = TorchTrainer(model, nn.CrossEntropyLoss(), optimizer, device="cpu")
    seen = []

    class RecordLearningRate(LearningRateSchedule):
        def on_batch_end(self, trainer, stage, epoch, batch, result):
            if stage == "train":
                seen.append(trainer.optimizer.param_groups[0]["lr"])
            super().on_batch_end(trainer, stage, epoch, batch, result)

    schedule = RecordLearningRate("cosine", 0.5, 2, len(dl_train))
    trainer.fit(dl_train, dl_test, num_epochs=2, print_every=0, callbacks=[schedule])
    expected = [scheduled_lr("cosine", 0.5, step, 8) for step in range(8)]
    assert seen == pytest.approx(expected)


# --- grids -------------------------------------------------------------------------


def test_choose_pool_every_keeps_maps():
    assert choose_pool_every(2, 32) == 1
    assert choose_pool_every(16, 32) == 4
    assert choose_pool_every(24, 32) == 6
    assert choose_pool_every(4, 8) == 2
    assert choose_pool_every(3, 2) == 4


@pytest.mark.parametrize("dataset", ["cifar10", "digits"])
@pytest.mark.parametrize("name", [n for n in GRIDS if n.startswith(("exp", "ycn"))])
def test_grid_models_build_without_vanishing(name, dataset):
    in_size, num_classes = DATASET_SHAPES[dataset]
    experiments = grid_experiments(name, GridSettings(dataset=dataset))
    assert experiments
    for experiment in experiments:
        params = experiment.params
        channels = block_channels(
            params["filters_per_layer"], params["layers_per_block"]
        )
        model_kw = {
            key: value
            for key, value in params["kw"].items()
            if key not in ("optimizer", "hyper", "schedule", "augment")
        }
        # The meta device checks shapes without allocating or initialising.
        with torch.device("meta"):
            model = model_class(params["model_type"])(
                in_size,
                num_classes,
                channels,
                params["pool_every"],
                params["hidden_dims"],
                **model_kw,
            )
        assert model.num_features >= 1, experiment.filename


def test_grid_table_configurations():
    names = [e.filename for e in grid_experiments("exp1_4", GridSettings())]
    assert names == [
        "exp1_4_L8_K32.json",
        "exp1_4_L16_K32.json",
        "exp1_4_L32_K32.json",
        "exp1_4_L2_K64-128-256.json",
        "exp1_4_L4_K64-128-256.json",
        "exp1_4_L8_K64-128-256.json",
    ]
    exp1_2 = grid_experiments("exp1_2", GridSettings())
    assert len(exp1_2) == 12
    exp2 = grid_experiments("exp2", GridSettings())
    assert [e.params["pool_every"] for e in exp2] == [3, 6, 9, 12]
    assert all(e.params["model_type"] == "ycn" for e in exp2)


def test_grid_settings_override_epochs_and_dataset(tmp_path):
    settings = GridSettings(
        dataset="digits", epochs=3, batches=5, out_dir=str(tmp_path)
    )
    for experiment in grid_experiments("dropout", settings):
        assert experiment.params["epochs"] == 3
        assert experiment.params["batches"] == 5
        assert experiment.params["dataset"] == "digits"
        assert experiment.result_path().parent == tmp_path


def test_run_grid_skips_existing_results(tmp_path, capsys):
    settings = GridSettings(
        dataset="digits", epochs=1, batches=1, out_dir=str(tmp_path)
    )
    experiments = grid_experiments("optimizers", settings)
    existing = experiments[0].result_path()
    existing.write_text("{}")
    failures = run_grid(experiments)
    output = capsys.readouterr().out
    assert failures == 0
    assert "skip  optimizers_sgd" in output
    assert existing.read_text() == "{}"
    assert (tmp_path / "optimizers_momentum.json").exists()
    assert (tmp_path / "optimizers_rmsprop.json").exists()


def test_run_grid_redo_replaces_results(tmp_path, capsys):
    settings = GridSettings(
        dataset="digits", epochs=1, batches=1, out_dir=str(tmp_path)
    )
    experiments = grid_experiments("optimizers", settings)[:1]
    existing = experiments[0].result_path()
    existing.write_text("{}")
    failures = run_grid(experiments, redo=True)
    assert failures == 0
    assert "skip" not in capsys.readouterr().out
    config, result = load_experiment(existing)
    assert config["optimizer"] == "sgd"
    assert result.num_epochs == 1


def test_dropout_grid_shows_overfitting_without_dropout(tmp_path):
    from engine.grids import run_one

    settings = GridSettings(dataset="digits", out_dir=str(tmp_path), device="cpu")
    gaps = {}
    for experiment in grid_experiments("dropout", settings):
        result = run_one(experiment)
        dropout = experiment.params["dropout"]
        gaps[dropout] = result.train_acc[-1] - result.test_acc[-1]
        if dropout == 0.0:
            assert result.train_acc[-1] >= 99.5
    assert sorted(gaps) == [0.0, 0.4, 0.8]
    assert gaps[0.0] > gaps[0.8] + 2.0


def test_experiment_run_reports_missing_data_once(tmp_path):
    completed = run_cli(
        *("-m", "engine.cli", "experiment", "run", "exp1_1"),
        *("--data-dir", str(tmp_path / "empty"), "--out-dir", str(tmp_path)),
    )
    assert completed.returncode == 2
    assert completed.stderr.count("cifar10 not found") == 1
    assert "Traceback" not in completed.stderr
    assert not list(tmp_path.glob("*.json"))


def test_run_experiment_rejects_zero_epochs(tmp_path, runs_dir):
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got 0"):
        run_experiment(
            "zero",
            out_dir=tmp_path,
            filters_per_layer=[4],
            layers_per_block=1,
            pool_every=1,
            **{**TINY, "epochs": 0},
        )
    assert not runs_dir.exists()


def test_run_grid_dry_run_writes_nothing(tmp_path, capsys):
    settings = GridSettings(dataset="digits", out_dir=str(tmp_path))
    run_grid(grid_experiments("exp1_1", settings), dry_run=True)
    output = capsys.readouterr().out
    assert output.count("would run") == 8
    assert list(tmp_path.iterdir()) == []


# --- plot helpers --------------------------------------------------------------------


def test_matching_files_adds_json_suffix(tmp_path):
    for name in ("exp1_1_L2_K32.json", "exp1_1_L4_K32.json", "exp1_2_L2_K32.json"):
        (tmp_path / name).write_text("{}")
    names = [p.name for p in matching_files(tmp_path, "exp1_1")]
    assert names == ["exp1_1_L2_K32.json", "exp1_1_L4_K32.json"]
    assert len(matching_files(tmp_path, "exp1_*")) == 3
    assert len(matching_files(tmp_path, "exp1_2_L2_K32.json")) == 1


def test_results_table_lists_best_accuracy():
    result = FitResult(2, [1.0, 0.5], [40.0, 60.0], [1.0, 0.8], [55.0, 50.0])
    result.epoch_seconds = [30.0, 45.0]
    table = results_table([("run_a", result)]).splitlines()
    assert table[0].split()[0] == "run"
    assert table[1].split() == ["run_a", "55.00%", "1", "2", "1m15s"]


# --- command lines -------------------------------------------------------------------


def test_run_exp_cli_with_flags(tmp_path):
    out_dir = tmp_path / "out"
    checkpoint = tmp_path / "ckpt.pt"
    completed = run_cli(
        "-m",
        "engine.experiments",
        "run-exp",
        "-n", "cli",
        "-o", str(out_dir),
        "-s", "3",
        "-d", "cpu",
        "--bs-train", "16",
        "--bs-test", "32",
        "--batches", "2",
        "--epochs", "2",
        "--early-stopping", "0",
        "--checkpoints", str(checkpoint),
        "--lr", "0.01",
        "--reg", "0.0001",
        "-K", "4", "8",
        "-L", "1",
        "-P", "1",
        "-H", "16",
        "-M", "cnn",
        "--dataset", "digits",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    path = out_dir / "cli_L1_K4-8.json"
    assert path.exists()
    assert str(path) in completed.stdout
    assert checkpoint.exists()
    config, result = load_experiment(path)
    assert config["seed"] == 3
    assert config["bs_test"] == 32
    assert config["lr"] == 0.01
    assert config["reg"] == 0.0001
    assert config["filters_per_layer"] == [4, 8]
    assert config["hidden_dims"] == [16]
    assert config["early_stopping"] is None
    assert config["checkpoints"] == str(checkpoint)
    assert result.num_epochs == 2
    assert len(result.train_loss) == 4


def test_run_exp_cli_reports_vanishing_maps(tmp_path):
    completed = run_cli(
        "-m", "engine.experiments", "run-exp",
        "-n", "bad", "-o", str(tmp_path), "-d", "cpu",
        "-K", "4", "-L", "4", "-P", "1", "-H", "8", "--dataset", "digits",
    )  # fmt: skip
    assert completed.returncode == 2
    assert "shrinks" in completed.stderr
    assert list(tmp_path.iterdir()) == []


def test_layerlab_experiment_run_and_plot(tmp_path):
    out_dir = tmp_path / "grid"
    run_args = (
        "-m", "engine.cli", "experiment", "run", "optimizers",
        "--dataset", "digits", "--epochs", "1", "--batches", "2",
        "--out-dir", str(out_dir), "--device", "cpu",
    )  # fmt: skip
    first = run_cli(*run_args)
    assert first.returncode == 0, first.stderr
    names = sorted(p.name for p in out_dir.glob("*.json"))
    assert names == [
        "optimizers_momentum.json",
        "optimizers_rmsprop.json",
        "optimizers_sgd.json",
    ]

    second = run_cli(*run_args)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("skip") == 3

    plot = run_cli(
        "-m", "engine.cli", "experiment", "plot", "optimizers",
        "--out-dir", str(out_dir), "--width", "100", "--height", "30",
    )  # fmt: skip
    assert plot.returncode == 0, plot.stderr
    assert "train loss" in plot.stdout
    assert "optimizers_rmsprop" in plot.stdout
    assert "best test acc" in plot.stdout


def test_layerlab_experiment_plot_without_matches(tmp_path):
    completed = run_cli(
        "-m", "engine.cli", "experiment", "plot", "nothing",
        "--out-dir", str(tmp_path), "--no-plot",
    )  # fmt: skip
    assert completed.returncode == 1
    assert "no results files match" in completed.stderr


def test_nan_loss_survives_json(tmp_path):
    from engine.experiments import save_experiment

    result = FitResult(1, [math.nan], [10.0], [math.nan], [10.0])
    save_experiment(tmp_path / "nan.json", {"run_name": "nan"}, result)
    _, loaded = load_experiment(tmp_path / "nan.json")
    assert math.isnan(loaded.train_loss[0])


# --- run store ---------------------------------------------------------------------


def test_run_experiment_records_finished_run(tmp_path, runs_dir):
    from engine.runs import RunStore

    result = run_experiment(
        "stored",
        out_dir=tmp_path / "results",
        filters_per_layer=[4],
        layers_per_block=1,
        pool_every=1,
        **TINY,
    )
    runs = RunStore(runs_dir).runs()
    assert len(runs) == 1
    run = runs[0]
    assert run.status == "finished"
    assert run.config["experiment"]["run_name"] == "stored"
    assert run.config["spec"]["layers"][0]["type"] == "conv2d"
    assert run.config["optimizer"]["name"] == "torch-adam"
    epochs = [r for r in run.history() if r.get("kind", "epoch") == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert run.read_result()["results"] == result.course_dict()
    output = json.loads((tmp_path / "results" / "stored_L1_K4.json").read_text())
    assert output["details"]["run_id"] == run.id


def test_run_experiment_on_image_folder_records_run(tmp_path, runs_dir, monkeypatch):
    from test_data import write_image_folder

    from engine.runs import RunStore

    monkeypatch.setenv("LAYERLAB_CACHE_DIR", str(tmp_path / "cache"))
    write_image_folder(tmp_path / "images", size=12)
    settings = {**TINY, "dataset": "imagefolder", "batches": None}
    result = run_experiment(
        "folder",
        out_dir=tmp_path / "results",
        filters_per_layer=[4],
        layers_per_block=2,
        pool_every=2,
        model_type="ycn",
        data_dir=tmp_path / "images",
        **settings,
    )
    assert result.num_epochs == 2
    (run,) = RunStore(runs_dir).runs()
    assert run.status == "finished"
    spec_input = run.config["spec"]["input"]
    assert spec_input == {"shape": [3, 12, 12], "num_classes": 3}
    assert (tmp_path / "results" / "folder_L2_K4.json").is_file()


def test_run_experiment_without_run_record(tmp_path, runs_dir):
    run_experiment(
        "unstored",
        out_dir=tmp_path,
        filters_per_layer=[4],
        layers_per_block=1,
        pool_every=1,
        record_run=False,
        **TINY,
    )
    assert not runs_dir.exists()


def test_grid_child_process_runs_one_experiment(tmp_path):
    settings = GridSettings(
        dataset="digits", epochs=1, batches=1, out_dir=str(tmp_path), device="cpu"
    )
    experiment = grid_experiments("dropout", settings)[0]
    payload = json.dumps({"kind": experiment.kind, "params": experiment.params})
    completed = run_cli("-m", "engine.grids", payload)
    assert completed.returncode == 0, completed.stderr
    assert experiment.result_path().exists()
    config, result = load_experiment(experiment.result_path())
    assert config["dropout"] == 0.0
    assert config["train_size"] == 1000
    assert result.num_epochs == 1


def test_run_mlp_experiment_records_run(tmp_path, runs_dir):
    from engine.runs import RunStore

    result = run_mlp_experiment(
        "mlp",
        out_dir=tmp_path,
        seed=0,
        device="cpu",
        bs_train=32,
        batches=3,
        epochs=2,
        hidden_dims=[16],
        dropout=0.2,
        dataset="digits",
        print_every=0,
        momentum=0.8,
    )
    (run,) = RunStore(runs_dir).runs()
    assert run.status == "finished"
    assert run.config["optimizer"]["momentum"] == 0.8
    assert run.config["spec"]["backend"] == "blocks"
    assert [record["epoch"] for record in run.history()] == [1, 2]
    assert run.read_result()["results"] == result.course_dict()
    assert run.checkpoint_path.is_file()
    output = json.loads((tmp_path / "mlp.json").read_text())
    assert "record_run" not in output["config"]
    assert output["details"]["run_id"] == run.id


def test_stopped_experiment_resumes_like_uninterrupted(tmp_path, runs_dir):
    from engine.runs import RunStore
    from engine.worker import request_stop, run_training

    settings = {
        "seed": 0,
        "device": "cpu",
        "bs_train": 16,
        "batches": None,
        "epochs": 6,
        "early_stopping": None,
        "filters_per_layer": [4],
        "layers_per_block": 2,
        "pool_every": 2,
        "hidden_dims": [],
        "model_type": "ycn",
        "dataset": "digits",
        "schedule": "onecycle",
    }
    full = run_experiment("full", out_dir=tmp_path, print_every=0, **settings)

    cut_dir = tmp_path / "cut"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "engine.experiments", "run-exp"),
            *("-n", "cut", "-o", str(cut_dir), "-s", "0", "-d", "cpu"),
            *("--epochs", "6", "--batches", "0", "--bs-train", "16"),
            *("-K", "4", "-L", "2", "-P", "2", "-H", "-M", "ycn"),
            *("--dataset", "digits", "--schedule", "onecycle"),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = RunStore(runs_dir)
    try:
        deadline = time.monotonic() + 90
        cut = None
        while cut is None or len(cut.history()) < 1:
            assert time.monotonic() < deadline, "timed out waiting for epoch 1"
            cut = next((r for r in store.runs() if r.name.startswith("cut")), None)
            time.sleep(0.05)
        assert request_stop(cut)
        _, stderr = process.communicate(timeout=90)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    cut.reload()
    assert cut.status == "stopped", cut.reason
    assert cut.last_checkpoint_path.is_file()
    assert cut.config["training"]["schedule"] == "onecycle"

    resumed = run_training(store, cut.id, resume=True, log_file=False, print_every=0)
    assert cut.reload().status == "finished"
    assert resumed.num_epochs == 6
    assert resumed.train_loss == pytest.approx(full.train_loss)
    assert resumed.test_acc == pytest.approx(full.test_acc)
