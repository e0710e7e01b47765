"""Run one convolutional-network experiment and store its results as JSON.

Each experiment trains one model configuration and writes
``{run_name}_L{L}_K{k1-k2-...}.json`` holding ``{"config": ..., "results":
...}``, the layout of the course notebooks' result files, so files move
between the two both ways. Run one from the shell with::

    python -m engine.experiments run-exp -n exp1_1 -K 32 -L 2 -P 1 -H 100 \
        --dataset cifar10 --epochs 10
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.experiment_runs import (
    experiment_run_config,
    jsonable,
    mlp_run_config,
    recorded_run,
)

if TYPE_CHECKING:
    from engine.training import FitResult

log = logging.getLogger(__name__)

SCHEDULES = ("constant", "onecycle", "cosine")

MODEL_TYPES = ("cnn", "resnet", "ycn")
COURSE_RESULT_FIELDS = (
    "num_epochs",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
)

# Options of run_experiment's **kw that configure the run rather than the
# model; every other keyword goes to the model's constructor.
RUN_OPTIONS: dict[str, Any] = {
    "optimizer": "torch-adam",  # a name of engine.optimizers.OPTIMIZER_NAMES
    "hyper": None,  # more optimizer hyper-parameters, e.g. {"momentum": 0.9}
    "schedule": "constant",  # learning rate schedule, one of SCHEDULES
    "augment": False,  # random crop and flip of the training images
    "train_size": None,  # keep only this many training samples
    "data_dir": None,  # directory of the downloaded data sets
    "download": False,  # let torchvision download missing data sets
    "runs_dir": None,  # run store root; None: $LAYERLAB_RUNS_DIR, else saved_runs
    "record_run": True,  # also record the experiment as a run in the store
    "print_every": 1,  # progress output every this many epochs, 0 for none
    "channels_last": "auto",  # TorchTrainer's memory format: auto, on or off
}


def experiment_filename(
    run_name: str, layers_per_block: int, filters: Sequence[int]
) -> str:
    """Return ``{run_name}_L{L}_K{k1-k2-...}.json``, the result file's name."""
    kernels = "-".join(str(int(k)) for k in filters)
    return f"{run_name}_L{int(layers_per_block)}_K{kernels}.json"


def block_channels(
    filters_per_layer: Sequence[int], layers_per_block: int
) -> list[int]:
    """Repeat each entry of K L times: K=[32, 64], L=2 gives [32, 32, 64, 64]."""
    return [int(k) for k in filters_per_layer for _ in range(int(layers_per_block))]


def model_class(model_type: str) -> type:
    """Return the classifier class of a model type (cnn, resnet or ycn).

    Raises:
        ValueError: for an unknown model type.
    """
    from engine.cnn import ConvClassifier, ResNetClassifier, YourCodeNet

    classes = {"cnn": ConvClassifier, "resnet": ResNetClassifier, "ycn": YourCodeNet}
    if model_type not in classes:
        raise ValueError(
            f"invalid model_type {model_type!r}; expected one of {', '.join(classes)}"
        )
    return classes[model_type]


