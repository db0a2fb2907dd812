"""The three models a scorecard row reads: a trained checkpoint, the same architecture at random init, and
(built by each check) a planted control. Outside a Hydra app, so run paths are taken literally from the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import OmegaConf, open_dict

from gan_interp.checkpoints import build_model_and_data, load_checkpoint, load_run_config, run_dir_of_checkpoint
from gan_interp.errors import ConfigError


def _literal_paths(run_cfg: Any, run_dir: Path, cache_dir: str | None) -> Any:
    """The run's ``paths`` with Hydra interpolations replaced by literal values (no Hydra app is running)."""
    raw = OmegaConf.to_container(run_cfg.get("paths") or {}, resolve=False)
    root = raw.get("root_dir") if isinstance(raw.get("root_dir"), str) and "${" not in raw["root_dir"] else None
    root = root or str(Path.cwd())
    data_dir = raw.get("data_dir") if isinstance(raw.get("data_dir"), str) and "${" not in raw["data_dir"] else None
    data_dir = data_dir or f"{root}/data"
    cache = cache_dir or (raw.get("cache_dir") if "${" not in str(raw.get("cache_dir", "${")) else f"{data_dir}/.cache")
    return OmegaConf.create({"root_dir": root, "data_dir": data_dir, "cache_dir": cache, "output_dir": str(run_dir)})


def load_trained(ckpt_path: str | Path, cache_dir: str | None = None) -> tuple[Any, Any]:
    """``(model, datamodule)`` of a ``gan_interp.train`` checkpoint, model in eval mode on the CPU."""
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise ConfigError(f"checkpoint {ckpt_path} does not exist; train it first (experiments/reference_models)")
    run_dir = run_dir_of_checkpoint(ckpt_path)
    run_cfg = load_run_config(run_dir, ckpt_path)
    model, dm = build_model_and_data(run_cfg, _literal_paths(run_cfg, run_dir, cache_dir), load_checkpoint(ckpt_path))
    return model.eval(), dm


def random_init_like(model: Any, seed: int = 0) -> Any:
    """A fresh model of the same class and hyperparameters, initialised under ``torch.manual_seed(seed)``."""
    cfg = OmegaConf.create(dict(model.hparams))
    with open_dict(cfg):
        cfg._target_ = f"{type(model).__module__}.{type(model).__qualname__}"
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        fresh = hydra.utils.instantiate(cfg, _convert_="all")
    finally:
        torch.random.set_rng_state(state)
    return fresh.eval()
