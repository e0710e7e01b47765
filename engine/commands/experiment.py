"""``layerlab experiment``: run named experiment grids and plot their results.

``layerlab experiment run exp1_1`` trains every configuration of a grid and
writes one JSON results file per configuration, skipping files that exist.
``layerlab experiment plot 'exp1_1*'`` draws the matching results overlaid in
the terminal and prints a table of each run's best test accuracy.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

from engine.commands.argtypes import positive_int
from engine.grids import GRIDS, GridSettings, grid_experiments, run_grid

RUNS_DIR_ENV = "LAYERLAB_RUNS_DIR"
MAX_PLOT_POINTS = 400


def _grid_list() -> str:
    lines = []
    for name, grid in GRIDS.items():
        text = textwrap.fill(
            f"{name}: {grid.help}",
            width=78,
            initial_indent="  ",
            subsequent_indent="      ",
            break_on_hyphens=False,
        )
        lines.append(text)
    return "\n".join(lines)


def register(subparsers: Any) -> None:
    """Add the ``experiment`` subcommand with ``run``, ``plot`` and ``list``."""
    parser = subparsers.add_parser(
        "experiment",
        help="run named experiment grids and plot their results",
        description="Run named experiment grids and plot their results.",
    )
    commands = parser.add_subparsers(dest="experiment_command", metavar="ACTION")
    commands.required = True

    run = commands.add_parser(
        "run",
        help="run every configuration of a named grid",
        description=(
            "Run every configuration of a named grid, one results file each "
            "(NAME_L{L}_K{k1-k2-...}.json for convolutional grids). With two "
            "or more GPUs visible, one experiment runs per GPU at a time; "
            "otherwise they run one after the other.\n\ngrids:\n" + _grid_list()
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("name", choices=list(GRIDS), metavar="NAME", help="grid name")
    run.add_argument(
        "--epochs", type=positive_int, default=None, help="epochs of every run"
    )
    run.add_argument(
        "--batches",
        type=positive_int,
        default=None,
        help="batches per epoch of every run (default: whole epochs)",
    )
    run.add_argument(
        "--dataset", default="cifar10", help="data set name (default: cifar10)"
    )
    run.add_argument(
        "--data-dir",
        dest="grid_data_dir",
        metavar="DIR",
        default=None,
        help="directory of the downloaded data sets (default: $LAYERLAB_DATA_DIR, "
        "else ~/.pytorch-datasets)",
    )
    run.add_argument(
        "--out-dir",
        default=None,
        help="directory of the results files (default: $LAYERLAB_RUNS_DIR, "
        "else saved_runs)",
    )
    run.add_argument(
        "--device",
        default=None,
        help="cpu, cuda or cuda:N (default: every visible GPU, else the CPU)",
    )
    run.add_argument("--seed", type=int, default=42, help="seed of every run")
    run.add_argument(
        "--download",
        action="store_true",
        help="let torchvision download a missing data set (needs internet)",
    )
    run.add_argument(
        "--redo", action="store_true", help="run again where results exist"
    )
    run.add_argument(
        "--dry-run", action="store_true", help="list what would run and stop"
    )
    run.set_defaults(handler=run_command)

    plot = commands.add_parser(
        "plot",
        help="plot results files matching a pattern",
        description=(
            "Draw the train and test loss and accuracy of the results files "
            "matching PATTERN overlaid in the terminal, and print each run's "
            "best test accuracy, epochs and time."
        ),
    )
    plot.add_argument(
        "pattern",
        metavar="PATTERN",
        help="glob of results file names, e.g. 'exp1_1*' ('.json' is added)",
    )
    plot.add_argument(
        "--out-dir",
        default=None,
        help="directory of the results files (default: $LAYERLAB_RUNS_DIR, "
        "else saved_runs)",
    )
    plot.add_argument("--no-plot", action="store_true", help="print only the table")
    plot.add_argument(
        "--width", type=positive_int, default=None, help="plot width in columns"
    )
    plot.add_argument(
        "--height", type=positive_int, default=None, help="plot height in rows"
    )
    plot.set_defaults(handler=plot_command)

    listing = commands.add_parser("list", help="list the named grids")
    listing.set_defaults(handler=list_command)


def _out_dir(value: str | None) -> str:
    return value or os.environ.get(RUNS_DIR_ENV) or "saved_runs"


def _gpus(device: str | None) -> list[int]:
    """Return the GPU indices to spread over: all visible ones unless pinned."""
    if device not in (None, "auto", "cuda"):
        return []
    import torch

    return list(range(torch.cuda.device_count()))


def run_command(args: argparse.Namespace) -> int:
    """Run a named grid; return 1 when an experiment failed."""
    data_dir = args.grid_data_dir or getattr(args, "data_dir", None)
    settings = GridSettings(
        dataset=args.dataset,
        data_dir=data_dir,
        out_dir=_out_dir(args.out_dir),
        device=args.device,
        epochs=args.epochs,
        batches=args.batches,
        seed=args.seed,
        download=args.download,
    )
    try:
        experiments = grid_experiments(args.name, settings)
    except ValueError as error:
        print(f"layerlab experiment run: error: {error}", file=sys.stderr)
        return 2
    # Check the data once, rather than failing every experiment of the grid.
    downloadable = args.download and args.dataset not in ("digits", "imagefolder")
    if not args.dry_run and not downloadable:
        from engine.dataset_info import check_data_available

        problem = check_data_available(args.dataset, data_dir)
        if problem is not None:
            print(f"layerlab experiment run: error: {problem}", file=sys.stderr)
            return 2
    gpus = [] if args.dry_run else _gpus(args.device)
    failures = run_grid(experiments, gpus=gpus, redo=args.redo, dry_run=args.dry_run)
    if failures:
        print(f"{failures} of {len(experiments)} experiments failed", file=sys.stderr)
        return 1
    return 0


def list_command(args: argparse.Namespace) -> int:
    """Print the named grids and their defaults."""
    print(_grid_list())
    return 0


# --- plot ------------------------------------------------------------------------


def matching_files(out_dir: str | Path, pattern: str) -> list[Path]:
    """Return the results files under ``out_dir`` matching ``pattern``, sorted.

    A pattern without ``.json`` at its end matches any name that starts with
    it (``exp1_1`` and ``exp1_1*`` both become ``exp1_1*.json``).
    """
    if not pattern.endswith(".json"):
        pattern = pattern.rstrip("*") + "*.json"
    return sorted(path for path in Path(out_dir).glob(pattern) if path.is_file())


def _decimate(values: list[float], limit: int) -> tuple[list[float], list[float]]:
    """Return (positions in [0, 1], means of equal windows), at most ``limit``."""
    count = len(values)
    if count == 0:
        return [], []
    window = max(1, -(-count // limit))
    xs, ys = [], []
    for start in range(0, count, window):
        chunk = values[start : start + window]
        xs.append((start + len(chunk) / 2) / count)
        ys.append(sum(chunk) / len(chunk))
    return xs, ys


def _draw(runs: list[tuple[str, Any]], width: int | None, height: int | None) -> None:
    import plotext as plt

    plt.clear_figure()
    plt.theme("dark")
    plt.subplots(2, 2)
    if width or height:
        plt.plotsize(width or 100, height or 40)
    panels = [
        (1, 1, "train_loss", "train loss (per batch)"),
        (1, 2, "test_loss", "test loss (per batch)"),
        (2, 1, "train_acc", "train accuracy %"),
        (2, 2, "test_acc", "test accuracy %"),
    ]
    for index, (row, column, field, title) in enumerate(panels):
        plt.subplot(row, column)
        plt.title(title)
        plt.xlabel("epoch")
        for name, result in runs:
            values = [float(v) for v in getattr(result, field)]
            if not values:
                continue
            if field.endswith("loss"):
                positions, ys = _decimate(values, MAX_PLOT_POINTS)
                xs = [p * result.num_epochs for p in positions]
            else:
                xs, ys = list(range(1, len(values) + 1)), values
            # The legend goes in the first panel only, to keep the others clear.
            plt.plot(xs, ys, label=name if index == 0 else None)
    plt.show()


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s"


def results_table(runs: list[tuple[str, Any]]) -> str:
    """Return a text table of each run's best test accuracy, epochs and time."""
    header = ("run", "best test acc", "at epoch", "epochs", "time")
    rows = [header]
    for name, result in runs:
        if result.test_acc:
            best = max(result.test_acc)
            best_text = f"{best:.2f}%"
            epoch_text = str(result.test_acc.index(best) + 1)
        else:
            best_text, epoch_text = "-", "-"
        seconds = sum(result.epoch_seconds) if result.epoch_seconds else None
        rows.append(
            (
                name,
                best_text,
                epoch_text,
                str(result.num_epochs),
                _format_seconds(seconds),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def plot_command(args: argparse.Namespace) -> int:
    """Plot and tabulate the results files matching the pattern."""
    from engine.experiments import load_experiment

    out_dir = _out_dir(args.out_dir)
    paths = matching_files(out_dir, args.pattern)
    if not paths:
        print(f"no results files match {args.pattern!r} in {out_dir}", file=sys.stderr)
        return 1
    runs = []
    for path in paths:
        try:
            _, result = load_experiment(path)
        except ValueError as error:
            print(f"skipped {path}: {error}", file=sys.stderr)
            continue
        runs.append((path.stem, result))
    if not runs:
        return 1
    if not args.no_plot:
        _draw(runs, args.width, args.height)
    print(results_table(runs))
    return 0
