"""Compare one augmented CIFAR-10 epoch through FastLoader and torchvision.

Both sides produce batches of 128 training images with a random 32x32 crop
after 4 pixels of zero padding, a random horizontal flip and per-channel
normalisation. Ours cuts the batches from the decoded uint8 tensors, after
the decode cache is built and timed separately. The reference is
torchvision's `ImageFolder` + `DataLoader` with two worker processes, which
decodes every JPEG every epoch. The two alternate so that load on a shared
machine hits both alike.

Run: .venv/bin/python bench/loader.py [/tmp/cifar10] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data import load_dataset  # noqa: E402
from engine.imagefolder import cache_path  # noqa: E402
from engine.loader import FastLoader  # noqa: E402

BATCH_SIZE = 128
PADDING = 4


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "root",
        nargs="?",
        default="/tmp/cifar10",
        type=Path,
        help="CIFAR-10 as an image folder with train/<class>/*.jpg and "
        "test/<class>/*.jpg (default: /tmp/cifar10)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path("/tmp/layerlab-bench-cache"),
        help="directory of the decode cache; the cache file of ROOT in it is "
        "deleted and rebuilt at the start (default: /tmp/layerlab-bench-cache)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds (default: 3)"
    )
    parser.add_argument(
        "--device", default="cpu", help="device of our loader (default: cpu)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads in this process (default: 1, as in each "
        "DataLoader worker; on a busy 2-core machine more threads slow "
        "torch's CPU kernels down)",
    )
    return parser.parse_args()


def check_data(root: Path) -> None:
    """Exit with a message unless `root` contains train/ and test/ folders."""
    missing = [split for split in ("train", "test") if not (root / split).is_dir()]
    if missing:
        sys.exit(
            f"{root} has no {' or '.join(missing)}/ folder; extract CIFAR-10 as "
            "an image folder (train/<class>/*.jpg, test/<class>/*.jpg) there"
        )


def time_ours(loader: FastLoader) -> tuple[float, int]:
    started = time.perf_counter()
    count = 0
    for x, _ in loader:
        count += x.shape[0]
    if loader.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, count


def time_torchvision(loader: torch.utils.data.DataLoader) -> tuple[float, int]:
    started = time.perf_counter()
    count = 0
    for x, _ in loader:
        count += x.shape[0]
    return time.perf_counter() - started, count


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)
    check_data(args.root)
    from torchvision import datasets, transforms

    # --- decode cache: built once, then read back as a fit would ---
    cache_path(args.root, args.cache_dir).unlink(missing_ok=True)
    started = time.perf_counter()
    load_dataset("imagefolder", data_dir=args.root, cache_dir=args.cache_dir)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    dataset = load_dataset("imagefolder", data_dir=args.root, cache_dir=args.cache_dir)
    load_s = time.perf_counter() - started
    num_images = len(dataset.y_train) + len(dataset.y_test)
    print(f"decode cache build: {build_s:.1f} s ({num_images} images, once)")
    print(f"decode cache load:  {load_s:.2f} s (every later start)")

    ours = FastLoader(
        dataset.x_train,
        dataset.y_train,
        BATCH_SIZE,
        shuffle=True,
        device=args.device,
        augment=True,
        crop_padding=PADDING,
        flip=True,
        mean=dataset.mean,
        std=dataset.std,
    )
    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=PADDING),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(dataset.mean, dataset.std),
        ]
    )
    reference = torch.utils.data.DataLoader(
        datasets.ImageFolder(str(args.root / "train"), transform=transform),
        batch_size=BATCH_SIZE,
        shuffle=True,
        num_workers=2,
    )

    # --- alternate: ours, torchvision, ours, torchvision, ... ---
    ours_times, reference_times = [], []
    for round_index in range(1, args.rounds + 1):
        ours_s, ours_count = time_ours(ours)
        reference_s, reference_count = time_torchvision(reference)
        assert ours_count == reference_count == len(dataset.y_train)
        ours_times.append(ours_s)
        reference_times.append(reference_s)
        print(
            f"round {round_index}: ours {ours_s:.3f} s, torchvision "
            f"{reference_s:.2f} s, ratio {reference_s / ours_s:.1f}x",
            flush=True,
        )

    ours_median = statistics.median(ours_times)
    reference_median = statistics.median(reference_times)
    print(
        f"median epoch of {len(dataset.y_train)} images: ours {ours_median:.3f} s "
        f"on {args.device} with {args.threads} thread(s), torchvision DataLoader "
        f"(2 workers) "
        f"{reference_median:.2f} s"
    )
    print(f"speed-up: {reference_median / ours_median:.1f}x (target: >= 10x)")
    print(
        f"speed-up with the cache load counted in one epoch: "
        f"{reference_median / (ours_median + load_s):.1f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
