"""k-GAN epoch images: the partition's cell medoids, every member's samples and ``partition.json``.

Every ``every_n_epochs`` epochs and after the last one, for k-GAN models only (other models are
left alone), on rank 0, :class:`KGANEpochImages` writes to ``<run>/kgan/epoch_XXX/``:

* ``cell_medoids.png`` - the *real* training image at the medoid of each cell (cells 0..k-1 in a row),
  when the data module can give training images by position (``dm.dataset("train")``) and the
  partition was computed in this process (not the medoids of generated samples: those are the
  ``members`` probe's ``sample_medoids.png``);
* ``cell_sites.png`` - the cells' sites (the paper's point masses) drawn as feature images
  (``feature_size``-px, upscaled): with ``sites_from=generated`` the mean of each member's samples;
* ``samples_m{j}.png`` - ``n_samples`` images of member ``j`` from the fixed latents (eval mode);
* ``partition.json`` - epoch, k, independent, where the sites come from, cell sizes, cell weights,
  offsets, medoid rows and the last update's stats (``ot_cost``, ``rows_changed``,
  ``rows_changed_fraction``, ``site_shift`` and per cell ``site_shift/m{j}``, ``reseeded``);

and logs the grids as ``kgan/cell_medoids``, ``kgan/cell_sites`` and ``kgan/samples/m{j}`` to every
logger, in one row at the epoch (the stats are logged by the model as ``kgan/<stat>`` scalars).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torchvision.utils import make_grid

from gan_interp.callbacks.sample_grid import run_dir_of
from gan_interp.io import save_png, write_text
from gan_interp.logging_utils import LogRow
from gan_interp.models.kgan import KGAN


class KGANEpochImages(L.Callback):
    """After selected epochs: ``<run>/kgan/epoch_XXX/`` medoids, member samples and partition.json."""

    def __init__(
        self,
        n_samples: int = 16,  # images per member in samples_m{j}.png (a square-ish grid)
        every_n_epochs: int = 1,  # write every N epochs (and after the last)
    ) -> None:
        self.n_samples, self.every_n_epochs = int(n_samples), max(1, int(every_n_epochs))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not isinstance(pl_module, KGAN) or not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch
        last = trainer.max_epochs is not None and epoch + 1 == trainer.max_epochs
        if (epoch + 1) % self.every_n_epochs and not last:
            return
        self.write(trainer, pl_module, epoch)

    @torch.no_grad()
    def write(self, trainer: L.Trainer, model: KGAN, epoch: int) -> Path:
        """Write (and log) the images and partition.json of ``epoch``; returns the epoch folder."""
        out = run_dir_of(trainer) / "kgan" / f"epoch_{epoch:03d}"
        out.mkdir(parents=True, exist_ok=True)
        k, nrow = model.k, max(1, int(self.n_samples**0.5))
        row = LogRow(epoch, model.g_steps, trainer.global_step)
        medoids = medoid_images(trainer, model)
        if medoids is not None:
            grid = make_grid(medoids, nrow=k, normalize=True, value_range=(-1, 1), padding=2)
            caption = f"the training image at the medoid of cells 0..{k - 1}"
            save_png(grid, out / "cell_medoids.png", caption=caption)
            row.image("kgan/cell_medoids", grid, caption=caption)
        if bool(model.partition.ready):
            grid = make_grid(site_images(model), nrow=k, normalize=True, value_range=(-1, 1), padding=2)
            caption = f"sites (point masses) of cells 0..{k - 1} as feature images"
            save_png(grid, out / "cell_sites.png", caption=caption)
            row.image("kgan/cell_sites", grid, caption=caption)
        was_training = model.training
        model.eval()
        try:
            z = model.fixed_latents(self.n_samples)
            for j in range(k):
                imgs = model.generate(z, member=j).float().cpu()
                grid = make_grid(imgs, nrow=nrow, normalize=True, value_range=(-1, 1))
                caption = f"member {j}: fixed latents 0..{self.n_samples - 1}, {nrow} per row"
                save_png(grid, out / f"samples_m{j}.png", caption=caption)
                row.image(f"kgan/samples/m{j}", grid, caption=caption)
        finally:
            model.train(was_training)
        row.log(trainer.loggers)
        info: dict[str, Any] = {"epoch": epoch, "k": k, "independent": model.hparams.independent}
        write_text(out / "partition.json", json.dumps(info | model.partition.summary(), indent=1))
        return out


def medoid_images(trainer: L.Trainer, model: KGAN) -> Tensor | None:
    """The training images at the cells' medoids ``[k, C, H, W]``, or ``None`` where they cannot be read."""
    dm = getattr(trainer, "datamodule", None)
    if dm is None or not hasattr(dm, "dataset"):
        return None
    positions = model.medoid_positions()
    return None if positions is None else dm.dataset("train").__getitems__(positions)["image"]


def site_images(model: KGAN) -> Tensor:
    """The partition's sites ``[k, d]`` as images ``[k, C, resolution, resolution]`` (nearest upscaling)."""
    part = model.partition
    side = part.feature_size
    sites = part.sites.detach().float().cpu().reshape(part.k, -1, side, side)
    images = torch.nn.functional.interpolate(sites, size=model.resolution, mode="nearest")
    return images.expand(-1, model.channels, -1, -1) if images.shape[1] == 1 else images


__all__ = ["KGANEpochImages", "medoid_images", "site_images"]
