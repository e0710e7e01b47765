"""From-scratch first-order optimizers and a factory for them.

Each optimizer takes either (param, grad) pairs, as `Block.params()` returns
them, or tensors whose `.grad` is read at every step (for example
`nn.Module.parameters()`). Parameters whose gradient is None are skipped.
The L2 regulariser is `reg/2 * ||p||^2`, so `reg * p` is added to the
gradient before the update. Updates are in place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from engine.optimizer_registry import (
    OPTIMIZER_FIELDS,
    OPTIMIZER_NAMES,
    HyperParam,
    resolve_hyper,
    validate_hyper,
)

__all__ = [
    "OPTIMIZER_FIELDS",
    "OPTIMIZER_NAMES",
    "Adam",
    "HyperParam",
    "MomentumSGD",
    "Optimizer",
    "RMSProp",
    "VanillaSGD",
    "make_optimizer",
    "validate_hyper",
]

log = logging.getLogger(__name__)

ParamsArg = Iterable[tuple[Tensor, Tensor]] | Iterable[Tensor]


class Optimizer:
    """Base class that stores the parameters, their gradients and per-parameter state.

    Subclasses set `hyper_names` and implement `_update`.

    Args:
        params: (param, grad) pairs or tensors with a `.grad` attribute.
        **hyper: Hyper-parameter values, checked against `OPTIMIZER_FIELDS`.

    Raises:
        ValueError: When the parameter list is empty or a hyper-parameter is
            invalid.
        TypeError: When an element of `params` is neither a tensor nor a
            (tensor, tensor) pair.
    """

    registry_name: str = ""
    hyper_names: tuple[str, ...] = ()

    def __init__(self, params: ParamsArg, **hyper: float) -> None:
        self._params: list[Tensor] = []
        self._grads: list[Tensor] | None = None
        self._set_params(params)
        for key, value in resolve_hyper(self.registry_name, hyper).items():
            setattr(self, key, value)
        self.step_count = 0
        self.state: list[dict[str, Any]] = [{} for _ in self._params]

    def _set_params(self, params: ParamsArg) -> None:
        items = list(params)
        if not items:
            raise ValueError(
                f"{type(self).__name__} got an empty parameter list; "
                "pass model.params() or model.parameters()"
            )
        grads: list[Tensor] = []
        for index, item in enumerate(items):
            if isinstance(item, Tensor):
                self._params.append(item)
            elif (
                isinstance(item, tuple | list)
                and len(item) == 2
                and all(isinstance(t, Tensor) for t in item)
            ):
                self._params.append(item[0])
                grads.append(item[1])
            else:
                raise TypeError(
                    f"parameter {index} must be a tensor or a (param, grad) "
                    f"pair of tensors, got {type(item).__name__}"
                )
        if grads and len(grads) != len(self._params):
            raise TypeError("params mixes tensors and (param, grad) pairs; use one")
        if grads:
            self._grads = grads

    @property
    def hyper(self) -> dict[str, float]:
        """Current hyper-parameter values by name."""
        return {name: getattr(self, name) for name in self.hyper_names}

    def _grad(self, index: int) -> Tensor | None:
        if self._grads is not None:
            return self._grads[index]
        return self._params[index].grad

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Reset all gradients to zero in place.

        Args:
            set_to_none: For tensor parameters, set `.grad` to None instead of
                zeroing it (as `torch.optim` does by default). Ignored for
                (param, grad) pairs, whose grad tensors the blocks keep writing.
        """
        if self._grads is not None:
            for grad in self._grads:
                grad.zero_()
            return
        for param in self._params:
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        self.step_count += 1
        for index, param in enumerate(self._params):
            grad = self._grad(index)
            if grad is None:
                continue
            if self.reg != 0:
                grad = grad + self.reg * param
            self._update(param, grad, self.state[index])

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Return the optimizer's state: hyper-parameters, step count and buffers.

        Returns:
            A dict of numbers, strings, lists, dicts and tensors only, so
            `torch.load(weights_only=True)` can read it back. The buffers are
            the optimizer's own tensors, not copies.
        """
        return {
            "optimizer": self.registry_name,
            "hyper": self.hyper,
            "step_count": self.step_count,
            "state": [dict(entry) for entry in self.state],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters, step count and buffers from `state_dict`.

        Buffers are copied onto each parameter's device and dtype.

        Raises:
            ValueError: When the state belongs to another optimizer type, has a
                different number of parameters or buffers of the wrong shape.
        """
        saved_name = state_dict.get("optimizer")
        if saved_name != self.registry_name:
            raise ValueError(
                f"state_dict is for optimizer {saved_name!r}, "
                f"not {self.registry_name!r}"
            )
        entries = state_dict["state"]
        if len(entries) != len(self._params):
            raise ValueError(
                f"state_dict has state for {len(entries)} parameters, "
                f"this optimizer has {len(self._params)}"
            )
        new_state: list[dict[str, Any]] = []
        for index, (param, entry) in enumerate(zip(self._params, entries, strict=True)):
            restored: dict[str, Any] = {}
            for key, value in entry.items():
                if isinstance(value, Tensor):
                    if value.shape != param.shape:
                        raise ValueError(
                            f"state_dict buffer {key!r} of parameter {index} has "
                            f"shape {tuple(value.shape)}, expected "
                            f"{tuple(param.shape)}"
                        )
                    value = value.to(device=param.device, dtype=param.dtype).clone()
                restored[key] = value
            new_state.append(restored)
        hyper = resolve_hyper(self.registry_name, dict(state_dict["hyper"]))
        for key, value in hyper.items():
            setattr(self, key, value)
        self.step_count = int(state_dict["step_count"])
        self.state = new_state

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v:g}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({len(self._params)} params, {values})"


