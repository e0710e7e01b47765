"""Named grids of experiments and a runner that spreads them over GPUs.

A grid expands to a list of ``Experiment`` entries, each the keyword
arguments of ``engine.experiments.run_experiment`` (convolutional models) or
``run_mlp_experiment`` (block MLPs). This module imports no torch, so that
``layerlab experiment --help`` stays fast; the runner imports it when it runs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from engine.dataset_info import DATASET_SHAPES
from engine.experiments import experiment_filename

log = logging.getLogger(__name__)

# Size of the input images when the data set is not in DATASET_SHAPES.
DEFAULT_IMAGE_SIZE = 32


@dataclass(frozen=True)
class Experiment:
    """One run of a grid.

    Attributes:
        kind: "conv" for ``run_experiment`` or "mlp" for ``run_mlp_experiment``.
        params: the keyword arguments of that function.
    """

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        """Name of the results file the experiment writes."""
        if self.kind == "mlp":
            return f"{self.params['run_name']}.json"
        return experiment_filename(
            self.params["run_name"],
            self.params["layers_per_block"],
            self.params["filters_per_layer"],
        )

    def result_path(self) -> Path:
        """Path of the results file under the experiment's ``out_dir``."""
        return Path(self.params.get("out_dir", "saved_runs")) / self.filename

    def describe(self) -> str:
        """Return a one-line summary of the configuration."""
        p = self.params
        if self.kind == "mlp":
            return (
                f"{p['run_name']}: MLP {p['hidden_dims']} dropout {p['dropout']} "
                f"{p['optimizer']} lr {p['lr']:g}, {p['epochs']} epochs"
            )
        kernels = "-".join(str(k) for k in p["filters_per_layer"])
        return (
            f"{Path(self.filename).stem}: {p['model_type']} K={kernels} "
            f"L={p['layers_per_block']} P={p['pool_every']} H={p['hidden_dims']}, "
            f"{p['kw'].get('optimizer')} lr {p['lr']:g}, {p['epochs']} epochs"
        )

    def call_kwargs(self) -> dict[str, Any]:
        """Return ``params`` with the model and run options flattened into keywords."""
        params = dict(self.params)
        extra = params.pop("kw", {})
        return {**params, **extra}


@dataclass(frozen=True)
class Grid:
    """A named list of experiments.

    Attributes:
        name: the name ``layerlab experiment run`` takes.
        help: what the grid varies and the defaults it uses.
        build: function of the settings that returns the experiments.
    """

    name: str
    help: str
    build: Callable[[GridSettings], list[Experiment]]


@dataclass(frozen=True)
class GridSettings:
    """Options that apply to every experiment of a grid; None keeps a default."""

    dataset: str = "cifar10"
    data_dir: str | None = None
    out_dir: str = "saved_runs"
    device: str | None = None
    epochs: int | None = None
    batches: int | None = None
    seed: int = 42
    download: bool = False

    @property
    def image_size(self) -> int:
        """Smaller side of the data set's images."""
        shape = DATASET_SHAPES.get(self.dataset)
        if shape is None:
            return DEFAULT_IMAGE_SIZE
        _, height, width = shape[0]
        return min(height, width)


def choose_pool_every(num_convs: int, image_size: int, min_map_size: int = 2) -> int:
    """Choose P, the convolutions between 2x2 pools, so that maps never vanish.

    With at most ``floor(log2(image_size / min_map_size))`` pools, every
    feature map keeps at least ``min_map_size`` pixels a side: up to 4 pools,
    so maps of 2x2 or more, for 32x32 images.

    Args:
        num_convs: N, the number of convolutions.
        image_size: the smaller side of the input images.
        min_map_size: the smallest feature map side allowed.

    Returns:
        ``ceil(N / max_pools)``, or ``N + 1`` (no pool) when no pool fits.
    """
    max_pools = int(math.floor(math.log2(max(image_size / min_map_size, 1))))
    if max_pools < 1:
        return num_convs + 1
    return max(1, math.ceil(num_convs / max_pools))


# --- convolutional grids -------------------------------------------------------------

CNN_DEFAULTS: dict[str, Any] = {
    "bs_train": 128,
    "epochs": 20,
    "batches": None,
    "early_stopping": 3,
    "lr": 1e-3,
    "reg": 1e-3,
    "hidden_dims": [256],
}
CNN_RUN_OPTIONS: dict[str, Any] = {"optimizer": "torch-adam"}

