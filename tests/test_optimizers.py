"""Optimizers against torch.optim and direct formulas, state and validation."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
import torch

from engine.blocks import CrossEntropyLoss, Linear
from engine.optimizers import (
    OPTIMIZER_FIELDS,
    OPTIMIZER_NAMES,
    Adam,
    MomentumSGD,
    RMSProp,
    VanillaSGD,
    make_optimizer,
    validate_hyper,
)

NUM_STEPS = 25


def regression_problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return a fixed least-squares problem: inputs, targets, initial weights."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 5, generator=generator, dtype=torch.float64)
    y = torch.randn(32, 3, generator=generator, dtype=torch.float64)
    w0 = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    return x, y, w0


def loss_grad(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the mean squared error of x @ w against y."""
    return 2 * x.t() @ (x @ w - y) / y.numel()


def our_trajectory(optimizer_class, **hyper) -> list[torch.Tensor]:
    """Run our optimizer on (param, grad) pairs and record the weights."""
    x, y, w0 = regression_problem()
    w = w0.clone()
    grad = torch.zeros_like(w)
    optimizer = optimizer_class([(w, grad)], **hyper)
    history = []
    for _ in range(NUM_STEPS):
        optimizer.zero_grad()
        grad.add_(loss_grad(w, x, y))
        optimizer.step()
        history.append(w.clone())
    return history


def torch_trajectory(optimizer_class, **kwargs) -> list[torch.Tensor]:
    """Run a torch.optim optimizer with autograd and record the weights."""
    x, y, w0 = regression_problem()
    w = torch.nn.Parameter(w0.clone())
    optimizer = optimizer_class([w], **kwargs)
    history = []
    for _ in range(NUM_STEPS):
        optimizer.zero_grad()
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        history.append(w.detach().clone())
    return history


def assert_same_trajectory(ours: list[torch.Tensor], reference: list[torch.Tensor]):
    assert len(ours) == len(reference)
    for step, (a, b) in enumerate(zip(ours, reference, strict=True), start=1):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12), f"differs at step {step}"


def test_vanilla_sgd_matches_torch_sgd_with_weight_decay():
    ours = our_trajectory(VanillaSGD, learn_rate=0.1, reg=0.05)
    reference = torch_trajectory(torch.optim.SGD, lr=0.1, weight_decay=0.05)
    assert_same_trajectory(ours, reference)


def test_momentum_sgd_matches_torch_sgd_with_momentum():
    ours = our_trajectory(MomentumSGD, learn_rate=0.05, reg=0.01, momentum=0.8)
    reference = torch_trajectory(
        torch.optim.SGD, lr=0.05, weight_decay=0.01, momentum=0.8
    )
    assert_same_trajectory(ours, reference)


def test_momentum_zero_equals_vanilla_sgd():
    ours = our_trajectory(MomentumSGD, learn_rate=0.1, reg=0.01, momentum=0.0)
    reference = our_trajectory(VanillaSGD, learn_rate=0.1, reg=0.01)
    assert_same_trajectory(ours, reference)


def test_adam_matches_torch_adam():
    ours = our_trajectory(
        Adam, learn_rate=0.05, reg=0.01, beta1=0.8, beta2=0.95, eps=1e-6
    )
    reference = torch_trajectory(
        torch.optim.Adam, lr=0.05, weight_decay=0.01, betas=(0.8, 0.95), eps=1e-6
    )
    assert_same_trajectory(ours, reference)


def test_rmsprop_matches_direct_formula():
    learn_rate, reg, decay, eps = 0.01, 0.02, 0.9, 1e-6
    ours = our_trajectory(RMSProp, learn_rate=learn_rate, reg=reg, decay=decay, eps=eps)

    x, y, w0 = regression_problem()
    w = w0.clone()
    r = torch.zeros_like(w)
    reference = []
    for _ in range(NUM_STEPS):
        g = loss_grad(w, x, y) + reg * w
        r = decay * r + (1 - decay) * g**2
        w = w - learn_rate * g / torch.sqrt(r + eps)
        reference.append(w.clone())
    assert_same_trajectory(ours, reference)


def test_trajectory_decreases_loss():
    x, y, w0 = regression_problem()
    history = our_trajectory(Adam, learn_rate=0.05)
    first = ((x @ w0 - y) ** 2).mean()
    last = ((x @ history[-1] - y) ** 2).mean()
    assert last < first


