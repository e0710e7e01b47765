"""``layerlab demo``: train a block MLP on the 8x8 digits with plain SGD.

A headless check that the blocks learn: it loads the offline ``digits`` data
set (scikit-learn's 1,797 images of 8x8 pixels, split into training and test
sets as ``engine.data`` does everywhere), trains with ``VanillaSGD`` and
``BlockTrainer``, and prints loss and accuracy after every epoch.
"""

from __future__ import annotations

import argparse
from typing import Any

from engine.commands.argtypes import positive_float, positive_int


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="train a block MLP on the 8x8 digits with plain SGD (no UI)",
        description=(
            "Train an MLP built from engine.blocks on scikit-learn's bundled 8x8 "
            "digits (the fixed, stratified split of the digits data set) with "
            "VanillaSGD, printing loss and accuracy per epoch."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=10,
        help="number of passes over the data",
    )
    parser.add_argument(
        "--lr",
        type=positive_float,
        default=0.1,
        help="SGD learning rate (step size per unit of gradient)",
    )
    parser.add_argument(
        "--hidden",
        type=positive_int,
        nargs="*",
        default=[128, 64],
        metavar="SIZE",
        help="number of units in each hidden layer; pass --hidden alone for none",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
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


def run_demo(args: argparse.Namespace) -> int:
    """Train and print one line per epoch. Returns the exit status."""
    import torch

    from engine.blocks import MLP, CrossEntropyLoss
    from engine.data import load_dataset, make_loaders
    from engine.optimizers import VanillaSGD
    from engine.training import BlockTrainer, Callback

    class PrintEpoch(Callback):
        def on_epoch_end(self, trainer, epoch, train_result, test_result) -> None:
            print(
                f"epoch {epoch}/{trainer.num_epochs}: "
                f"train loss {train_result.mean_loss:.4f}, "
                f"train acc {train_result.accuracy:.1f}%, "
                f"test loss {test_result.mean_loss:.4f}, "
                f"test acc {test_result.accuracy:.1f}% "
                f"({train_result.seconds + test_result.seconds:.2f} s)"
            )

    data = load_dataset("digits")
    channels, height, width = data.input_shape
    features = channels * height * width
    print(
        f"digits: {len(data.y_train)} training and {len(data.y_test)} test "
        f"samples; MLP {features} -> "
        f"{' -> '.join(map(str, [*args.hidden, data.num_classes]))}"
    )
    torch.manual_seed(args.seed)
    dl_train, dl_test = make_loaders(data, args.batch_size, seed=args.seed)
    model = MLP(features, data.num_classes, hidden_features=tuple(args.hidden))
    optimizer = VanillaSGD(model.params(), learn_rate=args.lr)
    trainer = BlockTrainer(model, CrossEntropyLoss(), optimizer, device="cpu")
    trainer.fit(dl_train, dl_test, args.epochs, print_every=0, callbacks=[PrintEpoch()])
    return 0