YCN_DEFAULTS: dict[str, Any] = {
    "bs_train": 256,
    "epochs": 15,
    "batches": None,
    "early_stopping": None,
    "lr": 0.1,
    "reg": 5e-4,
    "hidden_dims": [],
}
YCN_RUN_OPTIONS: dict[str, Any] = {
    "optimizer": "torch-momentum",
    "hyper": {"momentum": 0.9},
    "schedule": "onecycle",
    "augment": True,
}


def _conv_experiment(
    settings: GridSettings,
    run_name: str,
    model_type: str,
    filters: Sequence[int],
    layers: int,
    pool_every: int,
    defaults: dict[str, Any],
    options: dict[str, Any],
    model_kw: dict[str, Any] | None = None,
) -> Experiment:
    params: dict[str, Any] = {
        "run_name": run_name,
        "out_dir": settings.out_dir,
        "seed": settings.seed,
        "device": settings.device,
        **defaults,
        "filters_per_layer": list(filters),
        "layers_per_block": layers,
        "pool_every": pool_every,
        "model_type": model_type,
        "dataset": settings.dataset,
    }
    if settings.epochs is not None:
        params["epochs"] = settings.epochs
    if settings.batches is not None:
        params["batches"] = settings.batches
    kw = {**options, **(model_kw or {})}
    if settings.data_dir is not None:
        kw["data_dir"] = settings.data_dir
    if settings.download:
        kw["download"] = True
    params["kw"] = kw
    return Experiment("conv", params)


def _depth_width_grid(
    run_name: str,
    model_type: str,
    table: Sequence[tuple[Sequence[int], Sequence[int]]],
) -> Callable[[GridSettings], list[Experiment]]:
    def build(settings: GridSettings) -> list[Experiment]:
        experiments = []
        for filters, depths in table:
            for layers in depths:
                num_convs = len(filters) * layers
                pool_every = choose_pool_every(num_convs, settings.image_size)
                experiments.append(
                    _conv_experiment(
                        settings,
                        run_name,
                        model_type,
                        filters,
                        layers,
                        pool_every,
                        CNN_DEFAULTS,
                        CNN_RUN_OPTIONS,
                    )
                )
        return experiments

    return build


def _ycn_grid(
    run_name: str, filters: Sequence[int], depths: Sequence[int]
) -> Callable[[GridSettings], list[Experiment]]:
    def build(settings: GridSettings) -> list[Experiment]:
        # One group (and one pool) per entry of K, unless that many pools
        # would shrink the maps below 1x1.
        experiments = []
        for layers in depths:
            num_convs = len(filters) * layers
            fewest = choose_pool_every(num_convs, settings.image_size, min_map_size=1)
            experiments.append(
                _conv_experiment(
                    settings,
                    run_name,
                    "ycn",
                    filters,
                    layers,
                    max(layers, fewest),
                    YCN_DEFAULTS,
                    YCN_RUN_OPTIONS,
                )
            )
        return experiments

    return build


# --- block MLP grids -------------------------------------------------------------


def _mlp_experiment(settings: GridSettings, **params: Any) -> Experiment:
    base: dict[str, Any] = {
        "out_dir": settings.out_dir,
        "seed": settings.seed,
        "device": settings.device,
        "dataset": settings.dataset,
        "data_dir": settings.data_dir,
        "bs_train": 128,
        "batches": None,
        "early_stopping": None,
    }
    base.update(params)
    if settings.download:
        base["download"] = True
    if settings.epochs is not None:
        base["epochs"] = settings.epochs
    if settings.batches is not None:
        base["batches"] = settings.batches
    return Experiment("mlp", base)


# Learning rates that train the five-layer MLP stably with each optimizer.
OPTIMIZER_STUDY = (
    ("sgd", 0.05, {}),
    ("momentum", 5e-3, {"momentum": 0.9}),
    ("rmsprop", 2e-4, {"decay": 0.99}),
)


def _optimizers_grid(settings: GridSettings) -> list[Experiment]:
    return [
        _mlp_experiment(
            settings,
            run_name=f"optimizers_{name}",
            optimizer=name,
            lr=lr,
            reg=1e-4,
            hidden_dims=[128] * 5,
            dropout=0.0,
            epochs=10,
            **hyper,
        )
        for name, lr, hyper in OPTIMIZER_STUDY
    ]


