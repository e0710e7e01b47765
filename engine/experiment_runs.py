"""Record experiments as runs in the run store.

An experiment from ``engine.experiments`` trains in the calling process, not
in a worker. This module gives it what a worker run has: a run directory
with a config that ``layerlab runs resume`` can train from, metrics as the
fit goes, checkpoints and a final status. It also handles SIGTERM, so that
``layerlab runs stop`` ends the fit after the current batch instead of
killing it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

# Model keywords that the spec presets take, under the presets' names.
_SPEC_KEYWORDS = {
    "cnn": {"activation_type": "activation", "pooling_type": "pooling"},
    "resnet": {
        "activation_type": "activation",
        "pooling_type": "pooling",
        "batchnorm": "batchnorm",
        "dropout": "dropout",
        "bottleneck": "bottleneck",
    },
    "ycn": {
        "activation_type": "activation",
        "pooling_type": "pooling",
        "dropout": "dropout",
    },
}


def jsonable(value: Any) -> Any:
    """Return ``value`` with tuples as lists, keys as strings and paths as text."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def experiment_spec(
    config: dict[str, Any],
    model_kw: dict[str, Any],
    spec_input: dict[str, Any] | None = None,
) -> dict | None:
    """Return the layer-stack spec of an experiment's model, or None.

    None means that the model uses an option the spec presets cannot express
    (for example ``conv_params`` or ``activation_params``). ``spec_input`` is
    the spec's input. By default the experiment's data set names it, but
    that works only for data sets with a fixed image shape, so an image
    folder needs an explicit shape.
    """
    from engine.spec import preset_cnn, preset_resnet, preset_ycn

    model_type = config["model_type"]
    names = _SPEC_KEYWORDS[model_type]
    if any(key not in names for key in model_kw):
        return None
    values = {names[key]: value for key, value in model_kw.items()}
    preset = {"cnn": preset_cnn, "resnet": preset_resnet, "ycn": preset_ycn}[model_type]
    return preset(
        spec_input or config["dataset"],
        K=config["filters_per_layer"],
        L=config["layers_per_block"],
        P=config["pool_every"],
        H=config["hidden_dims"],
        **values,
    )


def _training_section(config: dict[str, Any]) -> dict[str, Any]:
    """Return a run config's training section from an experiment's arguments."""
    return {
        "batch_size": config["bs_train"],
        "bs_test": config["bs_test"],
        "epochs": config["epochs"],
        "max_batches": config["batches"],
        "early_stopping": config["early_stopping"],
        "seed": config["seed"],
        "device": config["device"] or "auto",
    }


def experiment_run_config(
    config: dict[str, Any],
    options: dict[str, Any],
    model_kw: dict[str, Any],
    spec_input: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the run store config of a convolutional experiment.

    It has the sections every run has (spec, dataset, optimizer, training),
    a "model" section that rebuilds the same ``engine.cnn`` class on resume,
    and the experiment's own config under ``experiment``. ``spec_input`` is
    passed on to :func:`experiment_spec`.
    """
    from engine.experiments import block_channels

    return jsonable(
        {
            "spec": experiment_spec(config, model_kw, spec_input),
            "dataset": {
                "name": config["dataset"],
                "data_dir": options["data_dir"],
                "download": options["download"],
                "augment": options["augment"],
                "train_size": options["train_size"],
            },
            "optimizer": {
                "name": options["optimizer"],
                "learn_rate": config["lr"],
                "reg": config["reg"],
                **(options["hyper"] or {}),
            },
            "training": {
                **_training_section(config),
                "schedule": options["schedule"],
                "channels_last": options["channels_last"],
            },
            "model": {
                "type": config["model_type"],
                "channels": block_channels(
                    config["filters_per_layer"], config["layers_per_block"]
                ),
                "pool_every": config["pool_every"],
                "hidden_dims": config["hidden_dims"],
                "kwargs": model_kw,
            },
            "experiment": config,
        }
    )


def mlp_run_config(
    config: dict[str, Any], hyper: dict[str, float], spec_input: dict[str, Any]
) -> dict[str, Any]:
    """Return the run store config of a block-MLP experiment.

    Args:
        config: ``run_mlp_experiment``'s arguments.
        hyper: its extra optimizer hyper-parameters.
        spec_input: the spec's input, from the loaded data set.
    """
    from engine.spec import preset_mlp

    spec = preset_mlp(
        spec_input,
        hidden=list(config["hidden_dims"]),
        activation=config["activation"],
        dropout=config["dropout"],
    )
    return jsonable(
        {
            "spec": spec,
            "dataset": {
                "name": config["dataset"],
                "data_dir": config["data_dir"],
                "train_size": config["train_size"],
            },
            "optimizer": {
                "name": config["optimizer"],
                "learn_rate": config["lr"],
                "reg": config["reg"],
                **hyper,
            },
            "training": _training_section(config),
            "experiment": config,
        }
    )


class ExperimentRun:
    """The run store entry of one experiment, with its recorder callback.

    Attributes:
        run: the ``engine.runs.Run``.
        recorder: the trainer callback that records metrics into the run.
    """

    def __init__(self, run: Any, writer: Any, recorder: Any) -> None:
        self.run = run
        self._writer = writer
        self.recorder = recorder

    def _end(self, status: str, reason: str) -> None:
        from engine.runs import utc_now

        self._writer.write(
            {"kind": "status", "status": status, "reason": reason, "time": time.time()}
        )
        self._writer.close()
        self.run.update(status=status, reason=reason, ended=utc_now())
        self.run.stop_path.unlink(missing_ok=True)
        log.info("run %s %s: %s", self.run.id, status, reason)

    def fail(self, error: BaseException) -> None:
        """Record the run as failed, or as stopped after a KeyboardInterrupt."""
        if isinstance(error, KeyboardInterrupt):
            self._end("stopped", "interrupted by Ctrl-C")
            return
        self._end("failed", f"{type(error).__name__}: {error}")

    def finish(self, result: Any) -> None:
        """Write result.json and record how the fit ended."""
        from engine.worker import STATUS_BY_STOP_REASON

        self.run.write_result(result.course_dict())
        status = STATUS_BY_STOP_REASON.get(result.stop_reason, "finished")
        reason = (
            result.message or f"{result.stop_reason} after {result.num_epochs} epochs"
        )
        self._end(status, reason)


@contextlib.contextmanager
def recorded_run(
    run_config: dict[str, Any] | None, name: str, runs_dir: str | None
) -> Iterator[ExperimentRun | None]:
    """Create a running run for an experiment, with SIGTERM handling.

    The handlers are installed before the run reads "running", because from
    then on ``layerlab runs stop`` may signal this process. With
    ``run_config`` None, nothing is recorded and None is yielded.
    """
    if run_config is None:
        yield None
        return
    from engine.runs import MetricsWriter, RunStore, current_process_identity, utc_now
    from engine.worker import SignalStop, make_recorder

    with SignalStop().installed() as signals:
        store = RunStore(runs_dir)
        run = store.create(run_config, name=name)
        run.update(
            status="running", reason="", started=utc_now(), **current_process_identity()
        )
        writer = MetricsWriter(run.metrics_path)
        recorder = make_recorder(run, writer)
        signals.attach(recorder)
        log.info("experiment %s recorded as run %s in %s", name, run.id, store.root)
        yield ExperimentRun(run, writer, recorder)
