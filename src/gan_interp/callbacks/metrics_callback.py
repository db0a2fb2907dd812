"""Evaluation metrics during training: every ``every_n_epochs`` epochs and/or at the end.

Each evaluation writes ``<run>/metrics/epoch_XXX.json`` (values + which features were used +
timings), logs ``metrics/<name>`` to every attached logger, and puts the values into
``trainer.callback_metrics`` so they end up in ``<run>/metrics.json`` as well. With
``memorisation`` enabled it also writes ``<run>/metrics/nn_epoch_XXX.png`` (the fakes closest to
the training set above their nearest training images).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from gan_interp.callbacks.sample_grid import run_dir_of
from gan_interp.logging_utils import log_metrics
from gan_interp.metrics.runner import MetricsResult, evaluate, normalise_metrics_cfg

log = logging.getLogger(__name__)


def _plain(obj: Any) -> Any:
    return OmegaConf.to_container(obj, resolve=True) if isinstance(obj, DictConfig) else obj


def write_metrics_json(path: Path, result: MetricsResult, epoch: int | None, step: int, g_steps: int | None, source: str) -> Path:
    """``{"epoch", "step", "g_steps", "source", "values", "info"}`` (NaN written as null)."""
    values = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.values.items()}
    payload = {"epoch": epoch, "step": step, "g_steps": g_steps, "source": source, "values": values, "info": result.info}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str))
    return path


class MetricsCallback(L.Callback):
    """Compute :mod:`gan_interp.metrics` on a schedule and log/write them."""

    def __init__(
        self,
        metrics: dict[str, Any] | None = None,  # {name: kwargs}: mmd, c2st, quality, memorisation, fid, kid, is
        n: int = 512,  # generated (and real) samples per evaluation
        every_n_epochs: int = 0,  # 0 -> never during training
        epochs: list[int] | None = None,  # extra explicit epochs (0-based) to evaluate at
        at_train_end: bool = True,  # evaluate once more after the last epoch (unless just done)
        features: str = "auto",  # auto | inception | domain | pixels
        cache_dir: str | None = None,  # where the domain feature net is cached (None -> <run>/metrics/)
        batch_size: int = 128,
        pixel_size: int = 16,  # pooled-pixel representation side
        image_size: int = 32,  # image-C2ST input side
        real_split: str = "train",
        domain: dict[str, Any] | None = None,  # domain feature-net kwargs (steps, dim, input_size, n_clusters)
        inception_weights: str | None = None,
        seed: int = 0,
        dirname: str = "metrics",
    ) -> None:
        self.metrics = normalise_metrics_cfg(_plain(metrics))  # fail on unknown names at construction
        self.n, self.every_n_epochs = int(n), int(every_n_epochs)
        self.epochs = set(int(e) for e in (epochs or []))
        self.at_train_end = bool(at_train_end)
        self.features, self.cache_dir = features, cache_dir
        self.batch_size, self.pixel_size, self.image_size = int(batch_size), int(pixel_size), int(image_size)
        self.real_split, self.domain, self.inception_weights = real_split, _plain(domain), inception_weights
        self.seed, self.dirname = int(seed), dirname
        self.done_epochs: set[int] = set()
        self.history: list[dict[str, Any]] = []

    def _due(self, epoch: int) -> bool:
        return (self.every_n_epochs > 0 and (epoch + 1) % self.every_n_epochs == 0) or epoch in self.epochs

    def evaluate_model(
        self,
        model: Any,  # GANModule
        datamodule: Any,  # GANDataModule
        out_dir: Path,  # <run>/metrics (or the probe CLI's output folder)
        name: str,  # file stem: epoch_XXX or ckpt_<name>
        epoch: int | None = None,
        step: int = 0,
        loggers: Any = (),
        source: str = "callback",
    ) -> MetricsResult | None:
        """Evaluate ``model``; write ``<out_dir>/<name>.json`` (+ ``nn_<name>.png``); log ``metrics/<k>``."""
        if not self.metrics:
            return None
        out_dir = Path(out_dir)
        gallery = out_dir / f"nn_{name}.png" if "memorisation" in self.metrics else None
        result = evaluate(
            model, datamodule, self.metrics, n=self.n, seed=self.seed, features=self.features,
            cache_dir=self.cache_dir or out_dir, batch_size=self.batch_size, pixel_size=self.pixel_size,
            image_size=self.image_size, real_split=self.real_split, domain=self.domain,
            inception_weights=self.inception_weights, gallery_path=gallery,
        )
        g_steps = getattr(model, "g_steps", None)
        write_metrics_json(out_dir / f"{name}.json", result, epoch, step, None if g_steps is None else int(g_steps), source)
        logged = {f"metrics/{k}": v for k, v in result.values.items()}
        log_metrics(loggers, {**logged, **({"epoch": float(epoch)} if epoch is not None else {})}, step=step)
        self.history.append({"epoch": epoch, **result.values})
        log.info("metrics %s (%s): %s", name, result.info.get("features") or "no learned features",
                 ", ".join(f"{k}={v:.4g}" for k, v in result.values.items()))
        return result

    def run(self, trainer: L.Trainer, pl_module: Any, epoch: int, source: str) -> MetricsResult | None:
        """Evaluate now; write ``<run>/metrics/epoch_XXX.json`` and log ``metrics/<name>``."""
        if trainer.fast_dev_run:
            log.info("metrics skipped: trainer.fast_dev_run is a smoke run")
            return None
        if getattr(trainer, "datamodule", None) is None:
            log.warning("metrics skipped: the trainer has no datamodule (fit with datamodule=GANDataModule(...))")
            return None
        result = self.evaluate_model(pl_module, trainer.datamodule, run_dir_of(trainer) / self.dirname,
                                     f"epoch_{epoch:03d}", epoch, trainer.global_step, trainer.loggers, source)
        self.done_epochs.add(epoch)
        if result is not None:
            for k, v in result.values.items():  # -> <run>/metrics.json (train.py) and checkpoint monitors
                trainer.callback_metrics[f"metrics/{k}"] = torch.tensor(v)
        return result

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        epoch = trainer.current_epoch
        if self._due(epoch) and not trainer.sanity_checking:
            self.run(trainer, pl_module, epoch, "train_epoch_end")

    @rank_zero_only
    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        # current_epoch has already moved past the last finished epoch here
        last = max(0, trainer.current_epoch - 1) if trainer.current_epoch > 0 else 0
        if self.at_train_end and last not in self.done_epochs:
            self.run(trainer, pl_module, last, "train_end")
