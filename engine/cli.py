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
    _accept_store_options_everywhere(parser)
    return parser


def _accept_store_options_everywhere(parser: argparse.ArgumentParser) -> None:
    """Let every subcommand take --runs-dir and --data-dir after its name too.

    ``layerlab runs list --runs-dir X`` then works like ``layerlab --runs-dir
    X runs list``. The subcommand's copy has no default, so it leaves the
    top-level value alone unless given.
    """
    options = {
        "--runs-dir": f"directory of the run store (default: ${RUNS_DIR_ENV}, "
        "else ./saved_runs)",
        "--data-dir": f"directory of the data sets (default: ${DATA_DIR_ENV}, "
        "else ~/.pytorch-datasets)",
    }
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for subparser in action.choices.values():
            for flag, help_text in options.items():
                if flag not in subparser._option_string_actions:
                    subparser.add_argument(
                        flag, default=argparse.SUPPRESS, metavar="DIR", help=help_text
                    )
            _accept_store_options_everywhere(subparser)


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
    try:
        return args.handler(args)
    except BrokenPipeError:
        # The reader of stdout went away (as with `layerlab runs list | head`);
        # point stdout at /dev/null so that the exit flush does not fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
