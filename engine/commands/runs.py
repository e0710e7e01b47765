"""``layerlab runs``: list, show, stop, resume, export and delete stored runs."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.runs import (
    ACTIVE_STATUSES,
    RunNotFoundError,
    RunStore,
    RunSummary,
    export_csv,
    resolve_runs_dir,
)

LIST_COLUMNS = (
    ("id", "ID"),
    ("name", "NAME"),
    ("status", "STATUS"),
    ("dataset", "DATASET"),
    ("model", "MODEL"),
    ("optimizer", "OPTIMIZER"),
    ("best", "BEST TEST ACC"),
    ("epochs", "EPOCHS"),
    ("time", "TIME"),
    ("created", "CREATED"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``runs`` command and its subcommands."""
    parser = subparsers.add_parser(
        "runs",
        help="list, show, stop, resume, export and delete stored runs",
        description=(
            "Manage the runs in the run store (--runs-dir). RUN is a run id or "
            "a unique prefix of one."
        ),
    )
    actions = parser.add_subparsers(dest="runs_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args: _usage(parser))

    listing = actions.add_parser("list", help="list all runs, newest first")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.set_defaults(handler=cmd_list)

    show = actions.add_parser("show", help="show a run's config and epochs")
    show.add_argument("run", metavar="RUN")
    show.add_argument("--json", action="store_true", help="print run.json as JSON")
    show.set_defaults(handler=cmd_show)

    stop = actions.add_parser(
        "stop", help="stop a run after its current batch, with a checkpoint"
    )
    stop.add_argument("run", metavar="RUN")
    stop.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this many seconds for the worker to end (0: do not wait)",
    )
    stop.set_defaults(handler=cmd_stop)

    resume = actions.add_parser(
        "resume", help="continue a stopped or interrupted run from its last checkpoint"
    )
    resume.add_argument("run", metavar="RUN")
    resume.add_argument(
        "--detach",
        action="store_true",
        help="train in a background process that outlives this terminal",
    )
    resume.set_defaults(handler=cmd_resume)

    export = actions.add_parser(
        "export", help="write the per-epoch metrics of runs to a CSV file"
    )
    export.add_argument("runs", nargs="+", metavar="RUN")
    export.add_argument(
        "--csv", required=True, metavar="FILE", help="output file ('-': stdout)"
    )
    export.set_defaults(handler=cmd_export)

    delete = actions.add_parser("delete", help="delete runs and all their files")
    delete.add_argument("runs", nargs="+", metavar="RUN")
    delete.add_argument(
        "--yes", action="store_true", help="delete without asking for confirmation"
    )
    delete.set_defaults(handler=cmd_delete)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _store(args: argparse.Namespace) -> RunStore:
    return RunStore(resolve_runs_dir(getattr(args, "runs_dir", None)))


def _error(message: str) -> int:
    print(f"layerlab runs: error: {message}", file=sys.stderr)
    return 1


def format_seconds(seconds: float) -> str:
    """Return a duration as ``1h02m``, ``3m05s`` or ``12.3s``."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    if seconds >= 60:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{seconds:.1f}s"


def _row(summary: RunSummary) -> dict[str, str]:
    epochs = str(summary.epochs_done)
    if summary.num_epochs:
        epochs += f"/{summary.num_epochs}"
    best = summary.best_test_acc
    return {
        "id": summary.id,
        "name": summary.name,
        "status": summary.status,
        "dataset": summary.dataset,
        "model": summary.model,
        "optimizer": summary.optimizer,
        "best": "" if best is None else f"{best:.2f}%",
        "epochs": epochs,
        "time": format_seconds(summary.seconds),
        "created": summary.created.replace("T", " ").rstrip("Z"),
    }


def print_table(
    rows: list[dict[str, str]], columns: tuple[tuple[str, str], ...]
) -> None:
    """Print ``rows`` as a table with a header, one column per key."""
    widths = {
        key: max([len(title), *(len(row[key]) for row in rows)])
        for key, title in columns
    }
    print("  ".join(title.ljust(widths[key]) for key, title in columns).rstrip())
    for row in rows:
        print("  ".join(row[key].ljust(widths[key]) for key, _ in columns).rstrip())


def cmd_list(args: argparse.Namespace) -> int:
    """Print every run in the store."""
    summaries = _store(args).list()
    if args.json:
        for summary in summaries:
            print(json.dumps(summary.to_dict()))
        return 0
    if not summaries:
        print(f"no runs in {_store(args).root}")
        return 0
    print_table([_row(summary) for summary in summaries], LIST_COLUMNS)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Print a run's status, config and per-epoch results."""
    try:
        run = _store(args).get(args.run)
    except (RunNotFoundError, ValueError) as error:
        return _error(str(error))
    if args.json:
        print(json.dumps({**run.info, "status": run.status}, indent=2))
        return 0
    info = run.info
    print(f"run:      {run.id}")
    print(f"name:     {run.name}")
    print(f"status:   {run.status}" + (f" ({run.reason})" if run.reason else ""))
    print(f"created:  {info.get('created') or '-'}")
    print(f"started:  {info.get('started') or '-'}")
    print(f"ended:    {info.get('ended') or '-'}")
    print(f"path:     {run.path}")
    print("config:")
    print(json.dumps(run.config, indent=2))
    history = run.history()
    if not history:
        print("no epoch finished yet")
        return 0
    columns = (
        ("epoch", "EPOCH"),
        ("train_loss", "TRAIN LOSS"),
        ("train_acc", "TRAIN ACC"),
        ("test_loss", "TEST LOSS"),
        ("test_acc", "TEST ACC"),
        ("seconds", "SECONDS"),
    )
    print_table([_epoch_row(record) for record in history], columns)
    return 0


