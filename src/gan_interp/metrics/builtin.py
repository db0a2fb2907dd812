"""The built-in metrics, registered in the order they run (quality, mmd, c2st, fid, kid, is, memorisation, ssim,
prdc; the last two came later and run last, so adding them changes no other metric's random draws).

Each is a thin adapter from the collected representations (:class:`MetricContext`) to the
implementation in its own module; options are documented in :mod:`gan_interp.metrics.runner`.
A new metric goes in its own module with the same kind of adapter (see
:mod:`gan_interp.metrics.registry`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gan_interp.metrics.c2st import c2st as c2st_test
from gan_interp.metrics.context import MetricContext
from gan_interp.metrics.fid import FeatureMetrics
from gan_interp.metrics.memorisation import memorisation_score, nearest_neighbours
from gan_interp.metrics.mmd import mmd_test
from gan_interp.metrics.prdc import K_DENSITY_COVERAGE, K_PRECISION_RECALL
from gan_interp.metrics.prdc import prdc as prdc_scores
from gan_interp.metrics.quality import quality_summary
from gan_interp.metrics.registry import MetricSkipped, register_metric
from gan_interp.metrics.ssim import WINDOW, ssim_scores

FEATURE_METRICS_TIMING = "fid_kid_is"  # fid, kid and is share one entry of info["seconds"]


@register_metric("quality", needs=("image_stats",), timing=None)
def quality(ctx: MetricContext) -> dict[str, float]:
    """Sharpness, noise and total variation of fakes and reals, and their ratios."""
    summary = quality_summary(ctx.fake("image_stats"), ctx.real("image_stats"))
    return {f"quality_{k}": v for k, v in summary.items()}


@register_metric("mmd", spaces=("pixels", "features"), forwards=mmd_test)
def mmd(ctx: MetricContext, space: str, **options: Any) -> dict[str, float]:
    """Unbiased MMD^2 with a permutation p-value."""
    res = mmd_test(ctx.real(space).to(ctx.device), ctx.fake(space).to(ctx.device), seed=ctx.seed, **options)
    return {"mmd2": res.mmd2, "mmd_p_value": res.p_value, "mmd_bandwidth": res.bandwidth}


@register_metric("c2st", spaces=("images", "pixels", "features"), forwards=c2st_test)
def c2st(ctx: MetricContext, space: str, **options: Any) -> dict[str, float]:
    """Classifier two-sample test: held-out accuracy and p-value."""
    res = c2st_test(ctx.real(space), ctx.fake(space), seed=ctx.seed, device=ctx.device, **options)
    return {"c2st_accuracy": res.accuracy, "c2st_p_value": res.p_value}


def _feature_metrics(ctx: MetricContext, **which: Any) -> dict[str, float]:
    """Feed the kept features (and logits) batch by batch, as streamed, to torchmetrics."""
    real, fake = ctx.batches("real", "features"), ctx.batches("fake", "features")
    num_features = real[0].shape[1] if real else 0
    fm = FeatureMetrics(num_features, **{"fid": False, "kid": False, "inception_score": False, **which})
    for feats in real:
        fm.update_real(feats)
    if which.get("inception_score"):
        for logits in ctx.batches("fake", "logits"):
            fm.update_fake(None, logits)
    else:
        for feats in fake:
            fm.update_fake(feats)
    return fm.compute()


@register_metric("fid", needs=("features",), timing=FEATURE_METRICS_TIMING)
def fid(ctx: MetricContext) -> dict[str, float]:
    """Frechet distance of the real and fake feature Gaussians."""
    return _feature_metrics(ctx, fid=True)


@register_metric("kid", needs=("features",), timing=FEATURE_METRICS_TIMING)
def kid(ctx: MetricContext, subsets: int = 50, subset_size: int = 1000) -> dict[str, float]:
    """Kernel inception distance: mean and sd over random subsets."""
    return _feature_metrics(ctx, kid=True, kid_subsets=int(subsets), kid_subset_size=int(subset_size))


@register_metric("is", needs=("logits",), streams=("fake",), timing=FEATURE_METRICS_TIMING)
def inception_score(ctx: MetricContext, splits: int = 10) -> dict[str, float]:
    """Inception score of the fakes' class logits (needs a feature net with classes)."""
    if not ctx.batches("fake", "logits"):
        name = ctx.fx.name if ctx.fx else None
        raise MetricSkipped(f"features {name!r} give no class logits (use features=domain or inception)")
    return _feature_metrics(ctx, inception_score=True, is_splits=int(splits))


