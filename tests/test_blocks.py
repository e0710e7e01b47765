"""Tests of engine.blocks: forward values, structure, modes, state and errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.blocks import (
    MLP,
    Block,
    CrossEntropyLoss,
    Dropout,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    TanH,
)

ACTIVATION_CASES = [
    (ReLU(), F.relu),
    (LeakyReLU(0.2), lambda x: F.leaky_relu(x, 0.2)),
    (Sigmoid(), torch.sigmoid),
    (TanH(), torch.tanh),
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# -- forward values ---------------------------------------------------------


def test_linear_forward_matches_torch() -> None:
    layer = Linear(5, 3)
    x = torch.randn(4, 5)
    expected = F.linear(x, layer.weight, layer.bias)
    assert torch.allclose(layer(x), expected)


def test_linear_init_shapes_and_std() -> None:
    layer = Linear(400, 300, wstd=0.05)
    assert layer.weight.shape == (300, 400)
    assert layer.bias.shape == (300,)
    assert torch.count_nonzero(layer.bias) == 0
    assert abs(layer.weight.std().item() - 0.05) < 0.002
    assert abs(layer.weight.mean().item()) < 0.002


@pytest.mark.parametrize(("block", "reference"), ACTIVATION_CASES)
def test_activation_forward_matches_torch_3d(block: Block, reference) -> None:
    x = torch.randn(2, 3, 4)
    assert torch.allclose(block(x), reference(x))


def test_loss_matches_torch_cross_entropy() -> None:
    scores = torch.randn(6, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 3, 0])
    loss = CrossEntropyLoss()(scores, labels)
    assert loss.dim() == 0
    assert torch.allclose(loss, F.cross_entropy(scores, labels))


def test_loss_extreme_scores_are_finite() -> None:
    scores = torch.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]])
    labels = torch.tensor([1, 2, 0])
    loss_fn = CrossEntropyLoss()
    loss = loss_fn(scores, labels)
    grad = loss_fn.backward()
    assert torch.isfinite(loss)
    assert torch.allclose(loss, F.cross_entropy(scores, labels))
    assert torch.isfinite(grad).all()
    reference = scores.clone().requires_grad_(True)
    F.cross_entropy(reference, labels).backward()
    assert torch.allclose(grad, reference.grad)


def test_loss_backward_scales_by_dout() -> None:
    scores = torch.randn(5, 3, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 1, 0])
    loss_fn = CrossEntropyLoss()
    loss_fn(scores, labels)
    assert torch.allclose(loss_fn.backward(2.5), 2.5 * loss_fn.backward())
    assert torch.allclose(loss_fn.backward(torch.tensor(2.5)), loss_fn.backward(2.5))


def test_forward_ignores_extra_keywords() -> None:
    x = torch.randn(3, 4)
    labels = torch.tensor([0, 1, 2])
    assert torch.equal(ReLU()(x, y=labels), torch.relu(x))
    assert Linear(4, 2)(x, y=labels).shape == (3, 2)


# -- dtypes and devices -----------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mlp_follows_input_dtype(dtype: torch.dtype) -> None:
    model = MLP(6, 3, hidden_features=(5,), dropout=0.5)
    scores = model(torch.randn(4, 6, dtype=dtype))
    dx = model.backward(torch.ones_like(scores))
    assert scores.dtype == dtype
    assert dx.dtype == dtype
    for param, grad in model.params():
        assert param.dtype == dtype
        assert grad.dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_loss_follows_input_dtype(dtype: torch.dtype) -> None:
    loss_fn = CrossEntropyLoss()
    loss = loss_fn(torch.randn(4, 3, dtype=dtype), torch.tensor([0, 1, 2, 0]))
    assert loss.dtype == dtype
    assert loss_fn.backward().dtype == dtype


def test_to_keeps_tensor_identity() -> None:
    model = MLP(4, 2, hidden_features=(3,))
    before = [(id(param), id(grad)) for param, grad in model.params()]
    assert model.to(dtype=torch.float64) is model
    after = [(id(param), id(grad)) for param, grad in model.params()]
    assert before == after
    assert all(param.dtype == torch.float64 for param, _ in model.params())


def test_to_rejects_integer_dtype() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        Linear(2, 2).to(dtype=torch.int64)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_blocks_follow_cuda_input() -> None:
    model = Sequential(MLP(6, 3, hidden_features=(5,), dropout=0.2), CrossEntropyLoss())
    x = torch.randn(4, 6, device="cuda")
    labels = torch.tensor([0, 1, 2, 0], device="cuda")
    loss = model(x, y=labels)
    dx = model.backward()
    assert loss.device.type == "cuda"
    assert dx.device.type == "cuda"
    for param, grad in model.params():
        assert param.device.type == "cuda"
        assert grad.device.type == "cuda"
    model.to(device="cpu")
    assert all(param.device.type == "cpu" for param, _ in model.params())


# -- parameters and state ---------------------------------------------------


def test_linear_params_order_and_count() -> None:
    layer = Linear(4, 3)
    (weight, dweight), (bias, dbias) = layer.params()
    assert weight is layer.weight
    assert dweight is layer.dweight
    assert bias is layer.bias
    assert dbias is layer.dbias
    assert layer.num_params() == 4 * 3 + 3


def test_activations_have_no_params() -> None:
    for block in (
        ReLU(),
        LeakyReLU(),
        Sigmoid(),
        TanH(),
        Dropout(),
        CrossEntropyLoss(),
    ):
        assert block.params() == []
        assert block.num_params() == 0


def test_linear_backward_accumulates() -> None:
    layer = Linear(4, 3)
    x = torch.randn(5, 4)
    dout = torch.randn(5, 3)
    layer(x)
    layer.backward(dout)
    first = layer.dweight.clone()
    layer.backward(dout)
    assert torch.allclose(layer.dweight, 2 * first)


def test_linear_backward_without_input_grad() -> None:
    layer = Linear(4, 3)
    layer(torch.randn(5, 4))
    assert layer.backward(torch.ones(5, 3), input_grad=False) is None
    assert torch.allclose(layer.dbias, torch.full((3,), 5.0))


def test_zero_grad_clears_grads() -> None:
    model = MLP(4, 2, hidden_features=(3,))
    model.backward(torch.ones_like(model(torch.randn(2, 4))))
    model.zero_grad()
    assert all(torch.count_nonzero(grad) == 0 for _, grad in model.params())


def test_state_dict_keys() -> None:
    model = MLP(4, 2, hidden_features=(3,))
    assert list(model.state_dict()) == [
        "sequence.0.weight",
        "sequence.0.bias",
        "sequence.2.weight",
        "sequence.2.bias",
    ]
    assert list(Sequential(ReLU(), Linear(2, 2)).state_dict()) == ["1.weight", "1.bias"]


def test_load_state_dict_copies_in_place() -> None:
    source = MLP(4, 2, hidden_features=(3,))
    target = MLP(4, 2, hidden_features=(3,))
    weight = target.sequence[0].weight
    target.load_state_dict(source.state_dict())
    assert target.sequence[0].weight is weight
    for name, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], value)


def test_load_state_dict_rejects_missing_key() -> None:
    model = MLP(4, 2, hidden_features=(3,))
    state = model.state_dict()
    del state["sequence.2.bias"]
    with pytest.raises(ValueError, match=r"missing \['sequence.2.bias'\]"):
        model.load_state_dict(state)


def test_load_state_dict_rejects_unexpected_key() -> None:
    model = Linear(2, 2)
    state = {**model.state_dict(), "extra": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        model.load_state_dict(state)


def test_load_state_dict_rejects_bad_shape() -> None:
    model = Linear(2, 2)
    state = {"weight": torch.zeros(2, 3), "bias": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"'weight' has shape \(2, 3\), expected"):
        model.load_state_dict(state)


# -- modes --------------------------------------------------------------------


def test_train_returns_block_and_propagates() -> None:
    model = MLP(4, 2, hidden_features=(3, 3), dropout=0.5)
    assert model.train(False) is model
    assert all(not block.training for block in model.sequence)
    assert model.train() is model
    assert all(block.training for block in model.sequence)
    assert model.eval() is model
    assert not model.sequence[2].training


def test_dropout_eval_is_identity() -> None:
    block = Dropout(0.5).eval()
    x = torch.randn(10, 10)
    assert torch.equal(block(x), x)
    assert torch.equal(block.backward(x), x)


def test_dropout_zero_p_is_identity_in_training() -> None:
    x = torch.randn(10, 10)
    assert torch.equal(Dropout(0.0)(x), x)


def test_dropout_train_zeros_and_scales() -> None:
    block = Dropout(0.25)
    x = torch.ones(200, 200)
    out = block(x)
    kept_mask = out != 0
    assert abs(1 - kept_mask.float().mean().item() - 0.25) < 0.01
    assert torch.allclose(out[kept_mask], torch.full_like(out[kept_mask], 1 / 0.75))


def test_dropout_backward_uses_forward_mask() -> None:
    block = Dropout(0.5)
    x = torch.randn(20, 20)
    out = block(x)
    dx = block.backward(torch.ones_like(x))
    assert torch.equal(dx == 0, out == 0)
    assert torch.allclose(dx[dx != 0], torch.full_like(dx[dx != 0], 2.0))


def test_dropout_seeded_masks_repeat() -> None:
    block = Dropout(0.5)
    x = torch.randn(30, 30)
    torch.manual_seed(7)
    first = block(x)
    second = block(x)
    torch.manual_seed(7)
    again = block(x)
    assert torch.equal(first, again)
    assert not torch.equal(first, second)


# -- containers ---------------------------------------------------------------


def test_sequential_indexing_slicing_iteration() -> None:
    blocks = [Linear(4, 3), ReLU(), Linear(3, 2)]
    model = Sequential(*blocks)
    assert len(model) == 3
    assert model[0] is blocks[0]
    assert model[-1] is blocks[2]
    assert isinstance(model[1:], Sequential)
    assert list(model[1:]) == blocks[1:]
    assert list(model) == blocks


def test_sequential_params_in_order() -> None:
    first, second = Linear(4, 3), Linear(3, 2)
    model = Sequential(first, ReLU(), second)
    expected = first.params() + second.params()
    assert [p for p, _ in model.params()] == [p for p, _ in expected]
    assert model.num_params() == first.num_params() + second.num_params()


def test_sequential_passes_labels_to_loss() -> None:
    model = Sequential(Linear(4, 3), CrossEntropyLoss())
    x = torch.randn(5, 4)
    labels = torch.tensor([0, 1, 2, 0, 1])
    loss = model(x, y=labels)
    expected = F.cross_entropy(model[0](x), labels)
    assert torch.allclose(loss, expected)
    assert model.backward().shape == x.shape


def test_sequential_backward_needs_dout_without_loss() -> None:
    model = Sequential(Linear(4, 3))
    model(torch.randn(2, 4))
    with pytest.raises(ValueError, match="dout is required"):
        model.backward()


def test_sequential_rejects_non_block() -> None:
    with pytest.raises(TypeError, match="argument 1 must be a Block, got int"):
        Sequential(ReLU(), 3)


def test_mlp_structure_without_dropout() -> None:
    model = MLP(64, 10, hidden_features=(32, 16), activation="tanh")
    kinds = [type(block) for block in model.sequence]
    assert len(model.sequence) == 5
    assert kinds == [Linear, TanH, Linear, TanH, Linear]
    assert model.sequence[-1].out_features == 10


def test_mlp_structure_with_dropout() -> None:
    model = MLP(64, 10, hidden_features=(32, 16), activation="lrelu", dropout=0.3)
    kinds = [type(block) for block in model.sequence]
    assert len(model.sequence) == 7
    assert kinds == [Linear, LeakyReLU, Dropout, Linear, LeakyReLU, Dropout, Linear]
    assert model.sequence[2].p == 0.3


def test_mlp_without_hidden_is_one_linear() -> None:
    model = MLP(8, 3)
    assert len(model.sequence) == 1
    assert isinstance(model.sequence[0], Linear)


def test_mlp_passes_keywords_to_linear() -> None:
    model = MLP(300, 300, hidden_features=(300,), wstd=0.01)
    for layer in (model.sequence[0], model.sequence[2]):
        assert abs(layer.weight.std().item() - 0.01) < 0.001


def test_mlp_activation_names() -> None:
    for name, kind in [("relu", ReLU), ("lrelu", LeakyReLU), ("sigmoid", Sigmoid)]:
        assert isinstance(MLP(2, 2, (2,), activation=name).sequence[1], kind)


def test_repr_is_readable() -> None:
    assert repr(Linear(64, 10)) == "Linear(in_features=64, out_features=10)"
    assert repr(LeakyReLU(0.1)) == "LeakyReLU(alpha=0.1)"
    assert repr(Dropout(0.2)) == "Dropout(p=0.2)"
    text = repr(MLP(4, 2, hidden_features=(3,)))
    assert "(sequence): Sequential(" in text
    assert "(0): Linear(in_features=4, out_features=3)" in text
    assert "(1): ReLU()" in text


# -- invalid construction and input -----------------------------------------


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (
            lambda: Linear(-1, 3),
            r"Linear: in_features must be a positive integer, got -1",
        ),
        (
            lambda: Linear(3, 0),
            r"Linear: out_features must be a positive integer, got 0",
        ),
        (lambda: Linear(3, 2, wstd=-0.1), r"Linear: wstd must be >= 0, got -0.1"),
        (lambda: LeakyReLU(1.0), r"LeakyReLU: alpha must be in \[0, 1\), got 1.0"),
        (lambda: LeakyReLU(-0.1), r"LeakyReLU: alpha must be in \[0, 1\), got -0.1"),
        (lambda: Dropout(1.0), r"Dropout: p must be in \[0, 1\), got 1.0"),
        (lambda: Dropout(-0.5), r"Dropout: p must be in \[0, 1\), got -0.5"),
        (lambda: MLP(-4, 2), r"MLP: in_features must be a positive integer, got -4"),
        (
            lambda: MLP(4, 2, hidden_features=(3, -2)),
            r"MLP: hidden_features\[1\] must be a positive integer, got -2",
        ),
        (
            lambda: MLP(4, 2, activation="gelu"),
            r"MLP: activation 'gelu' is not one of relu, lrelu, sigmoid, tanh",
        ),
        (lambda: MLP(4, 2, dropout=1.5), r"MLP: dropout must be in \[0, 1\), got 1.5"),
    ],
)
def test_invalid_construction_raises_value_error(build, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        build()


def test_linear_wstd_must_be_a_number() -> None:
    with pytest.raises(TypeError, match=r"Linear: wstd must be a number, got None"):
        Linear(4, 3, wstd=None)


def test_non_integer_size_raises_type_error() -> None:
    with pytest.raises(TypeError, match="Linear: in_features must be a positive"):
        Linear(2.5, 3)


def test_linear_rejects_wrong_feature_count() -> None:
    layer = Linear(64, 10)
    with pytest.raises(
        ValueError,
        match=r"Linear\(in_features=64, out_features=10\): input must have shape "
        r"\(N, 64\), got \(8, 63\)",
    ):
        layer(torch.randn(8, 63))


def test_linear_rejects_3d_input() -> None:
    with pytest.raises(ValueError, match=r"got \(2, 3, 4\)"):
        Linear(4, 2)(torch.randn(2, 3, 4))


def test_blocks_reject_integer_input() -> None:
    for block in (Linear(3, 2), ReLU(), Dropout(), CrossEntropyLoss()):
        with pytest.raises(TypeError, match="floating-point tensor"):
            block.forward(torch.ones(2, 3, dtype=torch.int64), y=torch.tensor([0, 1]))


@pytest.mark.parametrize("label", [10, -1])
def test_loss_rejects_label_out_of_range(label: int) -> None:
    labels = torch.tensor([0, label, 3])
    with pytest.raises(
        ValueError,
        match=rf"CrossEntropyLoss: label {label} is out of range for 10 classes "
        r"\(allowed: 0 to 9\)",
    ):
        CrossEntropyLoss()(torch.randn(3, 10), labels)


def test_loss_rejects_missing_labels() -> None:
    with pytest.raises(ValueError, match="CrossEntropyLoss: labels are missing"):
        Sequential(Linear(3, 2), CrossEntropyLoss())(torch.randn(2, 3))


def test_mlp_rejects_int_hidden_features() -> None:
    with pytest.raises(TypeError, match=r"use \(16,\) for one hidden layer"):
        MLP(4, 2, hidden_features=16)


def test_sequential_slice_keeps_mode() -> None:
    model = Sequential(ReLU(), Dropout(), ReLU()).eval()
    assert not model[1:].training


def test_loss_rejects_float_labels() -> None:
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        CrossEntropyLoss()(torch.randn(2, 3), torch.tensor([0.0, 1.0]))


def test_loss_rejects_label_count_mismatch() -> None:
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        CrossEntropyLoss()(torch.randn(3, 4), torch.tensor([0, 1]))


@pytest.mark.parametrize(
    ("block", "name"),
    [
        (Linear(3, 2), "Linear"),
        (ReLU(), "ReLU"),
        (LeakyReLU(), "LeakyReLU"),
        (Sigmoid(), "Sigmoid"),
        (TanH(), "TanH"),
        (Dropout(), "Dropout"),
        (CrossEntropyLoss(), "CrossEntropyLoss"),
        # The last Linear of the stack is the first block to run backward.
        (MLP(3, 2, hidden_features=(4,)), "Linear"),
    ],
    ids=lambda case: type(case).__name__ if isinstance(case, Block) else "",
)
def test_backward_before_forward_raises(block: Block, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}\.backward called before forward"):
        block.backward(torch.ones(2, 2))


def test_backward_rejects_wrong_dout_shape() -> None:
    layer = Linear(3, 2)
    layer(torch.randn(4, 3))
    with pytest.raises(
        ValueError, match=r"Linear.backward: dout must have the output's shape \(4, 2\)"
    ):
        layer.backward(torch.ones(4, 3))