def _epoch_row(record: dict[str, Any]) -> dict[str, str]:
    def number(key: str, pattern: str) -> str:
        value = record.get(key)
        return "" if not isinstance(value, int | float) else format(value, pattern)

    return {
        "epoch": str(record.get("epoch", "")),
        "train_loss": number("train_loss", ".4f"),
        "train_acc": number("train_acc", ".2f"),
        "test_loss": number("test_loss", ".4f"),
        "test_acc": number("test_acc", ".2f"),
        "seconds": number("seconds", ".1f"),
    }


def cmd_stop(args: argparse.Namespace) -> int:
    """Ask a run's worker to stop gracefully."""
    from engine.worker import request_stop, wait_until_done

    try:
        run = _store(args).get(args.run)
    except (RunNotFoundError, ValueError) as error:
        return _error(str(error))
    status = run.status
    if status not in ACTIVE_STATUSES:
        return _error(f"run {run.id} is {status}, not running")
    signalled = request_stop(run)
    how = "signalled its worker" if signalled else "left a stop request"
    print(f"stopping run {run.id} ({how}); it ends after the current batch")
    if args.wait > 0:
        status = wait_until_done(run, args.wait)
        if status in ACTIVE_STATUSES:
            return _error(f"run {run.id} is still {status} after {args.wait:g} s")
        print(f"run {run.id} is {status}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue a run from its last checkpoint, here or detached."""
    from engine.worker import RunStateError, run_training, start_detached

    store = _store(args)
    try:
        run = store.get(args.run)
        if args.detach:
            pid = start_detached(store.root, run.id, resume=True)
            print(f"resumed run {run.id} in the background (pid {pid})")
            return 0
        run_training(store, run.id, resume=True)
    except (RunNotFoundError, RunStateError, ValueError) as error:
        return _error(str(error))
    except Exception:
        run.reload()
        return _error(f"run {run.id} failed: {run.reason} (see {run.log_path})")
    run.reload()
    print(f"run {run.id} {run.status}: {run.reason}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the per-epoch metrics of runs as CSV."""
    store = _store(args)
    try:
        runs = [store.get(run_id) for run_id in args.runs]
    except (RunNotFoundError, ValueError) as error:
        return _error(str(error))
    if args.csv == "-":
        export_csv(runs, sys.stdout)
        return 0
    try:
        with open(args.csv, "w", newline="", encoding="utf-8") as file:
            rows = export_csv(runs, file)
    except OSError as error:
        return _error(f"could not write {args.csv}: {error.strerror or error}")
    print(f"wrote {rows} rows of {len(runs)} runs to {args.csv}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete runs after confirmation."""
    store = _store(args)
    try:
        runs = [store.get(run_id) for run_id in args.runs]
    except (RunNotFoundError, ValueError) as error:
        return _error(str(error))
    if not args.yes:
        if not sys.stdin.isatty():
            return _error(
                "deleting needs confirmation: pass --yes or run in a terminal"
            )
        names = ", ".join(run.id for run in runs)
        answer = input(f"delete {len(runs)} runs ({names})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    failed = 0
    for run in runs:
        try:
            store.delete(run.id)
        except (ValueError, OSError) as error:
            print(f"layerlab runs: error: {error}", file=sys.stderr)
            failed += 1
        else:
            print(f"deleted {run.id}")
    return 1 if failed else 0