def _split_kw(kw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    options = {key: kw.get(key, default) for key, default in RUN_OPTIONS.items()}
    model_kw = {key: value for key, value in kw.items() if key not in RUN_OPTIONS}
    if options["schedule"] not in SCHEDULES:
        raise ValueError(
            f"invalid schedule {options['schedule']!r}; expected one of "
            f"{', '.join(SCHEDULES)}"
        )
    return options, model_kw


def _check_counts(**counts: int | None) -> None:
    """Raise ValueError for a count below 1; batches None or 0 means all."""
    for name, value in counts.items():
        if name == "batches" and value in (None, 0):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def run_experiment(
    run_name: str,
    out_dir: str | os.PathLike[str] = "saved_runs",
    seed: int | None = None,
    device: str | None = None,
    bs_train: int = 128,
    bs_test: int | None = None,
    batches: int | None = 100,
    epochs: int = 100,
    early_stopping: int | None = 3,
    checkpoints: str | os.PathLike[str] | None = None,
    lr: float = 1e-3,
    reg: float = 1e-3,
    filters_per_layer: Sequence[int] = (64,),
    layers_per_block: int = 2,
    pool_every: int = 2,
    hidden_dims: Sequence[int] = (1024,),
    model_type: str = "cnn",
    dataset: str = "cifar10",
    **kw: Any,
) -> Any:
    """Train one model configuration and write its results file.

    The channels are K's entries each repeated L times. The file
    ``{out_dir}/{run_name}_L{L}_K{k1-k2-...}.json`` gets the config as called
    (with the chosen seed and test batch size filled in) and the five course
    fields of the fit result, plus a ``details`` entry with the rest of it.

    Args:
        run_name: prefix of the results file name.
        out_dir: directory of the results file, created when missing.
        seed: seed of torch's and Python's generators; random when None.
        device: "cpu", "cuda", "cuda:N" or None for CUDA when available.
        bs_train: training batch size.
        bs_test: test batch size; None means ``max(bs_train // 4, 1)``.
        batches: batches per epoch in each pass; None for whole epochs.
        epochs: maximum number of epochs.
        early_stopping: stop after this many epochs without a lower test
            loss; None or 0 never stops early.
        checkpoints: checkpoint file path, or None for no checkpoints.
        lr: learning rate (peak learning rate with a schedule).
        reg: L2 regularisation strength (weight decay).
        filters_per_layer: K, the channels of each block.
        layers_per_block: L, the convolutions per entry of K.
        pool_every: P, the convolutions between pools.
        hidden_dims: widths of the classifier's hidden layers.
        model_type: "cnn" (``ConvClassifier``), "resnet"
            (``ResNetClassifier``) or "ycn" (``YourCodeNet``).
        dataset: a name of ``engine.data.DATASET_NAMES``.
        **kw: the run options named in ``RUN_OPTIONS``, such as
            ``optimizer`` or ``schedule``. Every other keyword goes to the
            model's constructor, for example ``batchnorm=True``.

    Returns:
        The ``FitResult`` of the fit.

    Raises:
        ValueError: for an invalid model type, schedule, optimizer or model
            configuration.
        DatasetNotFoundError: when the data set's files are missing.
    """
    _check_counts(epochs=epochs, bs_train=bs_train, batches=batches)
    if seed is None:
        seed = random.randint(0, 2**31)
    if not bs_test:
        bs_test = max(bs_train // 4, 1)
    config = jsonable(
        {
            "run_name": run_name,
            "out_dir": out_dir,
            "seed": seed,
            "device": device,
            "bs_train": bs_train,
            "bs_test": bs_test,
            "batches": batches,
            "epochs": epochs,
            "early_stopping": early_stopping,
            "checkpoints": checkpoints,
            "lr": lr,
            "reg": reg,
            "filters_per_layer": list(filters_per_layer),
            "layers_per_block": layers_per_block,
            "pool_every": pool_every,
            "hidden_dims": list(hidden_dims),
            "model_type": model_type,
            "dataset": dataset,
            "kw": kw,
        }
    )
    options, model_kw = _split_kw(kw)
    cls = model_class(model_type)
    path = Path(out_dir) / experiment_filename(
        run_name, layers_per_block, filters_per_layer
    )

    import torch
    from torch import nn

    from engine.data import load_dataset, make_loaders
    from engine.optimizers import make_optimizer
    from engine.schedules import LearningRateSchedule
    from engine.training import TorchTrainer, resolve_device

    random.seed(seed)
    torch.manual_seed(seed)
    resolved = resolve_device(device or "auto")
    data = load_dataset(
        dataset,
        data_dir=options["data_dir"],
        download=options["download"],
        train_size=options["train_size"],
    )
    dl_train, dl_test = make_loaders(
        data,
        bs_train,
        bs_test=bs_test,
        device=resolved,
        seed=seed,
        augment=options["augment"],
        max_batches=batches or None,
    )
    channels = block_channels(filters_per_layer, layers_per_block)
    model = cls(
        data.input_shape,
        data.num_classes,
        channels,
        pool_every,
        list(hidden_dims),
        **model_kw,
    )
    hyper = dict(options["hyper"] or {})
    optimizer = make_optimizer(
        options["optimizer"], model.parameters(), learn_rate=lr, reg=reg, **hyper
    )
    trainer = TorchTrainer(
        model,
        nn.CrossEntropyLoss(),
        optimizer,
        device=resolved,
        channels_last=options["channels_last"],
    )

    callbacks: list[Any] = []
    if options["schedule"] != "constant":
        callbacks.append(
            LearningRateSchedule(options["schedule"], lr, epochs, len(dl_train))
        )
    log.info(
        "experiment %s: %s on %s, channels %s", path.stem, model_type, dataset, channels
    )
    run_config = None
    if options["record_run"]:
        spec_input = {"shape": list(data.input_shape), "num_classes": data.num_classes}
        run_config = experiment_run_config(config, options, model_kw, spec_input)
    result, details = _fit_recorded(
        trainer,
        (dl_train, dl_test),
        run_config,
        path.stem,
        options["runs_dir"],
        num_epochs=epochs,
        checkpoints=checkpoints,
        early_stopping=early_stopping or None,
        print_every=options["print_every"],
        callbacks=callbacks,
    )
    save_experiment(path, config, result, details)
    return result


def run_mlp_experiment(
    run_name: str,
    out_dir: str | os.PathLike[str] = "saved_runs",
    seed: int | None = None,
    device: str | None = None,
    bs_train: int = 128,
    bs_test: int | None = None,
    batches: int | None = None,
    epochs: int = 10,
    early_stopping: int | None = None,
    checkpoints: str | os.PathLike[str] | None = None,
    optimizer: str = "momentum",
    lr: float = 1e-3,
    reg: float = 0.0,
    hidden_dims: Sequence[int] = (128,),
    dropout: float = 0.0,
    activation: str = "relu",
    dataset: str = "cifar10",
    train_size: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    print_every: int = 1,
    download: bool = False,
    *,
    record_run: bool = True,
    runs_dir: str | None = None,
    **hyper: float,
) -> FitResult:
    """Train a block MLP (``engine.blocks.MLP``) and write ``{run_name}.json``.

    Images are flattened. The file has the layout of ``run_experiment``'s,
    with this function's arguments as the config.

    Args:
        run_name: name of the results file without ``.json``.
        out_dir, seed, device, bs_train, bs_test, batches, epochs,
            early_stopping, checkpoints, lr, reg, dataset: as in
            ``run_experiment``.
        optimizer: a name of ``engine.optimizers.OPTIMIZER_NAMES``.
        hidden_dims: widths of the hidden layers.
        dropout: dropout probability after each hidden activation.
        activation: the MLP's activation name.
        train_size: keep only this many training samples.
        data_dir: directory of the downloaded data sets.
        print_every: progress output every this many epochs, 0 for none.
        download: let torchvision download a missing data set.
        record_run: also record the experiment as a run in the store, with
            its checkpoints there unless ``checkpoints`` is given.
        runs_dir: run store root; None means $LAYERLAB_RUNS_DIR, else
            saved_runs.
        **hyper: more hyper-parameters of the optimizer, e.g. ``momentum``.

    Returns:
        The ``FitResult`` of the fit.
    """
    _check_counts(epochs=epochs, bs_train=bs_train, batches=batches)
    if seed is None:
        seed = random.randint(0, 2**31)
    if not bs_test:
        bs_test = max(bs_train // 4, 1)
    config = jsonable(dict(locals()))
    for key in ("record_run", "runs_dir"):
        config.pop(key)

    import torch

    from engine.blocks import MLP, CrossEntropyLoss
    from engine.data import load_dataset, make_loaders
    from engine.optimizers import make_optimizer
    from engine.training import BlockTrainer, resolve_device

    path = Path(out_dir) / f"{run_name}.json"

    random.seed(seed)
    torch.manual_seed(seed)
    resolved = resolve_device(device or "auto")
    data = load_dataset(
        dataset, data_dir=data_dir, download=download, train_size=train_size
    )
    dl_train, dl_test = make_loaders(
        data,
        bs_train,
        bs_test=bs_test,
        device=resolved,
        seed=seed,
        max_batches=batches or None,
    )
    channels, height, width = data.input_shape
    model = MLP(
        channels * height * width,
        data.num_classes,
        hidden_features=[int(h) for h in hidden_dims],
        activation=activation,
        dropout=dropout,
    )
    opt = make_optimizer(optimizer, model.params(), learn_rate=lr, reg=reg, **hyper)
    trainer = BlockTrainer(model, CrossEntropyLoss(), opt, device=resolved)
    log.info("experiment %s: MLP %s on %s", run_name, list(hidden_dims), dataset)

    run_config = None
    if record_run:
        spec_input = {"shape": list(data.input_shape), "num_classes": data.num_classes}
        run_config = mlp_run_config(config, hyper, spec_input)
    result, details = _fit_recorded(
        trainer,
        (dl_train, dl_test),
        run_config,
        run_name,
        runs_dir,
        num_epochs=epochs,
        checkpoints=checkpoints,
        early_stopping=early_stopping or None,
        print_every=print_every,
        callbacks=[],
    )
    save_experiment(path, config, result, details)
    return result


def _fit_recorded(
    trainer: Any,
    loaders: tuple[Any, Any],
    run_config: dict[str, Any] | None,
    name: str,
    runs_dir: str | None,
    checkpoints: str | os.PathLike[str] | None,
    callbacks: list[Any],
    **fit_kw: Any,
) -> tuple[FitResult, dict[str, Any]]:
    """Fit, recorded as a run in the store unless ``run_config`` is None.

    A recorded run keeps its checkpoints in the run directory (unless
    ``checkpoints`` names a path), so that 'layerlab runs resume' can
    continue it.

    Returns:
        The result and the details for the results file.
    """
    with recorded_run(run_config, name, runs_dir) as record:
        if record is not None:
            callbacks = [*callbacks, record.recorder]
            if checkpoints is None:
                checkpoints = record.run.checkpoint_path
        try:
            result = trainer.fit(
                *loaders, checkpoints=checkpoints, callbacks=callbacks, **fit_kw
            )
        except BaseException as error:
            if record is not None:
                record.fail(error)
            raise
        details = _details(result, trainer)
        if record is not None:
            details["run_id"] = record.run.id
            record.finish(result)
    return result, details


def _details(result: FitResult, trainer: Any) -> dict[str, Any]:
    details = {
        key: value
        for key, value in result.to_dict().items()
        if key not in COURSE_RESULT_FIELDS
    }
    details["device"] = str(trainer.device)
    return details


def save_experiment(
    path: str | os.PathLike[str],
    config: dict[str, Any],
    result: Any,
    details: dict[str, Any] | None = None,
) -> Path:
    """Write ``{"config": config, "results": result.course_dict()}`` to ``path``.

    Args:
        path: the results file; its directory is created when missing.
        config: the experiment's configuration.
        result: a ``FitResult``.
        details: more result fields, stored under ``details``, which the
            course's loader ignores.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    output: dict[str, Any] = {"config": config, "results": result.course_dict()}
    if details:
        output["details"] = details
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(output, indent=2))
    os.replace(temporary, path)
    log.info("wrote %s", path)
    return path


def load_experiment(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Any]:
    """Read a results file written by ``run_experiment`` or the course notebooks.

    Args:
        path: a JSON file with ``config`` and ``results`` entries.

    Returns:
        ``(config, FitResult)``; fields of ``details``, when present, fill
        the FitResult fields beyond the course's five.

    Raises:
        ValueError: when the file lacks ``config`` or ``results`` or a course
            field.
        FileNotFoundError: when the file does not exist.
    """
    from engine.training import FitResult

    with open(path) as file:
        output = json.load(file)
    if (
        not isinstance(output, dict)
        or "config" not in output
        or "results" not in output
    ):
        raise ValueError(
            f"{path} is not an experiment results file: it needs 'config' and "
            "'results' entries"
        )
    if not isinstance(output["results"], dict) or not isinstance(
        output.get("details") or {}, dict
    ):
        raise ValueError(
            f"{path} is not an experiment results file: its 'results' (and "
            "'details', when present) must be JSON objects"
        )
    fields = dict(output.get("details") or {})
    fields.update(output["results"])
    return output["config"], FitResult.from_dict(fields)


# --- command line ---------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of ``python -m engine.experiments``."""
    parser = argparse.ArgumentParser(
        prog="python -m engine.experiments",
        description="Run convolutional-network experiments.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run-exp",
        help="run one experiment configuration",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_course_arguments(run)
    _add_layerlab_arguments(run)
    return parser


def _add_course_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of the course's ``run-exp`` command."""
    parser.add_argument(
        "-n", "--run-name", required=True, help="prefix of the results file"
    )
    parser.add_argument(
        "-o", "--out-dir", default="saved_runs", help="directory of the results file"
    )
    parser.add_argument(
        "-s", "--seed", type=int, default=None, help="random seed; random when omitted"
    )
    parser.add_argument(
        "-d",
        "--device",
        default=None,
        help="cpu, cuda or cuda:N; CUDA when available if omitted",
    )
    parser.add_argument("--bs-train", type=int, default=128, help="training batch size")
    parser.add_argument(
        "--bs-test",
        type=int,
        default=None,
        help="test batch size; bs-train // 4 if omitted",
    )
    parser.add_argument(
        "--batches", type=int, default=100, help="batches per epoch; 0 for whole epochs"
    )
    parser.add_argument(
        "--epochs", type=int, default=100, help="maximum number of epochs"
    )
    parser.add_argument(
        "--early-stopping",
        type=int,
        default=3,
        help="epochs without a lower test loss before stopping; 0 never stops",
    )
    parser.add_argument("--checkpoints", default=None, help="checkpoint file path")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    parser.add_argument(
        "--reg", type=float, default=1e-3, help="L2 regularisation (weight decay)"
    )
    parser.add_argument(
        "-K",
        "--filters-per-layer",
        type=int,
        nargs="+",
        required=True,
        help="channels of each block",
    )
    parser.add_argument(
        "-L",
        "--layers-per-block",
        type=int,
        required=True,
        help="convolutions per entry of K",
    )
    parser.add_argument(
        "-P", "--pool-every", type=int, required=True, help="convolutions between pools"
    )
    parser.add_argument(
        "-H",
        "--hidden-dims",
        type=int,
        nargs="*",
        required=True,
        help="hidden layer widths of the classifier",
    )
    parser.add_argument(
        "-M", "--model-type", choices=MODEL_TYPES, default="cnn", help="model type"
    )


def _add_layerlab_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags beyond the course's: data set, optimizer and model options."""
    parser.add_argument("--dataset", default="cifar10", help="data set name")
    parser.add_argument(
        "--data-dir",
        default=None,
        help=(
            "directory of the downloaded data sets; $LAYERLAB_DATA_DIR, else "
            "~/.pytorch-datasets, if omitted"
        ),
    )
    parser.add_argument(
        "--optimizer", default=RUN_OPTIONS["optimizer"], help="optimizer name"
    )
    parser.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="constant",
        help="learning rate schedule",
    )
    parser.add_argument(
        "--augment",
        action="store_true",
        help="random crop and flip of the training images",
    )
    parser.add_argument(
        "--train-size",
        type=int,
        default=None,
        help="keep only this many training samples",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="let torchvision download a missing data set (needs internet)",
    )
    parser.add_argument(
        "--runs-dir",
        default=None,
        help=(
            "run store root that records the experiment as a run; "
            "$LAYERLAB_RUNS_DIR, else saved_runs, if omitted"
        ),
    )
    parser.add_argument(
        "--channels-last",
        choices=("auto", "on", "off"),
        default="auto",
        help=(
            "channels-last memory format of the model and images; auto uses it "
            "on CUDA only"
        ),
    )
    parser.add_argument(
        "--batchnorm",
        action="store_true",
        help="batch norm in residual blocks (resnet)",
    )
    parser.add_argument(
        "--dropout",
        type=float,
        default=None,
        help="dropout probability (resnet and ycn)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    model_kw: dict[str, Any] = {}
    if args.batchnorm:
        model_kw["batchnorm"] = True
    if args.dropout is not None:
        model_kw["dropout"] = args.dropout
    try:
        result = run_experiment(
            args.run_name,
            out_dir=args.out_dir,
            seed=args.seed,
            device=args.device,
            bs_train=args.bs_train,
            bs_test=args.bs_test,
            batches=args.batches or None,
            epochs=args.epochs,
            early_stopping=args.early_stopping or None,
            checkpoints=args.checkpoints,
            lr=args.lr,
            reg=args.reg,
            filters_per_layer=args.filters_per_layer,
            layers_per_block=args.layers_per_block,
            pool_every=args.pool_every,
            hidden_dims=args.hidden_dims,
            model_type=args.model_type,
            dataset=args.dataset,
            optimizer=args.optimizer,
            schedule=args.schedule,
            augment=args.augment,
            train_size=args.train_size,
            data_dir=args.data_dir,
            download=args.download,
            runs_dir=args.runs_dir,
            channels_last=args.channels_last,
            **model_kw,
        )
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = Path(args.out_dir) / experiment_filename(
        args.run_name, args.layers_per_block, args.filters_per_layer
    )
    best = max(result.test_acc) if result.test_acc else float("nan")
    print(f"wrote {path} ({result.num_epochs} epochs, best test accuracy {best:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
