"""Training entry point.

    python -m gan_interp.train model=dcgan data=synthetic_posters
    python -m gan_interp.train -m model=dcgan,stylegan_lite,kgan      # multirun comparison

Everything is composed by Hydra from ``conf/``; the run directory (checkpoints, sample grids,
W&B offline run, logs) is Hydra's output dir.
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

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from gan_interp.callbacks.checkpointing import AtomicCheckpointIO
from gan_interp.callbacks.guards import preflight_output_dir
from gan_interp.callbacks.interrupt import StopOnSignal, TrainingInterrupted, interruption_of
from gan_interp.callbacks.metrics_callback import MetricsCallback
from gan_interp.callbacks.schedule import reject_schedule_keys
from gan_interp.checkpoints import check_resume_checkpoint, checkpoint_file
from gan_interp.config import check_group_choices, instantiate_node, validate_config
from gan_interp.data.channels import resolve_channels
from gan_interp.errors import GanInterpError, exit_with_error, one_line_errors
from gan_interp.io import write_json, write_text
from gan_interp.logging_utils import finish_wandb
from gan_interp.paths import config_dir

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


def _default_group(cfg: DictConfig) -> str:
    """W&B group: the sweep folder for multirun jobs (one group per sweep), else the run name."""
    try:
        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            return Path(hc.sweep.dir).name
    except ValueError:  # not running under Hydra (tests calling train() directly)
        pass
    return str(cfg.run_name)


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Validate the config and instantiate data, model and trainer (with callbacks and loggers)."""
    validate_config(cfg)
    if cfg.get("threads"):  # e.g. threads=1 for parallel CPU sweep jobs (no oversubscription)
        torch.set_num_threads(int(cfg.threads))
    with open_dict(cfg):
        if cfg.get("group") is None:
            cfg.group = _default_group(cfg)
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
    datamodule, model, trainer = build(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if trainer.is_global_zero:  # DDP: every rank runs this function; one writes the run files
        write_text(run_dir / "config_resolved.json", json.dumps(resolved, indent=1, default=str))
    for lg in trainer.loggers:
        lg.log_hyperparams(resolved)
    try:
        started = time.perf_counter()
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
    if isinstance(exc, KeyboardInterrupt):
        record = {"reason": "interrupted", "error": "interrupted by SIGINT", "signal": "SIGINT", "checkpoint": None}
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


# what a run that failed its checks (before any training output) leaves in its run dir
UNUSED_RUN_FILES = frozenset({".hydra", "train.log", "failure.json"})


def remove_unused_run_dir(run_dir: Path) -> bool:
    """Delete ``run_dir`` if it holds nothing but Hydra's record, the log and failure.json (a run that failed
    validation); a dir with anything else (checkpoints, samples, logs of a run) is kept. True if removed."""
    import shutil

    try:
        names = {p.name for p in run_dir.iterdir()}
    except OSError:
        return False
    if not names <= UNUSED_RUN_FILES:
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return not run_dir.exists()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """One job. In a multirun, a crashing job is recorded (failure.json, W&B exit code 1) and
    returns NaN so the remaining jobs of the sweep still run; a single run exits non-zero. SIGTERM /
    SIGINT stop the job (and a sweep) with a checkpoint, failure.json with the resume command, and
    exit status 143 / 130."""
    try:
        return objective(train(cfg), cfg)
    except TrainingInterrupted as stop:  # SIGTERM / SIGINT: a sweep stops too
        report_interruption(cfg, stop)
        raise SystemExit(stop.exit_code) from None
    except KeyboardInterrupt as exc:  # Ctrl-C outside the training steps (e.g. data preparation)
        finish_wandb(exit_code=130)
        record_failure(cfg, exc)
        print("interrupted by SIGINT outside the training steps; no checkpoint saved", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as exc:
        finish_wandb(exit_code=1)
        where = record_failure(cfg, exc)
        if _is_multirun():
            log.error("job failed (%s: %s); recorded in %s; the sweep goes on", type(exc).__name__, exc, where)
            return math.nan
        if isinstance(exc, GanInterpError):
            remove_unused_run_dir(Path(str(cfg.paths.output_dir)))
            exit_with_error(exc, log)
        raise
    finally:
        finish_wandb()


def _output_dir_from_argv(argv: list[str]) -> tuple[Path, float] | None:
    """Compose the config as Hydra will (sweep lists dropped) to learn the run/sweep dir early."""
    from hydra import compose, initialize_config_dir

    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = [a for a in argv if not a.startswith("-")]
    for candidates in (overrides, [o for o in overrides if "," not in o]):
        try:
            with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
                cfg = compose("train", overrides=candidates, return_hydra_config=True)
            node = cfg.hydra.sweep if multirun else cfg.hydra.run
            # check the parent: the leaf name holds a timestamp Hydra will pick itself a moment later
            return Path(str(node.dir)).parent, float(cfg.get("min_free_disk_mb", 0))
        except Exception:  # noqa: BLE001 - Hydra will report composition problems itself
            continue
    return None


def main() -> None:
    """Console entry: one-line checks of group choices and the output dir, then Hydra."""
    with one_line_errors():
        check_group_choices(sys.argv[1:], config_dir())
        for arg in sys.argv[1:]:  # a missing resume checkpoint: one line before Hydra makes a run dir
            key, _, value = arg.partition("=")
            if key.lstrip("+") == "ckpt_path" and value not in ("", "null"):
                checkpoint_file(value)
        found = _output_dir_from_argv(sys.argv[1:])
        if found is not None:
            preflight_output_dir(*found)
    hydra_main()


if __name__ == "__main__":
    main()
