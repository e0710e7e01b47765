"""Train from a run config, the JSON-able dict that the command line, the run
store and the TUI share.

A run config has four sections::

    {
        "spec": {...},  # the model, see engine.spec
        "dataset": {"name": "digits", "data_dir": None, "download": False,
                    "augment": False, "train_size": None},
        "optimizer": {"name": "adam", "learn_rate": 0.001, "reg": 0.0},
        "training": {"batch_size": 64, "bs_test": None, "epochs": 10,
                     "max_batches": None, "early_stopping": None, "seed": 0,
                     "device": "auto", "schedule": "constant",
                     "channels_last": "auto"},
    }

"schedule" is a learning rate schedule of ``engine.schedules`` that peaks at
the optimizer's learning rate, and "channels_last" is ``TorchTrainer``'s
memory format option (the torch backend only).

An optional "model" section builds one of ``engine.cnn``'s classes instead
of the spec's layers, so that a checkpoint of that class loads again::

    "model": {"type": "ycn", "channels": [32, 32], "pool_every": 2,
              "hidden_dims": [], "kwargs": {"dropout": 0.1}}

The spec then only describes the model, and may be None.

Missing keys in "dataset" and "training" take the defaults above; missing
optimizer hyper-parameters take the optimizer's defaults.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.training.callbacks import Callback
from engine.training.results import FitResult
from engine.training.trainer import Trainer, resolve_device

log = logging.getLogger(__name__)

CONFIG_SECTIONS = ("spec", "dataset", "optimizer", "training")
DATASET_DEFAULTS: dict[str, Any] = {
    "name": "digits",
    "data_dir": None,
    "download": False,
    "augment": False,
    "train_size": None,
}
TRAINING_DEFAULTS: dict[str, Any] = {
    "batch_size": 64,
    "bs_test": None,
    "epochs": 10,
    "max_batches": None,
    "early_stopping": None,
    "seed": 0,
    "device": "auto",
    "schedule": "constant",
    "channels_last": "auto",
}


@dataclass
class TrainingSetup:
    """A trainer with its loaders and the fit settings of a run config.

    Attributes:
        trainer: The trainer, already on its device.
        dl_train: Training loader.
        dl_test: Test loader.
        dataset: The loaded data set.
        num_epochs: Number of epochs to fit.
        early_stopping: Patience in epochs, or None.
        max_batches: Batches per epoch limit, or None.
        schedule: The learning rate schedule callback, or None for a
            constant learning rate.
    """

    trainer: Trainer
    dl_train: Any
    dl_test: Any
    dataset: Any
    num_epochs: int
    early_stopping: int | None
    max_batches: int | None
    schedule: Callback | None = None

    def fit(
        self,
        callbacks: Sequence[Callback] = (),
        checkpoints: str | os.PathLike[str] | None = None,
        resume: bool = False,
        print_every: int = 1,
        progress: bool | None = None,
    ) -> FitResult:
        """Run `Trainer.fit` with the config's settings; see there for Args."""
        if self.schedule is not None:
            callbacks = [self.schedule, *callbacks]
        return self.trainer.fit(
            self.dl_train,
            self.dl_test,
            self.num_epochs,
            checkpoints=checkpoints,
            early_stopping=self.early_stopping,
            print_every=print_every,
            max_batches=self.max_batches,
            callbacks=callbacks,
            resume=resume,
            progress=progress,
        )


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's `random`."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_training(config: dict[str, Any]) -> TrainingSetup:
    """Load the data, build the model, optimizer and trainer of a run config.

    Args:
        config: A run config (see the module docstring).

    Returns:
        The setup, ready to `fit`.

    Raises:
        ValueError: If a section is missing, a value is invalid, or the
            spec's input shape does not match the data set.
        DatasetNotFoundError: If the data set's files are missing.
    """
    from engine.data import load_dataset
    from engine.loader import make_loaders

    missing = [name for name in CONFIG_SECTIONS if name not in config]
    if missing:
        raise ValueError(
            f"run config is missing the sections {missing}; expected "
            f"{list(CONFIG_SECTIONS)}"
        )
    data = {**DATASET_DEFAULTS, **config["dataset"]}
    training = {**TRAINING_DEFAULTS, **config["training"]}
    device = resolve_device(training["device"])
    seed_everything(int(training["seed"]))

    dataset = load_dataset(
        data["name"],
        data_dir=data["data_dir"],
        download=bool(data["download"]),
        train_size=data["train_size"],
    )
    dl_train, dl_test = make_loaders(
        dataset,
        batch_size=int(training["batch_size"]),
        bs_test=training["bs_test"],
        device=device,
        seed=int(training["seed"]),
        augment=bool(data["augment"]),
        max_batches=training["max_batches"],
    )
    trainer = _build_trainer(
        config["spec"],
        config["optimizer"],
        dataset,
        device,
        channels_last=training["channels_last"],
        model_config=config.get("model"),
    )
    return TrainingSetup(
        trainer=trainer,
        dl_train=dl_train,
        dl_test=dl_test,
        dataset=dataset,
        num_epochs=int(training["epochs"]),
        early_stopping=training["early_stopping"],
        max_batches=training["max_batches"],
        schedule=_schedule_callback(
            str(training["schedule"]), trainer, dl_train, training
        ),
    )


