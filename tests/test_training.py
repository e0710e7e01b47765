"""Tests of the trainers: accuracy, early stopping, checkpoints, resume."""

from __future__ import annotations

import io
import math
import os
import pickle
import re
import signal
import threading

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from engine.blocks import MLP, CrossEntropyLoss
from engine.data import load_dataset
from engine.loader import FastLoader, make_loaders
from engine.optimizers import make_optimizer
from engine.training import (
    BlockTrainer,
    Callback,
    CheckpointError,
    FitResult,
    ProgressCallback,
    StopOnSignal,
    TorchTrainer,
    checkpoint_paths,
    load_checkpoint,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def block_trainer(
    digits, seed=0, hidden=(64,), dropout=0.1, optimizer="momentum", lr=0.05
):
    torch.manual_seed(seed)
    model = MLP(64, digits.num_classes, hidden_features=hidden, dropout=dropout)
    opt = make_optimizer(optimizer, model.params(), learn_rate=lr, reg=1e-4)
    return BlockTrainer(model, CrossEntropyLoss(), opt)


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(32 * 2 * 2, 10),
    )


class StopAt(Callback):
    """Call request_stop after a given batch of a given epoch and stage."""

    def __init__(self, epoch, batch, stage="train"):
        self.at = (stage, epoch, batch)

    def on_batch_end(self, trainer, stage, epoch, batch, result):
        if (stage, epoch, batch) == self.at:
            trainer.request_stop()


class SetLearnRate(Callback):
    """Set the optimizer's learning rate after an epoch ends."""

    def __init__(self, epoch, learn_rate):
        self.epoch = epoch
        self.learn_rate = learn_rate

    def on_epoch_end(self, trainer, epoch, train_result, test_result):
        if epoch == self.epoch:
            trainer.optimizer.learn_rate = self.learn_rate


def comparable(result: FitResult) -> dict:
    """Return every field except the wall times, which differ between runs."""
    data = result.to_dict()
    del data["epoch_seconds"]
    return data


# --- accuracy ---------------------------------------------------------------


def test_block_mlp_overfits_twenty_images():
    small = load_dataset("digits", train_size=20)
    dl_train = FastLoader(
        small.x_train,
        small.y_train,
        batch_size=10,
        shuffle=True,
        mean=small.mean,
        std=small.std,
    )
    torch.manual_seed(0)
    model = MLP(64, 10, hidden_features=(128, 128, 128))
    opt = make_optimizer("sgd", model.params(), learn_rate=0.05)
    trainer = BlockTrainer(model, CrossEntropyLoss(), opt)
    result = trainer.fit(dl_train, dl_train, num_epochs=20, print_every=0)
    assert len(small.y_train) == 20
    assert result.num_epochs == 20
    assert result.train_acc[-1] >= 98


def test_block_mlp_digits_test_accuracy(digits):
    dl_train, dl_test = make_loaders(digits, batch_size=64, seed=0)
    trainer = block_trainer(digits, hidden=(128, 128))
    result = trainer.fit(dl_train, dl_test, num_epochs=10, print_every=0)
    assert result.test_acc[-1] >= 90
    assert result.stop_reason == "completed"


def test_torch_cnn_digits_test_accuracy(digits):
    dl_train, dl_test = make_loaders(digits, batch_size=64, seed=0)
    torch.manual_seed(0)
    model = small_cnn()
    opt = make_optimizer("adam", model.parameters(), learn_rate=3e-3)
    trainer = TorchTrainer(model, nn.CrossEntropyLoss(), opt)
    result = trainer.fit(dl_train, dl_test, num_epochs=10, print_every=0)
    assert result.test_acc[-1] >= 95


def test_torch_trainer_with_torch_optim(digits):
    dl_train, dl_test = make_loaders(digits, batch_size=64, seed=0)
    torch.manual_seed(0)
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = TorchTrainer(model, nn.CrossEntropyLoss(), opt)
    result = trainer.fit(dl_train, dl_test, num_epochs=3, print_every=0)
    assert result.test_acc[-1] >= 85


def test_block_trainer_with_dataloader(digits):
    dataset = TensorDataset(digits.x_train.float() / 255, digits.y_train)
    dl_train = DataLoader(dataset, batch_size=64, shuffle=True)
    test_set = TensorDataset(digits.x_test.float() / 255, digits.y_test)
    dl_test = DataLoader(test_set, batch_size=128)
    trainer = block_trainer(digits, optimizer="torch-adam", lr=3e-3)
    result = trainer.fit(dl_train, dl_test, num_epochs=3, print_every=0)
    assert result.num_epochs == 3
    assert result.test_acc[-1] >= 85


