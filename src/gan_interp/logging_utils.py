"""Logger construction and logger-agnostic logging of rows (scalars, images, tables) on one epoch axis.

W&B runs offline unless ``WANDB_API_KEY`` or ``WANDB_MODE`` say otherwise, never waits on the
network, and every job ends with ``wandb.finish()`` (otherwise Hydra multirun jobs in one process
would share a single W&B run).

One x-axis (W&B): Lightning's ``global_step`` counts every optimizer step (2+ per batch for GANs,
a different number per architecture), so nothing this project logs is placed by it. Every row
carries ``epoch`` (0-based) and ``g_steps`` (generator updates so far); :func:`define_axes` steps
``samples/*``, ``probes/*``, ``metrics/*``, ``kgan/*`` and ``val/*`` by ``epoch``, ``train/*`` by
``trainer/global_step`` (Lightning's own rows: the batch count), and gives the metrics min/max
summaries (:data:`METRIC_SUMMARIES`). Rows are logged with :class:`LogRow`: everything of one event
(an epoch's sample grid, probe run or metrics evaluation) in one call. Non-W&B loggers (CSV,
TensorBoard) have no per-key axes: they keep ``trainer.global_step`` as the step and get ``epoch``
and ``g_steps`` as columns/scalars of the same row.

What travels with a run (:func:`make_wandb_logger`): W&B stages artifact files (model checkpoints,
the tables' ``run_table`` artifacts) in ``WANDB_DATA_DIR`` and caches in ``WANDB_CACHE_DIR``, by
default under the user's home; both are pointed into ``<run>/wandb/`` (:func:`stage_in_run_dir`),
so the run folder holds everything ``wandb sync <run>/wandb/offline-run-*`` uploads. Checkpoints
become model artifacts (``log_model``: the final ones, or ``"all"``); console output
(``files/output.log``) and system metrics are captured unless ``capture_system=False``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment

from gan_interp.errors import ConfigError

log = logging.getLogger(__name__)

EPOCH_AXIS = ("samples/*", "probes/*", "metrics/*", "kgan/*", "val/*")  # W&B keys stepped by epoch
STEP_AXIS = ("train/*",)  # W&B keys stepped by trainer/global_step (Lightning's training rows)

# W&B run-summary statistics of the metrics (metrics/<key>); other metrics keep the last value.
# c2st_accuracy: 0.5 is ideal and neither min nor max is "best"; an accuracy under 0.5 is chance
# level, so lower is better down to 0.5 and "min" is the epoch whose fakes were hardest to tell.
METRIC_SUMMARIES = {
    "fid": "min",
    "kid_mean": "min",
    "mmd2": "min",
    "c2st_accuracy": "min",
    "nn_copy_fraction": "min",
    "is_mean": "max",
    "mmd_p_value": "max",
    "c2st_p_value": "max",
}


def wandb_mode() -> str:
    """'online' only when the user asked for it (API key or WANDB_MODE); otherwise 'offline'."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def define_axes(run: Any) -> None:
    """The x-axes and summaries of a W&B run (see the module doc); no ``*`` glob: W&B matches
    overlapping globs in no fixed order, so every prefix has exactly one definition."""
    run.define_metric("trainer/global_step")
    run.define_metric("epoch")
    run.define_metric("g_steps")
    for glob in STEP_AXIS:
        run.define_metric(glob, step_metric="trainer/global_step")
    for glob in EPOCH_AXIS:
        run.define_metric(glob, step_metric="epoch")
    for key, stat in METRIC_SUMMARIES.items():  # exact names take precedence over the metrics/* glob
        run.define_metric(f"metrics/{key}", step_metric="epoch", summary=f"{stat},last")


LOG_MODEL_CHOICES = (False, True, "all")  # logger.wandb.log_model


def stage_in_run_dir(save_dir: str | Path) -> dict[str, str]:
    """Point W&B's artifact staging and cache into ``<save_dir>/wandb/`` (process-wide, for the run started next).

    ``WANDB_DATA_DIR`` holds ``artifacts/staging/`` (copies of logged checkpoints, the tables'
    artifacts), ``WANDB_CACHE_DIR`` W&B's cache and service logs; by default both lie under the
    user's home, outside the run folder. The run records the staged files' absolute paths.
    """
    wandb_dir = Path(save_dir).absolute() / "wandb"
    dirs = {"WANDB_DATA_DIR": str(wandb_dir), "WANDB_CACHE_DIR": str(wandb_dir / "cache")}
    os.environ.update(dirs)
    return dirs


def wandb_settings(capture_system: bool = True) -> Any:
    """W&B settings of every run here: never waits long on the network; ``capture_system`` records the
    console (``files/output.log``) and system metrics (CPU, memory, GPU every 15 s)."""
    import wandb

    return wandb.Settings(
        init_timeout=60, x_disable_stats=not capture_system, console="auto" if capture_system else "off"
    )


