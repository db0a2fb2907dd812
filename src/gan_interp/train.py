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
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from gan_interp.config import check_group_choices, validate_config
from gan_interp.errors import GanInterpError
from gan_interp.logging_utils import finish_wandb
from gan_interp.paths import config_dir

log = logging.getLogger(__name__)


def instantiate_all(section: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a dict-of-configs section (callbacks, loggers)."""
    if not section:
        return []
    return [hydra.utils.instantiate(item) for item in section.values() if item and "_target_" in item]


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
    with open_dict(cfg):
        if cfg.get("group") is None:
            cfg.group = _default_group(cfg)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.source.check()  # fail fast with a clear message, before any model is built
    model = hydra.utils.instantiate(cfg.model)
    callbacks = instantiate_all(cfg.get("callbacks"))
    for section in ("probes", "metrics"):  # each group is one callback config (or empty)
        node = cfg.get(section)
        if node and "_target_" in node:
            callbacks.append(hydra.utils.instantiate(node))
    loggers = instantiate_all(cfg.get("logger"))
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return datamodule, model, trainer


def train(cfg: DictConfig) -> dict[str, float]:
    """Train one model; returns the final metrics (also written to ``<run>/metrics.json``)."""
    datamodule, model, trainer = build(cfg)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    (run_dir / "config_resolved.json").write_text(json.dumps(resolved, indent=1, default=str))
    for lg in trainer.loggers:
        lg.log_hyperparams(resolved)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        datamodule.save_split(run_dir)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        metrics["g_steps"] = float(model.g_steps)
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    except BaseException:
        finish_wandb(exit_code=1)
        raise
    finish_wandb()  # one W&B run per job, also when jobs share a process (multirun)
    log.info("finished: %d generator steps; run dir %s", model.g_steps, run_dir)
    return metrics


def objective(metrics: dict[str, float], cfg: DictConfig) -> float | None:
    """The value a sweeper optimises (``optimized_metric`` in the config), if any."""
    key = cfg.get("optimized_metric")
    if not key:
        return None
    value = metrics.get(key, math.nan)
    return float(value)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    exit_code = 0
    try:
        return objective(train(cfg), cfg)
    except GanInterpError as exc:
        exit_code = 2
        log.error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except BaseException:
        exit_code = 1
        raise
    finally:
        finish_wandb(exit_code)


def main() -> None:
    """Console entry: check group choices in one line, then hand over to Hydra."""
    try:
        check_group_choices(sys.argv[1:], config_dir())
    except GanInterpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    hydra_main()


if __name__ == "__main__":
    main()
