"""layerlab's engine: blocks, optimizers, trainers, data sets and runs.

Importing this package is cheap: it imports no torch. Submodules that need
torch import it themselves.
"""

__version__ = "0.1.0"
