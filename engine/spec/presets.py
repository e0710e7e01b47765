"""Preset specs: a block MLP and the models of ``engine.cnn`` as layer lists.

Each preset builds the same layers, in the same order and with the same
parameter count, as the class it mirrors. The one addition is a ``flatten``
layer where the classes flatten inside ``forward``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.spec.layers import ACTIVATION_NAMES, BACKENDS
from engine.spec.params import ParamSpec, check_param
from engine.spec.shapes import SPEC_VERSION, resolve_input, validate

BLOCK_ACTIVATIONS = ("relu", "lrelu", "sigmoid", "tanh")
POOLING_NAMES = ("max", "avg")

Input = str | dict[str, Any]


@dataclass(frozen=True)
class Preset:
    """A preset: its function and the parameters that a form requests.

    Call it as ``preset.function(input, **values)``, where ``input`` is a
    data set name or a spec input and ``values`` maps the names in
    ``params`` to values (``parse_param`` turns typed text into them).
    """

    name: str
    function: Callable[..., dict[str, Any]]
    params: tuple[ParamSpec, ...]
    help: str


def _input(value: Input) -> dict[str, Any]:
    if isinstance(value, str):
        value = {"dataset": value}
    resolve_input(value)
    return {
        key: list(item) if isinstance(item, list | tuple) else item
        for key, item in value.items()
    }


def _num_classes(spec_input: dict[str, Any]) -> int:
    return resolve_input(spec_input)[1]


def _check_args(params: tuple[ParamSpec, ...], values: dict[str, Any]) -> None:
    by_name = {param.name: param for param in params}
    for name, value in values.items():
        check_param(by_name[name], list(value) if isinstance(value, tuple) else value)


def _activation_layer(name: str) -> dict[str, Any]:
    if name == "lrelu":
        # The alpha of engine.blocks.LeakyReLU and torch.nn.LeakyReLU by default.
        return {"type": "lrelu", "alpha": 0.01}
    return {"type": name}


def _finish(backend: str, spec_input: dict[str, Any], layers: list[dict]) -> dict:
    spec = {
        "version": SPEC_VERSION,
        "backend": backend,
        "input": spec_input,
        "layers": layers,
    }
    validate(spec)
    return spec


def _classifier(
    hidden: Sequence[int], activation: str, num_classes: int, dropout: float = 0.0
) -> list[dict[str, Any]]:
    layers: list[dict[str, Any]] = []
    for width in hidden:
        if dropout > 0:
            layers.append({"type": "dropout", "p": dropout})
        layers.append({"type": "linear", "out_features": width})
        layers.append(_activation_layer(activation))
    if dropout > 0:
        layers.append({"type": "dropout", "p": dropout})
    layers.append({"type": "linear", "out_features": num_classes})
    return layers


def _channels(filters: Sequence[int], layers_per_block: int) -> list[int]:
    return [width for width in filters for _ in range(layers_per_block)]


def _groups(channels: list[int], pool_every: int) -> list[list[int]]:
    return [
        channels[start : start + pool_every]
        for start in range(0, len(channels), pool_every)
    ]


def _pool_layer(pooling: str, pool_size: int) -> dict[str, Any]:
    return {"type": f"{pooling}pool2d", "kernel_size": pool_size}


# ---------------------------------------------------------------------------
# Parameter descriptions, shared by the functions' checks and the form.

_HIDDEN_HELP = "widths of the hidden linear layers"


def _hidden(default: list[int]) -> ParamSpec:
    return ParamSpec(
        "H", "int_list", default, minimum=1, min_length=0, help=_HIDDEN_HELP
    )


_FILTERS = ParamSpec(
    "K", "int_list", [32, 64], required=True, minimum=1, help="channels per stage"
)
_LAYERS = ParamSpec(
    "L", "int", 2, required=True, minimum=1, help="convolutions per K entry"
)
_POOL_EVERY = ParamSpec(
    "P", "int", 2, required=True, minimum=1, help="convolutions between pools"
)
_TORCH_ACTIVATION = ParamSpec(
    "activation", "choice", "relu", choices=ACTIVATION_NAMES, help="activation"
)
_POOLING = ParamSpec(
    "pooling", "choice", "max", choices=POOLING_NAMES, help="pooling type"
)
_POOL_SIZE = ParamSpec("pool_size", "int", 2, minimum=1, help="pooling window size")


def _probability(name: str, default: float, help: str) -> ParamSpec:
    return ParamSpec(
        name, "float", default, minimum=0.0, maximum=1.0, max_inclusive=False, help=help
    )


MLP_PARAMS = (
    ParamSpec("backend", "choice", "blocks", choices=BACKENDS, help="model backend"),
    ParamSpec(
        "hidden",
        "int_list",
        [128],
        minimum=1,
        min_length=0,
        help="widths of the hidden layers",
    ),
    ParamSpec(
        "activation",
        "choice",
        "relu",
        choices=BLOCK_ACTIVATIONS,
        help="activation after each hidden layer",
    ),
    _probability("dropout", 0.0, "dropout after each hidden activation"),
    ParamSpec(
        "wstd",
        "float",
        0.1,
        minimum=0.0,
        help="standard deviation of the initial block weights",
    ),
)

CNN_PARAMS = (
    _FILTERS,
    _LAYERS,
    _POOL_EVERY,
    _hidden([100]),
    _TORCH_ACTIVATION,
    _POOLING,
    ParamSpec("kernel_size", "int", 3, minimum=1, help="convolution kernel size"),
    ParamSpec("padding", "int", 1, minimum=0, help="convolution zero padding"),
    _POOL_SIZE,
)

RESNET_PARAMS = (
    _FILTERS,
    _LAYERS,
    _POOL_EVERY,
    _hidden([100]),
    ParamSpec("batchnorm", "bool", False, help="batch norm inside the blocks"),
    _probability("dropout", 0.0, "Dropout2d probability inside the blocks"),
    ParamSpec(
        "bottleneck",
        "bool",
        False,
        help="bottleneck blocks for groups whose last channels equal their input",
    ),
    _TORCH_ACTIVATION,
    _POOLING,
    _POOL_SIZE,
)

YCN_PARAMS = (
    ParamSpec(
        "K", "int_list", [64, 128, 256], required=True, minimum=1, help="channels"
    ),
    ParamSpec("L", "int", 3, required=True, minimum=1, help=_LAYERS.help),
    ParamSpec("P", "int", 3, required=True, minimum=1, help=_POOL_EVERY.help),
    _hidden([]),
    _probability("dropout", 0.2, "dropout before each classifier linear layer"),
    _TORCH_ACTIVATION,
    _POOLING,
    _POOL_SIZE,
)


# ---------------------------------------------------------------------------
# The presets.


def preset_mlp(
    input: Input = "digits",
    hidden: Sequence[int] = (128,),
    activation: str = "relu",
    dropout: float = 0.0,
    wstd: float = 0.1,
    backend: str = "blocks",
) -> dict[str, Any]:
    """Return the spec of a multilayer perceptron.

    For the blocks backend it has the layers of
    ``engine.blocks.MLP(C*H*W, K, hidden, activation, dropout, wstd=wstd)``:
    a linear layer, the activation and (when ``dropout > 0``) dropout per
    hidden width, then a linear layer to the classes. The torch backend puts
    a flatten layer first and uses torch's default initialisation.

    Args:
        input: a data set name or a spec input.
        hidden: widths of the hidden layers; empty for a linear classifier.
        activation: relu, lrelu, sigmoid or tanh.
        dropout: dropout probability after each hidden activation, in [0, 1).
        wstd: standard deviation of the initial block weights.
        backend: "blocks" or "torch".

    Returns:
        A valid spec.

    Raises:
        ValueError: an argument is invalid; ``SpecError`` for a bad input.
    """
    _check_args(
        MLP_PARAMS,
        {
            "backend": backend,
            "hidden": hidden,
            "activation": activation,
            "dropout": dropout,
            "wstd": wstd,
        },
    )
    spec_input = _input(input)
    layers: list[dict[str, Any]] = [] if backend == "blocks" else [{"type": "flatten"}]
    for width in hidden:
        linear: dict[str, Any] = {"type": "linear", "out_features": width}
        if backend == "blocks":
            linear["wstd"] = wstd
        layers.append(linear)
        layers.append(_activation_layer(activation))
        if dropout > 0:
            layers.append({"type": "dropout", "p": dropout})
    last: dict[str, Any] = {"type": "linear", "out_features": _num_classes(spec_input)}
    if backend == "blocks":
        last["wstd"] = wstd
    layers.append(last)
    return _finish(backend, spec_input, layers)


def preset_cnn(
    input: Input = "cifar10",
    K: Sequence[int] = (32, 64),
    L: int = 2,
    P: int = 2,
    H: Sequence[int] = (100,),
    activation: str = "relu",
    pooling: str = "max",
    kernel_size: int = 3,
    padding: int = 1,
    pool_size: int = 2,
) -> dict[str, Any]:
    """Return the spec of ``engine.cnn.ConvClassifier``.

    The layers equal those of ``ConvClassifier(in_size, num_classes,
    channels=[k for k in K for _ in range(L)], pool_every=P, hidden_dims=H,
    conv_params={"kernel_size": kernel_size, "padding": padding},
    activation_type=activation, pooling_type=pooling,
    pooling_params={"kernel_size": pool_size})``, with a flatten layer between
    the feature extractor and the classifier.

    Args:
        input: a data set name or a spec input.
        K: channels of each stage; each entry repeats ``L`` times.
        L: convolutions per entry of ``K``.
        P: convolutions before each pooling layer.
        H: widths of the hidden linear layers.
        activation: activation after each convolution and hidden linear layer.
        pooling: "max" or "avg".
        kernel_size: convolution kernel size.
        padding: convolution zero padding.
        pool_size: pooling window size and stride.

    Returns:
        A valid spec.

    Raises:
        ValueError: an argument is invalid; ``SpecError`` when the input is
            bad or the feature maps shrink to nothing.
    """
    values = {"K": K, "L": L, "P": P, "H": H, "activation": activation}
    values |= {"pooling": pooling, "kernel_size": kernel_size, "padding": padding}
    _check_args(CNN_PARAMS, values | {"pool_size": pool_size})
    spec_input = _input(input)
    layers: list[dict[str, Any]] = []
    for position, width in enumerate(_channels(K, L), start=1):
        layers.append(
            {
                "type": "conv2d",
                "out_channels": width,
                "kernel_size": kernel_size,
                "stride": 1,
                "padding": padding,
            }
        )
        layers.append(_activation_layer(activation))
        if position % P == 0:
            layers.append(_pool_layer(pooling, pool_size))
    layers.append({"type": "flatten"})
    layers.extend(_classifier(H, activation, _num_classes(spec_input)))
    return _finish("torch", spec_input, layers)


def _resnet_block(
    in_channels: int,
    group: list[int],
    bottleneck: bool,
    common: dict[str, Any],
) -> dict[str, Any]:
    # ResNetClassifier's rule: a group of three or more channels that ends at
    # its input channels becomes a bottleneck whose 1x1 projection down to
    # group[1] replaces the group's first convolution.
    if bottleneck and len(group) >= 3 and group[-1] == in_channels:
        inner = group[1:-1]
        return {
            "type": "bottleneck",
            "inner_channels": inner,
            "inner_kernel_sizes": [3] * len(inner),
            **common,
        }
    return {
        "type": "residual",
        "channels": group,
        "kernel_sizes": [3] * len(group),
        **common,
    }


def preset_resnet(
    input: Input = "cifar10",
    K: Sequence[int] = (32, 64),
    L: int = 2,
    P: int = 2,
    H: Sequence[int] = (100,),
    batchnorm: bool = False,
    dropout: float = 0.0,
    bottleneck: bool = False,
    activation: str = "relu",
    pooling: str = "max",
    pool_size: int = 2,
) -> dict[str, Any]:
    """Return the spec of ``engine.cnn.ResNetClassifier``.

    The channels ``[k for k in K for _ in range(L)]`` split into groups of
    ``P``. Each group is a residual block of 3x3 convolutions followed by a
    pool, and a trailing partial group is a last block without a pool. With
    ``bottleneck``, a group of at least three channels whose last entry
    equals its input channels is a bottleneck block. A flatten layer and the
    ``ConvClassifier`` classifier follow.

    Args:
        input: a data set name or a spec input.
        K, L, P, H, activation, pooling, pool_size: as in ``preset_cnn``.
        batchnorm: batch norm inside the blocks.
        dropout: Dropout2d probability inside the blocks, in [0, 1).
        bottleneck: use bottleneck blocks where the channels allow.

    Returns:
        A valid spec.

    Raises:
        ValueError: an argument is invalid; ``SpecError`` when the input is
            bad or the feature maps shrink to nothing.
    """
    values = {"K": K, "L": L, "P": P, "H": H, "batchnorm": batchnorm}
    values |= {"dropout": dropout, "bottleneck": bottleneck, "activation": activation}
    _check_args(RESNET_PARAMS, values | {"pooling": pooling, "pool_size": pool_size})
    spec_input = _input(input)
    common = {"batchnorm": batchnorm, "dropout": dropout, "activation": activation}
    layers: list[dict[str, Any]] = []
    in_channels = resolve_input(spec_input)[0][0]
    for group in _groups(_channels(K, L), P):
        layers.append(_resnet_block(in_channels, group, bottleneck, common))
        if len(group) == P:
            layers.append(_pool_layer(pooling, pool_size))
        in_channels = group[-1]
    layers.append({"type": "flatten"})
    layers.extend(_classifier(H, activation, _num_classes(spec_input)))
    return _finish("torch", spec_input, layers)


def preset_ycn(
    input: Input = "cifar10",
    K: Sequence[int] = (64, 128, 256),
    L: int = 3,
    P: int = 3,
    H: Sequence[int] = (),
    dropout: float = 0.2,
    activation: str = "relu",
    pooling: str = "max",
    pool_size: int = 2,
) -> dict[str, Any]:
    """Return the spec of ``engine.cnn.YourCodeNet`` with its default conv_params.

    Each group ``g`` of ``P`` channels starts with a bias-free 3x3
    convolution to ``g[0]``, batch norm and the activation. A residual block
    with batch norm follows for each pair of ``g[1:]``, and a leftover entry
    gets a block of one convolution. A full group ends with a pool. Then come
    global average pooling and flatten, and per hidden width dropout, linear
    and activation, then dropout and a linear layer to the classes. The
    dropout layers are left out when ``dropout`` is 0.

    Args:
        input: a data set name or a spec input.
        K, L, P, H, activation, pooling, pool_size: as in ``preset_cnn``.
        dropout: probability of the classifier's dropout layers, in [0, 1).

    Returns:
        A valid spec.

    Raises:
        ValueError: an argument is invalid; ``SpecError`` when the input is
            bad or the feature maps shrink to nothing.
    """
    values = {"K": K, "L": L, "P": P, "H": H, "dropout": dropout}
    values |= {"activation": activation, "pooling": pooling, "pool_size": pool_size}
    _check_args(YCN_PARAMS, values)
    spec_input = _input(input)
    layers: list[dict[str, Any]] = []
    for group in _groups(_channels(K, L), P):
        layers.append(
            {
                "type": "conv2d",
                "out_channels": group[0],
                "kernel_size": 3,
                "stride": 1,
                "padding": 1,
                "bias": False,
            }
        )
        layers.append({"type": "batchnorm2d"})
        layers.append(_activation_layer(activation))
        rest = group[1:]
        for start in range(0, len(rest), 2):
            widths = rest[start : start + 2]
            layers.append(
                {
                    "type": "residual",
                    "channels": widths,
                    "kernel_sizes": [3] * len(widths),
                    "batchnorm": True,
                    "dropout": 0.0,
                    "activation": activation,
                }
            )
        if len(group) == P:
            layers.append(_pool_layer(pooling, pool_size))
    layers.append({"type": "globalavgpool"})
    layers.append({"type": "flatten"})
    layers.extend(_classifier(H, activation, _num_classes(spec_input), dropout))
    return _finish("torch", spec_input, layers)


def default_spec() -> dict[str, Any]:
    """Return the starting spec: a block MLP on digits with one hidden layer of 128."""
    return preset_mlp("digits", hidden=(128,))


PRESETS: dict[str, Preset] = {
    "mlp": Preset(
        "mlp",
        preset_mlp,
        MLP_PARAMS,
        "multilayer perceptron (blocks or torch)",
    ),
    "cnn": Preset(
        "cnn",
        preset_cnn,
        CNN_PARAMS,
        "ConvClassifier: [(conv -> act) x P -> pool] x (N / P), then linear layers",
    ),
    "resnet": Preset(
        "resnet",
        preset_resnet,
        RESNET_PARAMS,
        "ResNetClassifier: residual blocks of P convolutions, each with a pool",
    ),
    "ycn": Preset(
        "ycn",
        preset_ycn,
        YCN_PARAMS,
        "YourCodeNet: conv, batch norm and residual blocks per group, global pooling",
    ),
}
