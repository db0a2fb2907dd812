"""Run interpretability probes during training at scheduled epochs.

Schedule (epoch numbers are **0-based**, i.e. Lightning's ``trainer.current_epoch``: ``epochs: [0]``
means "after the first training epoch"):

* ``epochs`` - explicit list of epochs, and/or
* ``every_n_epochs`` - every n-th epoch (after epochs n-1, 2n-1, ...), and
* ``on_train_end`` - once more when training ends, unless the last epoch was already probed.

Probes run on global rank zero only, after the epoch's validation, in eval mode (every
submodule's own mode is restored afterwards), on fixed seeded inputs (``seed``), and write to
``<run>/probes/epoch_XXX/<probe>/``. The wall time of each run is logged as ``probes/time_s``
(and kept in ``<run>/probes/timings.json``). Like Lightning's checkpointing, probes are skipped
under ``trainer.fast_dev_run``. On CPU the probes run with ``cpu_threads`` intra-op threads
(default 1: their small batches gain nothing from more, and lose a lot on a busy machine).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import lightning as L
from omegaconf import DictConfig, OmegaConf

from gan_interp.callbacks.sample_grid import run_dir_of
from gan_interp.errors import ConfigError
from gan_interp.logging_utils import log_metrics
from gan_interp.probes.output import write_json
from gan_interp.probes.runner import run_probes, validate_probes_cfg

log = logging.getLogger(__name__)


class ProbeCallback(L.Callback):
    """Calls :func:`gan_interp.probes.runner.run_probes` at the scheduled epochs (rank zero only)."""

    def __init__(
        self,
        epochs: list[int] | None = None,  # 0-based epochs to probe after
        every_n_epochs: int | None = None,  # also probe after every n-th epoch (None/0 = off)
        probes: Mapping[str, Any] | None = None,  # probe name -> kwargs (enabled: false skips)
        seed: int = 0,  # seed of the probes' inputs (fixed z, noise): the same every epoch
        on_train_end: bool = True,  # probe the final model unless its epoch was already probed
        dirname: str = "probes",  # folder under the run dir
        cpu_threads: int | None = 1,  # torch intra-op threads while probing on CPU (None = unchanged)
    ) -> None:
        if isinstance(probes, DictConfig):
            probes = OmegaConf.to_container(probes, resolve=True)
        self.probes = validate_probes_cfg(probes or {})  # fail before training on bad names/options
        self.epochs = sorted({int(e) for e in (epochs or [])})
        if any(e < 0 for e in self.epochs):
            raise ConfigError(f"probes.epochs={self.epochs} must be 0-based epoch numbers >= 0")
        if every_n_epochs is not None and int(every_n_epochs) < 0:
            raise ConfigError(f"probes.every_n_epochs={every_n_epochs} must be >= 1 (or null to disable)")
        self.every_n_epochs = int(every_n_epochs) if every_n_epochs else None
        self.seed, self.run_on_train_end, self.dirname = int(seed), bool(on_train_end), dirname
        self.cpu_threads = None if cpu_threads is None else max(1, int(cpu_threads))
        self.history: list[dict[str, Any]] = []  # one entry per probe run: epoch, time_s, results
        self._last_epoch: int | None = None
        self._probed: set[int] = set()

    def is_scheduled(self, epoch: int) -> bool:
        """Whether the 0-based ``epoch`` is probed at its end."""
        return epoch in self.epochs or bool(self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0)

    def out_dir(self, trainer: L.Trainer, epoch: int) -> Path:
        return run_dir_of(trainer) / self.dirname / f"epoch_{epoch:03d}"

    def run(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> dict[str, dict]:
        """Probe now (rank zero) into ``<run>/probes/epoch_XXX``; logs ``probes/time_s``."""
        if not self.probes:
            return {}
        start = time.perf_counter()
        results = run_probes(
            pl_module,
            trainer.datamodule if hasattr(trainer, "datamodule") else None,
            self.probes,
            self.out_dir(trainer, epoch),
            epoch,
            loggers=trainer.loggers,
            step=trainer.global_step,
            seed=self.seed,
            num_threads=self.cpu_threads,
        )
        elapsed = time.perf_counter() - start
        self._probed.add(epoch)
        self.history.append({"epoch": epoch, "time_s": elapsed, "probe_times": {k: v.get("time_s") for k, v in results.items()}})
        log_metrics(trainer.loggers, {"probes/time_s": elapsed, "probes/epoch": float(epoch)}, step=trainer.global_step)
        write_json(self.history, run_dir_of(trainer) / self.dirname / "timings.json")
        log.info("probes after epoch %d took %.2fs", epoch, elapsed)
        return results

    @staticmethod
    def _active(trainer: L.Trainer) -> bool:
        return bool(trainer.is_global_zero) and not getattr(trainer, "fast_dev_run", False)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        self._last_epoch = epoch
        if self._active(trainer) and self.is_scheduled(epoch) and epoch not in self._probed:
            self.run(trainer, pl_module, epoch)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not (self.run_on_train_end and self._active(trainer)) or self._last_epoch is None:
            return
        if self._last_epoch not in self._probed:
            self.run(trainer, pl_module, self._last_epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"probed": sorted(self._probed)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._probed = set(state_dict.get("probed", []))