class VanillaSGD(Optimizer):
    """Plain gradient descent: `p -= learn_rate * g`.

    Args:
        params: (param, grad) pairs or tensors with a `.grad` attribute.
        learn_rate: Step size, > 0.
        reg: L2 regularisation strength, >= 0.
    """

    registry_name = "sgd"
    hyper_names = ("learn_rate", "reg")

    def __init__(self, params: ParamsArg, learn_rate: float = 1e-3, reg: float = 0.0):
        super().__init__(params, learn_rate=learn_rate, reg=reg)

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        param.add_(grad, alpha=-self.learn_rate)


class MomentumSGD(Optimizer):
    """Gradient descent with momentum: `v = momentum * v - lr * g; p += v`.

    Args:
        params: (param, grad) pairs or tensors with a `.grad` attribute.
        learn_rate: Step size, > 0.
        reg: L2 regularisation strength, >= 0.
        momentum: Velocity decay factor, in [0, 1).
    """

    registry_name = "momentum"
    hyper_names = ("learn_rate", "reg", "momentum")

    def __init__(
        self,
        params: ParamsArg,
        learn_rate: float = 1e-3,
        reg: float = 0.0,
        momentum: float = 0.9,
    ):
        super().__init__(params, learn_rate=learn_rate, reg=reg, momentum=momentum)

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        if "velocity" not in state:
            state["velocity"] = torch.zeros_like(param)
        velocity = state["velocity"]
        velocity.mul_(self.momentum).add_(grad, alpha=-self.learn_rate)
        param.add_(velocity)


class RMSProp(Optimizer):
    """RMSProp: `r = decay * r + (1 - decay) * g^2; p -= lr * g / sqrt(r + eps)`.

    `eps` sits inside the square root, unlike `torch.optim.RMSprop`, which
    adds it to `sqrt(r)`.

    Args:
        params: (param, grad) pairs or tensors with a `.grad` attribute.
        learn_rate: Step size, > 0.
        reg: L2 regularisation strength, >= 0.
        decay: Decay rate of the running mean of squared gradients, in [0, 1).
        eps: Small constant for numerical stability, > 0.
    """

    registry_name = "rmsprop"
    hyper_names = ("learn_rate", "reg", "decay", "eps")

    def __init__(
        self,
        params: ParamsArg,
        learn_rate: float = 1e-3,
        reg: float = 0.0,
        decay: float = 0.99,
        eps: float = 1e-8,
    ):
        super().__init__(params, learn_rate=learn_rate, reg=reg, decay=decay, eps=eps)

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        if "square_avg" not in state:
            state["square_avg"] = torch.zeros_like(param)
        square_avg = state["square_avg"]
        square_avg.mul_(self.decay).addcmul_(grad, grad, value=1 - self.decay)
        param.addcdiv_(grad, (square_avg + self.eps).sqrt_(), value=-self.learn_rate)


class Adam(Optimizer):
    """Adam with bias correction of both moment estimates.

    With `t` the number of updates this parameter has had:
    `m = beta1 * m + (1 - beta1) * g`, `v = beta2 * v + (1 - beta2) * g^2`,
    `p -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)`.

    Args:
        params: (param, grad) pairs or tensors with a `.grad` attribute.
        learn_rate: Step size, > 0.
        reg: L2 regularisation strength, >= 0 (added to the gradient, as
            `weight_decay` in `torch.optim.Adam`).
        beta1: Decay rate of the first moment, in [0, 1).
        beta2: Decay rate of the second moment, in [0, 1).
        eps: Small constant for numerical stability, > 0.
    """

    registry_name = "adam"
    hyper_names = ("learn_rate", "reg", "beta1", "beta2", "eps")

    def __init__(
        self,
        params: ParamsArg,
        learn_rate: float = 1e-3,
        reg: float = 0.0,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ):
        super().__init__(
            params, learn_rate=learn_rate, reg=reg, beta1=beta1, beta2=beta2, eps=eps
        )

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        state["step"] += 1
        t = state["step"]
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.mul_(self.beta1).add_(grad, alpha=1 - self.beta1)
        exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)

        bias_correction1 = 1 - self.beta1**t
        bias_correction2 = 1 - self.beta2**t
        denom = (exp_avg_sq / bias_correction2).sqrt_().add_(self.eps)
        param.addcdiv_(exp_avg, denom, value=-self.learn_rate / bias_correction1)


