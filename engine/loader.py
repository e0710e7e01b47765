"""A data loader that keeps the whole data set as one tensor on the device.

Small image data sets (digits, MNIST, CIFAR-10) fit in device memory as uint8,
so batches can be cut from one tensor with a permutation. Augmentation runs on
whole batches on the device, with no worker processes and no per-image Python
work.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from engine.data import ImageDataset

log = logging.getLogger(__name__)

# Data sets whose classes do not change under a horizontal flip.
FLIP_INVARIANT = ("cifar10", "fashion-mnist", "imagefolder")


class TensorData:
    """The samples behind a `FastLoader`, so `len(loader.dataset)` works."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.x[index], self.y[index]


def _mix_seed(*values: int) -> int:
    """Derive one 63-bit seed from several integers, for example (seed, epoch)."""
    state = np.random.SeedSequence([int(v) for v in values]).generate_state(2)
    return int((int(state[0]) << 31) ^ int(state[1]))


class FastLoader:
    """Iterate over (x, y) batches cut from tensors held on one device.

    Images are stored as given (uint8 stays uint8) and converted per batch:
    uint8 pixels are scaled to [0, 1], then `(x - mean) / std` is applied when
    `mean` and `std` are set. With `augment`, each image in a batch is
    randomly cropped after zero padding and, with `flip`, flipped
    horizontally with probability 0.5, all on the device in one gather.

    The order of an epoch depends only on (seed, epoch), so a resumed fit that
    calls `set_epoch` gets the same batches as an uninterrupted one. Without
    `set_epoch`, each new iteration advances the epoch by one.

    Args:
        x: Images (N, C, H, W), uint8 (pixels 0..255) or floating point.
        y: Integer labels (N,).
        batch_size: Samples per batch, >= 1.
        shuffle: Draw a new seeded permutation every epoch.
        seed: Seed of the permutations and of the augmentation.
        device: Where the data and the batches live; None keeps x's device.
        augment: Apply random crop (and flip) to the training batches.
        crop_padding: Zero padding in pixels on each side before cropping back
            to (H, W); 0 disables the crop.
        flip: With `augment`, flip images horizontally at random.
        mean: Per-channel mean in [0, 1] pixel units, or None for no
            normalisation.
        std: Per-channel standard deviation in [0, 1] pixel units.
        max_batches: Stop each epoch after this many batches; None for all.
        drop_last: Drop the last batch when it is smaller than `batch_size`.

    Raises:
        ValueError: On mismatched shapes, a batch size below 1, negative
            padding, `max_batches` below 1, or mean/std with the wrong length.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        device: torch.device | str | None = None,
        augment: bool = False,
        crop_padding: int = 4,
        flip: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        max_batches: int | None = None,
        drop_last: bool = False,
    ) -> None:
        if x.ndim != 4:
            raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
        if max_batches is not None and max_batches < 1:
            raise ValueError(f"max_batches must be >= 1 or None, got {max_batches}")
        if (mean is None) != (std is None):
            raise ValueError("mean and std must be given together")

        self.device = torch.device(device) if device is not None else x.device
        x = x.to(self.device).contiguous()
        self.dataset = TensorData(x, y.to(self.device, torch.int64))
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.augment = augment
        self.crop_padding = crop_padding
        self.flip = flip
        self.max_batches = max_batches
        self.drop_last = drop_last
        self.epoch = 0
        self._scale, self._shift = self._affine(x, mean, std)

    def _affine(
        self, x: Tensor, mean: Sequence[float] | None, std: Sequence[float] | None
    ) -> tuple[Tensor, Tensor]:
        """Fold uint8 scaling and normalisation into one `x * scale + shift`."""
        channels = x.shape[1]
        pixel_scale = 1 / 255 if x.dtype == torch.uint8 else 1.0
        if mean is None or std is None:
            mean, std = [0.0] * channels, [1.0] * channels
        if len(mean) != channels or len(std) != channels:
            raise ValueError(
                f"mean and std need {channels} values (one per channel), "
                f"got {len(mean)} and {len(std)}"
            )
        if any(s <= 0 for s in std):
            raise ValueError(f"std values must be > 0, got {tuple(std)}")
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        scale = (pixel_scale / std_t).to(self.device)
        shift = (-mean_t / std_t).to(self.device)
        return scale, shift

    def set_epoch(self, epoch: int) -> None:
        """Fix the epoch whose permutation and augmentation the next iteration uses."""
        self.epoch = epoch

    def __len__(self) -> int:
        num_samples = len(self.dataset)
        if self.drop_last:
            full = num_samples // self.batch_size
        else:
            full = math.ceil(num_samples / self.batch_size)
        if self.max_batches is not None:
            return min(full, self.max_batches)
        return full

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch = self.epoch
        self.epoch += 1
        return self._batches(epoch)

    def _batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        x_all, y_all = self.dataset.x, self.dataset.y
        num_samples = x_all.shape[0]
        order = None
        if self.shuffle:
            generator = torch.Generator().manual_seed(_mix_seed(self.seed, epoch))
            order = torch.randperm(num_samples, generator=generator).to(self.device)
        aug_generator = None
        if self.augment:
            aug_generator = torch.Generator(device=self.device)
            aug_generator.manual_seed(_mix_seed(self.seed, epoch, 1))

        for index in range(len(self)):
            start = index * self.batch_size
            stop = min(start + self.batch_size, num_samples)
            if order is not None:
                batch_index = order[start:stop]
            elif aug_generator is not None:
                batch_index = torch.arange(start, stop, device=self.device)
            else:
                batch_index = None

            if aug_generator is not None:
                x = self._crop_and_flip(batch_index, aug_generator)
                y = y_all[batch_index]
            elif batch_index is not None:
                x, y = x_all[batch_index], y_all[batch_index]
            else:
                x, y = x_all[start:stop], y_all[start:stop]
            yield self._normalise(x), y

    def _normalise(self, x: Tensor) -> Tensor:
        # Out of place: for float32 data, x may be a view of the stored data.
        return torch.addcmul(self._shift, x.float(), self._scale)

    def _crop_and_flip(self, batch_index: Tensor, generator: torch.Generator) -> Tensor:
        """Gather randomly shifted, maybe mirrored windows of the chosen images.

        A window shifted by up to `crop_padding` pixels equals a crop of the
        zero-padded image. Pixels that fall outside the image are masked to
        zero, so no padded copy of the batch is made, and one `take` reads
        the whole batch straight from the stored data.
        """
        x_all = self.dataset.x
        _, channels, height, width = x_all.shape
        batch = batch_index.shape[0]
        pad = self.crop_padding
        device = x_all.device

        top = torch.randint(
            -pad, pad + 1, (batch, 1), generator=generator, device=device
        )
        left = torch.randint(
            -pad, pad + 1, (batch, 1), generator=generator, device=device
        )
        rows = top + torch.arange(height, device=device)
        columns = torch.arange(width, device=device).expand(batch, width)
        if self.flip:
            flipped = torch.rand(batch, 1, generator=generator, device=device) < 0.5
            columns = torch.where(flipped, width - 1 - columns, columns)
        columns = columns + left
        inside = ((rows >= 0) & (rows < height)).view(batch, 1, height, 1) & (
            (columns >= 0) & (columns < width)
        ).view(batch, 1, 1, width)

        # Flat index of pixel (sample, channel, row, column) in the stored data.
        sample_offset = batch_index.view(batch, 1, 1, 1) * (channels * height * width)
        channel_offset = torch.arange(channels, device=device).view(1, -1, 1, 1)
        flat = (
            sample_offset
            + channel_offset * (height * width)
            + rows.clamp(0, height - 1).view(batch, 1, height, 1) * width
            + columns.clamp(0, width - 1).view(batch, 1, 1, width)
        )
        return x_all.reshape(-1).take(flat) * inside

    def __repr__(self) -> str:
        return (
            f"FastLoader({len(self.dataset)} samples, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, augment={self.augment}, device={self.device})"
        )


def make_loaders(
    dataset: ImageDataset,
    batch_size: int,
    bs_test: int | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
    augment: bool = False,
    max_batches: int | None = None,
) -> tuple[FastLoader, FastLoader]:
    """Build the training and test loaders of a data set, normalised by its statistics.

    The training loader shuffles; the test loader keeps the stored order and
    never augments. With `augment`, the crop padding is an eighth of the
    image height (4 pixels for 32x32, 1 for 8x8), and images are flipped
    only for data sets whose classes survive a mirror image (not digits or
    MNIST).

    Args:
        dataset: The loaded data set.
        batch_size: Training batch size.
        bs_test: Test batch size; None uses `batch_size`.
        device: Device for the data and batches; None keeps the CPU.
        seed: Seed of the shuffling and augmentation.
        augment: Random crop and flip on the training batches.
        max_batches: Limit both loaders to this many batches per epoch.

    Returns:
        (train_loader, test_loader).
    """
    height = dataset.x_train.shape[2]
    train = FastLoader(
        dataset.x_train,
        dataset.y_train,
        batch_size,
        shuffle=True,
        seed=seed,
        device=device,
        augment=augment,
        crop_padding=max(1, height // 8),
        flip=dataset.name in FLIP_INVARIANT,
        mean=dataset.mean,
        std=dataset.std,
        max_batches=max_batches,
    )
    test = FastLoader(
        dataset.x_test,
        dataset.y_test,
        bs_test or batch_size,
        device=device,
        mean=dataset.mean,
        std=dataset.std,
        max_batches=max_batches,
    )
    return train, test
