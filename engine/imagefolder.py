"""Decode a folder of class-labelled images once and cache the uint8 tensors.

The folder has torchvision's `ImageFolder` layout under `train/` and `test/`:
`<root>/train/<class>/<image>` and `<root>/test/<class>/<image>`. Decoding
tens of thousands of small files takes seconds to minutes, so the decoded
tensors are saved as one `.pt` file in a cache directory. The cache stores a
fingerprint of every file's relative path, size and modification time, and
is rebuilt when any of them changes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger(__name__)

CACHE_VERSION = 1
# The extensions torchvision's ImageFolder accepts (torchvision 0.29).
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)
JPEG_EXTENSIONS = (".jpg", ".jpeg")
# Files per decode task: large enough that batched JPEG decoding pays off.
DECODE_CHUNK = 512


def list_split(
    split_dir: Path, classes: Sequence[str] | None = None
) -> tuple[list[Path], list[int], list[str]]:
    """List the images of one split as (paths, labels, class names).

    Args:
        split_dir: A folder with one subfolder of images per class.
        classes: Class names that fix the labels (those of the training
            split); None takes the sorted subfolder names.

    Returns:
        (paths, labels, classes), with paths sorted within each class.

    Raises:
        ValueError: When a class folder is not among `classes`.
    """
    found = sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir())
    if classes is None:
        classes = found
    label_of = {name: index for index, name in enumerate(classes)}
    paths: list[Path] = []
    labels: list[int] = []
    for name in found:
        if name not in label_of:
            raise ValueError(
                f"class folder {split_dir / name} does not exist in the training "
                f"split; expected one of {', '.join(classes)}"
            )
        files = sorted(
            entry.name
            for entry in os.scandir(split_dir / name)
            if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS)
        )
        paths.extend(split_dir / name / file for file in files)
        labels.extend([label_of[name]] * len(files))
    return paths, labels, list(classes)


def fingerprint(root: Path, paths: Sequence[Path]) -> str:
    """Hash the relative path, size and modification time of every file."""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        relative = path.relative_to(root).as_posix()
        digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_path(root: Path, cache_dir: Path) -> Path:
    """Return the cache file of the image folder `root` inside `cache_dir`."""
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir / f"imagefolder-{root.resolve().name}-{key}.pt"


def _decode_one(path: Path) -> Tensor:
    from torchvision.io import ImageReadMode, decode_image, read_file

    try:
        return decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except RuntimeError:
        # torchvision.io has no BMP, PPM or TIFF decoder; PIL reads them.
        from PIL import Image

        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
        return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def _decode_chunk(paths: Sequence[Path]) -> list[Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    if all(path.suffix.lower() in JPEG_EXTENSIONS for path in paths):
        try:
            data = [read_file(str(path)) for path in paths]
            return list(decode_jpeg(data, mode=ImageReadMode.RGB))
        except RuntimeError:
            log.debug("batched JPEG decode failed; decoding files one by one")
    return [_decode_one(path) for path in paths]


def decode_images(paths: Sequence[Path], workers: int | None = None) -> list[Tensor]:
    """Decode image files to uint8 (3, H, W) tensors, in chunks on a thread pool.

    Args:
        paths: Image files.
        workers: Threads; None uses the number of CPU cores.

    Returns:
        One RGB tensor per path, in the order of `paths`.
    """
    chunks = [paths[i : i + DECODE_CHUNK] for i in range(0, len(paths), DECODE_CHUNK)]
    workers = workers or os.cpu_count() or 1
    # NOTE: torchvision 0.29 deprecates its image decoders in favour of
    # TorchCodec and warns on every call. They still work, so the warning is
    # silenced here until the project depends on TorchCodec.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*image decoding", category=DeprecationWarning
        )
        with ThreadPoolExecutor(max_workers=workers) as pool:
            decoded = list(pool.map(_decode_chunk, chunks))
    return [image for chunk in decoded for image in chunk]


def stack_images(
    images: list[Tensor], paths: Sequence[Path], size: tuple[int, int]
) -> Tensor:
    """Stack images into (N, 3, H, W), resizing those not of `size` (H, W)."""
    from torchvision.transforms.v2.functional import resize

    resized = [index for index, image in enumerate(images) if image.shape[1:] != size]
    for index in resized:
        images[index] = resize(images[index], list(size), antialias=True)
    if resized:
        log.warning(
            "resized %d of %d images to %dx%d (the most common size), for example %s",
            len(resized),
            len(images),
            size[0],
            size[1],
            paths[resized[0]],
        )
    if not images:
        return torch.zeros((0, 3, *size), dtype=torch.uint8)
    return torch.stack(images)


def build_arrays(root: Path) -> dict[str, object]:
    """Decode both splits of the image folder `root` into uint8 tensors.

    Images of another size than the most common training size are resized to
    it. When every image is grey (all three channels equal), one channel is
    kept.

    Returns:
        A dict with "classes", "x_train", "y_train", "x_test", "y_test".

    Raises:
        ValueError: When the training split has no images or the test split
            has a class folder the training split lacks.
    """
    train_paths, train_labels, classes = list_split(root / "train")
    test_paths, test_labels, _ = list_split(root / "test", classes)
    if not train_paths:
        raise ValueError(f"image folder {root / 'train'} contains no images")

    started = time.perf_counter()
    train_images = decode_images(train_paths)
    test_images = decode_images(test_paths)
    sizes = Counter(tuple(image.shape[1:]) for image in train_images)
    size = sizes.most_common(1)[0][0]
    x_train = stack_images(train_images, train_paths, size)
    x_test = stack_images(test_images, test_paths, size)
    if _is_grey(x_train) and _is_grey(x_test):
        x_train, x_test = x_train[:, :1].clone(), x_test[:, :1].clone()
    log.info(
        "decoded %d images from %s in %.1f s",
        len(train_paths) + len(test_paths),
        root,
        time.perf_counter() - started,
    )
    return {
        "classes": classes,
        "x_train": x_train,
        "y_train": torch.tensor(train_labels, dtype=torch.int64),
        "x_test": x_test,
        "y_test": torch.tensor(test_labels, dtype=torch.int64),
    }


def _is_grey(images: Tensor) -> bool:
    return bool(
        torch.equal(images[:, 0], images[:, 1])
        and torch.equal(images[:, 1], images[:, 2])
    )


def _read_cache(path: Path, expected: str) -> dict[str, object] | None:
    if not path.is_file():
        return None
    try:
        cached = torch.load(path, weights_only=True)
    except (OSError, RuntimeError, EOFError) as error:
        # weights_only=True rejects anything but tensors and plain containers.
        log.warning("ignoring unreadable image cache %s: %s", path, error)
        return None
    if not isinstance(cached, dict):
        return None
    if cached.get("version") != CACHE_VERSION or cached.get("fingerprint") != expected:
        log.info("image cache %s is out of date; decoding again", path)
        return None
    return cached


def _write_cache(path: Path, arrays: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(arrays, temporary)
    os.replace(temporary, path)


def load_image_folder(
    root: Path, cache_dir: Path
) -> tuple[Tensor, Tensor, Tensor, Tensor, list[str]]:
    """Load an image folder, from its decode cache when that is up to date.

    Args:
        root: Folder with train/ and test/ subfolders of class folders.
        cache_dir: Directory of the cache file; created when missing.

    Returns:
        (x_train, y_train, x_test, y_test, classes) with uint8 images.
    """
    train_paths, _, _ = list_split(root / "train")
    test_paths, _, _ = list_split(root / "test")
    expected = fingerprint(root, [*train_paths, *test_paths])
    path = cache_path(root, cache_dir)

    arrays = _read_cache(path, expected)
    if arrays is None:
        arrays = build_arrays(root)
        arrays["version"] = CACHE_VERSION
        arrays["fingerprint"] = expected
        arrays["root"] = str(root.resolve())
        _write_cache(path, arrays)
        log.info("wrote image cache %s", path)
    else:
        log.info("read image cache %s", path)
    return (
        arrays["x_train"],
        arrays["y_train"],
        arrays["x_test"],
        arrays["y_test"],
        list(arrays["classes"]),
    )
