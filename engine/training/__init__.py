"""Trainers for block models and torch modules, with results and callbacks.

Example::

    trainer = TorchTrainer(model, nn.CrossEntropyLoss(), optimizer, device="auto")
    result = trainer.fit(dl_train, dl_test, num_epochs=10, checkpoints="ckpt.pt")
"""

from engine.training.block_trainer import BlockTrainer
from engine.training.callbacks import (
    Callback,
    ProgressCallback,
    StopOnSignal,
    format_epoch_line,
)
from engine.training.checkpoint import (
    CheckpointError,
    checkpoint_paths,
    load_checkpoint,
    save_checkpoint,
)
from engine.training.from_config import (
    TrainingSetup,
    build_training,
    seed_everything,
    train_from_config,
)
from engine.training.results import (
    STOP_REASONS,
    BatchResult,
    EpochResult,
    FitResult,
)
from engine.training.torch_trainer import TorchTrainer
from engine.training.trainer import Trainer, resolve_device

__all__ = [
    "STOP_REASONS",
    "BatchResult",
    "BlockTrainer",
    "Callback",
    "CheckpointError",
    "EpochResult",
    "FitResult",
    "ProgressCallback",
    "StopOnSignal",
    "TorchTrainer",
    "Trainer",
    "TrainingSetup",
    "build_training",
    "checkpoint_paths",
    "format_epoch_line",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
    "seed_everything",
    "train_from_config",
]
