"""What one training job does: build data, model and trainer from the composed config, fit, record the
outcome (``metrics.json`` / ``failure.json``). The command-line entry point is :mod:`gan_interp.train`
(kept free of torch/Lightning imports so ``--help`` and config errors answer fast).
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from gan_interp.callbacks.checkpointing import AtomicCheckpointIO
from gan_interp.callbacks.interrupt import StopOnSignal, TrainingInterrupted, interruption_of
from gan_interp.callbacks.metrics_callback import MetricsCallback
from gan_interp.callbacks.schedule import reject_schedule_keys
from gan_interp.checkpoints import check_resume_checkpoint
from gan_interp.config import instantiate_node, validate_config
from gan_interp.data.channels import resolve_channels
from gan_interp.disk import preflight_output_dir
from gan_interp.io import write_json, write_text
from gan_interp.logging_utils import finish_wandb
from gan_interp.signals import Terminated, lightning_owns_sigterm
from gan_interp.third_party import quiet_known_noise

log = logging.getLogger(__name__)


def instantiate_all(section: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a dict-of-configs section (callbacks, loggers)."""
    if not section:
        return []
    return [instantiate_node(item) for item in section.values() if item and "_target_" in item]


def scheduled_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """The probe and metrics callbacks: what runs from ``cfg.probes`` / ``cfg.metrics`` (either may be
    empty), when from ``cfg.schedule.probes`` / ``cfg.schedule.metrics``."""
    schedule = cfg.get("schedule") or {}
    callbacks: list[L.Callback] = []
    probes, metrics = cfg.get("probes"), cfg.get("metrics")
    if probes and "_target_" in probes:
        reject_schedule_keys(probes, "probes")
        callbacks.append(instantiate_node(probes, schedule=schedule.get("probes")))
    if metrics and "_target_" in metrics:
        reject_schedule_keys(metrics, "metrics")
        callbacks.append(MetricsCallback(settings=instantiate_node(metrics), schedule=schedule.get("metrics")))
    return callbacks


