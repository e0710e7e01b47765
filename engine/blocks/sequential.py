"""Containers: ``Sequential`` chains blocks, ``MLP`` builds a standard stack."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, overload

from torch import Tensor

from engine.blocks.activations import LeakyReLU, ReLU, Sigmoid, TanH
from engine.blocks.base import Block
from engine.blocks.dropout import Dropout
from engine.blocks.linear import Linear, check_size

#: Names accepted by ``MLP(activation=...)`` and the block each one builds.
ACTIVATIONS: dict[str, type[Block]] = {
    "relu": ReLU,
    "lrelu": LeakyReLU,
    "sigmoid": Sigmoid,
    "tanh": TanH,
}


class Sequential(Block):
    """Blocks applied one after another.

    Forward passes keyword arguments (such as ``y=``) to every block, so a
    trailing loss block receives the labels. Backward runs the blocks in
    reverse order.

    Args:
        *blocks: The blocks, first to last.

    Raises:
        TypeError: If an argument is not a Block.
    """

    def __init__(self, *blocks: Block) -> None:
        super().__init__()
        for index, block in enumerate(blocks):
            if not isinstance(block, Block):
                raise TypeError(
                    f"Sequential: argument {index} must be a Block, "
                    f"got {type(block).__name__}"
                )
        self.blocks: list[Block] = list(blocks)

    def children(self) -> list[tuple[str, Block]]:
        return [(str(index), block) for index, block in enumerate(self.blocks)]

    def forward(self, x: Tensor, **kw: Any) -> Tensor:
        """Run every block's forward in order and return the last output."""
        for block in self.blocks:
            x = block.forward(x, **kw)
        return x

    def backward(
        self, dout: Tensor | float | None = None, *, input_grad: bool = True
    ) -> Tensor | None:
        """Run every block's backward in reverse order.

        Args:
            dout: Gradient with respect to the output. May be omitted when the
                last block is a loss, which then starts from 1.0.
            input_grad: Passed to the first block; when False the first block
                may skip the input gradient and return None.

        Returns:
            The gradient with respect to the input, or None (see input_grad).

        Raises:
            ValueError: If ``dout`` is omitted and the last block is no loss,
                or the sequence is empty.
        """
        if not self.blocks:
            raise ValueError("Sequential.backward: the sequence has no blocks")
        if dout is None:
            if not self.blocks[-1].is_loss:
                raise ValueError(
                    "Sequential.backward: dout is required unless the last block "
                    f"is a loss, but the last block is {self.blocks[-1]!r}"
                )
            dout = 1.0
        last = len(self.blocks) - 1
        for index in range(last, -1, -1):
            wants_input_grad = input_grad or index > 0
            dout = self.blocks[index].backward(dout, input_grad=wants_input_grad)
        return dout

    def __len__(self) -> int:
        return len(self.blocks)

    def __iter__(self) -> Iterator[Block]:
        return iter(self.blocks)

    @overload
    def __getitem__(self, index: int) -> Block: ...

    @overload
    def __getitem__(self, index: slice) -> Sequential: ...

    def __getitem__(self, index: int | slice) -> Block | Sequential:
        if isinstance(index, slice):
            part = Sequential(*self.blocks[index])
            part.training = self.training
            return part
        return self.blocks[index]


class MLP(Block):
    """Multi-layer perceptron on inputs of shape (N, in_features).

    For each hidden size: Linear, the activation, and Dropout when
    ``dropout > 0``. Then a final Linear to ``num_classes`` with no activation.
    The stack is ``self.sequence``.

    Args:
        in_features: Size of each input sample.
        num_classes: Number of output scores.
        hidden_features: Sizes of the hidden layers, possibly empty.
        activation: One of "relu", "lrelu", "sigmoid", "tanh".
        dropout: Dropout probability after each hidden activation, in [0, 1).
        **kw: Passed to every Linear (for example ``wstd=0.05``).

    Raises:
        TypeError: If a size is not an int.
        ValueError: If a size is below 1, the activation is unknown or
            dropout is outside [0, 1).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden_features: tuple[int, ...] | list[int] = (),
        activation: str = "relu",
        dropout: float = 0.0,
        **kw: Any,
    ) -> None:
        super().__init__()
        check_size("MLP", "in_features", in_features)
        check_size("MLP", "num_classes", num_classes)
        if isinstance(hidden_features, int):
            raise TypeError(
                "MLP: hidden_features must be a sequence of sizes such as "
                f"(128, 64), got the int {hidden_features}; use "
                f"({hidden_features},) for one hidden layer"
            )
        hidden = list(hidden_features)
        for index, size in enumerate(hidden):
            check_size("MLP", f"hidden_features[{index}]", size)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"MLP: activation {activation!r} is not one of {', '.join(ACTIVATIONS)}"
            )
        if isinstance(dropout, bool) or not isinstance(dropout, int | float):
            raise TypeError(f"MLP: dropout must be a number in [0, 1), got {dropout!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"MLP: dropout must be in [0, 1), got {dropout}")
        self.in_features = in_features
        self.num_classes = num_classes
        self.hidden_features = tuple(hidden)
        self.activation = activation
        self.dropout = float(dropout)

        blocks: list[Block] = []
        sizes = [in_features, *hidden]
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            blocks.append(Linear(fan_in, fan_out, **kw))
            blocks.append(ACTIVATIONS[activation]())
            if dropout > 0:
                blocks.append(Dropout(dropout))
        blocks.append(Linear(sizes[-1], num_classes, **kw))
        self.sequence = Sequential(*blocks)

    def children(self) -> list[tuple[str, Block]]:
        return [("sequence", self.sequence)]

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, "
            f"hidden_features={self.hidden_features}, "
            f"activation={self.activation!r}, dropout={self.dropout}"
        )

    def forward(self, x: Tensor, **kw: Any) -> Tensor:
        """Return the class scores, shape (N, num_classes)."""
        return self.sequence.forward(x, **kw)

    def backward(self, dout: Tensor, *, input_grad: bool = True) -> Tensor | None:
        """Backpropagate ``dout`` through the stack; see ``Sequential.backward``."""
        return self.sequence.backward(dout, input_grad=input_grad)
