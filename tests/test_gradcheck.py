"""Gradients of every block against PyTorch autograd, via engine.gradcheck."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

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
from engine.gradcheck import compare_block_to_torch, torch_forward

# float64 gradients agree to rounding error (about 1e-15 here).
FLOAT64_BOUND = 1e-10
# float32 keeps about 7 significant digits, and these inputs give gradient
# norms near 1 to 10, so the L2 distance stays well under 1e-4.
FLOAT32_BOUND = 1e-4


def ten_block_sequence() -> Sequential:
    return Sequential(
        Linear(12, 16),
        ReLU(),
        Linear(16, 16),
        LeakyReLU(0.1),
        Dropout(0.3),
        Linear(16, 8),
        Sigmoid(),
        Linear(8, 8),
        TanH(),
        Linear(8, 5),
        CrossEntropyLoss(),
    )


def make_case(name: str, dtype: torch.dtype) -> tuple[Block, Tensor, Tensor | None]:
    """Return ``(block, x, y)`` for one named case."""
    x2d = torch.randn(7, 12, dtype=dtype)
    x3d = torch.randn(3, 4, 5, dtype=dtype)
    labels = torch.randint(0, 5, (7,))
    cases = {
        "linear": (Linear(12, 5), x2d, None),
        "relu": (ReLU(), x3d, None),
        "lrelu": (LeakyReLU(0.05), x3d, None),
        "sigmoid": (Sigmoid(), x3d, None),
        "tanh": (TanH(), x3d, None),
        "dropout": (Dropout(0.4), x3d, None),
        "loss": (CrossEntropyLoss(), x2d[:, :5], labels),
        "mlp": (MLP(12, 5, hidden_features=(10, 9), dropout=0.2), x2d, None),
        "mlp-tanh": (MLP(12, 5, hidden_features=(6,), activation="tanh"), x2d, None),
        "sequence": (ten_block_sequence(), x2d, labels),
    }
    return cases[name]


CASE_NAMES = [
    "linear",
    "relu",
    "lrelu",
    "sigmoid",
    "tanh",
    "dropout",
    "loss",
    "mlp",
    "mlp-tanh",
    "sequence",
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_gradients_match_autograd_float64(name: str) -> None:
    block, x, y = make_case(name, torch.float64)
    distances = compare_block_to_torch(block, x, y)
    assert len(distances) == 1 + len(block.params())
    for distance in distances:
        assert distance < FLOAT64_BOUND


@pytest.mark.parametrize("name", CASE_NAMES)
def test_gradients_match_autograd_float32(name: str) -> None:
    block, x, y = make_case(name, torch.float32)
    for distance in compare_block_to_torch(block, x, y):
        assert distance < FLOAT32_BOUND


def test_sequence_case_ends_in_loss() -> None:
    sequence = ten_block_sequence()
    assert len(sequence) == 11
    assert sequence[-1].is_loss


@pytest.mark.parametrize("name", ["linear", "mlp", "sequence", "tanh"])
def test_second_backward_accumulates_like_autograd(name: str) -> None:
    block, x1, y = make_case(name, torch.float64)
    x2 = torch.randn_like(x1)
    kw = {} if y is None else {"y": y}

    # The block's own passes: two forwards on different inputs, each followed
    # by its backward, so the parameter grads contain the sum of both.
    torch.manual_seed(1)
    out1 = block(x1, **kw)
    dout1 = torch.randn_like(out1)
    block.backward(dout1)
    torch.manual_seed(2)
    out2 = block(x2, **kw)
    dout2 = torch.randn_like(out2)
    dx2 = block.backward(dout2)

    # Autograd on the same two computations, summed.
    pairs = block.params()
    params = [param for param, _ in pairs]
    for param in params:
        param.requires_grad_(True)
    x2_ref = x2.clone().requires_grad_(True)
    torch.manual_seed(1)
    total = (torch_forward(block, x1, kw) * dout1).sum()
    torch.manual_seed(2)
    total = total + (torch_forward(block, x2_ref, kw) * dout2).sum()
    grads = torch.autograd.grad(total, [x2_ref, *params], allow_unused=True)
    for param in params:
        param.requires_grad_(False)

    assert torch.linalg.vector_norm(dx2 - grads[0]) < FLOAT64_BOUND
    for (_, grad), expected in zip(pairs, grads[1:], strict=True):
        assert torch.count_nonzero(grad) > 0
        assert torch.linalg.vector_norm(grad - expected) < FLOAT64_BOUND


class Square(Block):
    """A user-defined block, for the checker's fallback path."""

    def forward(self, x: Tensor, **kw) -> Tensor:
        self._x = x
        return x * x

    def backward(self, dout: Tensor, *, input_grad: bool = True) -> Tensor:
        return 2 * self._x * dout


class WrongSquare(Square):
    """Square with a backward that is off by a factor of 2."""

    def backward(self, dout: Tensor, *, input_grad: bool = True) -> Tensor:
        return self._x * dout


def test_checker_handles_user_block() -> None:
    x = torch.randn(4, 3, dtype=torch.float64)
    assert compare_block_to_torch(Square(), x) == [0.0]


def test_checker_detects_wrong_backward() -> None:
    x = torch.randn(4, 3, dtype=torch.float64)
    (distance,) = compare_block_to_torch(WrongSquare(), x)
    assert distance > 0.1


def test_checker_detects_wrong_parameter_grad() -> None:
    class DoubledLinear(Linear):
        def backward(self, dout: Tensor, *, input_grad: bool = True) -> Tensor:
            dx = super().backward(dout, input_grad=input_grad)
            self.dbias.mul_(2)
            return dx

    block = DoubledLinear(3, 2)
    distances = compare_block_to_torch(block, torch.randn(4, 3, dtype=torch.float64))
    assert distances[0] < FLOAT64_BOUND
    assert distances[1] < FLOAT64_BOUND
    assert distances[2] > 0.1


def test_checker_restores_grads_and_rng() -> None:
    block = MLP(6, 3, hidden_features=(4,), dropout=0.5)
    for _, grad in block.params():
        grad.fill_(0.5)
    x = torch.randn(5, 6)
    state = torch.get_rng_state()
    compare_block_to_torch(block, x, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    for param, grad in block.params():
        assert not param.requires_grad
        assert torch.equal(grad, torch.full_like(grad, 0.5))


def test_checker_rejects_integer_input() -> None:
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        compare_block_to_torch(ReLU(), torch.ones(3, dtype=torch.int64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gradients_match_autograd_on_cuda() -> None:
    block, x, y = make_case("sequence", torch.float64)
    distances = compare_block_to_torch(block, x.cuda(), y.cuda())
    for distance in distances:
        assert distance < FLOAT64_BOUND
