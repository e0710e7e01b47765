"""``layerlab train``: train a block MLP or a spec file, foreground or detached.

Example::

    layerlab train --dataset digits --hidden 128 128 --activation relu \\
        --dropout 0.1 --optimizer momentum --lr 0.05 --reg 1e-4 \\
        --epochs 20 --batch-size 64 --seed 0

The parsed options become a run config (`config_from_args`). By default the
run is created in the run store (--runs-dir) and trained in this process by
`engine.worker.run_training`. With --detach a background worker trains it,
and the command prints the run id. With --checkpoints the fit runs outside
the store, with its checkpoints at the given path. The first Ctrl-C (or
SIGTERM) stops the fit after the current batch with a checkpoint; a second
one interrupts at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from engine.commands.argtypes import (
    finite_float,
    non_negative_float,
    positive_int,
    probability,
)
from engine.dataset_info import DATA_DIR_ENV, DATASET_NAMES
from engine.optimizer_registry import OPTIMIZER_FIELDS, OPTIMIZER_NAMES, validate_hyper

ACTIVATIONS = ("relu", "lrelu", "sigmoid", "tanh")
# Command-line flag -> optimizer hyper-parameter field.
HYPER_FLAGS = {
    "lr": "learn_rate",
    "reg": "reg",
    "momentum": "momentum",
    "decay": "decay",
    "beta1": "beta1",
    "beta2": "beta2",
    "eps": "eps",
}
EXIT_DIVERGED = 1


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show "(default: X)" only for real values, not None or False."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _hyper_default(field: str) -> str:
    """Describe a hyper-parameter's defaults over the optimizers that take it."""
    defaults = sorted(
        {
            f.default
            for fields in OPTIMIZER_FIELDS.values()
            for f in fields
            if f.name == field
        }
    )
    return ", ".join(f"{value:g}" for value in defaults)


def _hyper_users(field: str) -> str:
    names = [
        name
        for name, fields in OPTIMIZER_FIELDS.items()
        if any(f.name == field for f in fields)
    ]
    return ", ".join(names)