class EpochAxisWandbLogger(WandbLogger):
    """A WandbLogger whose run gets :func:`define_axes` instead of Lightning's ``*`` -> global_step axis,
    and whose model artifacts (``model-<run id>``) carry the checkpoint's file name as an alias
    (``last``, ``best``, ``epoch_004``) next to ``latest``.

    ``log_model=True`` logs each checkpoint callback's final file once, at the end of a successful fit
    (Lightning would log every file of a ``save_top_k=-1`` callback as it is written, as ``"all"`` does).
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        import wandb

        if self._experiment is None:
            attach_id = getattr(self, "_attach_id", None)
            if wandb.run is not None:  # a run already in progress (its axes were defined by whoever made it)
                self._experiment = wandb.run
            elif attach_id is not None and hasattr(wandb, "_attach"):  # a spawned DDP worker
                self._experiment = wandb._attach(attach_id)
            else:
                self._experiment = wandb.init(**self._wandb_init)
                define_axes(self._experiment)
        return self._experiment

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if self._log_model == "all":
            self._scan_and_log_checkpoints(checkpoint_callback)
        elif self._log_model:
            self._checkpoint_callbacks[id(checkpoint_callback)] = checkpoint_callback

    def finalize(self, status: str) -> None:
        if status != "success" or self._experiment is None:  # checkpoints are logged for finished fits only
            return
        for callback in self._checkpoint_callbacks.values():
            final = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
            if final and Path(final).is_file():
                self.log_checkpoint(Path(final))

    def _scan_and_log_checkpoints(self, checkpoint_callback: Any) -> None:
        from lightning.pytorch.loggers.utilities import _scan_checkpoints

        for mtime, path, _score, _tag in _scan_checkpoints(checkpoint_callback, self._logged_model_time):
            if not Path(path).is_symlink():  # last.ckpt linking an epoch file: that file is logged itself
                self.log_checkpoint(Path(path))
            self._logged_model_time[path] = mtime

    def log_checkpoint(self, path: Path) -> None:
        """``path`` as a version of the run's model artifact, aliased ``latest`` and ``path``'s stem."""
        import wandb

        name = f"model-{self.experiment.id}"
        resolved = path.resolve()  # last.ckpt may link to the epoch file of its step
        metadata = {"original_filename": path.name, "file": resolved.name}
        artifact = wandb.Artifact(name=name, type="model", metadata=metadata)
        artifact.add_file(str(resolved), name="model.ckpt", policy=self.add_file_policy, skip_cache=True)
        self.experiment.log_artifact(artifact, aliases=sorted({"latest", path.stem, resolved.stem}))


def make_wandb_logger(
    save_dir: str,  # the Hydra run dir: the run lands in <save_dir>/wandb/
    project: str = "gan-interp",
    name: str | None = None,  # run name shown in W&B
    group: str | None = None,  # groups the jobs of one sweep
    tags: Iterable[str] = (),
    job_type: str = "train",
    log_model: bool | str = False,  # true: final checkpoints as model artifacts; "all": every one as written
    add_file_policy: str = "mutable",  # mutable: stage a copy (safe); immutable: reference the file in place
    capture_system: bool = True,  # console log + system metrics (wandb_settings)
    **kwargs: Any,
) -> WandbLogger:
    """A WandbLogger that is offline by default, never blocks on the network, steps rows by epoch and keeps
    everything it stages inside ``<save_dir>/wandb/``."""
    if log_model not in LOG_MODEL_CHOICES or add_file_policy not in ("mutable", "immutable"):
        raise ConfigError(
            f"logger.wandb: log_model={log_model!r} add_file_policy={add_file_policy!r}; "
            "use log_model=true|false|all and add_file_policy=mutable|immutable"
        )
    os.environ.setdefault("WANDB_SILENT", "true")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    stage_in_run_dir(save_dir)
    logger = EpochAxisWandbLogger(
        save_dir=str(save_dir),
        project=project,
        name=name,
        group=group,
        tags=[str(t)[:64] for t in tags],  # W&B's tag length limit
        job_type=job_type,
        offline=False,  # Lightning refuses log_model with offline=True; mode="offline" keeps the run local
        mode=wandb_mode(),
        log_model=log_model,
        add_file_policy=add_file_policy,
        settings=wandb_settings(capture_system),
        **kwargs,
    )
    # Lightning always passes wandb.init(anonymous=None); wandb 0.31 warns that the setting has no effect
    logger._wandb_init.pop("anonymous", None)
    return logger


def finish_wandb(exit_code: int = 0) -> None:
    """Close the active W&B run, if any (safe to call always), and wait until it is written.

    ``wandb.finish`` returns before W&B's service has closed the run file (offline, the
    ``run-*.wandb`` file may still hold only its header); ``wandb.teardown`` waits for the service
    to shut down, so the run is complete on disk when this returns (the next run starts a new service).
    """
    try:
        import wandb
    except ImportError:  # pragma: no cover - wandb is a dependency
        return
    if wandb.run is not None:
        wandb.finish(exit_code=exit_code)
        wandb.teardown()


def _hwc_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """CHW/HWC float [0,1] or uint8 -> HWC uint8 numpy."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return arr


