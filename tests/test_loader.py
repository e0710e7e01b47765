"""FastLoader batches, seeded permutations, augmentation and make_loaders."""

from __future__ import annotations

import pytest
import torch

from engine.data import load_dataset
from engine.loader import FastLoader, make_loaders


def image_tensors(num_samples: int = 50, channels: int = 3, size: int = 8):
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(
        0, 256, (num_samples, channels, size, size), generator=generator
    ).to(torch.uint8)
    y = torch.arange(num_samples) % 5
    return x, y


def test_batches_cover_data_in_order():
    x, y = image_tensors()
    loader = FastLoader(x, y, batch_size=16)
    batches = list(loader)
    assert len(loader) == 4
    assert len(batches) == 4
    assert [len(batch_y) for _, batch_y in batches] == [16, 16, 16, 2]
    assert torch.equal(torch.cat([batch_y for _, batch_y in batches]), y)


def test_batch_dtypes_and_scaling():
    x, y = image_tensors()
    batch_x, batch_y = next(iter(FastLoader(x, y, batch_size=10)))
    assert batch_x.dtype == torch.float32
    assert batch_y.dtype == torch.int64
    assert torch.allclose(batch_x, x[:10].float() / 255)


def test_normalisation_uses_mean_and_std():
    x, y = image_tensors(channels=2)
    mean, std = (0.5, 0.25), (0.2, 0.4)
    loader = FastLoader(x, y, batch_size=50, mean=mean, std=std)
    batch_x, _ = next(iter(loader))
    expected = (x.float() / 255 - torch.tensor(mean).view(1, 2, 1, 1)) / torch.tensor(
        std
    ).view(1, 2, 1, 1)
    assert torch.allclose(batch_x, expected, atol=1e-6)


def test_drop_last_drops_partial_batch():
    x, y = image_tensors()
    loader = FastLoader(x, y, batch_size=16, drop_last=True)
    assert len(loader) == 3
    assert all(len(batch_y) == 16 for _, batch_y in loader)


def test_max_batches_limits_epoch():
    x, y = image_tensors()
    loader = FastLoader(x, y, batch_size=8, shuffle=True, max_batches=2)
    assert len(loader) == 2
    assert len(list(loader)) == 2


def test_dataset_length_and_batch_size():
    x, y = image_tensors()
    loader = FastLoader(x, y, batch_size=8)
    assert len(loader.dataset) == 50
    assert loader.batch_size == 8


def test_shuffle_is_permutation():
    x, y = image_tensors()
    loader = FastLoader(x, torch.arange(50), batch_size=16, shuffle=True)
    seen = torch.cat([batch_y for _, batch_y in loader])
    assert not torch.equal(seen, torch.arange(50))
    assert torch.equal(seen.sort().values, torch.arange(50))


def epoch_labels(loader: FastLoader, epoch: int) -> torch.Tensor:
    loader.set_epoch(epoch)
    return torch.cat([batch_y for _, batch_y in loader])


def test_set_epoch_reproduces_permutation():
    x, _ = image_tensors()
    labels = torch.arange(50)
    first = FastLoader(x, labels, batch_size=16, shuffle=True, seed=3)
    second = FastLoader(x, labels, batch_size=16, shuffle=True, seed=3)
    assert torch.equal(epoch_labels(first, 4), epoch_labels(second, 4))
    assert torch.equal(epoch_labels(first, 4), epoch_labels(first, 4))


def test_epochs_and_seeds_give_different_orders():
    x, _ = image_tensors()
    labels = torch.arange(50)
    loader = FastLoader(x, labels, batch_size=16, shuffle=True, seed=3)
    other_seed = FastLoader(x, labels, batch_size=16, shuffle=True, seed=4)
    assert not torch.equal(epoch_labels(loader, 1), epoch_labels(loader, 2))
    assert not torch.equal(epoch_labels(loader, 1), epoch_labels(other_seed, 1))


def test_iteration_without_set_epoch_advances_epoch():
    x, _ = image_tensors()
    loader = FastLoader(x, torch.arange(50), batch_size=50, shuffle=True)
    first = next(iter(loader))[1]
    second = next(iter(loader))[1]
    assert not torch.equal(first, second)
    assert loader.epoch == 2


def test_augmentation_keeps_shapes_and_changes_pixels():
    x, y = image_tensors(size=16)
    plain = FastLoader(x, y, batch_size=50)
    augmented = FastLoader(x, y, batch_size=50, augment=True, crop_padding=2)
    plain_x, _ = next(iter(plain))
    augmented_x, augmented_y = next(iter(augmented))
    assert augmented_x.shape == plain_x.shape
    assert augmented_x.dtype == torch.float32
    assert torch.equal(augmented_y, y)
    changed = (augmented_x != plain_x).flatten(1).any(dim=1)
    assert changed.float().mean() > 0.5


