"""The checkpoint CLI's W&B run: job_type ``probe``, in the group of the run that trained the checkpoint.

:func:`training_run_link` reads who made a checkpoint from its run folder (``config_resolved.json``:
name, group, project, ``logger.wandb.log_model``; ``wandb/*run-<time>-<id>``: the W&B run id) and
which version of that run's model artifact holds it (``model-<id>:<alias>``, aliases as
:class:`gan_interp.logging_utils.EpochAxisWandbLogger` gives them: ``last``, ``best``,
``epoch_XXX``). :func:`start_probe_run` opens the run (offline by default, under
``<out>/probe_runs/<name>/wandb/``) with the link in its config under ``checkpoint``; online it also
declares the checkpoint as the run's input: the training run's artifact when that run logged it,
else a reference artifact of the file. W&B has no input artifacts offline, so an offline run keeps the
link in its config only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RUNS_DIRNAME = "probe_runs"  # <out>/probe_runs/<name>/wandb/offline-run-*


def _training_run_id(run_dir: Path) -> str | None:
    """The W&B id of the newest run in ``<run_dir>/wandb/`` (``offline-run-<time>-<id>`` or ``run-<time>-<id>``)."""
    runs = [p for p in (run_dir / "wandb").glob("*run-*-*") if p.is_dir()]
    newest = max(runs, key=lambda p: p.name.split("run-", 1)[1], default=None)
    return newest.name.rsplit("-", 1)[1] if newest else None


def logged_alias(ckpt_path: Path, run_dir: Path, log_model: Any) -> str | None:
    """The alias under which the training run logged ``ckpt_path`` (see the module doc), or None."""
    if log_model == "all":  # every written file, aliased by its name (last.ckpt linking epoch_XXX: that file's)
        return ckpt_path.resolve().stem
    if log_model is not True or (run_dir / "failure.json").exists():  # log_model=true logs finished fits only
        return None
    target = ckpt_path.resolve()
    for final in ("last", "best"):
        candidate = run_dir / "checkpoints" / f"{final}.ckpt"
        if candidate.exists() and candidate.resolve() == target:
            return final
    return None


def training_run_link(run_dir: Path, ckpt_path: Path) -> dict[str, Any]:
    """Where ``ckpt_path`` comes from: the training run's folder, W&B id, name, group and project, and
    ``artifact`` (``model-<id>:<alias>``) when that run logged this checkpoint, else None."""
    resolved = run_dir / "config_resolved.json"
    trained = json.loads(resolved.read_text()) if resolved.is_file() else {}
    wandb_cfg = (trained.get("logger") or {}).get("wandb") or {}
    run_id = _training_run_id(run_dir)
    alias = logged_alias(ckpt_path, run_dir, wandb_cfg.get("log_model", False)) if run_id else None
    return {
        "checkpoint": str(ckpt_path),
        "training_run_dir": str(run_dir),
        "training_run_id": run_id,
        "training_run_name": trained.get("run_name") or run_dir.name,
        "group": trained.get("group") or trained.get("run_name") or run_dir.name,
        "project": wandb_cfg.get("project") or "gan-interp",
        "artifact": f"model-{run_id}:{alias}" if alias else None,
    }


def _use_checkpoint(run: Any, link: dict[str, Any]) -> None:
    """Online: the checkpoint as the run's input artifact (the training run's version, else a file reference)."""
    import wandb

    try:
        if link["artifact"]:
            run.use_artifact(link["artifact"])
            return
        ckpt = Path(link["checkpoint"])
        reference = wandb.Artifact(f"checkpoint-{link['training_run_id'] or ckpt.parent.parent.name}", type="model")
        reference.add_reference(ckpt.as_uri(), name="model.ckpt")
        run.use_artifact(reference)
    except Exception as exc:  # linking is a courtesy: the probes still run
        log.warning("could not declare %s as the W&B run's input: %s", link["checkpoint"], exc)


def start_probe_run(
    link: dict[str, Any],  # training_run_link(...)
    out: Path,  # the probe CLI's output folder; the run lands in <out>/probe_runs/<name>/wandb/
    name: str,  # ckpt_epoch_XXX / epoch_XXX
    config: dict[str, Any],  # the probe CLI's settings (logged with the link under "checkpoint")
    capture_system: bool = True,  # console log + system metrics
) -> Any:
    """A :class:`~gan_interp.logging_utils.EpochAxisWandbLogger` whose run is the probe run (started)."""
    from gan_interp.logging_utils import make_wandb_logger

    logger = make_wandb_logger(
        save_dir=str(out / RUNS_DIRNAME / name),
        project=link["project"],
        name=f"{link['training_run_name']} probe {Path(link['checkpoint']).name}",
        group=link["group"],
        tags=["probe", Path(link["checkpoint"]).stem],
        job_type="probe",
        capture_system=capture_system,
    )
    run = logger.experiment
    run.config.update({**config, "checkpoint": link})
    if not run.offline:
        _use_checkpoint(run, link)
    return logger