def test_fit_result_fields_per_batch_and_epoch(digits):
    dl_train, dl_test = make_loaders(digits, batch_size=100, seed=0)
    result = block_trainer(digits).fit(dl_train, dl_test, 2, print_every=0)
    assert len(result.train_loss) == 2 * len(dl_train)
    assert len(result.test_loss) == 2 * len(dl_test)
    assert len(result.train_acc) == 2
    assert len(result.test_acc) == 2
    assert len(result.epoch_seconds) == 2
    assert result.best_test_acc == max(result.test_acc)
    assert result.test_acc[result.best_epoch - 1] == result.best_test_acc
    assert set(result.course_dict()) == {
        "num_epochs",
        "train_loss",
        "train_acc",
        "test_loss",
        "test_acc",
    }
    assert FitResult.from_dict(result.to_dict()) == result


def test_max_batches_limits_both_passes(digits):
    dl_train, dl_test = make_loaders(digits, batch_size=32, seed=0)
    seen = []

    class Count(Callback):
        def on_batch_end(self, trainer, stage, epoch, batch, result):
            seen.append((stage, epoch, batch, trainer.num_batches))

    trainer = block_trainer(digits)
    result = trainer.fit(
        dl_train, dl_test, 2, max_batches=3, callbacks=[Count()], print_every=0
    )
    assert len(result.train_loss) == 6
    assert len(result.test_loss) == 6
    assert seen[:4] == [
        ("train", 1, 1, 3),
        ("train", 1, 2, 3),
        ("train", 1, 3, 3),
        ("test", 1, 1, 3),
    ]


# --- early stopping ---------------------------------------------------------


def test_early_stopping_after_patience(digits):
    dl_train, dl_test = make_loaders(digits, batch_size=128, seed=0)
    torch.manual_seed(0)
    model = small_cnn()
    # With a zero learning rate the test loss never gets lower after epoch 1.
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    trainer = TorchTrainer(model, nn.CrossEntropyLoss(), opt)
    result = trainer.fit(
        dl_train, dl_test, num_epochs=10, early_stopping=2, print_every=0
    )
    assert result.num_epochs == 3
    assert result.stop_reason == "early_stopping"
    assert "epoch 3" in result.message


def test_resume_after_early_stopping_stays_stopped(digits, tmp_path):
    dl_train, dl_test = make_loaders(digits, batch_size=128, seed=0)

    def fit(resume):
        torch.manual_seed(0)
        model = small_cnn()
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        trainer = TorchTrainer(model, nn.CrossEntropyLoss(), opt)
        return trainer.fit(
            dl_train,
            dl_test,
            num_epochs=10,
            early_stopping=2,
            print_every=0,
            checkpoints=tmp_path / "ckpt",
            resume=resume,
        )

    first = fit(resume=False)
    again = fit(resume=True)
    assert again.num_epochs == first.num_epochs
    assert again.stop_reason == "early_stopping"


def test_early_stopping_not_triggered_while_improving(digits):
    dl_train, dl_test = make_loaders(digits, batch_size=64, seed=0)
    result = block_trainer(digits).fit(
        dl_train, dl_test, num_epochs=3, early_stopping=3, print_every=0
    )
    assert result.num_epochs == 3
    assert result.stop_reason == "completed"


# --- checkpoints ------------------------------------------------------------


def test_checkpoint_paths_add_suffix_and_last():
    best, last = checkpoint_paths("runs/ckpt")
    assert best.name == "ckpt.pt"
    assert last.name == "ckpt.last.pt"
    assert checkpoint_paths("a/model.pth")[1].name == "model.last.pth"


def test_checkpoints_written_and_load_weights_only(digits, tmp_path):
    dl_train, dl_test = make_loaders(digits, batch_size=64, seed=0)
    trainer = block_trainer(digits)
    result = trainer.fit(
        dl_train, dl_test, 3, checkpoints=tmp_path / "ckpt", print_every=0
    )
    best_path, last_path = tmp_path / "ckpt.pt", tmp_path / "ckpt.last.pt"
    assert best_path.is_file()
    assert last_path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.last.pt", "ckpt.pt"]

    raw = torch.load(last_path, weights_only=True)
    assert raw["epoch"] == 3
    assert set(raw) >= {"model", "optimizer", "result", "rng", "epoch"}
    assert set(raw["rng"]) >= {"torch", "numpy", "python"}

    best = load_checkpoint(best_path)
    assert best["epoch"] == result.best_epoch
    assert best["best_test_acc"] == result.best_test_acc

    # The best weights reproduce the best test accuracy.
    fresh = block_trainer(digits, seed=1)
    fresh.model.load_state_dict(best["model"])
    assert fresh.test_epoch(dl_test).accuracy == result.best_test_acc