@pytest.mark.parametrize(
    ("ours", "reference"),
    [
        ("sgd", "torch-sgd"),
        ("momentum", "torch-momentum"),
        ("adam", "torch-adam"),
    ],
)
def test_torch_equivalent_on_block_pairs(ours, reference):
    """A torch.optim optimizer given Block pairs follows our optimizer's path."""
    results = []
    for name in (ours, reference):
        torch.manual_seed(0)
        layer = Linear(6, 4)
        loss_fn = CrossEntropyLoss()
        x = torch.randn(16, 6, generator=torch.Generator().manual_seed(1))
        y = torch.arange(16) % 4
        optimizer = make_optimizer(name, layer.params(), learn_rate=0.05, reg=0.01)
        for _ in range(NUM_STEPS):
            optimizer.zero_grad()
            loss_fn(layer(x), y)
            layer.backward(loss_fn.backward())
            optimizer.step()
        results.append(layer.weight.clone())
    assert torch.allclose(results[0], results[1], atol=1e-6)


def test_torch_optimizer_zero_grad_keeps_block_alias():
    layer = Linear(3, 2)
    optimizer = make_optimizer("torch-sgd", layer.params(), learn_rate=0.1)
    optimizer.zero_grad()
    assert layer.weight.grad is layer.dweight
    assert torch.count_nonzero(layer.dweight) == 0


def test_parameters_with_none_grad_are_skipped():
    used = torch.nn.Parameter(torch.ones(3))
    unused = torch.nn.Parameter(torch.ones(3))
    optimizer = Adam([used, unused], learn_rate=0.1)
    used.grad = torch.ones(3)
    optimizer.step()
    assert torch.all(used.detach() < 1)
    assert torch.equal(unused.detach(), torch.ones(3))
    assert optimizer.state[1] == {}


def test_zero_grad_on_parameters():
    param = torch.nn.Parameter(torch.ones(2))
    param.grad = torch.ones(2)
    optimizer = VanillaSGD([param])
    optimizer.zero_grad()
    assert torch.equal(param.grad, torch.zeros(2))
    optimizer.zero_grad(set_to_none=True)
    assert param.grad is None


def test_works_with_module_parameters():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = make_optimizer("momentum", model.parameters(), learn_rate=0.1)
    before = model.weight.detach().clone()
    model(torch.randn(8, 4)).sum().backward()
    optimizer.step()
    assert not torch.equal(model.weight.detach(), before)