DROPOUT_TRAIN_SIZE = 1000


def _dropout_grid(settings: GridSettings) -> list[Experiment]:
    return [
        _mlp_experiment(
            settings,
            run_name=f"dropout_{rate:g}",
            optimizer="momentum",
            lr=5e-3,
            reg=0.0,
            hidden_dims=[400],
            dropout=rate,
            epochs=30,
            bs_train=32,
            train_size=DROPOUT_TRAIN_SIZE,
            momentum=0.9,
        )
        for rate in (0.0, 0.4, 0.8)
    ]


def _defaults_text(defaults: dict[str, Any], options: dict[str, Any]) -> str:
    optimizer = options["optimizer"]
    hyper = options.get("hyper") or {}
    if hyper:
        optimizer += " (" + ", ".join(f"{k} {v:g}" for k, v in hyper.items()) + ")"
    parts = [
        f"H={defaults['hidden_dims']}",
        optimizer,
        f"lr {defaults['lr']:g}",
        f"reg {defaults['reg']:g}",
        f"batch {defaults['bs_train']}",
        f"{defaults['epochs']} epochs",
    ]
    if options.get("schedule", "constant") != "constant":
        parts.append(f"{options['schedule']} schedule")
    if options.get("augment"):
        parts.append("crop and flip augmentation")
    if defaults.get("early_stopping"):
        parts.append(f"early stopping {defaults['early_stopping']}")
    return ", ".join(parts)


_CNN_TEXT = _defaults_text(CNN_DEFAULTS, CNN_RUN_OPTIONS) + (
    "; P = ceil(N / 4) for N convolutions on 32x32 images (at most 4 pools)"
)
_YCN_TEXT = _defaults_text(YCN_DEFAULTS, YCN_RUN_OPTIONS) + (
    "; P = L, one group and pool per entry of K"
)

GRIDS: dict[str, Grid] = {
    grid.name: grid
    for grid in (
        Grid(
            "exp1_1",
            f"depth: cnn, K=32 and K=64, L=2, 4, 8, 16. {_CNN_TEXT}",
            _depth_width_grid(
                "exp1_1", "cnn", [([32], [2, 4, 8, 16]), ([64], [2, 4, 8, 16])]
            ),
        ),
        Grid(
            "exp1_2",
            f"width: cnn, K=32, 64, 128, 256, L=2, 4, 8. {_CNN_TEXT}",
            _depth_width_grid(
                "exp1_2", "cnn", [([k], [2, 4, 8]) for k in (32, 64, 128, 256)]
            ),
        ),
        Grid(
            "exp1_3",
            f"growing width: cnn, K=64-128-256, L=1, 2, 3, 4. {_CNN_TEXT}",
            _depth_width_grid("exp1_3", "cnn", [([64, 128, 256], [1, 2, 3, 4])]),
        ),
        Grid(
            "exp1_4",
            "skip connections: resnet, K=32 with L=8, 16, 32 and K=64-128-256 "
            f"with L=2, 4, 8, no batch norm or dropout. {_CNN_TEXT}",
            _depth_width_grid(
                "exp1_4", "resnet", [([32], [8, 16, 32]), ([64, 128, 256], [2, 4, 8])]
            ),
        ),
        Grid(
            "exp2",
            f"our architecture: ycn, K=32-64-128, L=3, 6, 9, 12. {_YCN_TEXT}",
            _ycn_grid("exp2", [32, 64, 128], [3, 6, 9, 12]),
        ),
        Grid(
            "ycn",
            f"the recommended ycn: K=64-128-256, L=3 (about 1.9M weights). {_YCN_TEXT}",
            _ycn_grid("ycn", [64, 128, 256], [3]),
        ),
        Grid(
            "optimizers",
            "block MLP with five hidden layers of 128 trained with VanillaSGD "
            "(lr 0.05), MomentumSGD (lr 0.005, momentum 0.9) and RMSProp "
            "(lr 2e-4, decay 0.99), reg 1e-4, batch 128, 10 epochs",
            _optimizers_grid,
        ),
        Grid(
            "dropout",
            f"block MLP with one hidden layer of 400 on {DROPOUT_TRAIN_SIZE} "
            "training images, dropout 0, 0.4 and 0.8, MomentumSGD lr 0.005, "
            "batch 32, 30 epochs, to compare the gaps between training and "
            "test accuracy",
            _dropout_grid,
        ),
    )
}


