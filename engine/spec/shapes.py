"""Shape inference, parameter counts, validation and summaries of a spec.

Everything here is plain arithmetic on the spec's numbers, with no torch, so
that an editor can summarise a spec on every keystroke. Shapes leave out the
batch dimension: (C, H, W) for feature maps and (F,) for flat features.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.dataset_info import DATASET_SHAPES
from engine.spec.layers import BACKENDS, LAYER_TYPES, SpecError, layer_types
from engine.spec.params import check_param

SPEC_VERSION = 1
SPEC_KEYS = ("version", "backend", "input", "layers", "name")
FLOAT32_BYTES = 4

Shape = tuple[int, ...]


@dataclass(frozen=True)
class SummaryRow:
    """One layer of a summary: its index, a readable name, output shape and size."""

    index: int
    name: str
    output_shape: Shape
    num_params: int


@dataclass(frozen=True)
class Summary:
    """Per-layer rows and totals of a spec.

    When ``error`` is set, ``rows`` stop before the first bad layer and the
    totals cover those rows only. ``activation_bytes`` is an estimate: the
    float32 size of every layer output for one batch, without the
    intermediate tensors inside residual blocks and without gradients.
    """

    rows: list[SummaryRow]
    total_params: int
    activation_bytes: int
    error: SpecError | None = None
    backend: str | None = None
    input_shape: Shape | None = None
    num_classes: int | None = None


@dataclass
class _Analysis:
    backend: str | None = None
    input_shape: Shape | None = None
    num_classes: int | None = None
    layer_params: list[dict[str, Any]] = field(default_factory=list)
    layer_inputs: list[Shape] = field(default_factory=list)
    rows: list[SummaryRow] = field(default_factory=list)
    error: SpecError | None = None


class _LayerProblem(Exception):
    """A reason a layer does not fit, turned into a SpecError by the caller."""


def format_shape(shape: Shape) -> str:
    """Format a shape without the batch dimension, e.g. "16x32x32" or "128"."""
    return "x".join(str(size) for size in shape)


def _describe_shape(shape: Shape) -> str:
    if len(shape) == 1:
        return f"{shape[0]} flat features"
    return f"{format_shape(shape)} feature maps"


# ---------------------------------------------------------------------------
# The spec's top level: version, backend, input and the layer list.


def _type_name(value: Any) -> str:
    return type(value).__name__


def resolve_input(value: Any) -> tuple[Shape, int]:
    """Return the (C, H, W) shape and the class count of a spec's ``input``.

    Raises:
        SpecError: the input names an unknown data set or has a bad shape.
    """
    shapes_hint = 'or {"shape": [C, H, W], "num_classes": K}'
    if not isinstance(value, dict):
        raise SpecError(
            None,
            None,
            f'input must be {{"dataset": NAME}} {shapes_hint}, got {value!r}',
        )
    keys = set(value)
    if keys == {"dataset"}:
        return _dataset_input(value["dataset"])
    if keys == {"shape", "num_classes"}:
        return _shape_input(value["shape"], value["num_classes"])
    raise SpecError(
        None,
        None,
        f'input must be {{"dataset": NAME}} {shapes_hint}, got the keys {sorted(keys)}',
    )


def _dataset_input(name: Any) -> tuple[Shape, int]:
    if isinstance(name, str) and name in DATASET_SHAPES:
        shape, num_classes = DATASET_SHAPES[name]
        return tuple(shape), num_classes
    if name == "imagefolder":
        raise SpecError(
            None,
            None,
            "input: the imagefolder data set has no fixed image shape; give the "
            'input as {"shape": [C, H, W], "num_classes": K}',
        )
    raise SpecError(
        None,
        None,
        f"input: unknown data set {name!r}; known data sets: "
        + ", ".join(DATASET_SHAPES),
    )


def _shape_input(shape: Any, num_classes: Any) -> tuple[Shape, int]:
    valid_shape = (
        isinstance(shape, list | tuple)
        and len(shape) == 3
        and all(isinstance(size, int) and not isinstance(size, bool) for size in shape)
        and all(size >= 1 for size in shape)
    )
    if not valid_shape:
        raise SpecError(
            None,
            None,
            f"input: shape must be [C, H, W] with three positive integers, "
            f"got {shape!r}",
        )
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int)
        or num_classes < 2
    ):
        raise SpecError(
            None,
            None,
            f"input: num_classes must be an integer >= 2, got {num_classes!r}",
        )
    return tuple(shape), num_classes


def _check_header(spec: Any) -> None:
    if not isinstance(spec, dict):
        raise SpecError(
            None,
            None,
            "a spec must be a JSON object with backend, input and layers, got "
            f"{_type_name(spec)}",
        )
    unknown = sorted(key for key in spec if key not in SPEC_KEYS)
    if unknown:
        raise SpecError(
            None,
            None,
            f"unknown spec key {unknown[0]!r}; a spec has the keys "
            + ", ".join(SPEC_KEYS),
        )
    version = spec.get("version", SPEC_VERSION)
    if type(version) is not int or version != SPEC_VERSION:
        raise SpecError(
            None,
            None,
            f"unsupported spec version {version!r}; this layerlab reads version "
            f"{SPEC_VERSION}",
        )
    if "name" in spec and not isinstance(spec["name"], str):
        raise SpecError(None, None, f"name must be a string, got {spec['name']!r}")


def _check_top(spec: Any) -> tuple[str, Shape, int, list[Any]]:
    _check_header(spec)
    backend = spec.get("backend")
    if backend not in BACKENDS:
        raise SpecError(
            None,
            None,
            f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}",
        )
    if "input" not in spec:
        raise SpecError(None, None, 'missing input: give {"dataset": NAME}')
    input_shape, num_classes = resolve_input(spec["input"])
    layers = spec.get("layers")
    if not isinstance(layers, list):
        raise SpecError(
            None, None, f"layers must be a list of layer objects, got {layers!r}"
        )
    if not layers:
        raise SpecError(
            None,
            None,
            f"the layer list is empty; add at least a linear layer with "
            f"out_features={num_classes}",
        )
    return backend, input_shape, num_classes, layers


# ---------------------------------------------------------------------------
# One layer: its parameters against the table, then its shape rule.


def _resolve_params(layer: dict[str, Any], backend: str) -> dict[str, Any]:
    layer_type = layer["type"]
    if layer_type not in LAYER_TYPES:
        raise _LayerProblem(
            f"unknown layer type {layer_type!r}; known types for the {backend} "
            "backend: " + ", ".join(layer_types(backend))
        )
    description = LAYER_TYPES[layer_type]
    if backend not in description.backends:
        raise _LayerProblem(
            f"{layer_type} is available only in torch models; switch the backend "
            "to torch, or use one of: " + ", ".join(layer_types(backend))
        )
    names = [param.name for param in description.params]
    for key in layer:
        if key != "type" and key not in names:
            takes = ", ".join(names) if names else "no parameters"
            raise _LayerProblem(
                f"unknown parameter {key!r}; {layer_type} takes {takes}"
            )
    params: dict[str, Any] = {}
    for param in description.params:
        if param.name not in layer:
            if param.required:
                raise _LayerProblem(
                    f"missing parameter {param.name} ({param.allowed_text()})"
                )
            params[param.name] = param.default
            continue
        try:
            value = check_param(param, layer[param.name])
        except ValueError as error:
            raise _LayerProblem(str(error)) from None
        if backend not in param.backends and value != param.default:
            only = " and ".join(param.backends)
            raise _LayerProblem(
                f"{param.name} applies only to the {only} backend; remove it or "
                f"set it to {param.default!r}"
            )
        params[param.name] = value
    return params


def _need_flat(shape: Shape, layer_type: str, source: str) -> int:
    if len(shape) != 1:
        raise _LayerProblem(
            f"{layer_type} needs flat features, but {source} gives "
            f"{_describe_shape(shape)}; add a flatten layer before it"
        )
    return shape[0]


def _need_maps(shape: Shape, layer_type: str, source: str) -> Shape:
    if len(shape) != 3:
        raise _LayerProblem(
            f"{layer_type} needs (C, H, W) feature maps, but {source} gives "
            f"{_describe_shape(shape)}"
        )
    return shape


def _window_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _slide(shape: Shape, kernel: int, stride: int, padding: int) -> tuple[int, int]:
    _, height, width = shape
    if height + 2 * padding < kernel or width + 2 * padding < kernel:
        raise _LayerProblem(
            f"feature maps shrink to nothing: {height}x{width} input with "
            f"kernel_size {kernel}, stride {stride}, padding {padding} has no "
            f"room for one window; use a smaller kernel or more padding, or "
            "fewer pooling layers before it"
        )
    return (
        _window_size(height, kernel, stride, padding),
        _window_size(width, kernel, stride, padding),
    )


def _count_conv(in_channels: int, out_channels: int, kernel: int, bias: bool) -> int:
    return in_channels * out_channels * kernel * kernel + (out_channels if bias else 0)


RuleResult = tuple[Shape, int, str]


def _linear(params: dict[str, Any], shape: Shape, source: str) -> RuleResult:
    in_features = _need_flat(shape, "linear", source)
    out_features = params["out_features"]
    bias = params["bias"]
    num_params = in_features * out_features + (out_features if bias else 0)
    suffix = "" if bias else ", no bias"
    return (out_features,), num_params, f"linear({in_features}->{out_features}{suffix})"


def _activation(name: str) -> Callable[..., RuleResult]:
    def rule(params: dict[str, Any], shape: Shape, source: str) -> RuleResult:
        if "alpha" in params:
            return shape, 0, f"{name}({params['alpha']:g})"
        return shape, 0, name

    return rule


def _dropout(params: dict[str, Any], shape: Shape, source: str) -> RuleResult:
    return shape, 0, f"dropout({params['p']:g})"


def _dropout2d(params: dict[str, Any], shape: Shape, source: str) -> RuleResult:
    _need_maps(shape, "dropout2d", source)
    return shape, 0, f"dropout2d({params['p']:g})"


def _conv2d(params: dict[str, Any], shape: Shape, source: str) -> RuleResult:
    in_channels = _need_maps(shape, "conv2d", source)[0]
    out_channels = params["out_channels"]
    kernel, stride, padding = params["kernel_size"], params["stride"], params["padding"]
    height, width = _slide(shape, kernel, stride, padding)
    num_params = _count_conv(in_channels, out_channels, kernel, params["bias"])
    suffix = "" if params["bias"] else ", no bias"
    name = (
        f"conv2d({in_channels}->{out_channels}, k{kernel} s{stride} p{padding}{suffix})"
    )
    return (out_channels, height, width), num_params, name


def _pool(name: str) -> Callable[..., RuleResult]:
    def rule(params: dict[str, Any], shape: Shape, source: str) -> RuleResult:
        channels = _need_maps(shape, name, source)[0]
        kernel = params["kernel_size"]
        stride = kernel if params["stride"] is None else params["stride"]
        height, width = _slide(shape, kernel, stride, 0)
        return (channels, height, width), 0, f"{name}(k{kernel} s{stride})"

    return rule


def _globalavgpool(params: dict[str, Any], shape: Shape, source: str) -> RuleResult:
    channels = _need_maps(shape, "globalavgpool", source)[0]
    return (channels, 1, 1), 0, "globalavgpool"


def _batchnorm2d(params: dict[str, Any], shape: Shape, source: str) -> RuleResult:
    channels = _need_maps(shape, "batchnorm2d", source)[0]
    return shape, 2 * channels, f"batchnorm2d({channels})"


def _batchnorm1d(params: dict[str, Any], shape: Shape, source: str) -> RuleResult:
    features = _need_flat(shape, "batchnorm1d", source)
    return shape, 2 * features, f"batchnorm1d({features})"


def _flatten(params: dict[str, Any], shape: Shape, source: str) -> RuleResult:
    return (math.prod(shape),), 0, "flatten"


def _check_kernels(
    channels: list[int], kernels: list[int], channels_name: str, kernels_name: str
) -> None:
    if len(channels) != len(kernels):
        raise _LayerProblem(
            f"{channels_name} has {len(channels)} entries but {kernels_name} has "
            f"{len(kernels)}; give one kernel size per convolution"
        )
    even = [kernel for kernel in kernels if kernel % 2 == 0]
    if even:
        raise _LayerProblem(
            f"{kernels_name} {kernels} contains the even kernel size {even[0]}; "
            "residual convolutions keep the spatial size only with odd kernel sizes"
        )


def count_residual(
    in_channels: int, channels: list[int], kernel_sizes: list[int], batchnorm: bool
) -> int:
    """Count the parameters of a residual block.

    The main path has one convolution with bias per entry of ``channels``,
    and a BatchNorm2d after each but the last when ``batchnorm`` is set. The
    shortcut is a bias-free 1x1 convolution when the channel counts differ.

    Args:
        in_channels: channels of the block's input.
        channels: output channels of each main-path convolution.
        kernel_sizes: kernel size of each main-path convolution.
        batchnorm: whether the main path has batch norm layers.

    Returns:
        The number of trainable parameters.
    """
    total = 0
    previous = in_channels
    for position, (out_channels, kernel) in enumerate(
        zip(channels, kernel_sizes, strict=True)
    ):
        total += _count_conv(previous, out_channels, kernel, True)
        if batchnorm and position < len(channels) - 1:
            total += 2 * out_channels
        previous = out_channels
    if in_channels != channels[-1]:
        total += in_channels * channels[-1]
    return total


def _flags(params: dict[str, Any]) -> str:
    flags = []
    if params["batchnorm"]:
        flags.append("bn")
    if params["dropout"] > 0:
        flags.append(f"dropout {params['dropout']:g}")
    if params["activation"] != "relu":
        flags.append(params["activation"])
    return "".join(f", {flag}" for flag in flags)


def _join(values: list[int]) -> str:
    return "-".join(str(value) for value in values)


def _residual(params: dict[str, Any], shape: Shape, source: str) -> RuleResult:
    in_channels, height, width = _need_maps(shape, "residual", source)
    channels, kernels = params["channels"], params["kernel_sizes"]
    _check_kernels(channels, kernels, "channels", "kernel_sizes")
    num_params = count_residual(in_channels, channels, kernels, params["batchnorm"])
    name = (
        f"residual({in_channels}->{_join(channels)}, k{_join(kernels)}{_flags(params)})"
    )
    return (channels[-1], height, width), num_params, name


def bottleneck_plan(
    in_out_channels: int, inner_channels: list[int], inner_kernel_sizes: list[int]
) -> tuple[list[int], list[int]]:
    """Return the (channels, kernel_sizes) of a bottleneck block's main path.

    The path is a 1x1 convolution down to ``inner_channels[0]``, the inner
    convolutions, and a 1x1 convolution back up to ``in_out_channels``.
    """
    channels = [inner_channels[0], *inner_channels, in_out_channels]
    return channels, [1, *inner_kernel_sizes, 1]


def _bottleneck(params: dict[str, Any], shape: Shape, source: str) -> RuleResult:
    in_channels = _need_maps(shape, "bottleneck", source)[0]
    inner, kernels = params["inner_channels"], params["inner_kernel_sizes"]
    _check_kernels(inner, kernels, "inner_channels", "inner_kernel_sizes")
    channels, kernel_sizes = bottleneck_plan(in_channels, inner, kernels)
    num_params = count_residual(
        in_channels, channels, kernel_sizes, params["batchnorm"]
    )
    name = (
        f"bottleneck({in_channels}->{_join(inner)}->{in_channels}, "
        f"k{_join(kernels)}{_flags(params)})"
    )
    return shape, num_params, name


_RULES: dict[str, Callable[[dict[str, Any], Shape, str], RuleResult]] = {
    "linear": _linear,
    "relu": _activation("relu"),
    "lrelu": _activation("lrelu"),
    "sigmoid": _activation("sigmoid"),
    "tanh": _activation("tanh"),
    "gelu": _activation("gelu"),
    "elu": _activation("elu"),
    "silu": _activation("silu"),
    "dropout": _dropout,
    "conv2d": _conv2d,
    "maxpool2d": _pool("maxpool2d"),
    "avgpool2d": _pool("avgpool2d"),
    "globalavgpool": _globalavgpool,
    "batchnorm2d": _batchnorm2d,
    "batchnorm1d": _batchnorm1d,
    "dropout2d": _dropout2d,
    "flatten": _flatten,
    "residual": _residual,
    "bottleneck": _bottleneck,
}


# ---------------------------------------------------------------------------
# The whole spec.


def _check_layer(index: int, layer: Any, backend: str, shape: Shape, source: str):
    if not isinstance(layer, dict) or not isinstance(layer.get("type"), str):
        raise SpecError(
            index,
            None,
            f'each layer must be an object with a "type" string, got {layer!r}',
        )
    try:
        params = _resolve_params(layer, backend)
        out_shape, num_params, name = _RULES[layer["type"]](params, shape, source)
    except _LayerProblem as problem:
        raise SpecError(index, layer["type"], str(problem)) from None
    return params, out_shape, num_params, name


def _check_output(analysis: _Analysis, layers: list[Any], shape: Shape) -> None:
    index = len(layers) - 1
    layer_type = layers[index]["type"]
    num_classes = analysis.num_classes
    if len(shape) != 1:
        raise SpecError(
            index,
            layer_type,
            f"the model must end with {num_classes} flat features (one per class), "
            f"but the last layer gives {_describe_shape(shape)}; add flatten and "
            f"linear(out_features={num_classes}) layers",
        )
    if shape[0] != num_classes:
        raise SpecError(
            index,
            layer_type,
            f"the last layer gives {shape[0]} features, but the input has "
            f"{num_classes} classes; make the last linear layer's out_features "
            f"{num_classes}",
        )


def analyze(spec: Any) -> _Analysis:
    """Check ``spec`` layer by layer and collect what summary and build need.

    Stops at the first problem and records it in the result's ``error``.
    """
    analysis = _Analysis()
    try:
        backend, input_shape, num_classes, layers = _check_top(spec)
    except SpecError as error:
        analysis.error = error
        return analysis
    analysis.backend = backend
    analysis.input_shape = input_shape
    analysis.num_classes = num_classes
    # The block trainer flattens each image, so block layers see C*H*W features.
    shape = (math.prod(input_shape),) if backend == "blocks" else input_shape
    source = "the input"
    try:
        for index, layer in enumerate(layers):
            params, out_shape, num_params, name = _check_layer(
                index, layer, backend, shape, source
            )
            analysis.layer_params.append(params)
            analysis.layer_inputs.append(shape)
            analysis.rows.append(SummaryRow(index, name, out_shape, num_params))
            shape = out_shape
            source = f"layers[{index}] ({layer['type']})"
        _check_output(analysis, layers, shape)
    except SpecError as error:
        analysis.error = error
        if error.index is not None:
            del analysis.rows[error.index :]
    return analysis


def validate(spec: Any) -> None:
    """Check that ``spec`` describes a model that can be built.

    Raises:
        SpecError: the first problem, with the index and type of the first bad
            layer (None for problems outside the layer list) and the reason.
    """
    error = analyze(spec).error
    if error is not None:
        raise error


def summary(spec: Any, batch_size: int = 1) -> Summary:
    """Summarise ``spec`` layer by layer without building it.

    An invalid spec gives the rows before the first bad layer and ``error``
    set; this function raises only for a bad ``batch_size``.

    Args:
        spec: the spec to summarise.
        batch_size: number of samples that the activation estimate covers.

    Returns:
        The rows, the total parameter count, the activation estimate in bytes
        and the error, if any.

    Raises:
        ValueError: ``batch_size`` is not a positive integer.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    analysis = analyze(spec)
    rows = analysis.rows
    elements = sum(math.prod(row.output_shape) for row in rows)
    return Summary(
        rows=list(rows),
        total_params=sum(row.num_params for row in rows),
        activation_bytes=elements * batch_size * FLOAT32_BYTES,
        error=analysis.error,
        backend=analysis.backend,
        input_shape=analysis.input_shape,
        num_classes=analysis.num_classes,
    )


