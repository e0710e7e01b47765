"""Tests for layer-stack specs: shapes, counts, rejections, presets and files."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from engine import blocks, cnn
from engine.spec import (
    LAYER_TYPES,
    PRESETS,
    ParamSpec,
    SpecError,
    SpecFileError,
    build_model,
    check_param,
    default_layer,
    default_spec,
    format_shape,
    input_shape,
    layer_types,
    load_spec,
    normalize_spec,
    num_classes,
    parse_param,
    preset_cnn,
    preset_mlp,
    preset_resnet,
    preset_ycn,
    save_spec,
    summary,
    validate,
)

SMALL_IMAGE = {"shape": [3, 16, 16], "num_classes": 10}


def torch_spec(layers, input=None):
    return {
        "version": 1,
        "backend": "torch",
        "input": input or {"dataset": "cifar10"},
        "layers": layers,
    }


def blocks_spec(layers, input=None):
    return {
        "version": 1,
        "backend": "blocks",
        "input": input or {"dataset": "digits"},
        "layers": layers,
    }


def count_params(model) -> int:
    if isinstance(model, blocks.Block):
        return sum(param.numel() for param, _ in model.params())
    return sum(param.numel() for param in model.parameters())


def rejection(spec) -> SpecError:
    with pytest.raises(SpecError) as caught:
        validate(spec)
    return caught.value


# A torch spec that uses every torch layer type at least once.
EVERY_TORCH_LAYER = torch_spec(
    [
        {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
        {"type": "batchnorm2d"},
        {"type": "relu"},
        {"type": "residual", "channels": [16, 16], "kernel_sizes": [3, 5]},
        {"type": "lrelu", "alpha": 0.2},
        {"type": "maxpool2d", "kernel_size": 2},
        {
            "type": "bottleneck",
            "inner_channels": [4, 6],
            "inner_kernel_sizes": [3, 3],
            "batchnorm": True,
            "dropout": 0.1,
            "activation": "gelu",
        },
        {"type": "dropout2d", "p": 0.1},
        {"type": "conv2d", "out_channels": 12, "kernel_size": 3, "stride": 2},
        {"type": "conv2d", "out_channels": 12, "kernel_size": 1, "bias": False},
        {"type": "avgpool2d", "kernel_size": 3, "stride": 1},
        {"type": "elu"},
        {"type": "globalavgpool"},
        {"type": "silu"},
        {"type": "flatten"},
        {"type": "linear", "out_features": 20},
        {"type": "batchnorm1d"},
        {"type": "tanh"},
        {"type": "dropout", "p": 0.3},
        {"type": "linear", "out_features": 20, "bias": False},
        {"type": "sigmoid"},
        {"type": "gelu"},
        {"type": "linear", "out_features": 10},
    ],
    input=SMALL_IMAGE,
)

EVERY_BLOCK_LAYER = blocks_spec(
    [
        {"type": "linear", "out_features": 32, "wstd": 0.05},
        {"type": "relu"},
        {"type": "dropout", "p": 0.2},
        {"type": "linear", "out_features": 16},
        {"type": "lrelu", "alpha": 0.1},
        {"type": "linear", "out_features": 16},
        {"type": "sigmoid"},
        {"type": "linear", "out_features": 12},
        {"type": "tanh"},
        {"type": "linear", "out_features": 10},
    ]
)


def test_every_layer_type_is_covered():
    used = {layer["type"] for layer in EVERY_TORCH_LAYER["layers"]}
    used |= {layer["type"] for layer in EVERY_BLOCK_LAYER["layers"]}
    assert used == set(LAYER_TYPES)


# ---------------------------------------------------------------------------
# JSON round trips


def spec_cases():
    return {
        "default": default_spec(),
        "every_torch_layer": EVERY_TORCH_LAYER,
        "every_block_layer": EVERY_BLOCK_LAYER,
        **{name: preset.function() for name, preset in PRESETS.items()},
    }


@pytest.mark.parametrize("name", list(spec_cases()))
def test_spec_round_trips_through_json(name):
    spec = spec_cases()[name]
    decoded = json.loads(json.dumps(spec))
    assert decoded == spec
    assert summary(decoded) == summary(spec)


@pytest.mark.parametrize("name", list(spec_cases()))
def test_save_and_load_round_trip(tmp_path, name):
    spec = spec_cases()[name]
    path = tmp_path / "model.json"
    save_spec(path, spec)
    assert load_spec(path) == spec
    assert list(tmp_path.iterdir()) == [path]


def test_save_spec_adds_version(tmp_path):
    spec = default_spec()
    del spec["version"]
    path = tmp_path / "model.json"
    save_spec(path, spec)
    assert load_spec(path)["version"] == 1


def test_save_spec_rejects_invalid_spec(tmp_path):
    spec = blocks_spec([{"type": "linear", "out_features": 3}])
    with pytest.raises(SpecError):
        save_spec(tmp_path / "bad.json", spec)
    assert not (tmp_path / "bad.json").exists()


def test_save_spec_writes_draft_unchecked(tmp_path):
    spec = blocks_spec([])
    save_spec(tmp_path / "draft.json", spec, check=False)
    assert load_spec(tmp_path / "draft.json", check=False)["layers"] == []


def test_load_spec_bad_json_message(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"backend": "blocks",\n "layers": [}\n')
    with pytest.raises(SpecFileError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert str(path) in message
    assert "not valid JSON" in message
    assert "line 2" in message


def test_load_spec_not_utf8(tmp_path):
    path = tmp_path / "binary.json"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SpecFileError) as caught:
        load_spec(path)
    assert "not UTF-8" in str(caught.value)


def test_load_spec_invalid_spec_keeps_layer(tmp_path):
    path = tmp_path / "wide.json"
    spec = blocks_spec([{"type": "linear", "out_features": 7}])
    path.write_text(json.dumps(spec))
    with pytest.raises(SpecFileError) as caught:
        load_spec(path)
    assert str(path) in str(caught.value)
    assert "contains an invalid spec" in str(caught.value)
    assert caught.value.spec_error.index == 0
    assert caught.value.spec_error.layer_type == "linear"


def test_load_spec_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_spec(tmp_path / "absent.json")


# ---------------------------------------------------------------------------
# Hand-computed shapes and parameter counts


def test_conv_pool_flatten_linear_by_hand():
    spec = torch_spec(
        [
            {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1},
            {"type": "maxpool2d", "kernel_size": 2},
            {"type": "flatten"},
            {"type": "linear", "out_features": 10},
        ]
    )
    result = summary(spec, batch_size=8)
    assert [row.output_shape for row in result.rows] == [
        (16, 32, 32),
        (16, 16, 16),
        (4096,),
        (10,),
    ]
    # conv: 3*16*3*3 weights + 16 biases; linear: 4096*10 weights + 10 biases.
    assert [row.num_params for row in result.rows] == [448, 0, 0, 40970]
    assert result.total_params == 41418
    assert result.activation_bytes == (16384 + 4096 + 4096 + 10) * 8 * 4
    assert result.error is None
    assert result.input_shape == (3, 32, 32)
    assert result.num_classes == 10


def test_summary_row_names():
    spec = torch_spec(
        [
            {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1},
            {"type": "maxpool2d", "kernel_size": 2},
            {"type": "residual", "channels": [32, 32], "kernel_sizes": [3, 3]},
            {"type": "dropout2d", "p": 0.25},
            {"type": "flatten"},
            {"type": "linear", "out_features": 10},
        ]
    )
    names = [row.name for row in summary(spec).rows]
    assert names == [
        "conv2d(3->16, k3 s1 p1)",
        "maxpool2d(k2 s2)",
        "residual(16->32-32, k3-3)",
        "dropout2d(0.25)",
        "flatten",
        "linear(8192->10)",
    ]


def test_block_mlp_by_hand():
    result = summary(default_spec())
    assert [row.name for row in result.rows] == [
        "linear(64->128)",
        "relu",
        "linear(128->10)",
    ]
    # 64*128 + 128 and 128*10 + 10.
    assert [row.num_params for row in result.rows] == [8320, 0, 1290]
    assert result.total_params == 9610
    assert result.activation_bytes == (128 + 128 + 10) * 4


def test_blocks_first_linear_takes_flattened_image():
    spec = blocks_spec(
        [{"type": "linear", "out_features": 10}], input={"dataset": "cifar10"}
    )
    row = summary(spec).rows[0]
    assert row.name == "linear(3072->10)"
    assert row.num_params == 3072 * 10 + 10


def test_strided_conv_on_non_square_input():
    spec = torch_spec(
        [
            {
                "type": "conv2d",
                "out_channels": 4,
                "kernel_size": 5,
                "stride": 2,
                "padding": 0,
            },
            {"type": "avgpool2d", "kernel_size": 3, "stride": 2},
            {"type": "flatten"},
            {"type": "linear", "out_features": 5},
        ],
        input={"shape": [2, 21, 32], "num_classes": 5},
    )
    rows = summary(spec).rows
    # (21 - 5) // 2 + 1 = 9 and (32 - 5) // 2 + 1 = 14; then (9 - 3) // 2 + 1 = 4
    # and (14 - 3) // 2 + 1 = 6.
    assert rows[0].output_shape == (4, 9, 14)
    assert rows[0].num_params == 2 * 4 * 25 + 4
    assert rows[1].output_shape == (4, 4, 6)
    assert rows[3].num_params == 96 * 5 + 5


def test_residual_block_count_by_hand():
    spec = torch_spec(
        [
            {"type": "conv2d", "out_channels": 16},
            {
                "type": "residual",
                "channels": [32, 32],
                "kernel_sizes": [3, 3],
                "batchnorm": True,
            },
            {"type": "flatten"},
            {"type": "linear", "out_features": 10},
        ]
    )
    row = summary(spec).rows[1]
    # convs 16*32*9 + 32 and 32*32*9 + 32, one batch norm of 32 channels
    # (weight and bias), and a bias-free 1x1 shortcut of 16*32 weights.
    assert row.num_params == 4640 + 9248 + 64 + 512
    assert row.output_shape == (32, 32, 32)


def test_bottleneck_count_by_hand():
    spec = torch_spec(
        [
            {"type": "conv2d", "out_channels": 64},
            {"type": "bottleneck", "inner_channels": [16], "inner_kernel_sizes": [3]},
            {"type": "flatten"},
            {"type": "linear", "out_features": 10},
        ]
    )
    row = summary(spec).rows[1]
    # 1x1 64->16, 3x3 16->16, 1x1 16->64, each with bias; identity shortcut.
    assert row.num_params == (64 * 16 + 16) + (16 * 16 * 9 + 16) + (16 * 64 + 64)
    assert row.output_shape == (64, 32, 32)
    assert row.name == "bottleneck(64->16->64, k3)"


def test_format_shape():
    assert format_shape((16, 32, 32)) == "16x32x32"
    assert format_shape((128,)) == "128"


# ---------------------------------------------------------------------------
# Summaries against built models


def layer_outputs(model, spec):
    """Run a batch of two through each layer and return the output shapes."""
    shape = input_shape(spec)
    if spec["backend"] == "blocks":
        x = torch.randn(2, math.prod(shape))
        layers = model.blocks
    else:
        x = torch.randn(2, *shape)
        layers = list(model)
    shapes = []
    for layer in layers:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    return shapes


@pytest.mark.parametrize("name", list(spec_cases()))
def test_summary_matches_built_model(name):
    spec = spec_cases()[name]
    if name in PRESETS and spec["backend"] == "torch":
        spec = copy.deepcopy(spec)
        spec["input"] = SMALL_IMAGE
    torch.manual_seed(0)
    model = build_model(spec)
    result = summary(spec)
    layers = model.blocks if spec["backend"] == "blocks" else list(model)
    assert len(layers) == len(result.rows)
    for row, layer in zip(result.rows, layers, strict=True):
        assert row.num_params == count_params(layer), row.name
    assert result.total_params == count_params(model)
    model.train(False)
    with torch.no_grad():
        shapes = layer_outputs(model, spec)
    assert shapes == [row.output_shape for row in result.rows]


def test_build_blocks_model_types():
    model = build_model(EVERY_BLOCK_LAYER)
    assert isinstance(model, blocks.Sequential)
    assert [type(block) for block in model.blocks] == [
        blocks.Linear,
        blocks.ReLU,
        blocks.Dropout,
        blocks.Linear,
        blocks.LeakyReLU,
        blocks.Linear,
        blocks.Sigmoid,
        blocks.Linear,
        blocks.TanH,
        blocks.Linear,
    ]
    assert model.blocks[0].wstd == 0.05
    assert model.blocks[3].wstd == 0.1
    assert model.blocks[4].alpha == 0.1
    assert model.blocks[2].p == 0.2


def test_build_torch_model_parameters():
    model = build_model(EVERY_TORCH_LAYER)
    assert isinstance(model, nn.Sequential)
    assert isinstance(model[3], cnn.ResidualBlock)
    assert isinstance(model[6], cnn.ResidualBottleneckBlock)
    assert model[8].stride == (2, 2)
    assert model[8].padding == (1, 1)
    assert model[9].bias is None
    assert model[10].stride == 1
    assert model[19].bias is None
    assert model[4].negative_slope == 0.2


def test_build_is_seeded():
    torch.manual_seed(3)
    first = build_model(default_spec())
    torch.manual_seed(3)
    second = build_model(default_spec())
    assert torch.equal(first.blocks[0].weight, second.blocks[0].weight)


# ---------------------------------------------------------------------------
# Rejections


def test_reject_unknown_layer_type():
    error = rejection(blocks_spec([{"type": "conv3d"}]))
    assert error.index == 0
    assert error.layer_type == "conv3d"
    assert "unknown layer type 'conv3d'" in error.reason
    assert "linear, relu" in error.reason
    assert str(error).startswith("layers[0] (conv3d): ")


def test_reject_missing_parameter():
    error = rejection(blocks_spec([{"type": "relu"}, {"type": "linear"}]))
    assert error.index == 1
    assert error.layer_type == "linear"
    assert "missing parameter out_features" in error.reason
    assert "[1, inf)" in error.reason


def test_reject_out_of_range_probability():
    spec = blocks_spec(
        [
            {"type": "linear", "out_features": 32},
            {"type": "dropout", "p": 1.0},
            {"type": "linear", "out_features": 10},
        ]
    )
    error = rejection(spec)
    assert error.index == 1
    assert error.layer_type == "dropout"
    assert "p must be in [0, 1), got 1.0" in error.reason


def test_reject_out_of_range_kernel_size():
    error = rejection(
        torch_spec([{"type": "conv2d", "out_channels": 8, "kernel_size": 0}])
    )
    assert error.index == 0
    assert error.layer_type == "conv2d"
    assert "kernel_size must be in [1, inf), got 0" in error.reason


def test_reject_out_of_range_list_entry():
    spec = torch_spec(
        [{"type": "residual", "channels": [8, 0], "kernel_sizes": [3, 3]}]
    )
    error = rejection(spec)
    assert error.index == 0
    assert "channels[1] must be in [1, inf), got 0" in error.reason


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("64", "must be an integer, got '64' (str)"),
        (64.5, "must be an integer, got 64.5 (float)"),
        (True, "must be an integer, got True (bool)"),
        (None, "got None"),
    ],
)
def test_reject_wrong_parameter_type(value, words):
    error = rejection(blocks_spec([{"type": "linear", "out_features": value}]))
    assert error.index == 0
    assert error.layer_type == "linear"
    assert "out_features" in error.reason
    assert words in error.reason


def test_reject_wrong_bool_and_list_types():
    spec = torch_spec([{"type": "conv2d", "out_channels": 8, "bias": 1}])
    assert "bias must be true or false, got 1 (int)" in rejection(spec).reason
    spec = torch_spec([{"type": "residual", "channels": 8, "kernel_sizes": [3]}])
    assert "channels must be a list of integers" in rejection(spec).reason
    spec = torch_spec([{"type": "residual", "channels": [], "kernel_sizes": []}])
    assert "at least 1 entries" in rejection(spec).reason


def test_reject_unknown_choice():
    spec = torch_spec(
        [
            {
                "type": "residual",
                "channels": [8],
                "kernel_sizes": [3],
                "activation": "swish",
            }
        ]
    )
    error = rejection(spec)
    assert "activation must be one of relu, lrelu" in error.reason
    assert "'swish'" in error.reason


def test_reject_unknown_parameter():
    error = rejection(torch_spec([{"type": "conv2d", "out_channels": 8, "kernel": 3}]))
    assert error.index == 0
    assert "unknown parameter 'kernel'" in error.reason
    assert "kernel_size" in error.reason


def test_reject_linear_after_conv_without_flatten():
    spec = torch_spec(
        [
            {"type": "conv2d", "out_channels": 16},
            {"type": "maxpool2d"},
            {"type": "linear", "out_features": 10},
        ]
    )
    error = rejection(spec)
    assert error.index == 2
    assert error.layer_type == "linear"
    assert "needs flat features" in error.reason
    assert "16x16x16 feature maps" in error.reason
    assert "layers[1] (maxpool2d)" in error.reason
    assert "add a flatten layer" in error.reason


def test_reject_torch_linear_on_raw_image():
    error = rejection(torch_spec([{"type": "linear", "out_features": 10}]))
    assert error.index == 0
    assert "the input gives 3x32x32 feature maps" in error.reason


def test_reject_conv_after_flatten():
    spec = torch_spec([{"type": "flatten"}, {"type": "conv2d", "out_channels": 8}])
    error = rejection(spec)
    assert error.index == 1
    assert error.layer_type == "conv2d"
    assert "needs (C, H, W) feature maps" in error.reason
    assert "3072 flat features" in error.reason


def test_reject_feature_maps_shrinking_to_nothing():
    # Digits are 8x8: three 2x2 pools leave 1x1, and a fourth has no room.
    pool = {"type": "maxpool2d", "kernel_size": 2}
    spec = torch_spec(
        [
            pool,
            pool,
            pool,
            pool,
            {"type": "flatten"},
            {"type": "linear", "out_features": 10},
        ],
        input={"dataset": "digits"},
    )
    error = rejection(spec)
    assert error.index == 3
    assert error.layer_type == "maxpool2d"
    assert "shrink to nothing" in error.reason
    assert "1x1 input" in error.reason
    assert "kernel_size 2" in error.reason


def test_reject_conv_kernel_larger_than_maps():
    spec = torch_spec(
        [{"type": "conv2d", "out_channels": 4, "kernel_size": 11, "padding": 1}],
        input={"dataset": "digits"},
    )
    error = rejection(spec)
    assert error.index == 0
    assert "8x8 input" in error.reason
    assert "padding 1" in error.reason


@pytest.mark.parametrize(
    "layer_type", ["conv2d", "maxpool2d", "flatten", "residual", "gelu"]
)
def test_reject_torch_layer_in_blocks_model(layer_type):
    spec = blocks_spec(
        [default_layer(layer_type), {"type": "linear", "out_features": 10}]
    )
    error = rejection(spec)
    assert error.index == 0
    assert error.layer_type == layer_type
    assert "available only in torch models" in error.reason
    assert "switch the backend to torch" in error.reason


def test_reject_backend_specific_parameter():
    spec = torch_spec(
        [{"type": "flatten"}, {"type": "linear", "out_features": 10, "wstd": 0.5}]
    )
    error = rejection(spec)
    assert error.index == 1
    assert "wstd applies only to the blocks backend" in error.reason
    spec = blocks_spec([{"type": "linear", "out_features": 10, "bias": False}])
    assert "bias applies only to the torch backend" in rejection(spec).reason


def test_backend_specific_parameter_at_default_is_ignored():
    spec = blocks_spec([{"type": "linear", "out_features": 10, "bias": True}])
    validate(spec)
    spec = torch_spec(
        [{"type": "flatten"}, {"type": "linear", "out_features": 10, "wstd": 0.1}]
    )
    validate(spec)


def test_reject_residual_even_kernel_size():
    spec = torch_spec(
        [{"type": "residual", "channels": [8, 8], "kernel_sizes": [3, 2]}]
    )
    error = rejection(spec)
    assert error.index == 0
    assert error.layer_type == "residual"
    assert "even kernel size 2" in error.reason
    assert "odd" in error.reason


def test_reject_bottleneck_even_kernel_size():
    spec = torch_spec(
        [{"type": "bottleneck", "inner_channels": [8], "inner_kernel_sizes": [4]}]
    )
    error = rejection(spec)
    assert error.layer_type == "bottleneck"
    assert "inner_kernel_sizes [4] contains the even kernel size 4" in error.reason


def test_reject_residual_length_mismatch():
    spec = torch_spec([{"type": "residual", "channels": [8, 8], "kernel_sizes": [3]}])
    error = rejection(spec)
    assert "channels has 2 entries but kernel_sizes has 1" in error.reason


def test_reject_unknown_dataset():
    error = rejection(
        blocks_spec(
            [{"type": "linear", "out_features": 10}], input={"dataset": "cifar100"}
        )
    )
    assert error.index is None
    assert error.layer_type is None
    assert "unknown data set 'cifar100'" in error.reason
    assert "cifar10" in error.reason
    assert "digits" in error.reason


def test_reject_imagefolder_without_shape():
    error = rejection(
        blocks_spec(
            [{"type": "linear", "out_features": 10}], input={"dataset": "imagefolder"}
        )
    )
    assert "no fixed image shape" in error.reason
    assert '"shape": [C, H, W]' in error.reason


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"shape": [3, 32], "num_classes": 10}, "three positive integers"),
        ({"shape": [3, 0, 32], "num_classes": 10}, "three positive integers"),
        ({"shape": [3, 32.0, 32], "num_classes": 10}, "three positive integers"),
        ({"shape": [3, 32, 32], "num_classes": 1}, "num_classes must be"),
        ({"shape": [3, 32, 32]}, "got the keys ['shape']"),
        ({"dataset": "digits", "shape": [1, 8, 8]}, "got the keys"),
        ("digits", 'input must be {"dataset": NAME}'),
        ({"dataset": ["digits"]}, "unknown data set ['digits']"),
    ],
)
def test_reject_bad_input(value, words):
    error = rejection(
        blocks_spec([{"type": "linear", "out_features": 10}], input=value)
    )
    assert error.index is None
    assert words in error.reason


def test_reject_empty_layer_list():
    error = rejection(blocks_spec([]))
    assert error.index is None
    assert "the layer list is empty" in error.reason
    assert "out_features=10" in error.reason


def test_reject_wrong_final_width():
    spec = blocks_spec([{"type": "linear", "out_features": 12}, {"type": "relu"}])
    error = rejection(spec)
    assert error.index == 1
    assert error.layer_type == "relu"
    assert "gives 12 features" in error.reason
    assert "10 classes" in error.reason


def test_reject_final_feature_maps():
    error = rejection(torch_spec([{"type": "conv2d", "out_channels": 10}]))
    assert error.index == 0
    assert "must end with 10 flat features" in error.reason
    assert "10x32x32 feature maps" in error.reason


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ([], "must be a JSON object"),
        (
            {"backend": "jax", "input": {"dataset": "digits"}, "layers": []},
            "backend must be one of blocks, torch, got 'jax'",
        ),
        (
            {
                "version": 2,
                "backend": "blocks",
                "input": {"dataset": "digits"},
                "layers": [],
            },
            "unsupported spec version 2",
        ),
        (
            {
                "backend": "blocks",
                "input": {"dataset": "digits"},
                "layers": [],
                "optimizer": "adam",
            },
            "unknown spec key 'optimizer'",
        ),
        ({"backend": "blocks", "layers": []}, "missing input"),
        (
            {"backend": "blocks", "input": {"dataset": "digits"}, "layers": {}},
            "layers must be a list",
        ),
        (
            {
                "backend": "blocks",
                "input": {"dataset": "digits"},
                "layers": [],
                "name": 3,
            },
            "name must be a string",
        ),
    ],
)
def test_reject_bad_top_level(spec, words):
    error = rejection(spec)
    assert error.index is None
    assert words in error.reason


def test_reject_layer_that_is_not_an_object():
    error = rejection(blocks_spec([{"type": "relu"}, "linear"]))
    assert error.index == 1
    assert error.layer_type is None
    assert 'must be an object with a "type" string' in error.reason


def test_summary_stops_before_bad_layer():
    spec = torch_spec(
        [
            {"type": "conv2d", "out_channels": 16},
            {"type": "relu"},
            {"type": "linear", "out_features": 10},
            {"type": "relu"},
        ]
    )
    result = summary(spec, batch_size=2)
    assert [row.index for row in result.rows] == [0, 1]
    assert result.total_params == 448
    assert result.activation_bytes == 2 * 16384 * 2 * 4
    assert result.error is not None
    assert result.error.index == 2
    assert result.error.layer_type == "linear"
    assert str(result.error) == str(rejection(spec))


def test_summary_wrong_width_drops_last_row():
    spec = blocks_spec([{"type": "linear", "out_features": 32}, {"type": "relu"}])
    result = summary(spec)
    assert [row.index for row in result.rows] == [0]
    assert result.error.index == 1


def test_summary_of_bad_input_has_no_rows():
    result = summary(blocks_spec([{"type": "relu"}], input={"dataset": "nope"}))
    assert result.rows == []
    assert result.total_params == 0
    assert result.error.index is None


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True])
def test_summary_rejects_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        summary(default_spec(), batch_size=batch_size)


def test_build_model_rejects_invalid_spec():
    with pytest.raises(SpecError) as caught:
        build_model(blocks_spec([{"type": "conv2d", "out_channels": 3}]))
    assert caught.value.index == 0


# ---------------------------------------------------------------------------
# Layer table and form parsing


def test_layer_types_per_backend():
    assert layer_types("blocks") == [
        "linear",
        "relu",
        "lrelu",
        "sigmoid",
        "tanh",
        "dropout",
    ]
    torch_types = layer_types("torch")
    assert torch_types[: len(layer_types("blocks"))][:2] == ["linear", "relu"]
    assert set(torch_types) == set(LAYER_TYPES)
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        layer_types("jax")


def test_default_layer_fills_every_parameter():
    assert default_layer("conv2d") == {
        "type": "conv2d",
        "out_channels": 32,
        "kernel_size": 3,
        "stride": 1,
        "padding": 1,
        "bias": True,
    }
    assert default_layer("linear", backend="blocks") == {
        "type": "linear",
        "out_features": 64,
        "wstd": 0.1,
    }
    with pytest.raises(ValueError, match="unknown layer type 'conv3d'"):
        default_layer("conv3d")


def test_default_layer_lists_are_copies():
    layer = default_layer("residual")
    layer["channels"].append(1)
    assert default_layer("residual")["channels"] == [64, 64]


def test_every_default_passes_its_check():
    for layer_type in LAYER_TYPES.values():
        for param in layer_type.params:
            assert check_param(param, param.default) == param.default, param.name
    for preset in PRESETS.values():
        for param in preset.params:
            assert check_param(param, param.default) == param.default, param.name


def test_parse_param_numbers():
    conv = LAYER_TYPES["conv2d"]
    assert parse_param(conv.param("kernel_size"), " 5 ") == 5
    assert parse_param(LAYER_TYPES["dropout"].param("p"), "0.25") == 0.25
    assert parse_param(LAYER_TYPES["dropout"].param("p"), "") == 0.5
    with pytest.raises(ValueError, match="kernel_size must be an integer, got '3.5'"):
        parse_param(conv.param("kernel_size"), "3.5")
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\), got 1.5"):
        parse_param(LAYER_TYPES["dropout"].param("p"), "1.5")
    with pytest.raises(ValueError, match="p must be a number, got 'half'"):
        parse_param(LAYER_TYPES["dropout"].param("p"), "half")
    with pytest.raises(ValueError, match="must be a finite number"):
        parse_param(LAYER_TYPES["dropout"].param("p"), "nan")


def test_parse_param_required_and_optional():
    out_features = LAYER_TYPES["linear"].param("out_features")
    with pytest.raises(ValueError, match="out_features is required"):
        parse_param(out_features, "  ")
    stride = LAYER_TYPES["maxpool2d"].param("stride")
    assert parse_param(stride, "") is None
    assert parse_param(stride, "None") is None
    assert parse_param(stride, "3") == 3


def test_parse_param_bool_choice_and_list():
    bias = LAYER_TYPES["conv2d"].param("bias")
    assert parse_param(bias, "no") is False
    assert parse_param(bias, "True") is True
    with pytest.raises(ValueError, match="bias must be true or false, got 'maybe'"):
        parse_param(bias, "maybe")
    activation = LAYER_TYPES["residual"].param("activation")
    assert parse_param(activation, "gelu") == "gelu"
    with pytest.raises(ValueError, match="activation must be one of"):
        parse_param(activation, "swish")
    channels = LAYER_TYPES["residual"].param("channels")
    assert parse_param(channels, "32, 64") == [32, 64]
    assert parse_param(channels, "[32 64]") == [32, 64]
    with pytest.raises(ValueError, match="channels must be an integer, got 'x'"):
        parse_param(channels, "32, x")
    with pytest.raises(ValueError, match="at least 1 entries"):
        parse_param(channels, "[]")
    hidden = PRESETS["cnn"].params[3]
    assert hidden.name == "H"
    assert parse_param(hidden, "[]") == []


def test_param_spec_range_text():
    assert (
        ParamSpec(
            "x", "float", 0.0, minimum=0.0, maximum=1.0, max_inclusive=False
        ).range_text()
        == "[0, 1)"
    )
    assert ParamSpec("x", "int", 1, minimum=1).range_text() == "[1, inf)"


def test_input_helpers():
    assert input_shape(default_spec()) == (1, 8, 8)
    assert num_classes(default_spec()) == 10
    with pytest.raises(SpecError, match="unknown data set"):
        input_shape({"input": {"dataset": "nope"}})


def test_normalize_spec_writes_defaults():
    spec = torch_spec(
        [{"type": "flatten"}, {"type": "linear", "out_features": 10, "wstd": 0.1}]
    )
    spec["name"] = "tiny"
    normalized = normalize_spec(spec)
    assert normalized["layers"] == [
        {"type": "flatten"},
        {"type": "linear", "out_features": 10, "bias": True},
    ]
    assert normalized["name"] == "tiny"
    assert summary(normalized) == summary(spec)


def test_spec_error_pickles():
    import pickle

    error = SpecError(2, "linear", "bad")
    copied = pickle.loads(pickle.dumps(error))
    assert (copied.index, copied.layer_type, copied.reason) == (2, "linear", "bad")


def test_import_needs_no_torch():
    code = (
        "import sys, engine.spec as s; s.summary(s.preset_ycn()); "
        "s.validate(s.default_spec()); print('torch' in sys.modules)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "False"


# ---------------------------------------------------------------------------
# Presets against the classes they mirror


def leaf_types(model: nn.Module) -> list[type]:
    return [
        type(module)
        for module in model.modules()
        if not list(module.children()) and not isinstance(module, nn.Flatten)
    ]


def assert_same_model(built: nn.Module, reference: nn.Module, in_shape):
    assert count_params(built) == count_params(reference)
    assert leaf_types(built) == leaf_types(reference)
    reference_params = list(reference.parameters())
    built_params = list(built.parameters())
    assert [p.shape for p in built_params] == [p.shape for p in reference_params]
    with torch.no_grad():
        for target, source in zip(built_params, reference_params, strict=True):
            target.copy_(source)
    built.eval()
    reference.eval()
    x = torch.randn(2, *in_shape)
    with torch.no_grad():
        assert torch.allclose(built(x), reference(x), atol=1e-5)


CNN_CASES = [
    dict(K=[8, 16], L=2, P=2, H=[20]),
    dict(K=[8], L=3, P=2, H=[]),
    dict(K=[4, 8], L=1, P=1, H=[12, 6], activation="lrelu", pooling="avg"),
    dict(
        K=[6],
        L=2,
        P=2,
        H=[10],
        kernel_size=5,
        padding=2,
        pool_size=4,
        activation="tanh",
    ),
]


@pytest.mark.parametrize("case", CNN_CASES)
def test_preset_cnn_equals_conv_classifier(case):
    torch.manual_seed(0)
    spec = preset_cnn(SMALL_IMAGE, **case)
    reference = cnn.ConvClassifier(
        (3, 16, 16),
        10,
        channels=[k for k in case["K"] for _ in range(case["L"])],
        pool_every=case["P"],
        hidden_dims=case["H"],
        conv_params={
            "kernel_size": case.get("kernel_size", 3),
            "padding": case.get("padding", 1),
        },
        activation_type=case.get("activation", "relu"),
        pooling_type=case.get("pooling", "max"),
        pooling_params={"kernel_size": case.get("pool_size", 2)},
    )
    assert summary(spec).total_params == count_params(reference)
    assert_same_model(build_model(spec), reference, (3, 16, 16))


def test_preset_cnn_defaults_equal_course_configuration():
    spec = preset_cnn("cifar10", K=[32, 64], L=2, P=2, H=[100])
    reference = cnn.ConvClassifier((3, 32, 32), 10, [32, 32, 64, 64], 2, [100])
    assert summary(spec).total_params == count_params(reference)


RESNET_CASES = [
    dict(K=[8, 16], L=2, P=2, H=[20]),
    dict(K=[8], L=5, P=2, H=[], batchnorm=True, dropout=0.1),
    # The second group of three 8s starts and ends at 8 channels.
    dict(K=[8], L=6, P=3, H=[10], bottleneck=True),
    dict(
        K=[4, 8, 4],
        L=1,
        P=3,
        H=[10],
        bottleneck=True,
        batchnorm=True,
        activation="gelu",
        pooling="avg",
    ),
]


@pytest.mark.parametrize("case", RESNET_CASES)
def test_preset_resnet_equals_resnet_classifier(case):
    spec = preset_resnet(SMALL_IMAGE, **case)
    reference = cnn.ResNetClassifier(
        (3, 16, 16),
        10,
        channels=[k for k in case["K"] for _ in range(case["L"])],
        pool_every=case["P"],
        hidden_dims=case["H"],
        batchnorm=case.get("batchnorm", False),
        dropout=case.get("dropout", 0.0),
        bottleneck=case.get("bottleneck", False),
        activation_type=case.get("activation", "relu"),
        pooling_type=case.get("pooling", "max"),
    )
    assert summary(spec).total_params == count_params(reference)
    assert_same_model(build_model(spec), reference, (3, 16, 16))


def test_preset_resnet_uses_bottleneck_when_channels_allow():
    spec = preset_resnet(SMALL_IMAGE, K=[8], L=6, P=3, H=[], bottleneck=True)
    types = [layer["type"] for layer in spec["layers"]]
    assert types[:4] == ["residual", "maxpool2d", "bottleneck", "maxpool2d"]
    assert spec["layers"][2]["inner_channels"] == [8]


YCN_CASES = [
    dict(K=[8, 16], L=3, P=3, H=[]),
    dict(K=[8], L=4, P=2, H=[12], dropout=0.0),
    dict(K=[4, 8], L=2, P=3, H=[6], activation="lrelu", pooling="avg"),
]


@pytest.mark.parametrize("case", YCN_CASES)
def test_preset_ycn_equals_your_code_net(case):
    spec = preset_ycn(SMALL_IMAGE, **case)
    reference = cnn.YourCodeNet(
        (3, 16, 16),
        10,
        channels=[k for k in case["K"] for _ in range(case["L"])],
        pool_every=case["P"],
        hidden_dims=case["H"],
        dropout=case.get("dropout", 0.2),
        activation_type=case.get("activation", "relu"),
        pooling_type=case.get("pooling", "max"),
    )
    assert summary(spec).total_params == count_params(reference)
    assert_same_model(build_model(spec), reference, (3, 16, 16))


def test_preset_ycn_recommended_configuration():
    spec = preset_ycn("cifar10")
    reference = cnn.YourCodeNet(
        (3, 32, 32), 10, [64] * 3 + [128] * 3 + [256] * 3, 3, []
    )
    assert summary(spec).total_params == count_params(reference)


@pytest.mark.parametrize(
    "case",
    [
        dict(hidden=[32, 16], activation="tanh", dropout=0.3, wstd=0.05),
        dict(hidden=[], activation="relu"),
        dict(hidden=[20], activation="lrelu"),
    ],
)
def test_preset_mlp_equals_block_mlp(case):
    spec = preset_mlp("digits", **case)
    reference = blocks.MLP(
        64,
        10,
        hidden_features=case["hidden"],
        activation=case["activation"],
        dropout=case.get("dropout", 0.0),
        wstd=case.get("wstd", 0.1),
    )
    built = build_model(spec)
    assert summary(spec).total_params == count_params(reference)
    assert [type(block) for block in built.blocks] == [
        type(block) for block in reference.sequence.blocks
    ]


def test_preset_mlp_torch_backend():
    spec = preset_mlp("cifar10", hidden=[32], backend="torch")
    assert spec["layers"][0] == {"type": "flatten"}
    model = build_model(spec)
    assert isinstance(model, nn.Sequential)
    assert count_params(model) == 3072 * 32 + 32 + 32 * 10 + 10


def test_preset_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"L must be in \[1, inf\), got 0"):
        preset_cnn("cifar10", L=0)
    with pytest.raises(ValueError, match="K must have at least 1 entries"):
        preset_resnet("cifar10", K=[])
    with pytest.raises(ValueError, match="activation must be one of"):
        preset_mlp("digits", activation="gelu")
    with pytest.raises(SpecError, match="unknown data set"):
        preset_ycn("cifar100")


def test_preset_rejects_vanishing_feature_maps():
    with pytest.raises(SpecError) as caught:
        preset_cnn("digits", K=[8], L=4, P=1, H=[])
    assert caught.value.layer_type == "maxpool2d"
    assert "shrink to nothing" in caught.value.reason


def test_every_preset_builds_from_its_form_defaults():
    for name, preset in PRESETS.items():
        values = {param.name: param.default for param in preset.params}
        spec = preset.function(SMALL_IMAGE, **values)
        validate(spec)
        assert summary(spec).error is None, name


def test_default_spec_is_block_mlp_on_digits():
    spec = default_spec()
    assert spec["backend"] == "blocks"
    assert spec["input"] == {"dataset": "digits"}
    assert [row.name for row in summary(spec).rows][0] == "linear(64->128)"
    assert isinstance(build_model(spec), blocks.Sequential)