def grid_experiments(name: str, settings: GridSettings) -> list[Experiment]:
    """Expand the grid ``name`` with ``settings``.

    Raises:
        ValueError: for an unknown grid name.
    """
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}; expected one of {', '.join(GRIDS)}")
    return GRIDS[name].build(settings)


# --- running -------------------------------------------------------------------------


def run_one(experiment: Experiment) -> Any:
    """Run one experiment in this process and return its FitResult."""
    from engine import experiments

    kwargs = experiment.call_kwargs()
    if experiment.kind == "mlp":
        return experiments.run_mlp_experiment(**kwargs)
    return experiments.run_experiment(**kwargs)


def _with_device(experiment: Experiment, device: str) -> Experiment:
    return Experiment(experiment.kind, {**experiment.params, "device": device})


def run_grid(
    experiments: Sequence[Experiment],
    gpus: Sequence[int] = (),
    redo: bool = False,
    dry_run: bool = False,
    stream: TextIO | None = None,
) -> int:
    """Run the experiments whose results file does not exist yet.

    With two or more GPU indices, each experiment runs in its own
    ``python -m engine.grids`` process on ``cuda:N``, one per GPU at a time,
    with its output in ``{results file}.log``. Otherwise they run one after
    the other in this process.

    Args:
        experiments: the experiments to run.
        gpus: CUDA device indices to spread the experiments over.
        redo: also run experiments whose results file exists.
        dry_run: only list what would run.
        stream: where progress lines go; None means sys.stdout.

    Returns:
        The number of experiments that failed.
    """
    stream = stream or sys.stdout
    pending = []
    for experiment in experiments:
        path = experiment.result_path()
        if path.exists() and not redo:
            print(f"skip  {experiment.describe()} ({path} exists)", file=stream)
            continue
        pending.append(experiment)
    if dry_run:
        for experiment in pending:
            print(f"would run  {experiment.describe()}", file=stream)
        return 0
    if len(gpus) >= 2:
        return _run_on_gpus(pending, list(gpus), stream)
    failures = 0
    for experiment in pending:
        print(f"run   {experiment.describe()}", file=stream, flush=True)
        try:
            run_one(experiment)
        except (ValueError, TypeError, FileNotFoundError, RuntimeError) as error:
            log.error("experiment %s failed: %s", experiment.filename, error)
            print(f"failed  {experiment.filename}: {error}", file=stream)
            failures += 1
    return failures


def _run_on_gpus(pending: list[Experiment], gpus: list[int], stream: TextIO) -> int:
    queue = list(pending)
    running: dict[int, tuple[subprocess.Popen[bytes], Experiment, TextIO]] = {}
    failures = 0
    while queue or running:
        for gpu in gpus:
            if gpu in running or not queue:
                continue
            experiment = _with_device(queue.pop(0), f"cuda:{gpu}")
            path = experiment.result_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            log_file = open(path.with_name(path.name + ".log"), "w")  # noqa: SIM115
            command = [
                sys.executable,
                "-m",
                "engine.grids",
                json.dumps({"kind": experiment.kind, "params": experiment.params}),
            ]
            process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=os.environ.copy(),
            )
            running[gpu] = (process, experiment, log_file)
            print(f"run   cuda:{gpu}  {experiment.describe()}", file=stream, flush=True)
        for gpu, (process, experiment, log_file) in list(running.items()):
            code = process.poll()
            if code is None:
                continue
            log_file.close()
            del running[gpu]
            if code == 0:
                print(
                    f"done  cuda:{gpu}  {experiment.filename}", file=stream, flush=True
                )
            else:
                failures += 1
                log.error(
                    "experiment %s failed with exit status %d",
                    experiment.filename,
                    code,
                )
                print(
                    f"failed  cuda:{gpu}  {experiment.filename} (exit status {code}, "
                    f"see {log_file.name})",
                    file=stream,
                    flush=True,
                )
        time.sleep(0.5)
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    """Run one experiment given as JSON ``{"kind": ..., "params": ...}``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m engine.grids EXPERIMENT_JSON", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    data = json.loads(args[0])
    run_one(Experiment(data["kind"], data["params"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
