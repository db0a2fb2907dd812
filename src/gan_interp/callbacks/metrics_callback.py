"""Evaluation metrics during training, at the epochs of a :class:`EpochSchedule`.

What is evaluated is a :class:`~gan_interp.metrics.settings.MetricsSettings` (``conf/metrics/<set>.yaml``,
``metrics=...``); when is ``schedule.metrics`` (``conf/schedule/``; the options are documented once,
in :mod:`gan_interp.callbacks.schedule`).

Each evaluation writes ``<run>/metrics/epoch_XXX.json`` (values + which features were used +
timings), logs ``metrics/<name>`` to every attached logger, and puts the values into
``trainer.callback_metrics`` so they end up in ``<run>/metrics.json`` as well. With
``memorisation`` enabled it also writes ``<run>/metrics/nn_epoch_XXX.png`` (the fakes closest to
the training set above their nearest training images).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch

from gan_interp.callbacks.sample_grid import run_dir_of
from gan_interp.callbacks.schedule import EpochSchedule, ScheduledCallback
from gan_interp.metrics.runner import DIRNAME, MetricsResult, evaluate_and_record
from gan_interp.metrics.settings import MetricsSettings

log = logging.getLogger(__name__)


class MetricsCallback(ScheduledCallback):
    """Compute :mod:`gan_interp.metrics` at the scheduled epochs and log/write them (rank zero only)."""

    def __init__(
        self,
        settings: MetricsSettings | None = None,  # what to evaluate (None -> no metrics)
        schedule: EpochSchedule | Mapping[str, Any] | None = None,  # when: schedule.metrics (None -> at the end)
        dirname: str = DIRNAME,  # folder under the run dir
    ) -> None:
        super().__init__(schedule, "schedule.metrics")
        self.settings = settings if settings is not None else MetricsSettings()
        self.dirname = dirname
        self.history: list[dict[str, Any]] = []  # one entry per evaluation: epoch + values

    def run(self, trainer: L.Trainer, pl_module: Any, epoch: int, source: str = "manual") -> MetricsResult | None:
        """Evaluate now; write ``<run>/metrics/epoch_XXX.json`` and log ``metrics/<name>``."""
        if getattr(trainer, "datamodule", None) is None:
            log.warning("metrics skipped: the trainer has no datamodule (fit with datamodule=GANDataModule(...))")
            return None
        result = evaluate_and_record(
            pl_module,
            trainer.datamodule,
            self.settings,
            run_dir_of(trainer) / self.dirname,
            f"epoch_{epoch:03d}",
            epoch,
            trainer.global_step,
            trainer.loggers,
            source,
        )
        if result is not None:
            self.history.append({"epoch": epoch, **result.values})
            for k, v in result.values.items():  # -> <run>/metrics.json (train.py) and checkpoint monitors
                trainer.callback_metrics[f"metrics/{k}"] = torch.tensor(v)
        return result