def test_load_checkpoint_rejects_code_in_pickle(tmp_path):
    path = tmp_path / "evil.pt"
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"format": "layerlab-checkpoint", "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="rejected checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_load_checkpoint_rejects_foreign_files(tmp_path):
    plain = tmp_path / "state.pt"
    torch.save(nn.Linear(2, 2).state_dict(), plain)
    with pytest.raises(CheckpointError, match="not a layerlab checkpoint"):
        load_checkpoint(plain)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError):
        load_checkpoint(text)
    pickled = tmp_path / "plain.pkl"
    pickled.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError):
        load_checkpoint(pickled)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_resume_without_checkpoints_is_rejected(digits):
    dl_train, dl_test = make_loaders(digits, batch_size=64)
    with pytest.raises(ValueError, match="checkpoints"):
        block_trainer(digits).fit(dl_train, dl_test, 1, resume=True, print_every=0)


# --- resume -----------------------------------------------------------------


def fit_digits_blocks(digits, tmp_path, num_epochs, callbacks=(), resume=False, seed=0):
    dl_train, dl_test = make_loaders(digits, batch_size=64, seed=0)
    trainer = block_trainer(digits, seed=seed, dropout=0.3)
    return trainer.fit(
        dl_train,
        dl_test,
        num_epochs,
        checkpoints=tmp_path / "ckpt",
        callbacks=callbacks,
        resume=resume,
        print_every=0,
    )


@pytest.mark.parametrize(
    "stop", [(2, 5, "train"), (3, 2, "test"), (1, 1, "train")], ids=str
)
def test_block_resume_after_stop_matches_uninterrupted(digits, tmp_path, stop):
    epoch, batch, stage = stop
    full = fit_digits_blocks(digits, tmp_path / "full", 4)

    stopped = fit_digits_blocks(
        digits, tmp_path / "cut", 4, callbacks=[StopAt(epoch, batch, stage)]
    )
    assert stopped.stop_reason == "stopped"
    assert stopped.message == f"stopped at epoch {epoch}, {stage} batch {batch}"
    assert stopped.num_epochs == epoch - 1

    # A different seed shows that weights and RNG come from the checkpoint.
    torch.manual_seed(123)
    resumed = fit_digits_blocks(digits, tmp_path / "cut", 4, resume=True, seed=7)
    assert comparable(resumed) == comparable(full)


def test_resume_after_stop_between_epochs(digits, tmp_path):
    class StopAfterEpoch(Callback):
        def on_epoch_end(self, trainer, epoch, train_result, test_result):
            if epoch == 2:
                trainer.request_stop()

    full = fit_digits_blocks(digits, tmp_path / "full", 4)
    stopped = fit_digits_blocks(
        digits, tmp_path / "cut", 4, callbacks=[StopAfterEpoch()]
    )
    assert stopped.message == "stopped before epoch 3"
    assert stopped.num_epochs == 2
    resumed = fit_digits_blocks(digits, tmp_path / "cut", 4, resume=True, seed=9)
    assert comparable(resumed) == comparable(full)


def test_crash_in_epoch_end_callback_retrains_that_epoch(digits, tmp_path):
    class CrashAtEpoch(Callback):
        """Stands in for a process killed while it records an epoch."""

        def on_epoch_end(self, trainer, epoch, train_result, test_result):
            if epoch == 2:
                raise KeyboardInterrupt

    class EpochLog(Callback):
        def __init__(self) -> None:
            self.epochs: list[int] = []

        def on_epoch_end(self, trainer, epoch, train_result, test_result):
            self.epochs.append(epoch)

    full = fit_digits_blocks(digits, tmp_path / "full", 4)
    with pytest.raises(KeyboardInterrupt):
        fit_digits_blocks(digits, tmp_path / "cut", 4, callbacks=[CrashAtEpoch()])

    log = EpochLog()
    resumed = fit_digits_blocks(
        digits, tmp_path / "cut", 4, callbacks=[log], resume=True, seed=5
    )
    assert log.epochs == [2, 3, 4]
    assert comparable(resumed) == comparable(full)


def test_resume_after_limited_run_matches_uninterrupted(digits, tmp_path):
    full = fit_digits_blocks(digits, tmp_path / "full", 4)
    first = fit_digits_blocks(digits, tmp_path / "cut", 2)
    assert first.num_epochs == 2
    resumed = fit_digits_blocks(digits, tmp_path / "cut", 4, resume=True, seed=3)
    assert comparable(resumed) == comparable(full)


