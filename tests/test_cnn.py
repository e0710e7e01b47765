"""Tests of the convolutional and residual classifiers in engine.cnn."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.cnn import (
    ACTIVATIONS,
    POOLINGS,
    ConvClassifier,
    ResidualBlock,
    ResidualBottleneckBlock,
    ResNetClassifier,
    YourCodeNet,
    feature_shape,
)


def layer_types(sequential: nn.Sequential) -> list[type[nn.Module]]:
    return [type(layer) for layer in sequential]


def forward_shape(model: nn.Module, in_size: tuple[int, int, int]) -> torch.Size:
    model.eval()
    with torch.no_grad():
        return model(torch.zeros(2, *in_size)).shape


# --- ConvClassifier ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("channels", "pool_every", "hidden_dims"),
    [
        ([32], 1, [100]),
        ([32, 64], 2, [100]),
        ([32, 32, 64, 64], 2, [100, 50]),
        ([16] * 5, 2, []),
        ([8, 16, 32], 4, [10]),
    ],
)
def test_conv_classifier_output_shape(channels, pool_every, hidden_dims):
    model = ConvClassifier((3, 32, 32), 10, channels, pool_every, hidden_dims)
    assert forward_shape(model, (3, 32, 32)) == (2, 10)


def test_conv_classifier_remainder_rule():
    model = ConvClassifier((3, 32, 32), 10, [4, 5, 6, 7, 8], 2, [20])
    conv, act, pool = nn.Conv2d, nn.ReLU, nn.MaxPool2d
    expected = [conv, act, conv, act, pool, conv, act, conv, act, pool, conv, act]
    assert layer_types(model.feature_extractor) == expected


def test_conv_classifier_channels_in_order():
    model = ConvClassifier((3, 32, 32), 10, [4, 5, 6], 2, [20])
    convs = [m for m in model.feature_extractor if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 4), (4, 5), (5, 6)]


def test_conv_classifier_classifier_layers():
    model = ConvClassifier((3, 32, 32), 7, [4, 8], 2, [20, 30])
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    shapes = [(m.in_features, m.out_features) for m in linears]
    assert shapes == [(8 * 16 * 16, 20), (20, 30), (30, 7)]
    expected = [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert layer_types(model.classifier) == expected


def test_conv_classifier_default_conv_and_pool_params():
    model = ConvClassifier((3, 32, 32), 10, [4, 8], 2, [20])
    conv = model.feature_extractor[0]
    pool = model.feature_extractor[4]
    assert conv.kernel_size == (3, 3)
    assert conv.padding == (1, 1)
    assert pool.kernel_size == 2


def test_conv_classifier_custom_conv_and_pool_params():
    model = ConvClassifier(
        (3, 33, 31),
        10,
        [4, 5, 6],
        2,
        [7],
        conv_params={"kernel_size": 5, "stride": 2, "padding": 1},
        pooling_type="avg",
        pooling_params={"kernel_size": 3, "stride": 2, "ceil_mode": True},
    )
    convs = [m for m in model.feature_extractor if isinstance(m, nn.Conv2d)]
    pools = [m for m in model.feature_extractor if isinstance(m, nn.AvgPool2d)]
    assert all(c.kernel_size == (5, 5) for c in convs)
    assert all(c.stride == (2, 2) for c in convs)
    assert all(c.padding == (1, 1) for c in convs)
    assert len(pools) == 1
    assert pools[0].kernel_size == 3
    assert pools[0].ceil_mode
    assert forward_shape(model, (3, 33, 31)) == (2, 10)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_conv_classifier_each_activation(name):
    params = {"negative_slope": 0.05} if name == "lrelu" else None
    model = ConvClassifier(
        (1, 8, 8), 3, [4], 1, [6], activation_type=name, activation_params=params
    )
    activations = [m for m in model.modules() if isinstance(m, ACTIVATIONS[name])]
    assert len(activations) == 2
    assert forward_shape(model, (1, 8, 8)) == (2, 3)
    if name == "lrelu":
        assert activations[0].negative_slope == 0.05


@pytest.mark.parametrize("name", sorted(POOLINGS))
def test_conv_classifier_each_pooling(name):
    model = ConvClassifier((1, 8, 8), 3, [4, 4], 1, [6], pooling_type=name)
    pools = [m for m in model.modules() if isinstance(m, POOLINGS[name])]
    assert len(pools) == 2
    assert model.num_features == 4 * 2 * 2
    assert forward_shape(model, (1, 8, 8)) == (2, 3)


def test_conv_classifier_unknown_activation_lists_known():
    with pytest.raises(ValueError, match="relu, lrelu, tanh"):
        ConvClassifier((1, 8, 8), 3, [4], 1, [6], activation_type="swish2")


def test_conv_classifier_unknown_pooling_lists_known():
    with pytest.raises(ValueError, match="max, avg"):
        ConvClassifier((1, 8, 8), 3, [4], 1, [6], pooling_type="median")


def test_conv_classifier_vanishing_map_names_layer_and_size():
    with pytest.raises(ValueError, match=r"feature_extractor\.11 .* 1x1 .* to 0x0"):
        ConvClassifier((1, 8, 8), 10, [4] * 4, 1, [10])


def test_conv_classifier_vanishing_map_from_large_kernel():
    with pytest.raises(ValueError, match=r"feature_extractor\.0 .*8x8.*to -2x-2"):
        ConvClassifier((1, 8, 8), 10, [4], 1, [10], conv_params={"kernel_size": 11})


@pytest.mark.parametrize(
    ("layer", "in_shape"),
    [
        (nn.Conv2d(3, 5, 3, stride=2, padding=1, dilation=2), (3, 17, 14)),
        (nn.Conv2d(3, 5, (3, 5), padding="same"), (3, 9, 12)),
        (nn.Conv2d(3, 5, 4, padding="valid"), (3, 9, 12)),
        (nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (4, 10, 11)),
        (nn.MaxPool2d(2, dilation=2), (4, 9, 9)),
        (nn.AvgPool2d(3, stride=2, ceil_mode=True), (4, 7, 8)),
        (nn.AvgPool2d((2, 3)), (4, 7, 8)),
    ],
)
def test_feature_shape_matches_forward(layer, in_shape):
    with torch.no_grad():
        expected = tuple(layer(torch.zeros(1, *in_shape)).shape[1:])
    assert feature_shape(layer, in_shape) == expected


# --- random number generator -------------------------------------------------------


def test_conv_classifier_draws_only_weight_init_randomness():
    torch.manual_seed(7)
    model = ConvClassifier((1, 8, 8), 10, [4, 8], 2, [16])
    state_after_model = torch.get_rng_state()

    torch.manual_seed(7)
    by_hand = [
        nn.Conv2d(1, 4, 3, padding=1),
        nn.Conv2d(4, 8, 3, padding=1),
        nn.Linear(8 * 4 * 4, 16),
        nn.Linear(16, 10),
    ]
    state_after_hand = torch.get_rng_state()

    assert torch.equal(state_after_model, state_after_hand)
    model_weights = [m.weight for m in model.modules() if hasattr(m, "weight")]
    for built, made in zip(model_weights, by_hand, strict=True):
        assert torch.equal(built, made.weight)


def test_resnet_classifier_draws_only_weight_init_randomness():
    torch.manual_seed(3)
    ResNetClassifier((1, 8, 8), 10, [4, 8], 2, [16], batchnorm=True)
    state_after_model = torch.get_rng_state()

    torch.manual_seed(3)
    nn.Conv2d(1, 4, 3, padding=1)
    nn.BatchNorm2d(4)
    nn.Conv2d(4, 8, 3, padding=1)
    nn.Conv2d(1, 8, 1, bias=False)
    nn.Linear(8 * 4 * 4, 16)
    nn.Linear(16, 10)
    state_after_hand = torch.get_rng_state()

    assert torch.equal(state_after_model, state_after_hand)


def test_your_code_net_draws_only_weight_init_randomness():
    torch.manual_seed(5)
    YourCodeNet((1, 8, 8), 10, [4, 4, 4], 3, [])
    state_after_model = torch.get_rng_state()

    torch.manual_seed(5)
    nn.Conv2d(1, 4, 3, padding=1, bias=False)
    nn.Conv2d(4, 4, 3, padding=1)
    nn.Conv2d(4, 4, 3, padding=1)
    nn.Linear(4, 10)
    state_after_hand = torch.get_rng_state()

    assert torch.equal(state_after_model, state_after_hand)


# --- ResidualBlock ---------------------------------------------------------------


def test_residual_block_layer_order():
    block = ResidualBlock(
        3, [4, 5, 6], [3, 5, 1], batchnorm=True, dropout=0.1, activation_type="tanh"
    )
    expected = [
        nn.Conv2d,
        nn.Dropout2d,
        nn.BatchNorm2d,
        nn.Tanh,
        nn.Conv2d,
        nn.Dropout2d,
        nn.BatchNorm2d,
        nn.Tanh,
        nn.Conv2d,
    ]
    assert layer_types(block.main_path) == expected


def test_residual_block_padding_keeps_size():
    block = ResidualBlock(3, [4, 5, 6], [3, 5, 1])
    convs = [m for m in block.main_path if isinstance(m, nn.Conv2d)]
    assert [c.padding for c in convs] == [(1, 1), (2, 2), (0, 0)]
    assert forward_shape(block, (3, 9, 7)) == (2, 6, 9, 7)


def test_residual_block_plain_layers():
    block = ResidualBlock(3, [4, 6], [3, 3])
    assert layer_types(block.main_path) == [nn.Conv2d, nn.ReLU, nn.Conv2d]


def test_residual_block_identity_shortcut_when_channels_match():
    block = ResidualBlock(6, [4, 6], [3, 3])
    assert isinstance(block.shortcut_path, nn.Identity)


def test_residual_block_projection_shortcut_when_channels_differ():
    block = ResidualBlock(3, [4, 6], [3, 3])
    shortcut = block.shortcut_path
    assert isinstance(shortcut, nn.Conv2d)
    assert shortcut.kernel_size == (1, 1)
    assert shortcut.bias is None
    assert (shortcut.in_channels, shortcut.out_channels) == (3, 6)


def test_residual_block_has_no_unused_layers():
    block = ResidualBlock(3, [4, 6], [3, 3], batchnorm=True, dropout=0.2)
    block.train()
    block(torch.randn(2, 3, 5, 5)).sum().backward()
    for name, param in block.named_parameters():
        assert param.grad is not None, name
    modules = [m for m in block.modules() if not list(m.children())]
    assert len(modules) == len(block.main_path) + 1


def test_residual_block_output_is_relu_of_sum():
    torch.manual_seed(0)
    block = ResidualBlock(3, [4, 3], [3, 3])
    x = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        expected = torch.relu(block.main_path(x) + x)
        assert torch.equal(block(x), expected)


def test_residual_block_rejects_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        ResidualBlock(3, [4], [2])


def test_residual_block_rejects_length_mismatch():
    with pytest.raises(ValueError, match="same length"):
        ResidualBlock(3, [4, 5], [3])


# --- ResidualBottleneckBlock -------------------------------------------------------


def test_bottleneck_block_channels_and_kernels():
    block = ResidualBottleneckBlock(64, [16, 32], [3, 5], batchnorm=True)
    convs = [m for m in block.main_path if isinstance(m, nn.Conv2d)]
    channels = [(c.in_channels, c.out_channels) for c in convs]
    assert channels == [(64, 16), (16, 16), (16, 32), (32, 64)]
    assert [c.kernel_size[0] for c in convs] == [1, 3, 5, 1]
    assert isinstance(block.shortcut_path, nn.Identity)
    assert forward_shape(block, (64, 6, 6)) == (2, 64, 6, 6)


# --- ResNetClassifier ------------------------------------------------------------


def test_resnet_grouping_with_partial_group():
    model = ResNetClassifier((3, 32, 32), 10, [8, 8, 16, 16, 32], 2, [20])
    kinds = layer_types(model.feature_extractor)
    expected = [ResidualBlock, nn.MaxPool2d, ResidualBlock, nn.MaxPool2d, ResidualBlock]
    assert kinds == expected
    blocks = [m for m in model.feature_extractor if isinstance(m, ResidualBlock)]
    widths = [
        [c.out_channels for c in b.main_path if isinstance(c, nn.Conv2d)]
        for b in blocks
    ]
    assert widths == [[8, 8], [16, 16], [32]]
    assert model.num_features == 32 * 8 * 8
    assert forward_shape(model, (3, 32, 32)) == (2, 10)


def test_resnet_blocks_use_3x3_kernels_and_options():
    model = ResNetClassifier(
        (3, 16, 16), 10, [8, 8], 2, [], batchnorm=True, dropout=0.3
    )
    block = model.feature_extractor[0]
    convs = [m for m in block.main_path if isinstance(m, nn.Conv2d)]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert nn.BatchNorm2d in layer_types(block.main_path)
    assert nn.Dropout2d in layer_types(block.main_path)


def test_resnet_bottleneck_where_channels_agree():
    model = ResNetClassifier(
        (3, 32, 32), 10, [64, 32, 64, 64, 32, 64], 3, [10], bottleneck=True
    )
    first, second = (m for m in model.feature_extractor if isinstance(m, ResidualBlock))
    assert type(first) is ResidualBlock
    assert type(second) is ResidualBottleneckBlock
    convs = [m for m in second.main_path if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (64, 32),
        (32, 32),
        (32, 64),
    ]
    assert forward_shape(model, (3, 32, 32)) == (2, 10)


def test_resnet_vanishing_map_names_layer():
    with pytest.raises(ValueError, match=r"feature_extractor\.7 .* 1x1"):
        ResNetClassifier((1, 8, 8), 10, [4] * 4, 1, [10])


# --- YourCodeNet -------------------------------------------------------------------


def test_your_code_net_layer_plan():
    model = YourCodeNet((3, 32, 32), 10, [8, 8, 8, 16, 16], 3, [12], dropout=0.2)
    expected = [
        nn.Conv2d,
        nn.BatchNorm2d,
        nn.ReLU,
        ResidualBlock,
        nn.MaxPool2d,
        nn.Conv2d,
        nn.BatchNorm2d,
        nn.ReLU,
        ResidualBlock,
        nn.AdaptiveAvgPool2d,
        nn.Flatten,
    ]
    assert layer_types(model.feature_extractor) == expected
    classifier = [nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert layer_types(model.classifier) == classifier
    single = model.feature_extractor[8]
    assert [type(m) for m in single.main_path] == [nn.Conv2d]
    assert forward_shape(model, (3, 32, 32)) == (2, 10)


def test_your_code_net_residual_blocks_use_batchnorm():
    model = YourCodeNet((3, 32, 32), 10, [8, 8, 8], 3, [])
    block = model.feature_extractor[3]
    assert layer_types(block.main_path) == [
        nn.Conv2d,
        nn.BatchNorm2d,
        nn.ReLU,
        nn.Conv2d,
    ]
    assert model.feature_extractor[0].bias is None


def test_your_code_net_cifar_configuration_shape():
    model = YourCodeNet((3, 32, 32), 10, [16] * 3 + [32] * 3 + [64] * 3, 3, [])
    assert model.num_features == 64
    assert forward_shape(model, (3, 32, 32)) == (2, 10)


def test_your_code_net_vanishing_map_raises():
    with pytest.raises(ValueError, match="shrinks"):
        YourCodeNet((1, 8, 8), 10, [4] * 4, 1, [])


# --- training ----------------------------------------------------------------------


def test_conv_classifier_overfits_fifty_digits():
    from engine.data import load_dataset, make_loaders
    from engine.optimizers import make_optimizer
    from engine.training import TorchTrainer

    torch.manual_seed(0)
    data = load_dataset("digits", train_size=50)
    dl_train, dl_test = make_loaders(data, 10, seed=0)
    model = ConvClassifier(data.input_shape, 10, [16, 32], 2, [64])
    optimizer = make_optimizer(
        "torch-adam", model.parameters(), learn_rate=3e-3, reg=0.0
    )
    trainer = TorchTrainer(model, nn.CrossEntropyLoss(), optimizer, device="cpu")
    result = trainer.fit(dl_train, dl_test, num_epochs=30, print_every=0)
    assert len(data.y_train) == 50
    assert result.num_epochs == 30
    assert max(result.train_acc) >= 95.0