def input_shape(spec: Any) -> Shape:
    """Return the (C, H, W) image shape of a spec's input.

    Raises:
        SpecError: the spec's input is missing or invalid.
    """
    if not isinstance(spec, dict) or "input" not in spec:
        raise SpecError(None, None, 'missing input: give {"dataset": NAME}')
    return resolve_input(spec["input"])[0]


def num_classes(spec: Any) -> int:
    """Return the number of classes of a spec's input.

    Raises:
        SpecError: the spec's input is missing or invalid.
    """
    if not isinstance(spec, dict) or "input" not in spec:
        raise SpecError(None, None, 'missing input: give {"dataset": NAME}')
    return resolve_input(spec["input"])[1]


def normalize_spec(spec: Any) -> dict[str, Any]:
    """Return a copy of ``spec`` with the version and every layer parameter written out.

    Layers keep only the parameters their backend reads.

    Raises:
        SpecError: the spec is invalid.
    """
    analysis = analyze(spec)
    if analysis.error is not None:
        raise analysis.error
    layers = []
    for layer, params in zip(spec["layers"], analysis.layer_params, strict=True):
        description = LAYER_TYPES[layer["type"]]
        written = {"type": layer["type"]}
        for param in description.params:
            if analysis.backend in param.backends:
                value = params[param.name]
                written[param.name] = list(value) if isinstance(value, list) else value
        layers.append(written)
    normalized = {
        "version": SPEC_VERSION,
        "backend": analysis.backend,
        "input": {
            key: list(value) if isinstance(value, list) else value
            for key, value in spec["input"].items()
        },
        "layers": layers,
    }
    if "name" in spec:
        normalized["name"] = spec["name"]
    return normalized
