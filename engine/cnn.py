"""Convolutional and residual image classifiers built from PyTorch modules.

Every model here works out the shape that enters its classifier by arithmetic
on the layers' parameters (``feature_shape``), never by a forward pass, so
building a model draws from torch's random number generator only to initialise
its weights. Seeding once therefore gives the same weights for the same layers
whatever the surrounding architecture.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "lrelu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}

POOLINGS: dict[str, type[nn.Module]] = {
    "max": nn.MaxPool2d,
    "avg": nn.AvgPool2d,
}

DEFAULT_CONV_PARAMS: dict[str, Any] = {"kernel_size": 3, "padding": 1}
DEFAULT_POOLING_PARAMS: dict[str, Any] = {"kernel_size": 2}

# Layers that keep the shape of their input.
_SHAPE_PRESERVING = (
    nn.BatchNorm2d,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    *ACTIVATIONS.values(),
)


def make_activation(name: str, params: Mapping[str, Any] | None = None) -> nn.Module:
    """Create the activation module registered under ``name``.

    Args:
        name: a key of ``ACTIVATIONS``.
        params: keyword arguments of the activation's constructor.

    Returns:
        A new activation module.

    Raises:
        ValueError: if ``name`` is not a known activation.
    """
    if name not in ACTIVATIONS:
        known = ", ".join(ACTIVATIONS)
        raise ValueError(f"invalid activation_type {name!r}; expected one of: {known}")
    return ACTIVATIONS[name](**dict(params or {}))


def make_pooling(name: str, params: Mapping[str, Any] | None = None) -> nn.Module:
    """Create the pooling module registered under ``name``.

    Args:
        name: a key of ``POOLINGS``.
        params: keyword arguments of the pooling layer, 2x2 when None.

    Returns:
        A new pooling module.

    Raises:
        ValueError: if ``name`` is not a known pooling.
    """
    if name not in POOLINGS:
        known = ", ".join(POOLINGS)
        raise ValueError(f"invalid pooling_type {name!r}; expected one of: {known}")
    if params is None:
        params = DEFAULT_POOLING_PARAMS
    return POOLINGS[name](**dict(params))


# --- shape arithmetic ---------------------------------------------------------


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def _sliding_output(
    size: int, kernel: int, stride: int, padding: int, dilation: int, ceil: bool
) -> int:
    # The formula of torch.nn.Conv2d and MaxPool2d/AvgPool2d (torch 2.x docs).
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if ceil:
        out = -(-span // stride) + 1
        # The last window must start inside the input or its left padding.
        if (out - 1) * stride >= size + padding:
            out -= 1
        return out
    return span // stride + 1


def _conv_or_pool_output(layer: nn.Module, height: int, width: int) -> tuple[int, int]:
    if isinstance(layer, nn.Conv2d):
        if layer.padding == "same":
            return height, width
        padding = (0, 0) if layer.padding == "valid" else _pair(layer.padding)
        params = (layer.kernel_size, layer.stride, padding, layer.dilation)
        ceil = False
    else:
        stride = layer.stride if layer.stride else layer.kernel_size
        dilation = getattr(layer, "dilation", 1)
        params = (layer.kernel_size, stride, layer.padding, dilation)
        ceil = layer.ceil_mode
    kernel, stride, padding, dilation = (_pair(p) for p in params)
    out_height = _sliding_output(
        height, kernel[0], stride[0], padding[0], dilation[0], ceil
    )
    out_width = _sliding_output(
        width, kernel[1], stride[1], padding[1], dilation[1], ceil
    )
    return out_height, out_width


def feature_shape(
    layers: nn.Module, in_shape: Sequence[int], prefix: str = ""
) -> tuple[int, ...]:
    """Compute the output shape of ``layers`` for one input of ``in_shape``.

    The shape follows from each layer's parameters alone: nothing runs and no
    random numbers are drawn.

    Args:
        layers: a layer of this module's models, or an ``nn.Sequential`` of them.
        in_shape: the input shape without the batch dimension, ``(C, H, W)``.
        prefix: text put before layer indices in error messages.

    Returns:
        ``(C, H, W)``, or ``(F,)`` after an ``nn.Flatten``.

    Raises:
        ValueError: if a layer shrinks the feature map to nothing.
        TypeError: for a layer whose effect on the shape is not known here.
    """
    shape = tuple(int(s) for s in in_shape)
    if isinstance(layers, nn.Sequential):
        for index, layer in enumerate(layers):
            shape = feature_shape(layer, shape, prefix=f"{prefix}{index}")
        return shape
    if isinstance(layers, ResidualBlock):
        feature_shape(layers.main_path, shape, prefix=f"{prefix}.main_path.")
        return (layers.out_channels, *shape[1:])
    if isinstance(layers, _SHAPE_PRESERVING):
        return shape
    if isinstance(layers, nn.Flatten):
        count = 1
        for size in shape:
            count *= size
        return (count,)
    if isinstance(layers, nn.AdaptiveAvgPool2d):
        return (shape[0], *_pair(layers.output_size))
    if isinstance(layers, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
        channels, height, width = shape
        out_height, out_width = _conv_or_pool_output(layers, height, width)
        if out_height < 1 or out_width < 1:
            raise ValueError(
                f"layer {prefix} ({layers}) shrinks the {height}x{width} feature "
                f"map to {out_height}x{out_width}; use fewer pooling layers "
                "(a larger pool_every), fewer convolutions, or more padding"
            )
        if isinstance(layers, nn.Conv2d):
            channels = layers.out_channels
        return channels, out_height, out_width
    raise TypeError(f"cannot compute the output shape of layer {prefix} ({layers})")


def _check_channels(channels: Sequence[int], pool_every: int) -> None:
    if any(int(c) < 1 for c in channels):
        raise ValueError(f"channels must be positive integers, got {list(channels)}")
    if int(pool_every) < 1:
        raise ValueError(f"pool_every must be at least 1, got {pool_every}")


# --- plain convolutional classifier -------------------------------------------


class ConvClassifier(nn.Module):
    """A convolutional classifier of the form
    ``[(CONV -> ACT) x P -> POOL] x (N / P) -> (LINEAR -> ACT) x M -> LINEAR``.

    N is ``len(channels)``, P is ``pool_every`` and M is ``len(hidden_dims)``.
    When N is not a multiple of P, the last ``N % P`` CONV -> ACT pairs follow
    without a pool. Layers are created, and so initialised, in that order.

    Args:
        in_size: input shape ``(C, H, W)``.
        out_classes: number of classes, the size of the output.
        channels: output channels of each convolution.
        pool_every: P, the number of convolutions before each pool.
        hidden_dims: widths of the hidden linear layers.
        conv_params: keyword arguments of every ``nn.Conv2d``; None means
            ``kernel_size=3, padding=1``.
        activation_type: a key of ``ACTIVATIONS``.
        activation_params: keyword arguments of every activation.
        pooling_type: a key of ``POOLINGS``.
        pooling_params: keyword arguments of every pooling layer; None means
            ``kernel_size=2``.

    Raises:
        ValueError: for an unknown activation or pooling name, invalid
            channels, or feature maps that shrink to nothing.
    """

    def __init__(
        self,
        in_size: Sequence[int],
        out_classes: int,
        channels: Sequence[int],
        pool_every: int,
        hidden_dims: Sequence[int],
        conv_params: Mapping[str, Any] | None = None,
        activation_type: str = "relu",
        activation_params: Mapping[str, Any] | None = None,
        pooling_type: str = "max",
        pooling_params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if len(in_size) != 3:
            raise ValueError(f"in_size must be (C, H, W), got {tuple(in_size)}")
        _check_channels(channels, pool_every)
        # Name checks first, so that a bad name fails before any layer exists.
        make_activation(activation_type, activation_params)
        make_pooling(pooling_type, pooling_params)
        self.in_size = tuple(int(s) for s in in_size)
        self.out_classes = int(out_classes)
        self.channels = [int(c) for c in channels]
        self.pool_every = int(pool_every)
        self.hidden_dims = [int(h) for h in hidden_dims]
        self.conv_params = dict(
            DEFAULT_CONV_PARAMS if conv_params is None else conv_params
        )
        self.activation_type = activation_type
        self.activation_params = dict(activation_params or {})
        self.pooling_type = pooling_type
        self.pooling_params = dict(
            DEFAULT_POOLING_PARAMS if pooling_params is None else pooling_params
        )

        self.feature_extractor = self._make_feature_extractor()
        features = feature_shape(
            self.feature_extractor, self.in_size, prefix="feature_extractor."
        )
        self.num_features = 1
        for size in features:
            self.num_features *= size
        self.classifier = self._make_classifier()

    def _activation(self) -> nn.Module:
        return make_activation(self.activation_type, self.activation_params)

    def _pooling(self) -> nn.Module:
        return make_pooling(self.pooling_type, self.pooling_params)

    def _make_feature_extractor(self) -> nn.Sequential:
        if "kernel_size" not in self.conv_params:
            raise ValueError(
                f"conv_params must contain kernel_size, got {self.conv_params}"
            )
        layers: list[nn.Module] = []
        in_channels = self.in_size[0]
        for index, out_channels in enumerate(self.channels, start=1):
            layers.append(nn.Conv2d(in_channels, out_channels, **self.conv_params))
            layers.append(self._activation())
            if index % self.pool_every == 0:
                layers.append(self._pooling())
            in_channels = out_channels
        return nn.Sequential(*layers)

    def _make_classifier(self) -> nn.Sequential:
        layers: list[nn.Module] = []
        in_features = self.num_features
        for width in self.hidden_dims:
            layers.append(nn.Linear(in_features, width))
            layers.append(self._activation())
            in_features = width
        layers.append(nn.Linear(in_features, self.out_classes))
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Return the class scores (logits) of a batch ``(N, C, H, W)``."""
        features = self.feature_extractor(x)
        return self.classifier(features.flatten(start_dim=1))