def register(subparsers: Any) -> None:
    """Add the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train a model on a data set, in the foreground or detached",
        description=(
            "Train an MLP built from engine.blocks (or the layer stack of "
            "--spec) on a data set as a run in the run store, printing a "
            "progress bar on a terminal (one line per epoch otherwise) and the "
            "final result. Ctrl-C stops after the current batch. --detach "
            "trains in a background process instead."
        ),
        formatter_class=_HelpFormatter,
    )
    _add_data_options(parser)
    _add_model_options(parser)
    _add_optimizer_options(parser)
    _add_training_options(parser)
    _add_run_options(parser)
    parser.set_defaults(handler=run_train, train_parser=parser)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run store")
    group.add_argument(
        "--name",
        default=None,
        help="run name, shown in run listings and part of the run id; "
        "default: the optimizer and learning rate",
    )
    group.add_argument(
        "--detach",
        action="store_true",
        help="train in a background process that keeps going when the terminal "
        "closes, and print the run id (see 'layerlab runs')",
    )


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        choices=DATASET_NAMES,
        default="digits",
        help="data set to train on",
    )
    group.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help=(
            "directory of the torchvision data sets, or the image folder for "
            f"--dataset imagefolder (default: ${DATA_DIR_ENV}, else "
            "~/.pytorch-datasets); same as 'layerlab --data-dir DIR train'"
        ),
    )
    group.add_argument(
        "--download",
        action="store_true",
        help="download a missing torchvision data set into the data directory",
    )
    group.add_argument(
        "--train-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="keep only this many training samples (class-balanced); default all",
    )
    group.add_argument(
        "--augment",
        action="store_true",
        help="random crop (and flip where classes allow it) on training batches",
    )


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "model",
        "A block MLP from the options below, or the layer stack of --spec.",
    )
    group.add_argument(
        "--spec",
        default=None,
        metavar="FILE",
        help="train the layer stack in this JSON spec file (as saved by the "
        "Build view) instead of an MLP; --hidden, --activation, --dropout and "
        "--wstd are then ignored",
    )
    group.add_argument(
        "--hidden",
        type=positive_int,
        nargs="*",
        default=[128],
        metavar="WIDTH",
        help="widths of the hidden layers in units; none for a linear classifier",
    )
    group.add_argument(
        "--activation", choices=ACTIVATIONS, default="relu", help="hidden activation"
    )
    group.add_argument(
        "--dropout",
        type=probability,
        default=0.0,
        help="dropout probability after each hidden activation, in [0, 1)",
    )
    group.add_argument(
        "--wstd",
        type=non_negative_float,
        default=0.1,
        help="standard deviation of the initial weights",
    )


def _add_optimizer_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "optimizer",
        "Hyper-parameters left unset take the optimizer's own default.",
    )
    group.add_argument(
        "--optimizer",
        choices=OPTIMIZER_NAMES,
        default="momentum",
        help="ours (sgd, momentum, rmsprop, adam) or the torch.optim equivalent",
    )
    texts = {
        "lr": "learning rate (step size), > 0",
        "reg": "L2 regularisation strength: reg/2 * ||w||^2 is added to the loss",
        "momentum": "velocity decay factor, in [0, 1)",
        "decay": "decay rate of the mean of squared gradients, in [0, 1)",
        "beta1": "decay rate of the first moment, in [0, 1)",
        "beta2": "decay rate of the second moment, in [0, 1)",
        "eps": "constant added for numerical stability, > 0",
    }
    for flag, field in HYPER_FLAGS.items():
        group.add_argument(
            f"--{flag}",
            type=finite_float,
            default=None,
            help=(
                f"{texts[flag]}; used by {_hyper_users(field)} "
                f"(optimizer default: {_hyper_default(field)})"
            ),
        )


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument(
        "--epochs", type=positive_int, default=10, help="number of epochs"
    )
    group.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        help="training batch size in samples",
    )
    group.add_argument(
        "--bs-test",
        type=positive_int,
        default=None,
        help="test batch size in samples; default: the training batch size",
    )
    group.add_argument(
        "--max-batches",
        type=positive_int,
        default=None,
        metavar="N",
        help="use at most this many batches per epoch and pass; default all",
    )
    group.add_argument(
        "--early-stopping",
        type=positive_int,
        default=None,
        metavar="EPOCHS",
        help="stop after this many epochs in a row without a lower test loss; "
        "default never",
    )
    group.add_argument(
        "--seed", type=int, default=0, help="seed of weights, shuffling and dropout"
    )
    group.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA when available), cpu, cuda or cuda:N",
    )
    group.add_argument(
        "--checkpoints",
        default=None,
        metavar="PATH",
        help="train outside the run store, writing the best model to PATH "
        "(.pt added without a suffix) and the latest epoch beside it as "
        "PATH.last.pt; default: a run in the store",
    )
    group.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint at --checkpoints (for a run in "
        "the store use 'layerlab runs resume')",
    )
    group.add_argument(
        "--print-every",
        type=int,
        default=1,
        metavar="EPOCHS",
        help="print a progress line every this many epochs; 0 for none",
    )
    group.add_argument(
        "--progress",
        choices=("auto", "bar", "plain"),
        default="auto",
        help="progress bar, one plain line per epoch, or a bar only on a terminal",
    )


def optimizer_hyper(args: argparse.Namespace) -> dict[str, float]:
    """Return the hyper-parameters set on the command line, by field name.

    Flags that the chosen optimizer does not take are left out, so that
    --momentum with --optimizer adam is ignored rather than rejected.
    """
    fields = {field.name for field in OPTIMIZER_FIELDS[args.optimizer]}
    hyper = {}
    for flag, field in HYPER_FLAGS.items():
        value = getattr(args, flag)
        if value is not None and field in fields:
            hyper[field] = value
    return hyper


def _absolute(path: str | None) -> str | None:
    # Stored absolute, so that resuming from another directory finds it.
    return None if path is None else os.path.abspath(os.path.expanduser(path))


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Turn parsed ``train`` options into a run config.

    Args:
        args: The parsed options.

    Returns:
        A run config with "spec", "dataset", "optimizer" and "training".
    """
    from engine.spec import load_spec, preset_mlp

    if getattr(args, "spec", None):
        spec = load_spec(args.spec)
    else:
        spec = preset_mlp(
            input=_spec_input(args),
            hidden=list(args.hidden),
            activation=args.activation,
            dropout=args.dropout,
            wstd=args.wstd,
            backend="blocks",
        )
    return {
        "spec": spec,
        "dataset": {
            "name": args.dataset,
            "data_dir": _absolute(getattr(args, "data_dir", None)),
            "download": args.download,
            "augment": args.augment,
            "train_size": args.train_size,
        },
        # Every hyper-parameter is stored, defaults included, so that the run
        # records exactly what it trained with.
        "optimizer": {
            "name": args.optimizer,
            **{field.name: field.default for field in OPTIMIZER_FIELDS[args.optimizer]},
            **optimizer_hyper(args),
        },
        "training": {
            "batch_size": args.batch_size,
            "bs_test": args.bs_test,
            "epochs": args.epochs,
            "max_batches": args.max_batches,
            "early_stopping": args.early_stopping,
            "seed": args.seed,
            "device": args.device,
        },
    }


def _spec_input(args: argparse.Namespace) -> str | dict[str, Any]:
    """Return the MLP's input: the data set's name, or an image folder's shape.

    Image folders have no fixed image shape, so the folder is loaded (decoded
    once into the cache, which the training then reads) to find it.
    """
    if args.dataset != "imagefolder":
        return args.dataset
    from engine.data import load_dataset

    data = load_dataset("imagefolder", data_dir=getattr(args, "data_dir", None))
    return {"shape": list(data.input_shape), "num_classes": data.num_classes}