def test_resume_of_finished_fit_returns_its_result(digits, tmp_path):
    full = fit_digits_blocks(digits, tmp_path, 2)
    again = fit_digits_blocks(digits, tmp_path, 2, resume=True)
    assert comparable(again) == comparable(full)


def test_resume_without_checkpoint_file_starts_fresh(digits, tmp_path):
    full = fit_digits_blocks(digits, tmp_path / "a", 2)
    fresh = fit_digits_blocks(digits, tmp_path / "b", 2, resume=True)
    assert comparable(fresh) == comparable(full)


def fit_torch_dataloader(digits, tmp_path, callbacks=(), resume=False, seed=0):
    """Fit a CNN with dropout from a shuffling DataLoader, which draws its
    permutation from torch's global generator."""
    torch.manual_seed(seed)
    x_train = digits.x_train.float() / 255
    x_test = digits.x_test.float() / 255
    dl_train = DataLoader(
        TensorDataset(x_train, digits.y_train), batch_size=128, shuffle=True
    )
    dl_test = DataLoader(TensorDataset(x_test, digits.y_test), batch_size=128)
    model = small_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    trainer = TorchTrainer(model, nn.CrossEntropyLoss(), opt)
    return trainer.fit(
        dl_train,
        dl_test,
        3,
        checkpoints=tmp_path / "ckpt",
        callbacks=callbacks,
        resume=resume,
        print_every=0,
    )


def test_torch_resume_with_dataloader_matches_uninterrupted(digits, tmp_path):
    full = fit_torch_dataloader(digits, tmp_path / "full")
    stopped = fit_torch_dataloader(digits, tmp_path / "cut", callbacks=[StopAt(2, 4)])
    assert stopped.stop_reason == "stopped"
    resumed = fit_torch_dataloader(digits, tmp_path / "cut", resume=True, seed=5)
    assert comparable(resumed) == comparable(full)


# --- divergence and stopping ------------------------------------------------


def test_divergence_stops_and_keeps_best_checkpoint(digits, tmp_path):
    dl_train, dl_test = make_loaders(digits, batch_size=64, seed=0)
    trainer = block_trainer(digits)
    result = trainer.fit(
        dl_train,
        dl_test,
        5,
        checkpoints=tmp_path / "ckpt",
        print_every=0,
        callbacks=[SetLearnRate(1, 1e12)],
    )
    assert result.stop_reason == "diverged"
    assert re.fullmatch(
        r"diverged at epoch 2, batch \d+ \(loss (nan|inf)\)", result.message
    )
    assert result.num_epochs == 1
    best = load_checkpoint(tmp_path / "ckpt.pt")
    assert best["epoch"] == 1
    assert all(torch.isfinite(value).all() for value in best["model"].values())
    last = load_checkpoint(tmp_path / "ckpt.last.pt")
    assert last["epoch"] == 1


def test_request_stop_from_another_thread(digits):
    dl_train, dl_test = make_loaders(digits, batch_size=16, seed=0)
    trainer = block_trainer(digits)
    reached = threading.Event()

    class WaitForStop(Callback):
        def on_batch_end(self, trainer, stage, epoch, batch, result):
            if (stage, epoch, batch) == ("train", 1, 3):
                reached.set()
                # Hold the batch until the other thread's request lands.
                for _ in range(500):
                    if trainer.stop_requested:
                        break
                    threading.Event().wait(0.01)

    def stopper():
        reached.wait(30)
        trainer.request_stop()

    thread = threading.Thread(target=stopper)
    thread.start()
    result = trainer.fit(dl_train, dl_test, 3, callbacks=[WaitForStop()], print_every=0)
    thread.join()
    assert result.stop_reason == "stopped"
    assert result.message == "stopped at epoch 1, train batch 3"
    assert not trainer.stop_requested


def test_stop_on_signal_stops_after_batch(digits):
    dl_train, dl_test = make_loaders(digits, batch_size=16, seed=0)
    trainer = block_trainer(digits)
    before = signal.getsignal(signal.SIGINT)

    class SendInterrupt(Callback):
        def on_batch_end(self, trainer, stage, epoch, batch, result):
            if (stage, epoch, batch) == ("train", 1, 2):
                os.kill(os.getpid(), signal.SIGINT)

    stopper = StopOnSignal()
    result = trainer.fit(
        dl_train, dl_test, 3, callbacks=[stopper, SendInterrupt()], print_every=0
    )
    assert result.stop_reason == "stopped"
    assert stopper.received == signal.SIGINT
    assert result.message.startswith("stopped at epoch 1, train batch ")
    assert signal.getsignal(signal.SIGINT) is before


