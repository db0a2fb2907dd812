"""A DCGAN trained briefly on synthetic_posters has units that match poster concepts better than the
same units at the random initialisation it started from (concepts from the project's own segmenter).

Slow (trains a GAN and a segmenter, ~1-2 min on 2 CPU cores): the experiment in
``experiments/dissection/`` is the full-size evidence (see its README table).
"""

from __future__ import annotations

import copy

import lightning as L
import pytest

from gan_interp.data import GANDataModule
from gan_interp.data.sources import SyntheticPosterSource
from gan_interp.dissect.dissection import dissect
from gan_interp.dissect.intervene import ace_curve
from gan_interp.dissect.segmenter import build_segmenter
from gan_interp.models import DCGAN


@pytest.mark.slow
def test_trained_dcgan_units_beat_random_init_and_ablation_lowers_concepts(tmp_path):
    L.seed_everything(0, verbose=False)
    dm = GANDataModule(SyntheticPosterSource(n=1024), resolution=32, batch_size=16, cache_dir=str(tmp_path / "cache"))
    model = DCGAN(latent_dim=32, ngf=16, ndf=16, resolution=32, lr=3e-4)
    initial = copy.deepcopy(model)
    trainer = L.Trainer(
        max_epochs=6,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accelerator="cpu",
    )
    trainer.fit(model, datamodule=dm)
    seg = build_segmenter("trained", dm, tmp_path / "cache", steps=200, width=12, seed=0)

    kwargs = dict(layer="block1", n_samples=128, batch_size=64, seed=0)
    trained, random_init = dissect(model.eval(), seg, **kwargs), dissect(initial.eval(), seg, **kwargs)
    _, iou_t = trained.best()
    _, iou_r = random_init.best()
    top = lambda x: x.sort(descending=True).values[:5].mean()  # noqa: E731
    assert top(iou_t) > top(iou_r) + 0.02
    assert (iou_t > iou_r).sum() > 0.5 * len(iou_t)  # most units beat themselves at initialisation

    # ablating a concept's top units lowers its pixel fraction on average over the concepts present
    present = [c for i, c in enumerate(trained.concept_names) if trained.concept_fraction[i] > 0.01]
    aces = [ace_curve(model, trained, seg, c, n_units=[4], n_samples=64, seed=1)[0]["ace"] for c in present]
    assert sum(aces) / len(aces) < 0
