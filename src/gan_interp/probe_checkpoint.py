"""Run probes and metrics on any saved checkpoint of any model.

    python -m gan_interp.probe_checkpoint ckpt_path=<run>/checkpoints/epoch_003.ckpt probes=all metrics=all
    python -m gan_interp.probe_checkpoint ckpt_path=<run>/checkpoints/last.ckpt out_dir=/tmp/look metrics=none

The model and data configs come from the checkpoint's run (``<run>/.hydra/config.yaml``, or
``<run>/config_resolved.json`` for runs started without Hydra's app), two levels above
``checkpoints/x.ckpt``. Outputs are the same files the callbacks write:

* ``out_dir=null`` (default): into the run dir, named after the checkpoint so nothing the
  callbacks wrote is overwritten, with the checkpoint's epoch: ``<run>/probes/ckpt_epoch_XXX/<probe>/...``
  and ``<run>/metrics/ckpt_epoch_XXX.json``;
* ``out_dir=<dir>``: the callbacks' layout with the checkpoint's epoch:
  ``<dir>/probes/epoch_XXX/`` and ``<dir>/metrics/epoch_XXX.json`` (plus the run's config as
  ``<dir>/config_resolved.json`` and ``<dir>/checkpoint.json``), so ``python -m gan_interp.report`` reads it.

Checkpoints are read by :mod:`gan_interp.checkpoints` (``weights_only=True`` unless
``trust_checkpoint=true``). With ``wandb=true`` (default) the probe readings, images and metrics are
logged at the checkpoint's epoch to a W&B run of job_type ``probe`` in the training run's group,
linked to the checkpoint (:mod:`gan_interp.probe_wandb`; ``<out>/probe_runs/<name>/wandb/``).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from gan_interp.checkpoints import (
    build_model_and_data,
    checkpoint_file,
    load_checkpoint,
    load_run_config,
    merged_paths,
    run_dir_of_checkpoint,
)
from gan_interp.config import check_group_choices, check_threads, instantiate_node
from gan_interp.errors import ConfigError, one_line_errors
from gan_interp.io import write_text
from gan_interp.logging_utils import finish_wandb
from gan_interp.paths import config_dir
from gan_interp.third_party import quiet_known_noise

log = logging.getLogger(__name__)


def _explicit_path_overrides() -> set[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        task = HydraConfig.get().overrides.task
    except ValueError:
        return set()
    return {o.split("=", 1)[0].removeprefix("paths.") for o in task if o.startswith("paths.")}


def checkpoint_metrics(
    metrics_node: DictConfig | None,
    model: Any,
    datamodule: Any,
    out: Path,
    name: str,
    epoch: int,
    step: int,
    ckpt_name: str,
    loggers: Any = (),  # the probe run's W&B logger, if any
) -> dict[str, Any]:
    """Evaluate the ``metrics`` group's :class:`MetricsSettings` (the ones training uses) into ``<out>/metrics/``."""
    if not (metrics_node and "_target_" in metrics_node):
        return {}
    from gan_interp.metrics.runner import DIRNAME, evaluate_and_record

    settings = instantiate_node(metrics_node)
    source = f"checkpoint {ckpt_name}"
    res = evaluate_and_record(
        model, datamodule, settings, out / DIRNAME, name, epoch, step, loggers=loggers, source=source
    )
    if res is None:
        return {}
    return {"metrics": res.values, "metrics_file": str(out / DIRNAME / f"{name}.json")}


