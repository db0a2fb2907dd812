"""Default probe run vs one training epoch: 64-px DCGAN (ngf = ndf = 64) on synthetic posters, CPU.

One process trains the DCGAN with Lightning on ``data=synthetic_posters`` (2048 images, the
config's 5%/5% val/test split, batch 64 -> 28 steps) with the ``probes=default`` callback set to
probe after epoch 0 and an offline W&B logger (as ``make train`` has). A timing callback placed
before the probe callback measures the training epoch (validation off) and the probe callback
measures its own run, side by side. Target: probes <= 10% of the epoch. For information the
same probes are then run once more with torch's default thread count (``cpu_threads: null``).

Quick mode trains 6 steps and extrapolates the epoch from the median step time (first step
excluded) x the steps of a full epoch; full mode measures the whole 28-step epoch.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gan_interp.callbacks.probe_callback import ProbeCallback
from gan_interp.data import GANDataModule
from gan_interp.data.sources import SyntheticPosterSource
from gan_interp.logging_utils import finish_wandb, make_wandb_logger
from gan_interp.models import DCGAN
from gan_interp.paths import config_dir
from gan_interp.probes.runner import run_probes


class _EpochTimer(L.Callback):
    """Epoch wall time (start -> end hook, before the probe callback's hook) and step times."""

    def __init__(self) -> None:
        self.epoch_s: float | None = None
        self.steps: list[float] = []
        self._t0 = self._last = 0.0

    def on_train_epoch_start(self, *args) -> None:
        self._t0 = self._last = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        now = time.perf_counter()
        self.steps.append(now - self._last)
        self._last = now

    def on_train_epoch_end(self, *args) -> None:
        self.epoch_s = time.perf_counter() - self._t0


def measure(quick: bool, workdir: Path) -> dict:
    """Train one (possibly truncated) epoch with the default probes after it; returns the timings."""
    os.environ.setdefault("WANDB_MODE", "offline")
    dm = GANDataModule(
        SyntheticPosterSource(n=2048, seed=0),
        name="synthetic_posters",
        resolution=64,
        batch_size=64,
        cache_dir=str(workdir / "cache"),
        val_fraction=0.05,
        test_fraction=0.05,
    )
    dm.prepare_data()
    dm.setup()
    full_steps = len(dm.dataset("train")) // dm.batch_size
    model = DCGAN(latent_dim=100, ngf=64, ndf=64, resolution=64)
    cfg = OmegaConf.load(config_dir() / "probes" / "default.yaml")
    probes: ProbeCallback = instantiate(cfg, schedule={"epochs": [0], "every_n_epochs": 0, "at_end": False})
    timer = _EpochTimer()
    logger = make_wandb_logger(save_dir=str(workdir / "run"), name="bench-probes")
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=6 if quick else 1.0,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        accelerator="cpu",
        devices=1,
        logger=[logger],
        callbacks=[timer, probes],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=5,
        default_root_dir=str(workdir / "run"),
    )
    try:
        trainer.fit(model, datamodule=dm)
    finally:
        finish_wandb()
    # for information: the same probes right away with torch's default threads (cpu_threads: null)
    t0 = time.perf_counter()
    run_probes(model, dm, probes.probes, workdir / "run" / "probes" / "all_threads", 0, seed=probes.seed)
    all_threads_s = time.perf_counter() - t0
    step_median = statistics.median(timer.steps[1:] or timer.steps)
    epoch_s = step_median * full_steps if quick else float(timer.epoch_s)
    run = probes.history[0]
    return {
        "epoch_s": epoch_s,
        "probe_s": run["time_s"],
        "probe_times": run["probe_times"],
        "steps": len(timer.steps),
        "full_steps": full_steps,
        "step_median": step_median,
        "measured_epoch_s": timer.epoch_s,
        "all_threads_s": all_threads_s,
        "threads": torch.get_num_threads(),
        "cpu_threads": cfg.get("cpu_threads"),
        "load": os.getloadavg()[0],
    }


def run(quick: bool) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        m = measure(quick, Path(tmp))
    ratio = m["probe_s"] / m["epoch_s"]
    per_probe = ", ".join(f"{k} {v:.2f}s" for k, v in m["probe_times"].items())
    how = f"median step {m['step_median']:.2f}s x {m['full_steps']} steps" if quick else f"{m['steps']} steps measured"
    return [
        {
            "name": "train_epoch_s (64px DCGAN, CPU)",
            "measured": round(m["epoch_s"], 2),
            "target": "-",
            "ok": True,
            "detail": how,
        },
        {
            "name": "default_probes_s",
            "measured": round(m["probe_s"], 2),
            "target": "-",
            "ok": True,
            "detail": per_probe,
        },
        {
            "name": "probes / epoch",
            "measured": round(ratio, 4),
            "target": "<= 0.10",
            "ok": ratio <= 0.10,
            "detail": f"probes=default after epoch 0 (cpu_threads {m['cpu_threads']}; training {m['threads']} "
            "threads), offline W&B logger; load avg {m['load']:.1f}",
        },
        {
            "name": "probes / epoch, all threads",
            "measured": round(m["all_threads_s"] / m["epoch_s"], 4),
            "target": "-",
            "ok": True,
            "detail": f"the same probes with cpu_threads: null ({m['threads']} threads): {m['all_threads_s']:.2f}s",
        },
    ]


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
