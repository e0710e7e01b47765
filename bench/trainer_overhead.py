"""Measure the overhead of `TorchTrainer.fit` over a bare hand-written loop.

Both train the same small CNN on the 8x8 digits (FastLoader batches, our
Adam) for the same epochs, each with a test pass per epoch and one
``.item()`` for the loss and one for the correct count per batch. Runs
alternate (trainer, loop, loop, trainer, ...) so drift on a shared machine
hits both sides alike. On CPU the times are this process's CPU time, which
leaves out waiting for a core on a loaded machine. On CUDA they are wall
time. The printed ratios are trainer time over loop time: the median of the
per-round ratios, and the ratio of the fastest runs.

Run: ``.venv/bin/python bench/trainer_overhead.py [--rounds 10] [--epochs 5]``
(``--model linear`` for a one-layer model, where overhead weighs most).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from engine.data import load_dataset
from engine.loader import make_loaders
from engine.optimizers import make_optimizer
from engine.training import BatchResult, TorchTrainer


def build(kind: str, seed: int, device: torch.device) -> tuple[nn.Module, object]:
    torch.manual_seed(seed)
    if kind == "cnn":
        model = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 2 * 2, 10),
        )
    else:
        # A model so small that the per-batch overhead dominates: a worst case.
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    model.to(device)
    return model, make_optimizer("adam", model.parameters(), learn_rate=1e-3)


def bare_loop(model, optimizer, dl_train, dl_test, epochs: int) -> float:
    """Train and test with no trainer; return the last test accuracy."""
    loss_fn = nn.CrossEntropyLoss()
    accuracy = 0.0
    for epoch in range(1, epochs + 1):
        dl_train.set_epoch(epoch)
        model.train()
        losses, correct, seen = [], 0, 0
        for x, y in dl_train:
            optimizer.zero_grad()
            scores = model(x)
            loss = loss_fn(scores, y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            correct += int((scores.argmax(1) == y).sum().item())
            seen += y.shape[0]
        model.eval()
        losses, correct, seen = [], 0, 0
        with torch.no_grad():
            for x, y in dl_test:
                scores = model(x)
                losses.append(loss_fn(scores, y).item())
                correct += int((scores.argmax(1) == y).sum().item())
                seen += y.shape[0]
        accuracy = 100.0 * correct / seen
    return accuracy


def trainer_fit(model, optimizer, dl_train, dl_test, epochs: int) -> float:
    # The bare loop runs in float32 and the default layout, so the trainer
    # must too (its "auto" modes turn on bf16 and channels-last on CUDA).
    trainer = TorchTrainer(
        model, nn.CrossEntropyLoss(), optimizer, amp="off", channels_last="off"
    )
    result = trainer.fit(dl_train, dl_test, epochs, print_every=0)
    return result.test_acc[-1]


class NoOpTrainer(TorchTrainer):
    """A trainer whose batches do no work, to time the fit loop alone."""

    def train_batch(self, batch) -> BatchResult:
        return BatchResult(0.5, 1, 64)

    test_batch = train_batch


def loop_alone_us(num_batches: int = 20_000) -> float:
    """Return the trainer's per-batch cost with batches that do no work."""
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = NoOpTrainer(model, nn.CrossEntropyLoss(), optimizer)
    batches = [(torch.zeros(64, 2), torch.zeros(64, dtype=torch.int64))] * num_batches
    start = time.process_time()
    trainer.fit(batches, batches[:1], 1, print_every=0)
    return (time.process_time() - start) / (num_batches + 1) * 1e6


def timed(function, device: torch.device, *args) -> tuple[float, float]:
    """Run `function` and return (CPU seconds, wall seconds) of this process.

    CPU time leaves out the time spent waiting for a core, so it stays
    usable on a loaded machine. On CUDA, wall time is what counts.
    """
    if device.type == "cuda":
        torch.cuda.synchronize()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    function(*args)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.process_time() - cpu_start, time.perf_counter() - wall_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="alternating pairs")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run")
    parser.add_argument("--batch-size", type=int, default=64, help="samples per batch")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--model",
        choices=("cnn", "linear"),
        default="cnn",
        help="two-layer CNN, or one linear layer (a worst case for overhead)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    dataset = load_dataset("digits")
    dl_train, dl_test = make_loaders(dataset, args.batch_size, seed=0, device=device)
    num_batches = args.epochs * (len(dl_train) + len(dl_test))
    runs = {"trainer": trainer_fit, "loop": bare_loop}

    # One untimed run of each warms up the allocator and kernels.
    for function in runs.values():
        function(*build(args.model, 0, device), dl_train, dl_test, 1)

    clock = "wall" if device.type == "cuda" else "CPU"
    times: dict[str, list[float]] = {name: [] for name in runs}
    ratios = []
    for round_index in range(args.rounds):
        order = list(runs) if round_index % 2 == 0 else list(reversed(runs))
        pair = {}
        for name in order:
            model, optimizer = build(args.model, round_index, device)
            cpu_s, wall_s = timed(
                runs[name], device, model, optimizer, dl_train, dl_test, args.epochs
            )
            pair[name] = wall_s if clock == "wall" else cpu_s
            times[name].append(pair[name])
        ratios.append(pair["trainer"] / pair["loop"])
        print(
            f"round {round_index + 1}: trainer {pair['trainer']:.3f} s, "
            f"loop {pair['loop']:.3f} s ({clock} time), ratio {ratios[-1]:.3f}"
        )

    # The fastest run of each side is the least disturbed by other processes.
    trainer_s = min(times["trainer"])
    loop_s = min(times["loop"])
    per_batch_us = (trainer_s - loop_s) / num_batches * 1e6
    print(
        f"model {args.model}, device {device}, {num_batches} batches per run "
        f"(batch size {args.batch_size}), {args.rounds} rounds, {clock} time"
    )
    print(f"fastest trainer {trainer_s:.3f} s, fastest loop {loop_s:.3f} s")
    print(f"overhead per batch (fastest runs): {per_batch_us:.1f} us")
    print(f"ratio of fastest runs trainer/loop: {trainer_s / loop_s:.3f}")
    print(f"median of paired ratios: {statistics.median(ratios):.3f} (target <= 1.03)")
    print(f"fit loop alone, with no-op batches: {loop_alone_us():.1f} us per batch")


if __name__ == "__main__":
    main()
