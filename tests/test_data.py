"""Data sets: digits, torchvision checks, image folders and their cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.data import (
    DATASET_NAMES,
    DATASET_SHAPES,
    DatasetNotFoundError,
    ImageDataset,
    check_data_available,
    default_data_dir,
    load_dataset,
)
from engine.imagefolder import cache_path


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    return load_dataset("digits")


def test_digits_shapes(digits):
    assert digits.x_train.dtype == torch.uint8
    assert digits.y_train.dtype == torch.int64
    assert digits.input_shape == (1, 8, 8)
    assert digits.input_shape == DATASET_SHAPES["digits"][0]
    assert digits.num_classes == 10
    assert digits.x_test.shape[1:] == (1, 8, 8)


def test_digits_split_sizes(digits):
    total = len(digits.y_train) + len(digits.y_test)
    assert total == 1797
    assert abs(len(digits.y_test) / total - 0.2) < 0.01


def test_digits_split_is_stratified(digits):
    train_counts = torch.bincount(digits.y_train, minlength=10).float()
    test_counts = torch.bincount(digits.y_test, minlength=10).float()
    share = test_counts / (train_counts + test_counts)
    assert torch.all((share - 0.2).abs() < 0.01)


def test_digits_split_is_disjoint(digits):
    train = {tuple(image.flatten().tolist()) for image in digits.x_train}
    test = [tuple(image.flatten().tolist()) for image in digits.x_test]
    # Digits has a few duplicate images, so allow a handful of exact matches.
    overlap = sum(image in train for image in test)
    assert overlap < 10


def test_digits_pixels_scaled_to_uint8_range(digits):
    assert digits.x_train.max().item() == 255
    assert digits.x_train.min().item() == 0


def test_digits_is_deterministic(digits):
    again = load_dataset("digits")
    assert torch.equal(again.x_train, digits.x_train)
    assert torch.equal(again.y_test, digits.y_test)


def test_digits_mean_and_std_from_training_split(digits):
    pixels = digits.x_train.double() / 255
    assert digits.mean[0] == pytest.approx(pixels.mean().item(), abs=1e-9)
    assert digits.std[0] == pytest.approx(pixels.std(unbiased=False).item(), abs=1e-9)


def test_train_size_keeps_balanced_subset(digits):
    subset = load_dataset("digits", train_size=20)
    counts = torch.bincount(subset.y_train, minlength=10)
    assert len(subset.y_train) == 20
    assert torch.all(counts == 2)
    assert torch.equal(subset.y_test, digits.y_test)


def test_train_size_is_deterministic():
    first = load_dataset("digits", train_size=37)
    second = load_dataset("digits", train_size=37)
    assert torch.equal(first.x_train, second.x_train)


def test_train_size_larger_than_data_keeps_all(digits):
    subset = load_dataset("digits", train_size=10_000)
    assert len(subset.y_train) == len(digits.y_train)


def test_invalid_train_size_raises():
    with pytest.raises(ValueError, match="train_size"):
        load_dataset("digits", train_size=0)


def test_unknown_dataset_raises():
    with pytest.raises(ValueError, match="unknown data set 'svhn'"):
        load_dataset("svhn")


def test_digits_loads_without_importing_sklearn():
    code = (
        "import sys; from engine.data import load_dataset; load_dataset('digits'); "
        "sys.exit(1 if 'sklearn' in sys.modules else 0)"
    )
    completed = subprocess.run([sys.executable, "-c", code], check=False)
    assert completed.returncode == 0


def test_cifar10_missing_message(tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("cifar10", data_dir=tmp_path)
    message = str(caught.value)
    assert str(tmp_path) in message
    assert "--download" in message
    assert "cifar-10-batches-py/data_batch_1" in message
    assert isinstance(caught.value, FileNotFoundError)


@pytest.mark.parametrize("name", ["cifar10", "mnist", "fashion-mnist"])
def test_check_data_available_reports_missing(tmp_path, name):
    message = check_data_available(name, tmp_path)
    assert message is not None
    assert str(tmp_path) in message


def test_check_data_available_digits():
    assert check_data_available("digits") is None


def test_check_data_available_unknown_name():
    assert "unknown data set" in check_data_available("svhn")


def test_default_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LAYERLAB_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("LAYERLAB_DATA_DIR")
    assert default_data_dir() == Path.home() / ".pytorch-datasets"


def test_mnist_loads_from_raw_files(tmp_path):
    """A data directory with torchvision's MNIST layout loads without download."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 30), ("t10k", 10)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        header = np.array([2051, count, 28, 28], dtype=">i4").tobytes()
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        header = np.array([2049, count], dtype=">i4").tobytes()
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(header + labels.tobytes())
    assert check_data_available("mnist", tmp_path) is None
    dataset = load_dataset("mnist", data_dir=tmp_path)
    assert dataset.x_train.shape == (30, 1, 28, 28)
    assert dataset.x_test.shape == (10, 1, 28, 28)
    assert dataset.num_classes == 10
    assert torch.equal(dataset.y_train, torch.arange(30) % 10)


# -- image folders -----------------------------------------------------------

CLASSES = ("cat", "dog", "fox")