@pytest.mark.parametrize("name", ["sgd", "momentum", "rmsprop", "adam"])
def test_state_dict_round_trip_continues_identically(name):
    x, y, w0 = regression_problem()

    def run(optimizer, w, grad, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            grad.add_(loss_grad(w, x, y))
            optimizer.step()

    w_full, g_full = w0.clone(), torch.zeros_like(w0)
    full = make_optimizer(name, [(w_full, g_full)], learn_rate=0.02, reg=0.01)
    run(full, w_full, g_full, 20)

    w_a, g_a = w0.clone(), torch.zeros_like(w0)
    first = make_optimizer(name, [(w_a, g_a)], learn_rate=0.02, reg=0.01)
    run(first, w_a, g_a, 10)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    w_b, g_b = w_a.clone(), torch.zeros_like(w0)
    # Different hyper-parameters, which load_state_dict must overwrite.
    second = make_optimizer(name, [(w_b, g_b)], learn_rate=0.5)
    second.load_state_dict(saved)
    run(second, w_b, g_b, 10)
    assert torch.equal(w_b, w_full)
    assert second.step_count == 20


def test_load_state_dict_rejects_other_optimizer():
    w = torch.zeros(3)
    adam = Adam([(w, torch.zeros(3))])
    sgd = VanillaSGD([(w, torch.zeros(3))])
    with pytest.raises(ValueError, match="'sgd'"):
        adam.load_state_dict(sgd.state_dict())


def test_load_state_dict_rejects_wrong_shape():
    source = MomentumSGD([(torch.zeros(3), torch.ones(3))])
    source.step()
    target = MomentumSGD([(torch.zeros(4), torch.ones(4))])
    with pytest.raises(ValueError, match="shape"):
        target.load_state_dict(source.state_dict())


@pytest.mark.parametrize(
    ("optimizer_class", "hyper", "field"),
    [
        (VanillaSGD, {"learn_rate": 0.0}, "learn_rate"),
        (VanillaSGD, {"learn_rate": -1.0}, "learn_rate"),
        (VanillaSGD, {"reg": -0.1}, "reg"),
        (MomentumSGD, {"momentum": 1.0}, "momentum"),
        (MomentumSGD, {"momentum": -0.1}, "momentum"),
        (RMSProp, {"decay": 1.0}, "decay"),
        (RMSProp, {"eps": 0.0}, "eps"),
        (Adam, {"beta1": 1.0}, "beta1"),
        (Adam, {"beta2": -0.5}, "beta2"),
        (Adam, {"eps": -1e-8}, "eps"),
    ],
)
def test_invalid_hyper_parameter_raises(optimizer_class, hyper, field):
    with pytest.raises(ValueError, match=field):
        optimizer_class([(torch.zeros(2), torch.zeros(2))], **hyper)


def test_invalid_value_named_in_message():
    with pytest.raises(ValueError, match="got -0.5"):
        VanillaSGD([(torch.zeros(2), torch.zeros(2))], learn_rate=-0.5)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_empty_parameter_list_raises(name):
    with pytest.raises(ValueError, match="empty parameter list"):
        make_optimizer(name, [])


def test_unknown_optimizer_name_raises():
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        make_optimizer("lbfgs", [torch.nn.Parameter(torch.zeros(1))])


def test_validate_hyper_reports_each_field():
    errors = validate_hyper("adam", {"learn_rate": 0, "beta1": 1.5, "eps": "x"})
    assert set(errors) == {"learn_rate", "beta1", "eps"}
    assert "(0, inf)" in errors["learn_rate"]
    assert "[0, 1)" in errors["beta1"]
    assert "number" in errors["eps"]


def test_validate_hyper_accepts_valid_strings():
    assert validate_hyper("momentum", {"learn_rate": "0.05", "momentum": "0"}) == {}


def test_validate_hyper_rejects_unknown_field_and_name():
    assert "momentum" in validate_hyper("sgd", {"momentum": 0.9})
    assert "optimizer" in validate_hyper("newton", {})


def test_fields_cover_every_name():
    assert set(OPTIMIZER_FIELDS) == set(OPTIMIZER_NAMES)
    for fields in OPTIMIZER_FIELDS.values():
        names = [field.name for field in fields]
        assert names[:2] == ["learn_rate", "reg"]


def test_defaults_are_valid():
    for name, fields in OPTIMIZER_FIELDS.items():
        defaults = {field.name: field.default for field in fields}
        assert validate_hyper(name, defaults) == {}, name


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_make_optimizer_builds_every_name(name):
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = make_optimizer(name, [param], learn_rate=0.1)
    param.grad = torch.ones(3)
    optimizer.step()
    assert torch.all(param.detach() < 1)


def test_make_optimizer_torch_kwargs():
    param = torch.nn.Parameter(torch.ones(1))
    optimizer = make_optimizer(
        "torch-rmsprop", [param], learn_rate=0.2, reg=0.1, decay=0.9, eps=1e-5
    )
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, torch.optim.RMSprop)
    assert group["lr"] == 0.2
    assert group["weight_decay"] == 0.1
    assert group["alpha"] == 0.9
    assert group["eps"] == 1e-5


def test_registry_imports_without_torch():
    code = (
        "import sys, engine.optimizer_registry, engine.dataset_info; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    completed = subprocess.run([sys.executable, "-c", code], check=False)
    assert completed.returncode == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["momentum", "rmsprop", "adam", "torch-adam"])
def test_block_pairs_on_cuda_match_cpu(name):
    results = []
    for device in ("cpu", "cuda"):
        x, y, w0 = regression_problem()
        x, y, w = x.to(device), y.to(device), w0.to(device)
        grad = torch.zeros_like(w)
        optimizer = make_optimizer(name, [(w, grad)], learn_rate=0.02, reg=0.01)
        for _ in range(NUM_STEPS):
            optimizer.zero_grad()
            grad.add_(loss_grad(w, x, y))
            optimizer.step()
        results.append(w.cpu())
    assert torch.allclose(results[0], results[1], rtol=1e-8, atol=1e-10)
