"""Load the image data sets by name: digits, cifar10, mnist, fashion-mnist, imagefolder.

Every data set comes back as an `ImageDataset` of uint8 tensors, which
`engine.loader.FastLoader` turns into normalised float batches.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from engine.dataset_info import (
    DATA_DIR_ENV,
    DATASET_NAMES,
    DATASET_SHAPES,
    DatasetNotFoundError,
    check_data_available,
    default_cache_dir,
    default_data_dir,
    digits_csv_path,
    manual_install_text,
)
from engine.loader import FastLoader, make_loaders

__all__ = [
    "DATASET_NAMES",
    "DATASET_SHAPES",
    "DATA_DIR_ENV",
    "DatasetNotFoundError",
    "FastLoader",
    "ImageDataset",
    "check_data_available",
    "default_cache_dir",
    "default_data_dir",
    "load_dataset",
    "make_loaders",
]

log = logging.getLogger(__name__)

# Fixed seeds, so every run gets the same digits split and subsets.
SPLIT_SEED = 0
SUBSET_SEED = 1
DIGITS_TEST_FRACTION = 0.2


@dataclass
class ImageDataset:
    """A labelled image data set split into training and test parts.

    Attributes:
        name: Data set name, one of `DATASET_NAMES`.
        x_train: Training images, uint8 (N, C, H, W).
        y_train: Training labels, int64 (N,).
        x_test: Test images, uint8 (M, C, H, W).
        y_test: Test labels, int64 (M,).
        classes: Class names; label i is `classes[i]`.
        mean: Per-channel mean of the training images in [0, 1] pixel units.
        std: Per-channel standard deviation of the training images, same units.
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape (C, H, W) of one image."""
        _, channels, height, width = self.x_train.shape
        return (channels, height, width)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def __repr__(self) -> str:
        return (
            f"ImageDataset({self.name!r}, train={len(self.y_train)}, "
            f"test={len(self.y_test)}, input_shape={self.input_shape}, "
            f"classes={self.num_classes})"
        )


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    download: bool = False,
    cache_dir: str | Path | None = None,
    train_size: int | None = None,
) -> ImageDataset:
    """Load a data set by name.

    Args:
        name: One of `DATASET_NAMES`.
        data_dir: Directory of the torchvision data sets, or for "imagefolder"
            the folder holding train/ and test/. None means
            `default_data_dir()` ($LAYERLAB_DATA_DIR, else ~/.pytorch-datasets).
            Ignored for "digits", which ships with scikit-learn.
        download: Let torchvision download missing files (needs internet).
        cache_dir: Where "imagefolder" keeps its decoded-image cache; None
            means `default_cache_dir()`.
        train_size: Keep only this many training samples, taken from a fixed
            seeded permutation that is balanced over the classes.

    Returns:
        The data set, with mean and std computed from the kept training images.

    Raises:
        ValueError: For an unknown name or a `train_size` below 1.
        DatasetNotFoundError: When the files are missing (the message names
            where it looked and how to get them) or a download fails.
    """
    if name not in DATASET_NAMES:
        raise ValueError(
            f"unknown data set {name!r}; expected one of {', '.join(DATASET_NAMES)}"
        )
    if train_size is not None and train_size < 1:
        raise ValueError(f"train_size must be >= 1 or None, got {train_size}")

    if name == "digits":
        parts = _load_digits()
    elif name == "imagefolder":
        from engine.imagefolder import load_image_folder

        root = Path(data_dir).expanduser() if data_dir else default_data_dir()
        message = check_data_available(name, root)
        if message is not None:
            raise DatasetNotFoundError(message)
        cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        parts = load_image_folder(root, cache)
    else:
        root = Path(data_dir).expanduser() if data_dir else default_data_dir()
        parts = _load_torchvision(name, root, download)

    x_train, y_train, x_test, y_test, classes = parts
    if train_size is not None:
        keep = balanced_subset(y_train, train_size, seed=SUBSET_SEED)
        x_train, y_train = x_train[keep], y_train[keep]
    mean, std = channel_stats(x_train)
    dataset = ImageDataset(name, x_train, y_train, x_test, y_test, classes, mean, std)
    log.info("loaded %r", dataset)
    return dataset


Parts = tuple[Tensor, Tensor, Tensor, Tensor, list[str]]


def _load_digits() -> Parts:
    """Read scikit-learn's 8x8 digits CSV and split it 80/20, stratified by class."""
    path = digits_csv_path()
    if path is None:
        raise DatasetNotFoundError(check_data_available("digits"))
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    # Each row holds 64 pixel values 0..16 and then the label.
    pixels = np.rint(table[:, :64] * (255 / 16)).astype(np.uint8)
    labels = table[:, 64].astype(np.int64)

    train_index, test_index = stratified_split(labels, DIGITS_TEST_FRACTION, SPLIT_SEED)
    images = torch.from_numpy(pixels.reshape(-1, 1, 8, 8))
    targets = torch.from_numpy(labels)
    classes = [str(digit) for digit in range(10)]
    return (
        images[train_index].clone(),
        targets[train_index].clone(),
        images[test_index].clone(),
        targets[test_index].clone(),
        classes,
    )


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[Tensor, Tensor]:
    """Split sample indices so each class contributes `test_fraction` to the test part.

    Args:
        labels: Integer label per sample.
        test_fraction: Share of each class that goes to the test part, in (0, 1).
        seed: Seed of the shuffling.

    Returns:
        (train_index, test_index), each a shuffled int64 tensor.
    """
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        num_test = int(round(len(members) * test_fraction))
        test_parts.append(members[:num_test])
        train_parts.append(members[num_test:])
    train = rng.permutation(np.concatenate(train_parts))
    test = rng.permutation(np.concatenate(test_parts))
    return torch.from_numpy(train), torch.from_numpy(test)


