"""Time CIFAR-10 training epochs of our CNNs, our stack against a plain loop.

Two models train for one epoch each way, from the same initial weights:
``ConvClassifier`` (K=[32, 64], L=2, P=2, H=[100]) and ``YourCodeNet`` (its
recommended configuration, K=64-128-256, L=3, P=3, H=[]).

- ours: ``TorchTrainer.train_epoch`` over ``FastLoader`` batches
  (``make_loaders`` of the image-folder data set, decoded once into a cache
  and kept on the device). On CUDA the trainer adds bf16 autocast and
  channels-last memory.
- jpeg: a ``torch.utils.data.DataLoader`` over torchvision's ``ImageFolder``
  (JPEG decoding, ``ToTensor`` and ``Normalize`` in worker processes) with a
  plain training loop.
- tensor: the same DataLoader and plain loop over a ``TensorDataset`` of the
  decoded uint8 images, normalised in the loop.

All use SGD with momentum 0.9 at lr 0.01, batch 128, and no augmentation.
The variants alternate within each round and the script prints median wall
times, the ratios ours / reference (below 1 means ours is faster) and, on a
GPU, images per second. On a CPU only the first ``--max-batches`` batches of
the epoch run (20 by default), so a full epoch is not timed there.

Run: ``.venv/bin/python bench/cnn_epoch.py [--data /tmp/cifar10] [--rounds 2]
[--max-batches N] [--models cnn ycn]``
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.cnn import ConvClassifier, YourCodeNet  # noqa: E402
from engine.data import load_dataset, make_loaders  # noqa: E402
from engine.training import TorchTrainer  # noqa: E402

BATCH_SIZE = 128
LEARN_RATE = 0.01
CPU_MAX_BATCHES = 20
MODELS: dict[str, Callable[[tuple[int, int, int], int], nn.Module]] = {
    "cnn": lambda shape, classes: ConvClassifier(
        shape, classes, [32, 32, 64, 64], 2, [100]
    ),
    "ycn": lambda shape, classes: YourCodeNet(
        shape, classes, [64] * 3 + [128] * 3 + [256] * 3, 3, []
    ),
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=LEARN_RATE, momentum=0.9)


def time_ours(
    model: nn.Module, loader, device: torch.device, max_batches: int | None
) -> tuple[float, int]:
    """Return (seconds, images) of one training pass through TorchTrainer."""
    trainer = TorchTrainer(
        model, nn.CrossEntropyLoss(), make_optimizer(model), device=device
    )
    synchronize(device)
    start = time.perf_counter()
    result = trainer.train_epoch(loader, max_batches=max_batches)
    synchronize(device)
    return time.perf_counter() - start, result.num_samples


def time_plain(
    model: nn.Module,
    loader,
    device: torch.device,
    max_batches: int | None,
    normalise: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[float, int]:
    """Return (seconds, images) of one training pass of a hand-written loop."""
    model = model.to(device)
    optimizer = make_optimizer(model)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    images = 0
    synchronize(device)
    start = time.perf_counter()
    for index, (x, y) in enumerate(loader, start=1):
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if normalise is not None:
            x = normalise(x)
        optimizer.zero_grad()
        scores = model(x)
        loss = loss_fn(scores, y)
        loss.backward()
        optimizer.step()
        # One .item() per batch for the loss and one for the correct count,
        # as the trainer does.
        loss.item()
        (scores.argmax(dim=1) == y).sum().item()
        images += len(y)
        if max_batches is not None and index >= max_batches:
            break
    synchronize(device)
    return time.perf_counter() - start, images


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default="/tmp/cifar10",
        help=(
            "CIFAR-10 image folder with train/<class>/*.jpg and test/ "
            "(default: /tmp/cifar10)"
        ),
    )
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument(
        "--max-batches",
        type=int,
        default=None,
        help=(
            f"batches per pass; default {CPU_MAX_BATCHES} on a CPU, the whole "
            "epoch on a GPU"
        ),
    )
    parser.add_argument(
        "--models", nargs="+", choices=list(MODELS), default=list(MODELS)
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="DataLoader worker processes of the references",
    )
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu"
    )
    args = parser.parse_args()

    import torchvision
    from torchvision import transforms

    device = torch.device(args.device)
    max_batches = args.max_batches
    if max_batches is None and device.type == "cpu":
        max_batches = CPU_MAX_BATCHES

    data = load_dataset("imagefolder", data_dir=args.data)
    dl_ours, _ = make_loaders(
        data, BATCH_SIZE, device=device, seed=0, max_batches=max_batches
    )
    normalize = transforms.Normalize(data.mean, data.std)
    jpeg_set = torchvision.datasets.ImageFolder(
        str(Path(args.data) / "train"),
        transform=transforms.Compose([transforms.ToTensor(), normalize]),
    )
    pin = device.type == "cuda"
    dl_jpeg = torch.utils.data.DataLoader(
        jpeg_set,
        batch_size=BATCH_SIZE,
        shuffle=True,
        num_workers=args.workers,
        pin_memory=pin,
        persistent_workers=args.workers > 0,
    )
    tensor_set = torch.utils.data.TensorDataset(data.x_train, data.y_train)
    dl_tensor = torch.utils.data.DataLoader(
        tensor_set, batch_size=BATCH_SIZE, shuffle=True, pin_memory=pin
    )
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)

    def normalise_uint8(x: torch.Tensor) -> torch.Tensor:
        return (x.float() / 255.0 - mean) / std

    passes = "whole epoch" if max_batches is None else f"first {max_batches} batches"
    print(
        f"device {device}, torch {torch.__version__}, {len(data.y_train)} training "
        f"images, batch {BATCH_SIZE}, {passes}, {args.rounds} rounds"
    )
    for name in args.models:
        torch.manual_seed(0)
        initial = MODELS[name](data.input_shape, data.num_classes)
        variants = {
            "ours": lambda m, n: time_ours(m, dl_ours, device, n),
            "jpeg": lambda m, n: time_plain(m, dl_jpeg, device, n),
            "tensor": lambda m, n: time_plain(m, dl_tensor, device, n, normalise_uint8),
        }
        # A short warm-up of each variant: worker start-up, cuDNN autotuning.
        for run in variants.values():
            run(copy.deepcopy(initial), 2)
        seconds: dict[str, list[float]] = {key: [] for key in variants}
        images: dict[str, int] = {}
        for round_index in range(args.rounds):
            order = list(variants)
            if round_index % 2:
                order.reverse()
            for key in order:
                elapsed, count = variants[key](copy.deepcopy(initial), max_batches)
                seconds[key].append(elapsed)
                images[key] = count
        median = {key: statistics.median(values) for key, values in seconds.items()}
        print(f"\n{name}: {sum(p.numel() for p in initial.parameters()):,} weights")
        for key in variants:
            line = f"  {key:6s} median {median[key]:8.2f} s for {images[key]} images"
            if device.type == "cuda":
                line += f", {images[key] / median[key]:,.0f} images/s"
            print(line)
        for key in ("jpeg", "tensor"):
            print(f"  ratio ours / {key}: {median['ours'] / median[key]:.3f}")
    if max_batches is not None:
        print(
            f"\nNOTE: only {max_batches} batches per pass were timed, not a full epoch."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