def apply_run_identity(cfg: DictConfig) -> None:
    """Set ``run_name``, ``group`` and ``tags`` to the job's W&B identity (:mod:`gan_interp.run_identity`)."""
    from gan_interp.run_identity import run_identity

    ident = run_identity(cfg, HydraConfig.get() if HydraConfig.initialized() else None)
    with open_dict(cfg):
        cfg.run_name, cfg.group, cfg.tags = ident.name, ident.group, list(ident.tags)


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Validate the config and instantiate data, model and trainer (with callbacks and loggers)."""
    validate_config(cfg)
    if cfg.get("threads"):  # e.g. threads=1 for parallel CPU sweep jobs (no oversubscription)
        torch.set_num_threads(int(cfg.threads))
    apply_run_identity(cfg)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    resolve_channels(cfg)  # data.channels: null -> inferred from the images (model.channels follows)
    datamodule = instantiate_node(cfg.data)
    datamodule.source.check()  # fail fast with a clear message, before any model is built
    model = instantiate_node(cfg.model)
    if cfg.get("ckpt_path"):  # one line for a missing/unreadable file or weights of another model, before any output
        check_resume_checkpoint(cfg.ckpt_path, model, bool(cfg.get("trust_checkpoint", False)))
    # every run stops cleanly on SIGTERM/SIGINT and writes checkpoints atomically after a free-space check
    callbacks = [*instantiate_all(cfg.get("callbacks")), *scheduled_callbacks(cfg), StopOnSignal()]
    loggers = instantiate_all(cfg.get("logger"))
    checkpoint_io = AtomicCheckpointIO(reserve_mb=float(cfg.get("min_free_disk_mb", 0)))
    trainer = instantiate_node(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[checkpoint_io])
    return datamodule, model, trainer


def train(cfg: DictConfig) -> dict[str, float]:
    """Train one model; returns the final metrics (also written to ``<run>/metrics.json``)."""
    run_dir = preflight_output_dir(cfg.paths.output_dir, float(cfg.get("min_free_disk_mb", 0)))
    quiet_known_noise()
    datamodule, model, trainer = build(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if trainer.is_global_zero:  # DDP: every rank runs this function; one writes the run files
        write_text(run_dir / "config_resolved.json", json.dumps(resolved, indent=1, default=str))
    for lg in trainer.loggers:
        lg.log_hyperparams(resolved)
    try:
        started = time.perf_counter()
        with lightning_owns_sigterm():  # Lightning's handler stops at a step boundary (callbacks/interrupt.py)
            trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        fit_seconds = time.perf_counter() - started
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        metrics["g_steps"] = float(model.g_steps)
        metrics["fit_seconds"] = fit_seconds  # wall time of trainer.fit (training + callbacks: probes, metrics)
        if trainer.is_global_zero:
            datamodule.save_split(run_dir)
            write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))
            (run_dir / "failure.json").unlink(missing_ok=True)  # a resumed run that finished is no failure
    except BaseException as exc:
        stop = interruption_of(trainer, exc)  # SIGTERM/SIGINT: exit 143/130 with the checkpoint of that step
        finish_wandb(exit_code=stop.exit_code if stop else 1)
        if stop is not None and stop is not exc:
            raise stop from None
        raise
    finish_wandb()  # one W&B run per job, also when jobs share a process (multirun)
    if trainer.is_global_zero:
        print(finished_message(run_dir, model.g_steps, fit_seconds), flush=True)
    return metrics


def finished_message(run_dir: Path, g_steps: int, seconds: float) -> str:
    """What a finished run prints last: where the run, its last samples, the review page and the W&B run are."""
    grids = sorted((run_dir / "samples").glob("epoch_*.png"))
    offline = sorted((run_dir / "wandb").glob("offline-run-*"))
    lines = [
        f"finished: {g_steps} generator steps in {seconds / 60:.1f} min",
        f"  run dir:     {run_dir}",
        f"  samples:     {grids[-1] if grids else '(none written)'}",
        f"  review page: python -m gan_interp.report {run_dir}",
    ]
    if offline:
        lines.append(f"  W&B:         wandb sync {offline[-1]}   (offline run; needs network and a W&B login)")
    return "\n".join(lines)


def objective(metrics: dict[str, float], cfg: DictConfig) -> float | None:
    """The value a sweeper optimises (``optimized_metric`` in the config), if any."""
    key = cfg.get("optimized_metric")
    if not key:
        return None
    value = metrics.get(key, math.nan)
    return float(value)


def _is_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def _task_overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def resume_command(cfg: DictConfig, checkpoint: str | Path) -> str:
    """The command line that continues this run (same overrides, same run dir) from ``checkpoint``."""
    replaced = ("ckpt_path", "hydra.run.dir")
    keep = [o for o in _task_overrides() if o.split("=", 1)[0].lstrip("+~") not in replaced]
    run_dir = Path(str(cfg.paths.output_dir)).absolute()
    ckpt = Path(checkpoint).absolute()
    return shlex.join(["python", "-m", "gan_interp.train", *keep, f"hydra.run.dir={run_dir}", f"ckpt_path={ckpt}"])


def failure_record(cfg: DictConfig, exc: BaseException) -> dict[str, Any]:
    """What ``failure.json`` says: why the job stopped, and for an interruption how to resume it."""
    record: dict[str, Any] = {"reason": "error", "error": f"{type(exc).__name__}: {exc}"}
    if isinstance(exc, (KeyboardInterrupt, Terminated)):
        name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        record = {"reason": "interrupted", "error": f"interrupted by {name}", "signal": name, "checkpoint": None}
    elif isinstance(exc, TrainingInterrupted):
        ckpt = exc.checkpoint
        record = {
            "reason": "interrupted",
            "error": str(exc),
            "signal": exc.signal_name,
            "exit_code": exc.exit_code,
            "epoch": exc.epoch,
            "global_step": exc.global_step,
            "checkpoint": str(ckpt.absolute()) if ckpt else None,
            "resume": resume_command(cfg, ckpt) if ckpt else None,
        }
    else:
        record["traceback"] = traceback.format_exception(type(exc), exc, exc.__traceback__)
    record["overrides"] = _task_overrides()
    return record


def record_failure(cfg: DictConfig, exc: BaseException) -> Path | None:
    """Write ``<run>/failure.json`` (atomically: complete or absent) so a sweep keeps a record of the stop."""
    try:
        return write_json(failure_record(cfg, exc), Path(cfg.paths.output_dir) / "failure.json")
    except Exception:  # recording must never hide the original error (e.g. a full disk)
        return None


def report_interruption(cfg: DictConfig, stop: TrainingInterrupted) -> None:
    """failure.json, then one line on stderr: what stopped, what was saved, how to resume."""
    record_failure(cfg, stop)
    resume = f"; resume: {resume_command(cfg, stop.checkpoint)}" if stop.checkpoint else ""
    log.warning("%s%s", stop, resume)
    print(f"{stop}{resume}", file=sys.stderr)
