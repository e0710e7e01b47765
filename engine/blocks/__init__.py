"""Network blocks with hand-written forward and backward passes.

Blocks compute on torch tensors without autograd. Example::

    model = MLP(64, 10, hidden_features=(128,), dropout=0.1)
    loss_fn = CrossEntropyLoss()
    loss = loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    for param, grad in model.params():
        param.sub_(0.1 * grad)
        grad.zero_()
"""

from engine.blocks.activations import LeakyReLU, ReLU, Sigmoid, TanH
from engine.blocks.base import Block
from engine.blocks.dropout import Dropout
from engine.blocks.linear import Linear
from engine.blocks.loss import CrossEntropyLoss
from engine.blocks.sequential import ACTIVATIONS, MLP, Sequential

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "Block",
    "CrossEntropyLoss",
    "Dropout",
    "LeakyReLU",
    "Linear",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "TanH",
]
