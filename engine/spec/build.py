"""Build a model from a spec: blocks for the blocks backend, torch modules otherwise.

torch, ``engine.blocks`` and ``engine.cnn`` are imported inside the functions,
so importing ``engine.spec`` stays cheap.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.spec.shapes import Shape, analyze

log = logging.getLogger(__name__)


def build_model(spec: Any) -> Any:
    """Build the model that ``spec`` describes, with fresh weights.

    Each layer's input size (``in_features``, ``in_channels``) follows from
    the layers before it. Weights are drawn from torch's random number
    generator in layer order, so seeding before the call reproduces them.

    Args:
        spec: a valid spec.

    Returns:
        An ``engine.blocks.Sequential`` for the blocks backend, whose first
        layer takes images flattened to C*H*W features; a
        ``torch.nn.Sequential`` taking (N, C, H, W) batches for the torch
        backend. Index i of the result is ``spec["layers"][i]``.

    Raises:
        SpecError: the spec is invalid.
    """
    analysis = analyze(spec)
    if analysis.error is not None:
        raise analysis.error
    layer_types = [layer["type"] for layer in spec["layers"]]
    plan = zip(layer_types, analysis.layer_params, analysis.layer_inputs, strict=True)
    if analysis.backend == "blocks":
        from engine import blocks

        model = blocks.Sequential(*(_make_block(*item) for item in plan))
    else:
        from torch import nn

        model = nn.Sequential(*(_make_module(*item) for item in plan))
    log.debug("built a %s model of %d layers", analysis.backend, len(layer_types))
    return model


def _make_block(layer_type: str, params: dict[str, Any], in_shape: Shape) -> Any:
    from engine import blocks

    if layer_type == "linear":
        return blocks.Linear(in_shape[0], params["out_features"], wstd=params["wstd"])
    if layer_type == "lrelu":
        return blocks.LeakyReLU(alpha=params["alpha"])
    if layer_type == "dropout":
        return blocks.Dropout(p=params["p"])
    simple = {"relu": blocks.ReLU, "sigmoid": blocks.Sigmoid, "tanh": blocks.TanH}
    return simple[layer_type]()


def _make_module(layer_type: str, params: dict[str, Any], in_shape: Shape) -> Any:
    from torch import nn

    if layer_type == "linear":
        return nn.Linear(in_shape[0], params["out_features"], bias=params["bias"])
    if layer_type == "conv2d":
        return nn.Conv2d(
            in_shape[0],
            params["out_channels"],
            params["kernel_size"],
            stride=params["stride"],
            padding=params["padding"],
            bias=params["bias"],
        )
    if layer_type in ("maxpool2d", "avgpool2d"):
        pool = nn.MaxPool2d if layer_type == "maxpool2d" else nn.AvgPool2d
        return pool(params["kernel_size"], stride=params["stride"])
    if layer_type in ("residual", "bottleneck"):
        return _make_residual(layer_type, params, in_shape)
    if layer_type == "lrelu":
        return nn.LeakyReLU(params["alpha"])
    if layer_type == "dropout":
        return nn.Dropout(params["p"])
    if layer_type == "dropout2d":
        return nn.Dropout2d(params["p"])
    if layer_type == "batchnorm2d":
        return nn.BatchNorm2d(in_shape[0])
    if layer_type == "batchnorm1d":
        return nn.BatchNorm1d(in_shape[0])
    if layer_type == "globalavgpool":
        return nn.AdaptiveAvgPool2d(1)
    simple = {
        "relu": nn.ReLU,
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "gelu": nn.GELU,
        "elu": nn.ELU,
        "silu": nn.SiLU,
        "flatten": nn.Flatten,
    }
    return simple[layer_type]()


def _make_residual(layer_type: str, params: dict[str, Any], in_shape: Shape) -> Any:
    from engine.cnn import ResidualBlock, ResidualBottleneckBlock

    common = {
        "batchnorm": params["batchnorm"],
        "dropout": params["dropout"],
        "activation_type": params["activation"],
    }
    if layer_type == "residual":
        return ResidualBlock(
            in_shape[0], params["channels"], params["kernel_sizes"], **common
        )
    return ResidualBottleneckBlock(
        in_shape[0], params["inner_channels"], params["inner_kernel_sizes"], **common
    )