def test_augmentation_is_crop_of_padded_image():
    """Every augmented image equals some shifted, maybe mirrored, padded window."""
    x, y = image_tensors(num_samples=20, size=6)
    pad = 2
    loader = FastLoader(x, y, batch_size=20, augment=True, crop_padding=pad)
    augmented, _ = next(iter(loader))
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad)).float() / 255
    for index in range(20):
        windows = [
            padded[index, :, top : top + 6, left : left + 6]
            for top in range(2 * pad + 1)
            for left in range(2 * pad + 1)
        ]
        candidates = windows + [window.flip(-1) for window in windows]
        assert any(torch.allclose(augmented[index], c) for c in candidates), index


def test_flip_only_mirrors():
    x, y = image_tensors(num_samples=40)
    loader = FastLoader(x, y, batch_size=40, augment=True, crop_padding=0)
    augmented, _ = next(iter(loader))
    original = x.float() / 255
    flipped = torch.tensor(
        [
            torch.allclose(a, o.flip(-1))
            for a, o in zip(augmented, original, strict=True)
        ]
    )
    same = torch.tensor(
        [torch.allclose(a, o) for a, o in zip(augmented, original, strict=True)]
    )
    assert torch.all(flipped | same)
    assert flipped.any()
    assert same.any()


def test_augmentation_reproducible_per_epoch():
    x, y = image_tensors(size=16)
    loader = FastLoader(x, y, batch_size=25, shuffle=True, augment=True, seed=1)
    loader.set_epoch(2)
    first = torch.cat([batch_x for batch_x, _ in loader])
    loader.set_epoch(2)
    second = torch.cat([batch_x for batch_x, _ in loader])
    assert torch.equal(first, second)


def test_float_images_are_not_rescaled():
    x = torch.rand(20, 3, 8, 8)
    y = torch.zeros(20, dtype=torch.int64)
    batch_x, _ = next(iter(FastLoader(x, y, batch_size=20)))
    augmented, _ = next(iter(FastLoader(x, y, batch_size=20, augment=True)))
    assert torch.equal(batch_x, x)
    assert augmented.dtype == torch.float32
    assert augmented.shape == x.shape


def test_normalising_float_images_keeps_stored_data():
    x = torch.rand(20, 3, 8, 8)
    original = x.clone()
    y = torch.zeros(20, dtype=torch.int64)
    loader = FastLoader(x, y, batch_size=10, mean=(0.5,) * 3, std=(0.25,) * 3)
    first = [batch.clone() for batch, _ in loader]
    second = [batch for batch, _ in loader]
    assert torch.equal(x, original)
    assert torch.equal(first[0], second[0])
    assert torch.allclose(first[0], (original[:10] - 0.5) / 0.25)


def test_channels_last_input_augments_like_contiguous():
    x, y = image_tensors(size=16)
    strided = x.to(memory_format=torch.channels_last)
    first = FastLoader(x, y, batch_size=25, augment=True, seed=5)
    second = FastLoader(strided, y, batch_size=25, augment=True, seed=5)
    for (a, _), (b, _) in zip(first, second, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 4, "crop_padding": -1}, "crop_padding"),
        ({"batch_size": 4, "max_batches": 0}, "max_batches"),
        ({"batch_size": 4, "mean": (0.5,)}, "together"),
        ({"batch_size": 4, "mean": (0.5,), "std": (0.2,)}, "one per channel"),
        ({"batch_size": 4, "mean": (0, 0, 0), "std": (1, 0, 1)}, "std"),
    ],
)
def test_invalid_arguments_raise(kwargs, message):
    x, y = image_tensors()
    with pytest.raises(ValueError, match=message):
        FastLoader(x, y, **kwargs)


def test_mismatched_labels_raise():
    x, y = image_tensors()
    with pytest.raises(ValueError, match="y must have shape"):
        FastLoader(x, y[:10], batch_size=4)


def test_make_loaders_on_digits():
    dataset = load_dataset("digits")
    train, test = make_loaders(dataset, batch_size=64, bs_test=100, augment=True)
    assert train.shuffle
    assert not test.shuffle
    assert not test.augment
    assert train.crop_padding == 1
    assert not train.flip
    assert test.batch_size == 100
    assert len(test.dataset) == len(dataset.y_test)
    batch_x, batch_y = next(iter(train))
    assert batch_x.shape == (64, 1, 8, 8)
    assert batch_y.shape == (64,)


def test_make_loaders_normalises_training_data():
    dataset = load_dataset("digits")
    train, _ = make_loaders(dataset, batch_size=len(dataset.y_train))
    batch_x, _ = next(iter(train))
    assert abs(batch_x.mean().item()) < 1e-4
    assert abs(batch_x.std().item() - 1) < 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batches_on_cuda():
    x, y = image_tensors(size=16)
    loader = FastLoader(x, y, batch_size=16, shuffle=True, augment=True, device="cuda")
    batch_x, batch_y = next(iter(loader))
    assert batch_x.is_cuda
    assert batch_y.is_cuda
    assert batch_x.shape == (16, 3, 16, 16)