@register_metric(
    "memorisation",
    spaces=("pixels", "features"),
    needs=("train_reference",),
    streams=("fake",),
    forwards=memorisation_score,
)
def memorisation(ctx: MetricContext, space: str, n_train: int = 10000, **options: Any) -> dict[str, float]:
    """Nearest-neighbour distances of fakes to the training set vs held-out reals (``nn_*``)."""
    encode = ctx.encoder(space)
    train_reps, train_pos = [], []
    for x, p in ctx.real_batches("train", int(n_train), ctx.seed + 2):
        train_reps.append(encode(x.to(ctx.device)))
        train_pos.append(p)
    train_rep = torch.cat(train_reps)
    held = [encode(x.to(ctx.device)) for s in ctx.heldout_splits() for x, _ in ctx.real_batches(s, ctx.n, ctx.seed + 3)]
    fake_rep = ctx.fake(space)
    scores = memorisation_score(fake_rep, train_rep, torch.cat(held), **options)
    values = {k if k.startswith("nn_") else f"nn_{k}": v for k, v in scores.items()}
    if ctx.gallery_path is not None:
        write_gallery(Path(ctx.gallery_path), ctx, fake_rep, train_rep, torch.cat(train_pos))
    return values


@register_metric("ssim", needs=("images",), forwards=ssim_scores)
def ssim(ctx: MetricContext, **options: Any) -> dict[str, float]:
    """SSIM of fakes to their nearest real image vs real-to-real (``ssim_nn_*``); intra-set SSIM (``ssim_pairs_*``)."""
    real, fake = ctx.real("images"), ctx.fake("images")
    size = min(real.shape[-2:])
    if size < int(options.get("kernel_size", WINDOW)):
        raise MetricSkipped(f"{size} px images are smaller than the SSIM window (set metrics.metrics.ssim.kernel_size)")
    return {f"ssim_{k}": v for k, v in ssim_scores(real, fake, seed=ctx.seed, **options).items()}


@register_metric("prdc", needs=("features",), forwards=prdc_scores)
def prdc(ctx: MetricContext, **options: Any) -> dict[str, float]:
    """Precision / recall (k=3) and density / coverage (k=5) on the features (``prdc_*``)."""
    real, fake = ctx.real("features"), ctx.fake("features")
    k = max(
        int(options.get("k_precision_recall", K_PRECISION_RECALL)),
        int(options.get("k_density_coverage", K_DENSITY_COVERAGE)),
    )
    if min(len(real), len(fake)) <= k:
        raise MetricSkipped(f"k={k} nearest neighbours need more than {k} real and fake images")
    return {f"prdc_{key}": v for key, v in prdc_scores(real.to(ctx.device), fake.to(ctx.device), **options).items()}


def write_gallery(
    path: Path, ctx: MetricContext, fake_rep: Tensor, train_rep: Tensor, train_pos: Tensor, k: int = 8
) -> None:
    """Top row: the ``k`` fakes closest to the training set; bottom row: their nearest training images."""
    from torchvision.utils import make_grid

    from gan_interp.io import save_png

    dist, idx = nearest_neighbours(fake_rep, train_rep)
    order = dist.argsort()[:k]
    fakes = ctx.model.generate(ctx.z[order].to(ctx.device)).float().clamp(-1, 1).cpu()
    reals = ctx.datamodule.dataset("train").__getitems__(train_pos[idx[order]].tolist())["image"]
    grid = make_grid(torch.cat([fakes, reals]), nrow=len(order), normalize=True, value_range=(-1, 1), padding=2)
    caption = f"top: the {len(order)} fakes closest to the training set; bottom: their nearest training images"
    save_png(grid, path, caption=caption)