def test_callbacks_hooks_run_in_order(digits):
    dl_train, dl_test = make_loaders(digits, batch_size=256, seed=0)
    events = []

    class Record(Callback):
        def on_fit_start(self, trainer):
            events.append(("start", trainer.start_epoch, trainer.num_epochs))

        def on_epoch_end(self, trainer, epoch, train_result, test_result):
            events.append(("epoch", epoch, trainer.epoch))

        def on_fit_end(self, trainer, result):
            events.append(("end", result.num_epochs))

    block_trainer(digits).fit(dl_train, dl_test, 2, callbacks=[Record()], print_every=0)
    assert events == [("start", 1, 2), ("epoch", 1, 1), ("epoch", 2, 2), ("end", 2)]


# --- progress output --------------------------------------------------------


def test_progress_plain_lines_when_not_terminal(digits, capsys):
    dl_train, dl_test = make_loaders(digits, batch_size=128, seed=0)
    block_trainer(digits).fit(dl_train, dl_test, 3)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("epoch 1/3  train loss ")
    assert "test loss" in lines[2]


def test_progress_print_every_keeps_last_epoch(digits, capsys):
    dl_train, dl_test = make_loaders(digits, batch_size=128, seed=0)
    block_trainer(digits).fit(dl_train, dl_test, 3, print_every=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["2/3", "3/3"]


def test_progress_silent_with_print_every_zero(digits, capsys):
    dl_train, dl_test = make_loaders(digits, batch_size=128, seed=0)
    block_trainer(digits).fit(dl_train, dl_test, 2, print_every=0)
    assert capsys.readouterr().out == ""


def test_progress_bar_writes_to_stream(digits):
    dl_train, dl_test = make_loaders(digits, batch_size=128, seed=0)
    stream = io.StringIO()
    progress = ProgressCallback(stream=stream, bar=True)
    block_trainer(digits).fit(dl_train, dl_test, 2, callbacks=[progress], print_every=0)
    assert "epoch 2/2" in stream.getvalue()


# --- devices ----------------------------------------------------------------


def test_amp_bf16_needs_cuda_off_cuda():
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        TorchTrainer(model, nn.CrossEntropyLoss(), opt, device="cpu", amp="bf16")


def test_amp_auto_is_off_on_cpu():
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = TorchTrainer(model, nn.CrossEntropyLoss(), opt, device="cpu")
    assert trainer.amp is False
    assert trainer.channels_last is False


def test_channels_last_on_cpu_trains_same_as_contiguous(digits):
    dl_train, dl_test = make_loaders(digits, batch_size=64, seed=0)
    results = {}
    for mode in ("off", "on"):
        torch.manual_seed(0)
        model = small_cnn()
        opt = make_optimizer("sgd", model.parameters(), learn_rate=0.05)
        trainer = TorchTrainer(
            model, nn.CrossEntropyLoss(), opt, device="cpu", channels_last=mode
        )
        # The last convolution has several input channels, so its two layouts
        # differ (a 1-channel weight is contiguous in both).
        conv = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
        assert conv.in_channels > 1
        on = conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert on == (mode == "on")
        results[mode] = trainer.fit(dl_train, dl_test, 2, max_batches=5, print_every=0)
    # float32 convolutions in the two layouts sum in different orders.
    on_loss, off_loss = results["on"].train_loss, results["off"].train_loss
    assert on_loss == pytest.approx(off_loss, rel=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_block_trainer_on_cuda(digits):
    dl_train, dl_test = make_loaders(digits, batch_size=64, seed=0, device="cuda")
    torch.manual_seed(0)
    model = MLP(64, 10, hidden_features=(128,))
    opt = make_optimizer("momentum", model.params(), learn_rate=0.05)
    trainer = BlockTrainer(model, CrossEntropyLoss(), opt, device="cuda")
    result = trainer.fit(dl_train, dl_test, 3, print_every=0)
    assert trainer.device.type == "cuda"
    assert result.test_acc[-1] >= 85


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_trainer_bf16_on_cuda(digits):
    dl_train, dl_test = make_loaders(digits, batch_size=64, seed=0, device="cuda")
    torch.manual_seed(0)
    model = small_cnn()
    opt = make_optimizer("adam", model.parameters(), learn_rate=3e-3)
    trainer = TorchTrainer(model, nn.CrossEntropyLoss(), opt, device="cuda")
    result = trainer.fit(dl_train, dl_test, 5, print_every=0)
    assert trainer.amp is True
    assert trainer.channels_last is True
    assert math.isfinite(result.test_loss[-1])
    assert result.test_acc[-1] >= 90
