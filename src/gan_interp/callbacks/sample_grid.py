"""Write a grid of samples from the fixed latents after every training epoch."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import make_grid

from gan_interp.io import save_png
from gan_interp.logging_utils import LogRow
from gan_interp.models.base import GANModule


def run_dir_of(trainer: L.Trainer) -> Path:
    """The run directory: where Hydra put this job (``trainer.default_root_dir``)."""
    return Path(trainer.default_root_dir)


class SampleGridCallback(L.Callback):
    """After each epoch: ``<run>/samples/epoch_XXX.png`` from fixed z, logged to every logger as ``samples/fixed_z``
    at that epoch."""

    def __init__(
        self,
        n: int = 64,  # images in the grid (fixed latents, same every epoch)
        nrow: int = 8,  # grid columns
        every_n_epochs: int = 1,
        dirname: str = "samples",
    ) -> None:
        self.n, self.nrow, self.every_n_epochs, self.dirname = n, nrow, max(1, every_n_epochs), dirname

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: GANModule) -> None:
        epoch = trainer.current_epoch
        if (epoch + 1) % self.every_n_epochs and epoch + 1 != trainer.max_epochs:
            return
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                images = pl_module.generate(pl_module.fixed_latents(self.n)).float().cpu()
        finally:
            pl_module.train(was_training)
        grid = make_grid(images, nrow=self.nrow, normalize=True, value_range=(-1, 1), padding=2)
        out = run_dir_of(trainer) / self.dirname / f"epoch_{epoch:03d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        save_png(grid, out, caption=self.caption())
        row = LogRow(epoch, pl_module.g_steps, trainer.global_step)
        row.image("samples/fixed_z", grid, caption=self.caption())
        row.log(trainer.loggers)

    def caption(self) -> str:
        """What the grid shows (the logged row adds the epoch)."""
        return f"{self.n} samples of the fixed latents 0..{self.n - 1} (the same every epoch), {self.nrow} per row"