def _check_environment(args: argparse.Namespace) -> str | None:
    """Check the device and the data before a run is created for them."""
    from engine.dataset_info import check_data_available
    from engine.training import resolve_device

    try:
        resolve_device(args.device)
    except ValueError as error:
        return f"--device: {error}"
    if args.download and args.dataset not in ("digits", "imagefolder"):
        return None
    return check_data_available(args.dataset, getattr(args, "data_dir", None))


def _check_args(args: argparse.Namespace) -> str | None:
    errors = validate_hyper(args.optimizer, optimizer_hyper(args))
    if errors:
        flags = {field: flag for flag, field in HYPER_FLAGS.items()}
        return "; ".join(
            f"--{flags.get(field, field)}: {message}"
            for field, message in errors.items()
        )
    if args.resume and args.checkpoints is None:
        return (
            "--resume needs --checkpoints PATH to resume from; a run in the "
            "store resumes with 'layerlab runs resume RUN'"
        )
    if args.detach and args.checkpoints is not None:
        return "--detach trains a run in the store and does not take --checkpoints"
    if args.print_every < 0:
        return f"--print-every must be 0 or more, got {args.print_every}"
    return None


def run_train(args: argparse.Namespace) -> int:
    """Train from the parsed options and print the result.

    Returns:
        0 when the fit completed, stopped early or was stopped (or a detached
        run started); 1 when it diverged or failed; 2 for invalid options.
    """
    problem = _check_args(args) or _check_environment(args)
    if problem is not None:
        args.train_parser.error(problem)
    try:
        config = config_from_args(args)
    except (OSError, ValueError) as error:
        # Spec and spec-file errors are ValueErrors, and a missing file or
        # data set is an OSError.
        print(f"layerlab train: error: {error}", file=sys.stderr)
        return 1
    if args.checkpoints is not None:
        return _train_outside_store(args, config)

    from engine.runs import RunStore, resolve_runs_dir

    store = RunStore(resolve_runs_dir(getattr(args, "runs_dir", None)))
    run = store.create(config, name=args.name)
    if args.detach:
        from engine.worker import start_detached

        pid = start_detached(store.root, run.id)
        print(f"started run {run.id} in the background (pid {pid})", file=sys.stderr)
        print(f"follow it with: layerlab runs show {run.id}", file=sys.stderr)
        print(run.id)
        return 0

    from engine.worker import run_training

    progress = {"auto": None, "bar": True, "plain": False}[args.progress]
    print(f"run {run.id} in {store.root}")
    try:
        result = run_training(
            store, run.id, print_every=args.print_every, progress=progress
        )
    except KeyboardInterrupt:
        print(f"layerlab train: run {run.id} interrupted", file=sys.stderr)
        return 130
    except Exception:
        run.reload()
        print(
            f"layerlab train: error: run {run.id} failed: {run.reason} "
            f"(details in {run.log_path})",
            file=sys.stderr,
        )
        return 1
    _print_result(result, None)
    print(f"run: {run.id} ({run.reload().status})")
    return EXIT_DIVERGED if result.stop_reason == "diverged" else 0


def _train_outside_store(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from engine.data import DatasetNotFoundError
    from engine.training import StopOnSignal, train_from_config

    progress = {"auto": None, "bar": True, "plain": False}[args.progress]
    try:
        result = train_from_config(
            config,
            callbacks=[StopOnSignal()],
            checkpoints=args.checkpoints,
            resume=args.resume,
            print_every=args.print_every,
            progress=progress,
        )
    except (ValueError, DatasetNotFoundError) as error:
        print(f"layerlab train: error: {error}", file=sys.stderr)
        return 1
    _print_result(result, args.checkpoints)
    return EXIT_DIVERGED if result.stop_reason == "diverged" else 0


def _print_result(result: Any, checkpoints: str | None) -> None:
    # The message starts with the reason ("diverged at epoch 2, ..."), except
    # for early stopping, whose message names only the epoch.
    detail = result.message or result.stop_reason
    if not detail.startswith(result.stop_reason):
        detail = f"{result.stop_reason} ({detail})"
    print(f"stop reason: {detail}")
    print(f"epochs: {result.num_epochs}")
    if result.num_epochs:
        print(
            f"final: train accuracy {result.train_acc[-1]:.2f}%, "
            f"test accuracy {result.test_acc[-1]:.2f}%"
        )
        print(
            f"best test accuracy: {result.best_test_acc:.2f}% at epoch "
            f"{result.best_epoch}"
        )
        total = sum(result.epoch_seconds)
        print(f"time: {total:.1f} s")
    if checkpoints is not None:
        from engine.training import checkpoint_paths

        best, last = checkpoint_paths(checkpoints)
        written = [
            f"{path} ({kind})"
            for path, kind in ((best, "best"), (last, "last"))
            if path.is_file()
        ]
        print(f"checkpoints: {', '.join(written) or 'none written'}")