# --- residual blocks -----------------------------------------------------------


class ResidualBlock(nn.Module):
    """A residual block: ``relu(main_path(x) + shortcut_path(x))``.

    The main path is a chain of convolutions whose padding keeps the spatial
    size. Each convolution but the last is followed by ``Dropout2d`` (when
    ``dropout > 0``), ``BatchNorm2d`` (when ``batchnorm``) and the activation,
    in that order. The shortcut is the identity when ``in_channels`` equals
    ``channels[-1]``, else a bias-free 1x1 convolution. The main path's layers
    are created before the shortcut's.

    Args:
        in_channels: channels of the input.
        channels: output channels of each convolution of the main path.
        kernel_sizes: odd kernel size of each convolution.
        batchnorm: add ``BatchNorm2d`` after each convolution but the last.
        dropout: ``Dropout2d`` probability after each convolution but the
            last; 0 adds no dropout layer.
        activation_type: a key of ``ACTIVATIONS``.
        activation_params: keyword arguments of the activation.

    Raises:
        ValueError: for mismatched or empty channels and kernel sizes, an even
            kernel size, a dropout outside [0, 1) or an unknown activation.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        kernel_sizes: Sequence[int],
        batchnorm: bool = False,
        dropout: float = 0.0,
        activation_type: str = "relu",
        activation_params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError("channels must contain at least one entry")
        if len(channels) != len(kernel_sizes):
            raise ValueError(
                f"channels and kernel_sizes must have the same length, got "
                f"{len(channels)} channels and {len(kernel_sizes)} kernel sizes"
            )
        if any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(
                "kernel sizes must be odd positive integers so that padding "
                f"keeps the spatial size, got {list(kernel_sizes)}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        make_activation(activation_type, activation_params)
        self.in_channels = int(in_channels)
        self.out_channels = int(channels[-1])

        layers: list[nn.Module] = []
        current = self.in_channels
        last = len(channels) - 1
        for index, (width, kernel) in enumerate(
            zip(channels, kernel_sizes, strict=True)
        ):
            layers.append(nn.Conv2d(current, width, kernel, padding=kernel // 2))
            if index < last:
                if dropout > 0:
                    layers.append(nn.Dropout2d(dropout))
                if batchnorm:
                    layers.append(nn.BatchNorm2d(width))
                layers.append(make_activation(activation_type, activation_params))
            current = width
        self.main_path = nn.Sequential(*layers)

        if self.in_channels == self.out_channels:
            self.shortcut_path: nn.Module = nn.Identity()
        else:
            self.shortcut_path = nn.Conv2d(
                self.in_channels, self.out_channels, kernel_size=1, bias=False
            )

    def forward(self, x: Tensor) -> Tensor:
        """Return ``relu(main_path(x) + shortcut_path(x))``."""
        return torch.relu(self.main_path(x) + self.shortcut_path(x))


class ResidualBottleneckBlock(ResidualBlock):
    """A residual bottleneck block with an identity shortcut.

    The main path is a 1x1 convolution from ``in_out_channels`` down to
    ``inner_channels[0]``, then one convolution per inner channel count with
    the given kernel sizes, then a 1x1 convolution back up to
    ``in_out_channels``.

    Args:
        in_out_channels: channels of the input and of the output.
        inner_channels: output channels of the inner convolutions.
        inner_kernel_sizes: odd kernel size of each inner convolution.
        **kwargs: ``batchnorm``, ``dropout``, ``activation_type`` and
            ``activation_params`` of ``ResidualBlock``.

    Raises:
        ValueError: as ``ResidualBlock`` does.
    """

    def __init__(
        self,
        in_out_channels: int,
        inner_channels: Sequence[int],
        inner_kernel_sizes: Sequence[int],
        **kwargs: Any,
    ) -> None:
        if not inner_channels:
            raise ValueError("inner_channels must contain at least one entry")
        super().__init__(
            in_out_channels,
            [inner_channels[0], *inner_channels, in_out_channels],
            [1, *inner_kernel_sizes, 1],
            **kwargs,
        )


# --- residual network classifier -------------------------------------------------


class ResNetClassifier(ConvClassifier):
    """A classifier whose feature extractor is a stack of residual blocks.

    The channels are split into groups of ``pool_every``. Each group becomes a
    ``ResidualBlock`` of 3x3 convolutions followed by a pooling layer. A
    trailing partial group becomes a last block without a pool. With
    ``bottleneck=True``, a group of at least three channels whose last entry
    equals the block's input channels becomes a ``ResidualBottleneckBlock``.
    Its 1x1 projection down to ``group[1]`` takes the place of the group's
    first convolution. The 3x3 convolutions then follow ``group[1:-1]``, and a
    1x1 projection returns to ``group[-1]``. The classifier is the one of
    ``ConvClassifier``.

    Args:
        in_size, out_classes, channels, pool_every, hidden_dims: as in
            ``ConvClassifier``.
        batchnorm: batch norm inside the residual blocks.
        dropout: ``Dropout2d`` probability inside the residual blocks.
        bottleneck: use bottleneck blocks where the channels allow.
        **kwargs: ``activation_type``, ``activation_params``,
            ``pooling_type`` and ``pooling_params`` of ``ConvClassifier``.

    Raises:
        TypeError: if ``conv_params`` is given, because the kernels are 3x3.
        ValueError: as ``ConvClassifier`` does.
    """

    def __init__(
        self,
        in_size: Sequence[int],
        out_classes: int,
        channels: Sequence[int],
        pool_every: int,
        hidden_dims: Sequence[int],
        batchnorm: bool = False,
        dropout: float = 0.0,
        bottleneck: bool = False,
        **kwargs: Any,
    ) -> None:
        if "conv_params" in kwargs:
            raise TypeError(
                "ResNetClassifier does not take conv_params: its blocks use 3x3 "
                "convolutions with padding 1"
            )
        self.batchnorm = bool(batchnorm)
        self.dropout = float(dropout)
        self.bottleneck = bool(bottleneck)
        super().__init__(
            in_size, out_classes, channels, pool_every, hidden_dims, **kwargs
        )

    def _block(self, in_channels: int, group: Sequence[int]) -> ResidualBlock:
        common = {
            "batchnorm": self.batchnorm,
            "dropout": self.dropout,
            "activation_type": self.activation_type,
            "activation_params": self.activation_params,
        }
        if self.bottleneck and len(group) >= 3 and group[-1] == in_channels:
            inner = list(group[1:-1])
            return ResidualBottleneckBlock(
                in_channels, inner, [3] * len(inner), **common
            )
        return ResidualBlock(in_channels, group, [3] * len(group), **common)

    def _make_feature_extractor(self) -> nn.Sequential:
        layers: list[nn.Module] = []
        in_channels = self.in_size[0]
        for start in range(0, len(self.channels), self.pool_every):
            group = self.channels[start : start + self.pool_every]
            layers.append(self._block(in_channels, group))
            if len(group) == self.pool_every:
                layers.append(self._pooling())
            in_channels = group[-1]
        return nn.Sequential(*layers)


# --- our CIFAR-10 architecture -----------------------------------------------------


class YourCodeNet(ConvClassifier):
    """A residual network with batch norm for CIFAR-10-sized images.

    The constructor is ``ConvClassifier``'s plus ``dropout``. The exact layer
    plan, which ``engine.spec`` mirrors:

    The channels are split into groups of ``pool_every`` (the last group may
    be shorter). For each group ``g``, with ``c`` the current channels:

    1. ``Conv2d(c, g[0], **conv_params)`` (default ``kernel_size=3,
       padding=1, bias=False``), ``BatchNorm2d(g[0])``, activation;
    2. for each consecutive pair ``(a, b)`` of ``g[1:]``,
       ``ResidualBlock(c, [a, b], [3, 3], batchnorm=True)`` with the
       activation; a single channel ``a`` left over at the end becomes
       ``ResidualBlock(c, [a], [3], batchnorm=True)``;
    3. if the group is full (``len(g) == pool_every``), the pooling layer
       (default ``MaxPool2d(kernel_size=2)``).

    Then ``AdaptiveAvgPool2d(1)`` and ``Flatten()`` end the feature extractor.
    The classifier is, for each hidden width ``h``: ``Dropout(dropout)``,
    ``Linear(in, h)``, activation; then ``Dropout(dropout)`` and
    ``Linear(in, out_classes)``. Dropout layers are left out when
    ``dropout`` is 0.

    Recommended use on CIFAR-10, which ``layerlab experiment run ycn`` runs:
    ``channels=[64]*3 + [128]*3 + [256]*3``, ``pool_every=3``,
    ``hidden_dims=[]`` (about 1.9M weights). Train for 15 epochs with SGD
    with momentum 0.9 (``torch-momentum``), weight decay 5e-4 and batch size
    256. Use a one-cycle learning rate that peaks at 0.1
    (``schedule="onecycle"`` in ``engine.experiments``) and random crop
    (padding 4) plus horizontal flip augmentation.

    Measured: the smaller ``channels=[32]*3 + [64]*3 + [128]*3`` (the ``exp2``
    grid's L=3, about 0.48M weights) with this recipe reached 85.3% CIFAR-10
    test accuracy after 15 epochs (98 minutes on one thread of a 2-core CPU,
    channels-last; docs/benchmarks.md has the command and every epoch).
    NOTE: the recommended 64-128-256 configuration has not been run to the
    end here, because it takes about 8 minutes an epoch on that CPU.

    Args:
        in_size, out_classes, channels, pool_every, hidden_dims,
        activation_type, activation_params, pooling_type, pooling_params:
            as in ``ConvClassifier``.
        conv_params: keyword arguments of each group's first convolution.
        dropout: probability of the ``Dropout`` layers in the classifier.

    Raises:
        ValueError: as ``ConvClassifier`` does, or for a dropout outside
            [0, 1).
    """

    def __init__(
        self,
        in_size: Sequence[int],
        out_classes: int,
        channels: Sequence[int],
        pool_every: int,
        hidden_dims: Sequence[int],
        conv_params: Mapping[str, Any] | None = None,
        activation_type: str = "relu",
        activation_params: Mapping[str, Any] | None = None,
        pooling_type: str = "max",
        pooling_params: Mapping[str, Any] | None = None,
        dropout: float = 0.2,
    ) -> None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        if conv_params is None:
            conv_params = {"kernel_size": 3, "padding": 1, "bias": False}
        super().__init__(
            in_size,
            out_classes,
            channels,
            pool_every,
            hidden_dims,
            conv_params=conv_params,
            activation_type=activation_type,
            activation_params=activation_params,
            pooling_type=pooling_type,
            pooling_params=pooling_params,
        )

    def _make_feature_extractor(self) -> nn.Sequential:
        layers: list[nn.Module] = []
        current = self.in_size[0]
        residual = {
            "batchnorm": True,
            "activation_type": self.activation_type,
            "activation_params": self.activation_params,
        }
        for start in range(0, len(self.channels), self.pool_every):
            group = self.channels[start : start + self.pool_every]
            layers.append(nn.Conv2d(current, group[0], **self.conv_params))
            layers.append(nn.BatchNorm2d(group[0]))
            layers.append(self._activation())
            current = group[0]
            rest = group[1:]
            for index in range(0, len(rest), 2):
                widths = rest[index : index + 2]
                kernels = [3] * len(widths)
                layers.append(ResidualBlock(current, widths, kernels, **residual))
                current = widths[-1]
            if len(group) == self.pool_every:
                layers.append(self._pooling())
        layers.append(nn.AdaptiveAvgPool2d(1))
        layers.append(nn.Flatten())
        return nn.Sequential(*layers)

    def _make_classifier(self) -> nn.Sequential:
        layers: list[nn.Module] = []
        in_features = self.num_features
        for width in self.hidden_dims:
            if self.dropout > 0:
                layers.append(nn.Dropout(self.dropout))
            layers.append(nn.Linear(in_features, width))
            layers.append(self._activation())
            in_features = width
        if self.dropout > 0:
            layers.append(nn.Dropout(self.dropout))
        layers.append(nn.Linear(in_features, self.out_classes))
        return nn.Sequential(*layers)
