"""The ``layerlab`` command: the TUI with no arguments, or a subcommand.

Run ``layerlab --help`` for the list of subcommands and options.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Subcommand modules under engine.commands, in the order --help lists them.
COMMAND_MODULES = ("demo", "train", "runs", "experiment")

RUNS_DIR_ENV = "LAYERLAB_RUNS_DIR"
DATA_DIR_ENV = "LAYERLAB_DATA_DIR"


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="layerlab",
        description=(
            "A terminal deep-learning lab. With no subcommand, open the "
            "interactive app; the subcommands below work without it."
        ),
    )
    parser.add_argument(
        "--runs-dir",
        default=None,
        help=(
            f"directory of the run store (default: ${RUNS_DIR_ENV}, else ./saved_runs)"
        ),
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help=(
            "directory that holds downloaded data sets (default: $"
            f"{DATA_DIR_ENV}, else ~/.pytorch-datasets)"
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"engine.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.runs_dir is not None:
        os.environ[RUNS_DIR_ENV] = args.runs_dir
    if args.data_dir is not None:
        os.environ[DATA_DIR_ENV] = args.data_dir
    if args.command is None:
        from tui.app import run_app

        return run_app(runs_dir=args.runs_dir, data_dir=args.data_dir)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
