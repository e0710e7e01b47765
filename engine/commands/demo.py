"""``layerlab demo``: train a block MLP on the 8x8 digits with plain SGD.

A headless check that the blocks learn: it reads the digits data set that
scikit-learn ships (1797 images of 8x8 pixels, values 0..16), splits it
80/20 with a fixed seed, and prints loss and accuracy after every epoch.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import importlib.resources
import time
from typing import Any

DIGITS_RESOURCE = "datasets/data/digits.csv.gz"
TEST_FRACTION = 0.2


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="train a block MLP on the 8x8 digits with plain SGD (no UI)",
        description=(
            "Train an MLP built from engine.blocks on scikit-learn's bundled 8x8 "
            "digits (80/20 split, fixed seed) with a hand-written SGD loop, "
            "printing loss and accuracy per epoch."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--epochs",
        type=_positive_int,
        default=10,
        help="number of passes over the data",
    )
    parser.add_argument(
        "--lr",
        type=_positive_float,
        default=0.1,
        help="SGD learning rate (step size per unit of gradient)",
    )
    parser.add_argument(
        "--hidden",
        type=_positive_int,
        nargs="*",
        default=[128, 64],
        metavar="SIZE",
        help="number of units in each hidden layer; pass --hidden alone for none",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=32,
        help="training samples per SGD step",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed for the weights and the batch order (the split is fixed)",
    )
    parser.set_defaults(handler=run_demo)


def load_digits_tensors() -> tuple[Any, Any]:
    """Read the digits CSV bundled with scikit-learn, without importing sklearn.

    Returns:
        ``(x, y)``: float32 pixels scaled to [0, 1] of shape (1797, 64), and
        int64 labels of shape (1797,).

    Raises:
        FileNotFoundError: If scikit-learn or its data file is not installed.
    """
    import torch

    try:
        path = importlib.resources.files("sklearn").joinpath(DIGITS_RESOURCE)
    except ModuleNotFoundError as error:
        raise FileNotFoundError(
            "the digits data set comes with scikit-learn, which is not "
            "installed; install it with: pip install scikit-learn"
        ) from error
    with path.open("rb") as raw, gzip.open(raw, "rt") as text:
        rows = [[int(value) for value in row] for row in csv.reader(text) if row]
    data = torch.tensor(rows, dtype=torch.float32)
    return data[:, :-1] / 16.0, data[:, -1].long()


def _evaluate(model: Any, loss_fn: Any, x: Any, y: Any) -> tuple[float, float]:
    model.eval()
    scores = model(x)
    loss = loss_fn(scores, y).item()
    accuracy = (scores.argmax(dim=1) == y).float().mean().item() * 100
    return loss, accuracy


def run_demo(args: argparse.Namespace) -> int:
    """Train and print one line per epoch. Returns the exit status."""
    import torch

    from engine.blocks import MLP, CrossEntropyLoss

    x, y = load_digits_tensors()
    # The split uses its own fixed seed so that --seed changes only the model.
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    num_test = int(len(y) * TEST_FRACTION)
    test_idx, train_idx = order[:num_test], order[num_test:]
    x_train, y_train = x[train_idx], y[train_idx]
    x_test, y_test = x[test_idx], y[test_idx]
    print(
        f"digits: {len(y_train)} training and {len(y_test)} test samples; "
        f"MLP 64 -> {' -> '.join(map(str, args.hidden + [10]))}"
    )

    torch.manual_seed(args.seed)
    model = MLP(64, 10, hidden_features=tuple(args.hidden))
    loss_fn = CrossEntropyLoss()
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        model.train()
        for batch in torch.randperm(len(y_train)).split(args.batch_size):
            loss_fn(model(x_train[batch]), y_train[batch])
            model.backward(loss_fn.backward(), input_grad=False)
            for param, grad in model.params():
                param.add_(grad, alpha=-args.lr)
                grad.zero_()
        train_loss, train_acc = _evaluate(model, loss_fn, x_train, y_train)
        test_loss, test_acc = _evaluate(model, loss_fn, x_test, y_test)
        print(
            f"epoch {epoch}/{args.epochs}: train loss {train_loss:.4f}, "
            f"train acc {train_acc:.1f}%, test loss {test_loss:.4f}, "
            f"test acc {test_acc:.1f}% ({time.perf_counter() - start:.2f} s)"
        )
    return 0