@dataclass
class LogRow:
    """One logged row: the scalars, images and tables of one event, logged together at its epoch.

    ``row = LogRow(epoch, g_steps, step)``; ``row.scalars(...)``, ``row.image(...)``,
    ``row.table(...)``; then ``row.log(loggers)`` - one call per logger. Image captions start with
    ``epoch <epoch>:``.
    """

    epoch: int | None  # 0-based epoch the row belongs to (W&B x-axis); None: unknown
    g_steps: int | None = None  # generator updates so far; None: unknown
    step: int = 0  # trainer.global_step: the step of non-W&B loggers (they have no epoch axis)
    values: dict[str, float] = field(default_factory=dict)  # scalar key -> value
    images: dict[str, tuple[np.ndarray, str]] = field(default_factory=dict)  # key -> (HWC uint8, caption)
    tables: dict[str, tuple[list[str], list[list[Any]]]] = field(default_factory=dict)  # key -> (columns, rows)

    def axis(self) -> dict[str, float]:
        """``{"epoch", "g_steps"}`` (the known ones) - in every logged row."""
        out = {"epoch": self.epoch, "g_steps": self.g_steps}
        return {k: float(v) for k, v in out.items() if v is not None}

    def scalars(self, values: Mapping[str, float]) -> None:
        self.values.update({k: float(v) for k, v in values.items()})

    def image(self, key: str, image: torch.Tensor | np.ndarray, caption: str = "") -> None:
        """An image (CHW/HWC, float [0, 1] or uint8); the caption says what rows and columns are."""
        prefix = f"epoch {self.epoch}" if self.epoch is not None else ""
        text = f"{prefix}: {caption}" if prefix and caption else prefix or caption or key
        self.images[key] = (_hwc_uint8(image), text)

    def table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        self.tables[key] = (list(columns), [list(r) for r in rows])

    def log(self, loggers: Iterable[Logger]) -> None:
        """Log the row to every logger (W&B: one ``run.log``); a logger failure never stops training."""
        if not (self.values or self.images or self.tables):
            return
        for lg in loggers:
            try:
                if isinstance(lg, WandbLogger):
                    self._log_wandb(lg)
                else:
                    self._log_other(lg)
            except Exception as exc:  # a logger failure must never kill training
                log.warning("could not log %s to %s: %s", ", ".join(self._keys()), type(lg).__name__, exc)

    def _keys(self) -> list[str]:
        return [*self.values, *self.images, *self.tables][:5]

    def _log_wandb(self, lg: WandbLogger) -> None:
        import wandb

        payload: dict[str, Any] = {**self.axis(), **self.values}
        payload.update({k: wandb.Image(img, caption=cap) for k, (img, cap) in self.images.items()})
        payload.update({k: wandb.Table(columns=c, data=r) for k, (c, r) in self.tables.items()})
        lg.log_metrics(payload)  # no step: trainer/global_step would be the optimizer-step count

    def _log_other(self, lg: Logger) -> None:
        if isinstance(lg, TensorBoardLogger):
            for key, (img, _caption) in self.images.items():
                lg.experiment.add_image(key, img, global_step=self.step, dataformats="HWC" if img.ndim == 3 else "HW")
        if self.values:
            lg.log_metrics({**self.axis(), **self.values}, step=self.step)


def log_metrics(
    loggers: Iterable[Logger],
    metrics: Mapping[str, float],
    step: int,  # trainer.global_step (non-W&B loggers' step)
    epoch: int | None = None,  # the row's epoch (W&B x-axis)
    g_steps: int | None = None,  # generator updates so far
) -> None:
    """Scalars as one row (a :class:`LogRow` with scalars only)."""
    row = LogRow(epoch, g_steps, step)
    row.scalars(metrics)
    row.log(loggers)


__all__ = [
    "CSVLogger",
    "EPOCH_AXIS",
    "METRIC_SUMMARIES",
    "EpochAxisWandbLogger",
    "LogRow",
    "TensorBoardLogger",
    "define_axes",
    "finish_wandb",
    "log_metrics",
    "make_wandb_logger",
    "stage_in_run_dir",
    "wandb_mode",
    "wandb_settings",
]
