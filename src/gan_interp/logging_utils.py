"""Logger construction and logger-agnostic image/table logging.

W&B runs offline unless ``WANDB_API_KEY`` or ``WANDB_MODE`` say otherwise, never waits on the
network, and every job ends with ``wandb.finish()`` (otherwise Hydra multirun jobs in one process
would share a single W&B run).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

log = logging.getLogger(__name__)


def wandb_mode() -> str:
    """'online' only when the user asked for it (API key or WANDB_MODE); otherwise 'offline'."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def make_wandb_logger(
    save_dir: str,  # the Hydra run dir: the run lands in <save_dir>/wandb/
    project: str = "gan-interp",
    name: str | None = None,  # run name shown in W&B
    group: str | None = None,  # groups the jobs of one sweep
    tags: Iterable[str] = (),
    job_type: str = "train",
    log_model: bool = False,
    **kwargs: Any,
) -> WandbLogger:
    """A WandbLogger that is offline by default and never blocks on the network."""
    import wandb

    mode = wandb_mode()
    os.environ.setdefault("WANDB_SILENT", "true")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(init_timeout=60, x_disable_stats=True, console="off")
    return WandbLogger(
        save_dir=str(save_dir),
        project=project,
        name=name,
        group=group,
        tags=list(tags),
        job_type=job_type,
        offline=(mode == "offline"),
        mode=mode,
        log_model=log_model,
        settings=settings,
        **kwargs,
    )


def finish_wandb(exit_code: int = 0) -> None:
    """Close the active W&B run, if any (safe to call always)."""
    try:
        import wandb
    except ImportError:  # pragma: no cover - wandb is a dependency
        return
    if wandb.run is not None:
        wandb.finish(exit_code=exit_code)


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


def log_image(
    loggers: Iterable[Logger], key: str, image: torch.Tensor | np.ndarray, step: int, caption: str | None = None
) -> None:
    """Log one image (CHW/HWC, float [0,1] or uint8) to every attached logger that can show images."""
    hwc = _hwc_uint8(image)
    for lg in loggers:
        try:
            if isinstance(lg, WandbLogger):
                extra = {"caption": [caption]} if caption else {}  # Lightning can't take caption=None
                lg.log_image(key=key, images=[hwc], step=step, **extra)
            elif isinstance(lg, TensorBoardLogger):
                lg.experiment.add_image(key, hwc, global_step=step, dataformats="HWC" if hwc.ndim == 3 else "HW")
        except Exception as exc:  # a logger failure must never kill training
            log.warning("could not log image %s to %s: %s", key, type(lg).__name__, exc)


def log_table(loggers: Iterable[Logger], key: str, columns: list[str], rows: list[list[Any]], step: int) -> None:
    """Log a table to W&B (others get nothing: write the JSON on disk yourself)."""
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            try:
                lg.log_table(key=key, columns=columns, data=rows, step=step)
            except Exception as exc:
                log.warning("could not log table %s: %s", key, exc)


def log_metrics(loggers: Iterable[Logger], metrics: dict[str, float], step: int) -> None:
    for lg in loggers:
        try:
            lg.log_metrics(metrics, step=step)
        except Exception as exc:
            log.warning("could not log metrics to %s: %s", type(lg).__name__, exc)


__all__ = [
    "CSVLogger",
    "TensorBoardLogger",
    "finish_wandb",
    "log_image",
    "log_metrics",
    "log_table",
    "make_wandb_logger",
    "wandb_mode",
]
