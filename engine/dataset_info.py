"""Data set names, shapes and file checks that need no torch.

The command line and the TUI use these to validate a data set choice before
torch is loaded; `engine.data` loads the data itself.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

DATASET_NAMES: tuple[str, ...] = (
    "digits",
    "cifar10",
    "mnist",
    "fashion-mnist",
    "imagefolder",
)

# (C, H, W) and number of classes; "imagefolder" depends on the folder.
DATASET_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "digits": ((1, 8, 8), 10),
    "cifar10": ((3, 32, 32), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion-mnist": ((1, 28, 28), 10),
}

DATA_DIR_ENV = "LAYERLAB_DATA_DIR"
CACHE_DIR_ENV = "LAYERLAB_CACHE_DIR"

# Files that torchvision 0.29 expects under the data directory after a download.
TORCHVISION_FILES: dict[str, tuple[str, ...]] = {
    "cifar10": tuple(
        f"cifar-10-batches-py/{name}"
        for name in (
            "batches.meta",
            "data_batch_1",
            "data_batch_2",
            "data_batch_3",
            "data_batch_4",
            "data_batch_5",
            "test_batch",
        )
    ),
    "mnist": tuple(
        f"MNIST/raw/{name}"
        for name in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    ),
    "fashion-mnist": tuple(
        f"FashionMNIST/raw/{name}"
        for name in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    ),
}


class DatasetNotFoundError(FileNotFoundError):
    """Missing data set files; the message names the path searched and the fix."""


def default_data_dir() -> Path:
    """Return the data directory: `$LAYERLAB_DATA_DIR`, else ~/.pytorch-datasets."""
    value = os.environ.get(DATA_DIR_ENV)
    if value:
        return Path(value).expanduser()
    return Path.home() / ".pytorch-datasets"


def default_cache_dir() -> Path:
    """Return the decode cache directory: $LAYERLAB_CACHE_DIR or ~/.cache/layerlab."""
    value = os.environ.get(CACHE_DIR_ENV)
    if value:
        return Path(value).expanduser()
    return Path.home() / ".cache" / "layerlab"


def digits_csv_path() -> Path | None:
    """Return the path of scikit-learn's bundled digits CSV, or None if missing.

    The package is located without importing it, which would take seconds.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


def check_data_available(
    name: str,
    data_dir: str | Path | None = None,
    *,
    download_control: str = "--download",
    data_dir_control: str = "--data-dir",
) -> str | None:
    """Check that the files of a data set exist, without loading them.

    Args:
        name: One of `DATASET_NAMES`.
        data_dir: The data directory (for "imagefolder", the folder holding
            train/ and test/); None means `default_data_dir()`.
        download_control: Name of the control that requests a download,
            such as the command-line option or a checkbox of a form.
        data_dir_control: Name of the control that sets the data directory.

    Returns:
        None when the data is there, else a message that names where it looked
        and how to get the data.
    """
    if name not in DATASET_NAMES:
        return f"unknown data set {name!r}; expected one of {', '.join(DATASET_NAMES)}"
    if name == "digits":
        if digits_csv_path() is None:
            return (
                "the digits data set ships with scikit-learn, which is not "
                "installed; install it with: pip install scikit-learn"
            )
        return None
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if name == "imagefolder":
        return _check_image_folder(root, data_dir_control)
    missing = [rel for rel in TORCHVISION_FILES[name] if not (root / rel).is_file()]
    if not missing:
        return None
    more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
    return (
        f"{name} not found in {root} (missing {missing[0]}{more}). "
        f"Download it with {download_control} (needs internet), or "
        f"{manual_install_text(name, root, data_dir_control)}"
    )


def manual_install_text(
    name: str, root: Path, data_dir_control: str = "--data-dir"
) -> str:
    """Describe how to put the files of a torchvision data set in place by hand."""
    expected = ", ".join(TORCHVISION_FILES[name])
    return (
        f"copy the files that torchvision downloads into {root}: {expected}. "
        f"Set another directory with {data_dir_control} or ${DATA_DIR_ENV}."
    )


def _check_image_folder(root: Path, data_dir_control: str) -> str | None:
    layout = "<dir>/train/<class>/<image> and <dir>/test/<class>/<image>"
    for split in ("train", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            return (
                f"image folder {root} has no {split}/ subfolder; expected the "
                f"layout {layout}. Pass the folder with {data_dir_control}."
            )
        if not any(child.is_dir() for child in split_dir.iterdir()):
            return (
                f"image folder {split_dir} has no class subfolders; expected the "
                f"layout {layout}"
            )
    return None