def write_image_folder(root: Path, size: int = 12, per_class: int = 4) -> None:
    """Write a tiny train/test image folder of PNG and JPEG files."""
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("test", 2)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                pixels[..., 0] = label * 100
                suffix = "png" if index % 2 == 0 else "jpg"
                Image.fromarray(pixels).save(folder / f"{index}.{suffix}")


def test_image_folder_loads_pngs_and_jpegs(tmp_path):
    root = tmp_path / "images"
    write_image_folder(root)
    dataset = load_dataset("imagefolder", data_dir=root, cache_dir=tmp_path / "c")
    assert dataset.classes == list(CLASSES)
    assert dataset.x_train.shape == (12, 3, 12, 12)
    assert dataset.x_test.shape == (6, 3, 12, 12)
    assert dataset.x_train.dtype == torch.uint8
    assert torch.equal(torch.bincount(dataset.y_train), torch.tensor([4, 4, 4]))


def test_image_folder_png_pixels_exact(tmp_path):
    root = tmp_path / "images"
    write_image_folder(root)
    dataset = load_dataset("imagefolder", data_dir=root, cache_dir=tmp_path / "c")
    expected = np.array(Image.open(root / "train" / "dog" / "0.png"))
    # Training files are sorted by class, then by name: dog/0.png is sample 4.
    assert torch.equal(dataset.x_train[4], torch.from_numpy(expected).permute(2, 0, 1))
    assert dataset.y_train[4].item() == 1


def test_image_folder_writes_and_reuses_cache(tmp_path):
    root = tmp_path / "images"
    cache_dir = tmp_path / "cache"
    write_image_folder(root)
    first = load_dataset("imagefolder", data_dir=root, cache_dir=cache_dir)
    cache_file = cache_path(root, cache_dir)
    assert cache_file.is_file()
    modified = cache_file.stat().st_mtime_ns

    second = load_dataset("imagefolder", data_dir=root, cache_dir=cache_dir)
    assert cache_file.stat().st_mtime_ns == modified
    assert torch.equal(first.x_train, second.x_train)
    assert torch.load(cache_file, weights_only=True)["version"] == 1


def test_image_folder_cache_invalidated_when_file_changes(tmp_path):
    root = tmp_path / "images"
    cache_dir = tmp_path / "cache"
    write_image_folder(root)
    before = load_dataset("imagefolder", data_dir=root, cache_dir=cache_dir)

    changed = root / "train" / "cat" / "0.png"
    Image.fromarray(np.full((12, 12, 3), 7, dtype=np.uint8)).save(changed)
    stat = changed.stat()
    # Make the change visible even on file systems with coarse timestamps.
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = load_dataset("imagefolder", data_dir=root, cache_dir=cache_dir)
    assert not torch.equal(before.x_train[0], after.x_train[0])
    assert torch.all(after.x_train[0] == 7)


def test_image_folder_cache_invalidated_when_file_added(tmp_path):
    root = tmp_path / "images"
    cache_dir = tmp_path / "cache"
    write_image_folder(root)
    load_dataset("imagefolder", data_dir=root, cache_dir=cache_dir)
    pixels = np.zeros((12, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "train" / "fox" / "9.png")
    after = load_dataset("imagefolder", data_dir=root, cache_dir=cache_dir)
    assert len(after.y_train) == 13


def test_image_folder_grey_images_keep_one_channel(tmp_path):
    root = tmp_path / "grey"
    for split in ("train", "test"):
        for name in ("a", "b"):
            folder = root / split / name
            folder.mkdir(parents=True)
            pixels = np.full((5, 5), 40 if name == "a" else 200, dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(folder / "0.png")
    dataset = load_dataset("imagefolder", data_dir=root, cache_dir=tmp_path / "c")
    assert dataset.input_shape == (1, 5, 5)
    assert dataset.x_train[1, 0, 0, 0].item() == 200


def test_image_folder_resizes_odd_sizes(tmp_path):
    root = tmp_path / "images"
    write_image_folder(root, size=12)
    odd = np.zeros((20, 16, 3), dtype=np.uint8)
    Image.fromarray(odd).save(root / "test" / "cat" / "odd.png")
    dataset = load_dataset("imagefolder", data_dir=root, cache_dir=tmp_path / "c")
    assert dataset.x_test.shape == (7, 3, 12, 12)


def test_image_folder_missing_split_message(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="no test/ subfolder"):
        load_dataset("imagefolder", data_dir=tmp_path, cache_dir=tmp_path / "c")


def test_image_folder_unknown_test_class_raises(tmp_path):
    root = tmp_path / "images"
    write_image_folder(root)
    (root / "test" / "owl").mkdir()
    with pytest.raises(ValueError, match="owl"):
        load_dataset("imagefolder", data_dir=root, cache_dir=tmp_path / "c")


def test_dataset_names_match_shapes():
    assert set(DATASET_SHAPES) == set(DATASET_NAMES) - {"imagefolder"}


def test_corrupt_cifar10_files_raise_not_found(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in (
        "batches.meta",
        "test_batch",
        *(f"data_batch_{i}" for i in range(1, 6)),
    ):
        (folder / name).write_bytes(b"not a pickle")
    assert check_data_available("cifar10", tmp_path) is None
    with pytest.raises(DatasetNotFoundError, match="could not load cifar10"):
        load_dataset("cifar10", data_dir=tmp_path)