def balanced_subset(labels: Tensor, size: int, seed: int) -> Tensor:
    """Pick `size` sample indices from a seeded permutation, balanced over classes.

    Samples are ranked by their position among the samples of their class in
    the permutation, so the first `size` take one of each class in turn.

    Args:
        labels: Integer label per sample.
        size: Number of indices to return; larger values return all samples.
        seed: Seed of the permutation.

    Returns:
        An int64 index tensor of min(size, len(labels)) samples.
    """
    rng = np.random.default_rng(seed)
    values = labels.numpy()
    order = rng.permutation(len(values))
    rank_in_class = np.empty(len(values), dtype=np.int64)
    for label in np.unique(values):
        members = order[values[order] == label]
        rank_in_class[members] = np.arange(len(members))
    # Sort by rank within the class, then by position in the permutation.
    position = np.empty(len(values), dtype=np.int64)
    position[order] = np.arange(len(values))
    chosen = np.lexsort((position, rank_in_class))[:size]
    return torch.from_numpy(chosen)


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Return the per-channel mean and std of uint8 images in [0, 1] pixel units."""
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    # A histogram of the 256 pixel values gives exact moments faster than
    # converting every pixel to float.
    for channel in range(images.shape[1]):
        pixels = images[:, channel].reshape(-1)
        counts = torch.bincount(pixels, minlength=256).to(torch.float64)
        total = counts.sum()
        mean = (counts * values).sum() / total
        variance = (counts * values * values).sum() / total - mean * mean
        means.append(mean.item())
        stds.append(max(variance.clamp_min(0).sqrt().item(), 1e-6))
    return tuple(means), tuple(stds)


def _load_torchvision(name: str, root: Path, download: bool) -> Parts:
    """Load cifar10, mnist or fashion-mnist through torchvision from `root`."""
    if not download:
        message = check_data_available(name, root)
        if message is not None:
            raise DatasetNotFoundError(message)

    from torchvision import datasets

    dataset_class = {
        "cifar10": datasets.CIFAR10,
        "mnist": datasets.MNIST,
        "fashion-mnist": datasets.FashionMNIST,
    }[name]
    try:
        train = dataset_class(str(root), train=True, download=download)
        test = dataset_class(str(root), train=False, download=download)
    except (OSError, RuntimeError) as error:
        # Offline downloads end in URLError (an OSError) or a RuntimeError.
        raise DatasetNotFoundError(
            f"could not load {name} from {root}: {error}. When downloading, "
            f"check the internet connection; otherwise "
            f"{manual_install_text(name, root)}"
        ) from error
    return (
        _images_nchw(train.data),
        torch.as_tensor(train.targets, dtype=torch.int64),
        _images_nchw(test.data),
        torch.as_tensor(test.targets, dtype=torch.int64),
        list(train.classes),
    )


def _images_nchw(data: np.ndarray | Tensor) -> Tensor:
    """Convert torchvision's (N, H, W, C) or (N, H, W) image data to (N, C, H, W)."""
    images = torch.as_tensor(data)
    if images.ndim == 3:
        return images.unsqueeze(1).contiguous()
    return images.permute(0, 3, 1, 2).contiguous()
