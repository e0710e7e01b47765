"""The table of layer types a spec may use, with their parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.spec.params import ParamSpec

BACKENDS = ("blocks", "torch")

# Activation names that residual and bottleneck layers accept; they match the
# names engine.cnn.ACTIVATIONS maps to torch modules.
ACTIVATION_NAMES = ("relu", "lrelu", "tanh", "sigmoid", "gelu", "elu", "silu")


class SpecError(ValueError):
    """A spec that cannot be built, with the first bad layer and the reason.

    Attributes:
        index: position of the bad layer in ``spec["layers"]`` (from 0, the
            same index as in the built ``Sequential``), or None when the
            problem is outside the layer list (version, backend, input, an
            empty list).
        layer_type: the ``type`` of the bad layer as written, or None.
        reason: what is wrong and what is allowed.
    """

    def __init__(self, index: int | None, layer_type: str | None, reason: str):
        self.index = index
        self.layer_type = layer_type
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        if self.index is None:
            return self.reason
        return f"layers[{self.index}] ({self.layer_type}): {self.reason}"

    def __reduce__(self):
        return (SpecError, (self.index, self.layer_type, self.reason))


@dataclass(frozen=True)
class LayerType:
    """One layer type: its name, the backends that offer it and its parameters."""

    name: str
    backends: tuple[str, ...]
    params: tuple[ParamSpec, ...]
    help: str

    def param(self, name: str) -> ParamSpec:
        """Return the description of the parameter ``name``.

        Raises:
            KeyError: the layer type has no such parameter.
        """
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(f"{self.name} has no parameter {name!r}")


_BOTH = ("blocks", "torch")
_TORCH = ("torch",)


def _probability(name: str, default: float, help: str) -> ParamSpec:
    return ParamSpec(
        name,
        "float",
        default,
        minimum=0.0,
        maximum=1.0,
        max_inclusive=False,
        help=help,
    )


def _activation_param() -> ParamSpec:
    return ParamSpec(
        "activation",
        "choice",
        "relu",
        choices=ACTIVATION_NAMES,
        help="activation after each convolution but the last (ReLU follows the sum)",
    )


def _pool_params() -> tuple[ParamSpec, ...]:
    return (
        ParamSpec("kernel_size", "int", 2, minimum=1, help="pooling window size"),
        ParamSpec(
            "stride",
            "int",
            None,
            minimum=1,
            help="step between windows; None means the kernel size",
        ),
    )


_LAYER_LIST = (
    LayerType(
        "linear",
        _BOTH,
        (
            ParamSpec(
                "out_features", "int", 64, required=True, minimum=1, help="output width"
            ),
            ParamSpec(
                "wstd",
                "float",
                0.1,
                minimum=0.0,
                help="standard deviation of the initial weights (blocks only)",
                backends=("blocks",),
            ),
            ParamSpec(
                "bias",
                "bool",
                True,
                help="add a learned bias (torch only; block layers always have one)",
                backends=("torch",),
            ),
        ),
        "fully connected layer; in_features comes from the previous layer",
    ),
    LayerType("relu", _BOTH, (), "rectified linear unit, max(0, x)"),
    LayerType(
        "lrelu",
        _BOTH,
        (
            ParamSpec(
                "alpha",
                "float",
                0.01,
                minimum=0.0,
                maximum=1.0,
                max_inclusive=False,
                help="slope for negative inputs",
            ),
        ),
        "leaky ReLU, max(alpha * x, x)",
    ),
    LayerType("sigmoid", _BOTH, (), "logistic sigmoid, 1 / (1 + exp(-x))"),
    LayerType("tanh", _BOTH, (), "hyperbolic tangent"),
    LayerType("gelu", _TORCH, (), "Gaussian error linear unit"),
    LayerType("elu", _TORCH, (), "exponential linear unit"),
    LayerType("silu", _TORCH, (), "sigmoid linear unit, x * sigmoid(x)"),
    LayerType(
        "dropout",
        _BOTH,
        (_probability("p", 0.5, "probability of zeroing each element"),),
        "inverted dropout in training, identity in evaluation",
    ),
    LayerType(
        "conv2d",
        _TORCH,
        (
            ParamSpec(
                "out_channels",
                "int",
                32,
                required=True,
                minimum=1,
                help="number of output feature maps",
            ),
            ParamSpec("kernel_size", "int", 3, minimum=1, help="square kernel size"),
            ParamSpec("stride", "int", 1, minimum=1, help="step of the kernel"),
            ParamSpec("padding", "int", 1, minimum=0, help="zero padding per side"),
            ParamSpec("bias", "bool", True, help="add a learned bias per channel"),
        ),
        "2-D convolution over (C, H, W) feature maps",
    ),
    LayerType("maxpool2d", _TORCH, _pool_params(), "2-D max pooling"),
    LayerType("avgpool2d", _TORCH, _pool_params(), "2-D average pooling"),
    LayerType(
        "globalavgpool",
        _TORCH,
        (),
        "average over each whole feature map, (C, H, W) to (C, 1, 1)",
    ),
    LayerType(
        "batchnorm2d", _TORCH, (), "batch normalisation per channel of feature maps"
    ),
    LayerType("batchnorm1d", _TORCH, (), "batch normalisation per flat feature"),
    LayerType(
        "dropout2d",
        _TORCH,
        (_probability("p", 0.5, "probability of zeroing each whole channel"),),
        "dropout of whole feature maps",
    ),
    LayerType(
        "flatten", _TORCH, (), "reshape (C, H, W) feature maps to C*H*W features"
    ),
    LayerType(
        "residual",
        _TORCH,
        (
            ParamSpec(
                "channels",
                "int_list",
                [64, 64],
                required=True,
                minimum=1,
                help="output channels of each convolution on the main path",
            ),
            ParamSpec(
                "kernel_sizes",
                "int_list",
                [3, 3],
                required=True,
                minimum=1,
                help="odd kernel size of each convolution, one per channel entry",
            ),
            ParamSpec("batchnorm", "bool", False, help="batch norm after each conv"),
            _probability("dropout", 0.0, "Dropout2d probability after each conv"),
            _activation_param(),
        ),
        "residual block: convolutions plus an identity or 1x1 shortcut",
    ),
    LayerType(
        "bottleneck",
        _TORCH,
        (
            ParamSpec(
                "inner_channels",
                "int_list",
                [64],
                required=True,
                minimum=1,
                help="channels of the inner convolutions",
            ),
            ParamSpec(
                "inner_kernel_sizes",
                "int_list",
                [3],
                required=True,
                minimum=1,
                help="odd kernel size of each inner convolution",
            ),
            ParamSpec("batchnorm", "bool", False, help="batch norm after each conv"),
            _probability("dropout", 0.0, "Dropout2d probability after each conv"),
            _activation_param(),
        ),
        "bottleneck residual block: 1x1 down, inner convolutions, 1x1 up",
    ),
)

LAYER_TYPES: dict[str, LayerType] = {layer.name: layer for layer in _LAYER_LIST}


def layer_types(backend: str) -> list[str]:
    """Return the names of the layer types that ``backend`` offers, in table order.

    Raises:
        ValueError: ``backend`` is not "blocks" or "torch".
    """
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}"
        )
    return [name for name, layer in LAYER_TYPES.items() if backend in layer.backends]


def default_layer(layer_type: str, backend: str | None = None) -> dict[str, Any]:
    """Return a new layer of ``layer_type`` with every parameter at its default.

    Args:
        layer_type: a key of ``LAYER_TYPES``.
        backend: when given, only the parameters this backend reads.

    Raises:
        ValueError: the layer type is unknown.
    """
    if layer_type not in LAYER_TYPES:
        raise ValueError(
            f"unknown layer type {layer_type!r}; known types: " + ", ".join(LAYER_TYPES)
        )
    layer: dict[str, Any] = {"type": layer_type}
    for param in LAYER_TYPES[layer_type].params:
        if backend is None or backend in param.backends:
            default = param.default
            layer[param.name] = list(default) if isinstance(default, list) else default
    return layer
