"""Subcommands of the ``layerlab`` command line.

Each module defines ``register(subparsers)``, which adds its parser and sets
``handler`` to a function taking the parsed arguments and returning an exit
status. Modules import torch only inside their handlers, so that
``layerlab --help`` and the TUI start quickly.
"""
