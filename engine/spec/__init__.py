"""Layer-stack specs: a model described as JSON-able data.

A spec is a dict such as::

    {
        "version": 1,
        "backend": "blocks",
        "input": {"dataset": "digits"},
        "layers": [
            {"type": "linear", "out_features": 128},
            {"type": "relu"},
            {"type": "linear", "out_features": 10},
        ],
    }

``backend`` is "blocks" (the from-scratch blocks of ``engine.blocks``) or
"torch" (``torch.nn`` modules and the blocks of ``engine.cnn``). ``input`` is
``{"dataset": NAME}`` or ``{"shape": [C, H, W], "num_classes": K}``.
``validate`` and ``summary`` are plain arithmetic and import no torch;
``build_model`` imports torch when called.
"""

from engine.spec.build import build_model
from engine.spec.files import SpecFileError, load_spec, save_spec
from engine.spec.layers import (
    ACTIVATION_NAMES,
    BACKENDS,
    LAYER_TYPES,
    LayerType,
    SpecError,
    default_layer,
    layer_types,
)
from engine.spec.params import ParamSpec, check_param, parse_param
from engine.spec.presets import (
    PRESETS,
    Preset,
    default_spec,
    preset_cnn,
    preset_mlp,
    preset_resnet,
    preset_ycn,
)
from engine.spec.shapes import (
    SPEC_VERSION,
    Summary,
    SummaryRow,
    format_shape,
    input_shape,
    normalize_spec,
    num_classes,
    summary,
    validate,
)

__all__ = [
    "ACTIVATION_NAMES",
    "BACKENDS",
    "LAYER_TYPES",
    "PRESETS",
    "SPEC_VERSION",
    "LayerType",
    "ParamSpec",
    "Preset",
    "SpecError",
    "SpecFileError",
    "Summary",
    "SummaryRow",
    "build_model",
    "check_param",
    "default_layer",
    "default_spec",
    "format_shape",
    "input_shape",
    "layer_types",
    "load_spec",
    "normalize_spec",
    "num_classes",
    "parse_param",
    "preset_cnn",
    "preset_mlp",
    "preset_resnet",
    "preset_ycn",
    "save_spec",
    "summary",
    "validate",
]