def _schedule_callback(
    name: str, trainer: Trainer, dl_train: Any, training: dict[str, Any]
) -> Callback | None:
    """Return the learning rate schedule that peaks at the optimizer's rate.

    Raises:
        ValueError: For an unknown schedule name.
    """
    if name == "constant":
        return None
    from engine.schedules import LearningRateSchedule, get_learning_rate

    peak = get_learning_rate(trainer.optimizer)
    return LearningRateSchedule(name, peak, int(training["epochs"]), len(dl_train))


def train_from_config(
    config: dict[str, Any],
    callbacks: Sequence[Callback] = (),
    checkpoints: str | os.PathLike[str] | None = None,
    resume: bool = False,
    print_every: int = 1,
    progress: bool | None = None,
) -> FitResult:
    """Train the model of a run config and return the fit's result.

    A callback that needs the trainer (for example to call `request_stop`
    from a signal handler) receives it in `on_fit_start`.

    Args:
        config: A run config (see the module docstring).
        callbacks: Callbacks passed to `Trainer.fit`.
        checkpoints: Checkpoint path passed to `Trainer.fit`.
        resume: Continue from the last checkpoint.
        print_every: Progress output every this many epochs; 0 is silent.
        progress: Progress bar (True), plain lines (False) or automatic.

    Returns:
        The result of the fit.

    Raises:
        ValueError: See `build_training`.
        DatasetNotFoundError: If the data set's files are missing.
    """
    setup = build_training(config)
    return setup.fit(
        callbacks=callbacks,
        checkpoints=checkpoints,
        resume=resume,
        print_every=print_every,
        progress=progress,
    )


def _build_class_model(model_config: dict[str, Any], dataset: Any) -> Any:
    """Build an ``engine.cnn`` model from a run config's "model" section."""
    from engine.experiments import model_class

    try:
        cls = model_class(model_config["type"])
        return cls(
            dataset.input_shape,
            dataset.num_classes,
            list(model_config["channels"]),
            int(model_config["pool_every"]),
            list(model_config["hidden_dims"]),
            **dict(model_config.get("kwargs") or {}),
        )
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"invalid model section {model_config!r} in the run config: {error}; "
            "expected type, channels, pool_every, hidden_dims and kwargs"
        ) from error


def _build_trainer(
    spec: dict[str, Any] | None,
    optimizer_config: dict[str, Any],
    dataset: Any,
    device: torch.device | None,
    channels_last: str | bool = "auto",
    model_config: dict[str, Any] | None = None,
) -> Trainer:
    from engine.optimizers import make_optimizer
    from engine.spec import build_model, input_shape, num_classes

    if model_config is not None:
        return _torch_trainer(
            _build_class_model(model_config, dataset),
            optimizer_config,
            device,
            channels_last,
        )
    if spec is None:
        raise ValueError("the run config has neither a spec nor a model section")
    spec_shape = tuple(input_shape(spec))
    if spec_shape != tuple(dataset.input_shape):
        raise ValueError(
            f"the model takes inputs of shape {spec_shape} but data set "
            f"{dataset.name!r} has shape {tuple(dataset.input_shape)}; "
            "build the spec for this data set"
        )
    if num_classes(spec) != dataset.num_classes:
        raise ValueError(
            f"the model has {num_classes(spec)} outputs but data set "
            f"{dataset.name!r} has {dataset.num_classes} classes"
        )
    model = build_model(spec)
    hyper = {key: value for key, value in optimizer_config.items() if key != "name"}
    name = optimizer_config.get("name")
    if spec.get("backend", "blocks") == "blocks":
        from engine.blocks import CrossEntropyLoss
        from engine.training.block_trainer import BlockTrainer

        # Move before building the optimizer, so its state starts on the device.
        if device is not None:
            model.to(device)
        optimizer = make_optimizer(name, model.params(), **hyper)
        return BlockTrainer(model, CrossEntropyLoss(), optimizer, device=device)

    return _torch_trainer(model, optimizer_config, device, channels_last)


def _torch_trainer(
    model: Any,
    optimizer_config: dict[str, Any],
    device: torch.device | None,
    channels_last: str | bool,
) -> Trainer:
    from torch import nn

    from engine.optimizers import make_optimizer
    from engine.training.torch_trainer import TorchTrainer

    if device is not None:
        model.to(device)
    hyper = {key: value for key, value in optimizer_config.items() if key != "name"}
    optimizer = make_optimizer(
        optimizer_config.get("name"), model.parameters(), **hyper
    )
    log.info("training %s on %s", type(model).__name__, device)
    return TorchTrainer(
        model,
        nn.CrossEntropyLoss(),
        optimizer,
        device=device,
        channels_last=channels_last,
    )
