"""Time one SGD training step of a block MLP against the same MLP in torch.nn.

A step is forward, cross-entropy loss, backward and a plain SGD update. Ours
uses engine.blocks with hand-written backward passes. The reference is
``torch.nn`` with autograd and ``torch.optim.SGD``. Both start from the same
weights and see the same batch. The two run in alternating rounds in one
process, so machine noise hits both alike, and the script prints the ratio
of median step times, ours / autograd (below 1 means ours is faster).

Run: ``.venv/bin/python bench/blocks_vs_autograd.py [--rounds 15] [--threads 2]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.blocks import MLP, CrossEntropyLoss  # noqa: E402

# name: (input features, hidden features, classes, batch size, target ratio)
SIZES = {
    "small": (64, 128, 10, 64, 0.75),
    "large": (3072, 1024, 10, 256, 1.0),
}
LEARN_RATE = 0.01


def build_pair(
    in_features: int, hidden: int, classes: int, device: torch.device
) -> tuple[MLP, nn.Sequential]:
    """Return a block MLP and a torch.nn MLP with equal weights."""
    ours = MLP(in_features, classes, hidden_features=(hidden, hidden), wstd=0.05)
    ours.to(device=device)
    theirs = nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, classes),
    ).to(device)
    with torch.no_grad():
        for index in (0, 2, 4):
            theirs[index].weight.copy_(ours.sequence[index].weight)
            theirs[index].bias.copy_(ours.sequence[index].bias)
    return ours, theirs


def make_steps(
    ours: MLP, theirs: nn.Sequential, x: torch.Tensor, y: torch.Tensor
) -> tuple[Callable[[], torch.Tensor], Callable[[], torch.Tensor]]:
    """Return the two training-step functions, which return their loss."""
    loss_fn = CrossEntropyLoss()
    pairs = ours.params()

    def step_ours() -> torch.Tensor:
        loss = loss_fn(ours(x), y)
        # The input needs no gradient, as with autograd for a plain tensor.
        ours.backward(loss_fn.backward(), input_grad=False)
        for param, grad in pairs:
            param.add_(grad, alpha=-LEARN_RATE)
            grad.zero_()
        return loss

    optimizer = torch.optim.SGD(theirs.parameters(), lr=LEARN_RATE)
    torch_loss = nn.CrossEntropyLoss()

    def step_theirs() -> torch.Tensor:
        loss = torch_loss(theirs(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss

    return step_ours, step_theirs


def time_steps(step: Callable[[], torch.Tensor], count: int, device) -> float:
    """Return the mean seconds per step over ``count`` steps."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(count):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / count


def bench_size(name: str, args: argparse.Namespace, device: torch.device) -> float:
    """Time one size, print its line and return the ratio ours / autograd."""
    in_features, hidden, classes, batch, target = SIZES[name]
    torch.manual_seed(0)
    ours, theirs = build_pair(in_features, hidden, classes, device)
    x = torch.randn(batch, in_features, device=device)
    y = torch.randint(0, classes, (batch,), device=device)
    step_ours, step_theirs = make_steps(ours, theirs, x, y)

    # Equal weights and data must give equal losses, step after step.
    for _ in range(3):
        difference = abs(step_ours().item() - step_theirs().item())
    if difference > 1e-4:
        raise SystemExit(
            f"{name}: the two MLPs give losses {difference:.2e} apart, so they "
            "do not compute the same function"
        )

    steps = args.steps or (200 if name == "small" else 5)
    ours_times, theirs_times = [], []
    for round_index in range(args.rounds):
        # Alternate which side goes first, so neither always runs warm.
        if round_index % 2 == 0:
            ours_times.append(time_steps(step_ours, steps, device))
            theirs_times.append(time_steps(step_theirs, steps, device))
        else:
            theirs_times.append(time_steps(step_theirs, steps, device))
            ours_times.append(time_steps(step_ours, steps, device))

    ours_median = statistics.median(ours_times)
    theirs_median = statistics.median(theirs_times)
    ratio = ours_median / theirs_median
    verdict = "met" if ratio <= target else "missed"
    print(
        f"{name:5s} {in_features}->{hidden}->{hidden}->{classes}, batch {batch}: "
        f"ours {ours_median * 1e3:.3f} ms, autograd {theirs_median * 1e3:.3f} ms "
        f"per step, ratio {ratio:.2f} (target <= {target}: {verdict})"
    )
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--rounds", type=int, default=15, help="alternating timing rounds per size"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=0,
        help="training steps per round (0: 200 for small, 5 for large)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch intra-op threads, the same for both sides",
    )
    parser.add_argument(
        "--device", default="cpu", help="torch device, for example cpu or cuda"
    )
    parser.add_argument(
        "--sizes",
        nargs="+",
        choices=list(SIZES),
        default=list(SIZES),
        help="model sizes to time",
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, device {device}, {args.threads} threads, "
        f"{args.rounds} rounds"
    )
    for name in args.sizes:
        bench_size(name, args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
