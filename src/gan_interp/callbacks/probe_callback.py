"""Run interpretability probes during training, at the epochs of a :class:`EpochSchedule`.

Which probes run is ``conf/probes/<set>.yaml`` (``probes=...``); when they run is
``schedule.probes`` (``conf/schedule/``; the options are documented once, in
:mod:`gan_interp.callbacks.schedule`).

Probes run on global rank zero only, after the epoch's validation, in eval mode (every
submodule's own mode is restored afterwards), on fixed seeded inputs (``seed``), and write to
``<run>/probes/epoch_XXX/<probe>/``. Each run is logged as one row at its epoch (images, tables,
the readings ``probes/<probe>/<reading>`` and the wall time ``probes/time_s``, see
:func:`~gan_interp.probes.runner.run_probes`); the wall times are also kept in ``<run>/probes/timings.json``.
On CPU the probes run with ``cpu_threads`` intra-op threads (default 1: their small batches gain
nothing from more, and lose a lot on a busy machine).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from gan_interp.callbacks.sample_grid import run_dir_of
from gan_interp.callbacks.schedule import EpochSchedule, ScheduledCallback
from gan_interp.io import write_json
from gan_interp.probes.runner import run_probes, validate_probes_cfg

log = logging.getLogger(__name__)


class ProbeCallback(ScheduledCallback):
    """Calls :func:`gan_interp.probes.runner.run_probes` at the scheduled epochs (rank zero only)."""

    def __init__(
        self,
        probes: Mapping[str, Any] | None = None,  # probe name -> options (enabled: false skips)
        schedule: EpochSchedule | Mapping[str, Any] | None = None,  # when: schedule.probes (None -> at the end)
        seed: int = 0,  # seed of the probes' inputs (fixed z, noise): the same every epoch
        dirname: str = "probes",  # folder under the run dir
        cpu_threads: int | None = 1,  # torch intra-op threads while probing on CPU (None = unchanged)
    ) -> None:
        super().__init__(schedule, "schedule.probes")
        if isinstance(probes, DictConfig):
            probes = OmegaConf.to_container(probes, resolve=True)  # type: ignore[assignment]
        self.probes = validate_probes_cfg(probes or {})  # fail before training on bad names/options
        self.seed, self.dirname = int(seed), dirname
        self.cpu_threads = None if cpu_threads is None else max(1, int(cpu_threads))
        self.history: list[dict[str, Any]] = []  # one entry per probe run: epoch, time_s, results

    def out_dir(self, trainer: L.Trainer, epoch: int) -> Path:
        return run_dir_of(trainer) / self.dirname / f"epoch_{epoch:03d}"

    def run(
        self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int, source: str = "manual"
    ) -> dict[str, dict]:
        """Probe now into ``<run>/probes/epoch_XXX``; one logged row at ``epoch``."""
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
        times = {k: v.get("time_s") for k, v in results.items()}
        self.history.append({"epoch": epoch, "time_s": elapsed, "probe_times": times})
        write_json(self.history, run_dir_of(trainer) / self.dirname / "timings.json")
        log.info("probes after epoch %d (%s) took %.2fs", epoch, source, elapsed)
        return results