def probe_checkpoint(cfg: DictConfig, explicit_paths: set[str] | None = None) -> dict[str, Any]:
    """Run ``cfg.probes`` and ``cfg.metrics`` on ``cfg.ckpt_path``; returns what was written."""
    quiet_known_noise()
    if not cfg.get("ckpt_path"):
        raise ConfigError(
            "ckpt_path is required: python -m gan_interp.probe_checkpoint ckpt_path=<run>/checkpoints/last.ckpt"
        )
    threads = check_threads(cfg)
    ckpt_path = Path(str(cfg.ckpt_path)).expanduser().absolute()
    ckpt = load_checkpoint(ckpt_path, bool(cfg.get("trust_checkpoint", False)))
    run_dir = run_dir_of_checkpoint(ckpt_path)
    run_cfg = load_run_config(run_dir, ckpt_path)
    epoch = int(ckpt.get("epoch", 0))
    step = int(ckpt.get("global_step", 0))
    if cfg.get("out_dir"):
        out = Path(str(cfg.out_dir)).expanduser()
        name = f"epoch_{epoch:03d}"
    else:
        out = run_dir
        name = f"ckpt_epoch_{epoch:03d}"
    explicit = _explicit_path_overrides() if explicit_paths is None else explicit_paths
    paths = merged_paths(run_cfg.get("paths"), cfg.paths, explicit, out)
    model, datamodule = build_model_and_data(run_cfg, paths, ckpt)
    import torch

    if threads is not None:  # e.g. threads=1 for parallel CPU jobs, as in training
        torch.set_num_threads(threads)

    device = str(cfg.get("device", "auto"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    log.info("probing %s (epoch %d, %d generator steps) -> %s", ckpt_path, epoch, getattr(model, "g_steps", 0), out)

    result: dict[str, Any] = {
        "ckpt_path": str(ckpt_path),
        "run_dir": str(run_dir),
        "out_dir": str(out),
        "epoch": epoch,
        "name": name,
    }
    with open_dict(cfg):
        cfg.paths = paths  # ${paths.cache_dir} in the metrics node -> the run's cache
    loggers = _probe_loggers(cfg, run_dir, ckpt_path, out, name)
    if loggers:
        result["wandb_run"] = str(Path(loggers[0].experiment.dir).parent)
    try:
        result.update(_probe_and_evaluate(cfg, model, datamodule, out, name, epoch, step, ckpt_path.name, loggers))
    except BaseException:
        finish_wandb(exit_code=1)
        raise
    finish_wandb()
    if cfg.get("out_dir"):
        out.mkdir(parents=True, exist_ok=True)
        resolved = OmegaConf.create(OmegaConf.to_container(run_cfg, resolve=False))
        with open_dict(resolved):
            resolved.paths = paths
        try:
            plain = OmegaConf.to_container(resolved, resolve=True)
        except Exception:  # noqa: BLE001 - hydra-only interpolations outside the model/data nodes
            plain = {
                k: OmegaConf.to_container(resolved[k], resolve=True)
                for k in ("data", "model", "paths")
                if k in resolved
            }
        write_text(out / "config_resolved.json", json.dumps(plain, indent=1, default=str))
        write_text(
            out / "checkpoint.json",
            json.dumps({k: v for k, v in result.items() if k in ("ckpt_path", "run_dir", "epoch", "name")}, indent=1),
        )
    return result


def _probe_loggers(cfg: DictConfig, run_dir: Path, ckpt_path: Path, out: Path, name: str) -> list[Any]:
    """The probe run's W&B logger (``wandb=true``: job_type probe, the training run's group), or none."""
    if not cfg.get("wandb", True):
        return []
    from gan_interp.probe_wandb import start_probe_run, training_run_link

    link = training_run_link(run_dir, ckpt_path)
    keys = ("probes", "metrics", "threads", "device", "out_dir")
    settings = {k: cfg.get(k) for k in keys}
    settings = {
        k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for k, v in settings.items()
    }
    return [start_probe_run(link, out, name, settings, capture_system=bool(cfg.get("capture_system", True)))]


def _probe_and_evaluate(
    cfg: DictConfig,
    model: Any,
    datamodule: Any,
    out: Path,
    name: str,  # ckpt_epoch_XXX / epoch_XXX
    epoch: int,
    step: int,
    ckpt_name: str,
    loggers: list[Any],  # the probe run's W&B logger, if any
) -> dict[str, Any]:
    """Run the probes into ``<out>/probes/<name>/`` and the metrics into ``<out>/metrics/``; log both."""
    result: dict[str, Any] = {}
    probes_node = cfg.get("probes")
    if probes_node and probes_node.get("probes"):
        from gan_interp.probes.runner import run_probes

        probes_dir = out / "probes" / name
        seed = int(probes_node.get("seed", 0))
        result["probes"] = run_probes(
            model, datamodule, probes_node.probes, probes_dir, epoch, loggers=loggers, step=step, seed=seed
        )
        result["probes_dir"] = str(probes_dir)
    result.update(checkpoint_metrics(cfg.get("metrics"), model, datamodule, out, name, epoch, step, ckpt_name, loggers))
    return result


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="probe_checkpoint")
def hydra_main(cfg: DictConfig) -> None:
    with one_line_errors(log):
        result = probe_checkpoint(cfg)
    print(json.dumps({k: v for k, v in result.items() if k != "probes"}, indent=1, default=str))


def main() -> None:
    """Console entry: one-line errors for bad group choices and a missing checkpoint, then Hydra."""
    argv = sys.argv[1:]
    with one_line_errors():
        check_group_choices(argv, config_dir())
        for arg in argv:
            if arg.startswith("ckpt_path="):
                checkpoint_file(arg.split("=", 1)[1])
        if not any(a.startswith("ckpt_path=") for a in argv) and not any(a.startswith("-") for a in argv):
            raise ConfigError(
                "ckpt_path is required: python -m gan_interp.probe_checkpoint ckpt_path=<run>/checkpoints/last.ckpt"
            )
    hydra_main()


if __name__ == "__main__":
    main()