OUR_OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": VanillaSGD,
    "momentum": MomentumSGD,
    "rmsprop": RMSProp,
    "adam": Adam,
}


class _BlockGradMixin:
    """Make a `torch.optim` optimizer read and zero the grads of Block pairs.

    Each parameter's `.grad` is set to the block's grad tensor before every
    step, and `zero_grad` zeroes that tensor in place instead of dropping it,
    so the alias between `param.grad` and the block's grad survives.
    """

    def __init__(self, pairs: list[tuple[Tensor, Tensor]], **kwargs: Any) -> None:
        self._block_pairs = pairs
        self._alias_grads()
        super().__init__([param for param, _ in pairs], **kwargs)

    def _alias_grads(self) -> None:
        for param, grad in self._block_pairs:
            param.grad = grad

    def zero_grad(self, set_to_none: bool = True) -> None:
        for _, grad in self._block_pairs:
            grad.zero_()
        self._alias_grads()

    def step(self, closure: Any = None) -> Any:
        self._alias_grads()
        return super().step(closure)


def _block_version(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    return type(f"Block{cls.__name__}", (_BlockGradMixin, cls), {})


_TORCH_CLASSES: dict[str, type[torch.optim.Optimizer]] = {
    "torch-sgd": torch.optim.SGD,
    "torch-momentum": torch.optim.SGD,
    "torch-rmsprop": torch.optim.RMSprop,
    "torch-adam": torch.optim.Adam,
}
_TORCH_BLOCK_CLASSES = {
    cls: _block_version(cls) for cls in set(_TORCH_CLASSES.values())
}


def _torch_kwargs(name: str, hyper: dict[str, float]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"lr": hyper["learn_rate"], "weight_decay": hyper["reg"]}
    if name == "torch-momentum":
        kwargs["momentum"] = hyper["momentum"]
    elif name == "torch-rmsprop":
        kwargs["alpha"] = hyper["decay"]
        kwargs["eps"] = hyper["eps"]
    elif name == "torch-adam":
        kwargs["betas"] = (hyper["beta1"], hyper["beta2"])
        kwargs["eps"] = hyper["eps"]
    return kwargs


def _split_params(params: ParamsArg) -> tuple[list[Any], bool]:
    items = list(params)
    is_pairs = bool(items) and all(
        isinstance(item, tuple | list) and len(item) == 2 for item in items
    )
    return items, is_pairs


def make_optimizer(
    name: str, params: ParamsArg, **hyper: float
) -> Optimizer | torch.optim.Optimizer:
    """Build an optimizer by its registry name.

    Args:
        name: One of `OPTIMIZER_NAMES`. The "torch-" names build the
            `torch.optim` equivalents: torch-sgd is `SGD(weight_decay=reg)`,
            torch-momentum adds `momentum`, torch-rmsprop is
            `RMSprop(alpha=decay, eps=eps)` and torch-adam is
            `Adam(betas=(beta1, beta2), eps=eps)`, all with `weight_decay=reg`.
        params: (param, grad) pairs from a Block or tensors such as
            `model.parameters()`. torch.optim optimizers work with pairs too.
        **hyper: Hyper-parameters from `OPTIMIZER_FIELDS[name]`; missing ones
            take their defaults.

    Returns:
        One of our `Optimizer` subclasses or a `torch.optim.Optimizer`.

    Raises:
        ValueError: For an unknown name, an invalid hyper-parameter or an empty
            parameter list.
    """
    if name not in OPTIMIZER_NAMES:
        allowed = ", ".join(OPTIMIZER_NAMES)
        raise ValueError(f"unknown optimizer {name!r}; expected one of {allowed}")
    if name in OUR_OPTIMIZERS:
        return OUR_OPTIMIZERS[name](params, **resolve_hyper(name, hyper))

    values = resolve_hyper(name, hyper)
    items, is_pairs = _split_params(params)
    if not items:
        raise ValueError(
            f"optimizer {name!r} got an empty parameter list; "
            "pass model.params() or model.parameters()"
        )
    torch_class = _TORCH_CLASSES[name]
    kwargs = _torch_kwargs(name, values)
    log.debug("building %s with %s", torch_class.__name__, kwargs)
    if is_pairs:
        pairs = [(param, grad) for param, grad in items]
        return _TORCH_BLOCK_CLASSES[torch_class](pairs, **kwargs)
    return torch_class(items, **kwargs)
