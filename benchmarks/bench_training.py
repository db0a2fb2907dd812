"""Lightning training step vs a plain PyTorch loop on the same DCGAN, and data vs training throughput.

Both loops run the same nets, optimizers, losses and batches (the GANDataModule's train loader) in
this one process, interleaved (plain, lightning, plain, lightning, ...) so machine noise hits both;
the ratio of median step times is the Lightning overhead (target <= 5%). Data throughput is a full
pass over the train loader without a model (target >= 10x the training throughput).
"""

from __future__ import annotations

import statistics
import tempfile
import time

import lightning as L
import torch

from gan_interp.data import GANDataModule
from gan_interp.data.sources import SyntheticPosterSource
from gan_interp.models import DCGAN, losses


def _datamodule(resolution: int, n: int, cache_dir: str, batch_size: int = 64) -> GANDataModule:
    dm = GANDataModule(
        SyntheticPosterSource(n=n, seed=0),
        resolution=resolution,
        batch_size=batch_size,
        cache_dir=cache_dir,
        val_fraction=0.0,
        test_fraction=0.0,
    )
    dm.prepare_data()
    dm.setup()
    return dm


def plain_loop(model: DCGAN, loader, steps: int) -> list[float]:
    """The same D-then-G update DCGAN.training_step does, without Lightning."""
    opt_g = torch.optim.Adam(model.generator.parameters(), lr=model.hparams.lr, betas=model.hparams.betas)
    opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=model.hparams.lr, betas=model.hparams.betas)
    times, it = [], iter(loader)
    for _ in range(steps):
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        real = batch["image"]
        fake = model.generate(model.sample_z(real.shape[0]))
        model.discriminator.requires_grad_(True)
        d_loss = losses.d_logistic_loss(model.critic(real), model.critic(fake.detach()))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        model.discriminator.requires_grad_(False)
        g_loss = losses.g_nonsaturating_loss(model.critic(fake))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        model.g_steps += 1
        times.append(time.perf_counter() - t0)
    model.discriminator.requires_grad_(True)
    return times


class _StepTimer(L.Callback):
    """Wall time from one batch end to the next (includes Lightning's per-step bookkeeping)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._last: float | None = None

    def on_train_batch_end(self, *args) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now


def lightning_loop(model: DCGAN, dm: GANDataModule, steps: int) -> list[float]:
    timer = _StepTimer()
    trainer = L.Trainer(
        max_steps=2 * (steps + 1),
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        limit_val_batches=0,
        num_sanity_val_steps=0,
        log_every_n_steps=5,
    )
    trainer.fit(model, datamodule=dm)
    return timer.times


def data_throughput(loader, min_batches: int) -> float:
    n, t0, done = 0, time.perf_counter(), 0
    while done < min_batches:
        for batch in loader:
            n += batch["image"].shape[0]
            done += 1
    return n / (time.perf_counter() - t0)


def run(quick: bool = False) -> list[dict]:
    torch.manual_seed(0)
    resolution, steps, reps = (32, 6, 2) if quick else (64, 12, 3)
    with tempfile.TemporaryDirectory() as cache:
        dm = _datamodule(resolution, n=512 if quick else 2048, cache_dir=cache)
        plain_t, light_t = [], []
        for _ in range(reps):  # interleaved repetitions
            plain_t += plain_loop(DCGAN(resolution=resolution), dm.train_dataloader(), steps)[1:]
            light_t += lightning_loop(DCGAN(resolution=resolution), dm, steps)[1:]
        p, lt = statistics.median(plain_t), statistics.median(light_t)
        overhead = lt / p - 1.0
        train_ips = dm.batch_size / p
        data_ips = data_throughput(dm.train_dataloader(), min_batches=200)
    return [
        {
            "name": f"lightning_overhead_{resolution}px",
            "measured": f"{overhead * 100:+.1f}%",
            "target": "<= +5%",
            "ok": overhead <= 0.05,
            "detail": f"median step plain {p * 1000:.0f} ms vs lightning {lt * 1000:.0f} ms "
            f"({len(plain_t)} steps each, batch {dm.batch_size})",
        },
        {
            "name": f"data_vs_train_{resolution}px",
            "measured": f"{data_ips / train_ips:.0f}x",
            "target": ">= 10x",
            "ok": data_ips / train_ips >= 10,
            "detail": f"loader {data_ips:.0f} img/s vs training {train_ips:.0f} img/s",
        },
    ]
