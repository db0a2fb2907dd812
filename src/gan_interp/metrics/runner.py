"""Compute the evaluation metrics of a generator against its data, streaming in batches.

    values = compute_metrics(model, datamodule, {"mmd": {}, "c2st": {"space": "images"}}, n=512)

Real images (a seeded random subset of ``real_split``) and generated images (seeded latents)
flow through in batches of ``batch_size``; per batch we keep only what the metrics need:
running quality sums, FID running moments, and small representations (pooled pixels
``[n, C*p*p]``, features ``[n, d]``, ``image_size`` px uint8 images for the image C2ST).
Peak memory therefore grows with ``n`` times those small sizes, never with full images.

Metric names in ``metrics_cfg`` (value = kwargs, ``{}``/None for defaults):

=============== =================================================================================
``mmd``          ``space`` pixels|features, ``n_permutations``, ``chunk``, ``bandwidth``
``c2st``         ``space`` images|pixels|features, ``classifier``, ``epochs``, ``lr``, ``hidden``...
``quality``      (none) sharpness, noise, total variation of fakes and reals
``memorisation`` ``space`` pixels|features, ``quantile``, ``n_train`` (reference set size)
``fid``          (none)
``kid``          ``subsets``, ``subset_size``
``is``           ``splits``
=============== =================================================================================

Output keys: ``mmd2 mmd_p_value mmd_bandwidth``, ``c2st_accuracy c2st_p_value``,
``quality_<laplacian_var|noise|tv>_<fake|real|ratio>``,
``nn_fake_median nn_heldout_median nn_ratio nn_copy_fraction``, ``fid``, ``kid_mean kid_std``,
``is_mean is_std``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_interp.errors import ConfigError
from gan_interp.metrics.c2st import c2st
from gan_interp.metrics.features import FeatureExtractor, PixelFeatures, build_feature_extractor
from gan_interp.metrics.fid import FeatureMetrics
from gan_interp.metrics.memorisation import memorisation_score, nearest_neighbours
from gan_interp.metrics.mmd import mmd_test
from gan_interp.metrics.quality import QualityAccumulator, quality_summary

log = logging.getLogger(__name__)

METRICS = ("mmd", "c2st", "quality", "memorisation", "fid", "kid", "is")
SPACES = {"mmd": ("pixels", "features"), "c2st": ("images", "pixels", "features"), "memorisation": ("pixels", "features")}
DEFAULT_SPACE = {"mmd": "pixels", "c2st": "images", "memorisation": "pixels"}


@dataclass
class MetricsResult:
    """Metric values plus what produced them."""

    values: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)  # features used, sample sizes, seconds per step


def normalise_metrics_cfg(metrics_cfg: Any) -> dict[str, dict[str, Any]]:
    """``{name: kwargs}`` from a mapping, a list of names, ``"all"`` or None; unknown names fail."""
    if metrics_cfg is None:
        return {}
    if isinstance(metrics_cfg, str):
        metrics_cfg = list(METRICS) if metrics_cfg == "all" else [m.strip() for m in metrics_cfg.split(",") if m.strip()]
    if isinstance(metrics_cfg, Mapping):
        items = {str(k): dict(v or {}) for k, v in metrics_cfg.items() if v is not False}
    else:
        items = {str(k): {} for k in metrics_cfg}
    for name, kwargs in items.items():
        if name not in METRICS:
            raise ConfigError(f"metrics.metrics.{name} is not a known metric; choose from: {', '.join(METRICS)}")
        if name in SPACES:
            space = kwargs.setdefault("space", DEFAULT_SPACE[name])
            if space not in SPACES[name]:
                raise ConfigError(f"metrics.metrics.{name}.space={space!r} must be one of {', '.join(SPACES[name])}")
    return items


def _positions(n_total: int, n: int, seed: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(n_total, generator=g)[: min(n, n_total)].tolist())


def _real_batches(datamodule: Any, split: str, n: int, batch_size: int, seed: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Seeded random subset of a split, in batches: (images [-1,1], dataset positions)."""
    ds = datamodule.dataset(split)
    pos = _positions(len(ds), n, seed)
    for b0 in range(0, len(pos), batch_size):
        chunk = pos[b0 : b0 + batch_size]
        yield ds.__getitems__(chunk)["image"], torch.tensor(chunk)


def _small_uint8(images: Tensor, size: int) -> Tensor:
    """[-1,1] images -> uint8 at most ``size`` px (average-pooled)."""
    if images.shape[-1] > size:
        images = F.adaptive_avg_pool2d(images.float(), size)
    return images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu()


class _Collector:
    """What one stream (real, fake, train reference, held-out) keeps per batch."""

    def __init__(self, pix: PixelFeatures | None, fx: FeatureExtractor | None, keep_pix: bool, keep_feat: bool,
                 image_size: int | None, quality: bool, fm: FeatureMetrics | None, real: bool) -> None:
        self.pix, self.fx, self.keep_pix, self.keep_feat = pix, fx, keep_pix, keep_feat
        self.image_size, self.fm, self.real = image_size, fm, real
        self.quality = QualityAccumulator() if quality else None
        self.pix_list: list[Tensor] = []
        self.feat_list: list[Tensor] = []
        self.img_list: list[Tensor] = []
        self.seconds_features = 0.0
        self.count = 0

    def update(self, images: Tensor) -> None:
        self.count += int(images.shape[0])
        if self.quality is not None:
            self.quality.update(images)
        if self.keep_pix and self.pix is not None:
            self.pix_list.append(self.pix(images).cpu())
        if self.image_size:
            self.img_list.append(_small_uint8(images, self.image_size))
        if self.fx is not None and (self.keep_feat or self.fm is not None):
            t0 = time.perf_counter()
            feats, logits = self.fx(images)
            self.seconds_features += time.perf_counter() - t0
            if self.keep_feat:
                self.feat_list.append(feats.cpu())
            if self.fm is not None:
                self.fm.update_real(feats) if self.real else self.fm.update_fake(feats, logits)

    def rep(self, space: str) -> Tensor:
        parts = {"pixels": self.pix_list, "features": self.feat_list, "images": self.img_list}[space]
        return torch.cat(parts)


def _model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def evaluate(
    model: Any,  # a GANModule (generate / sample_z / latent_dim)
    datamodule: Any,  # a GANDataModule
    metrics_cfg: Any,  # {name: kwargs} (see module doc), a list of names, or "all"
    n: int = 512,  # generated samples, and real samples (capped by the split size)
    seed: int = 0,  # latents, real subset, permutations, classifier init
    features: str = "auto",  # auto | inception | domain | pixels (see metrics.features)
    cache_dir: str | Path | None = None,  # domain feature-net cache
    batch_size: int = 128,  # generation / feature batch
    pixel_size: int = 16,  # side of the pooled-pixel representation
    image_size: int = 32,  # side of the images the image C2ST sees
    real_split: str = "train",  # real images compared with the fakes
    heldout_splits: tuple[str, ...] = ("val", "test"),  # memorisation reference (never trained on)
    domain: dict[str, Any] | None = None,  # domain-net training kwargs (steps, dim, input_size, ...)
    inception_weights: str | None = None,  # explicit Inception weights file
    gallery_path: str | Path | None = None,  # write the memorisation nearest-neighbour pairs here (PNG)
) -> MetricsResult:
    """All requested metrics of ``model`` against ``datamodule`` (see module doc for names)."""
    cfg = normalise_metrics_cfg(metrics_cfg)
    if not cfg:
        return MetricsResult({}, {"metrics": []})
    n = int(n)
    if n < 4:
        raise ConfigError(f"metrics n={n} is too small; use n >= 4 (hundreds for meaningful numbers)")
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    device = _model_device(model)
    datamodule.setup()
    spaces = {cfg[m]["space"] for m in cfg if m in SPACES}
    need_fx = bool({"fid", "kid", "is"} & cfg.keys()) or "features" in spaces
    fx = None
    if need_fx:
        t0 = time.perf_counter()
        fx = build_feature_extractor(features, datamodule, cache_dir, device, pixel_size, inception_weights, domain)
        seconds["feature_net"] = time.perf_counter() - t0
    pix = PixelFeatures(datamodule.channels, pixel_size)
    fm = None
    if {"fid", "kid", "is"} & cfg.keys():
        assert fx is not None
        fm = FeatureMetrics(fx.num_features, fid="fid" in cfg, kid="kid" in cfg, inception_score="is" in cfg,
                            kid_subsets=int(cfg.get("kid", {}).get("subsets", 50)),
                            kid_subset_size=int(cfg.get("kid", {}).get("subset_size", 1000)),
                            is_splits=int(cfg.get("is", {}).get("splits", 10)))
    keep_pix = "pixels" in (cfg.get("mmd", {}).get("space"), cfg.get("c2st", {}).get("space"))
    keep_feat = "features" in (cfg.get("mmd", {}).get("space"), cfg.get("c2st", {}).get("space"))
    img_size = image_size if cfg.get("c2st", {}).get("space") == "images" else None
    real = _Collector(pix, fx, keep_pix, keep_feat, img_size, "quality" in cfg, fm, real=True)
    fake = _Collector(pix, fx, keep_pix or cfg.get("memorisation", {}).get("space") == "pixels",
                      keep_feat or cfg.get("memorisation", {}).get("space") == "features", img_size, "quality" in cfg, fm, real=False)

    was_training = model.training
    model.eval()
    z_all: list[Tensor] = []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            t0 = time.perf_counter()
            for images, _ in _real_batches(datamodule, real_split, n, batch_size, seed):
                real.update(images.to(device))
            seconds["real_pass"] = time.perf_counter() - t0
            if real.count < n:
                log.warning("metrics: only %d real images in the %r split for n=%d generated ones (C2ST uses %d of each)",
                            real.count, real_split, n, real.count)
            t0 = time.perf_counter()
            g = torch.Generator().manual_seed(seed + 1)
            for b0 in range(0, n, batch_size):
                z = model.sample_z(min(batch_size, n - b0), generator=g)
                z_all.append(z.cpu())
                fake.update(model.generate(z).float().clamp(-1, 1))
            seconds["fake_pass"] = time.perf_counter() - t0
            values = _compute(cfg, real, fake, fm, datamodule, pix, fx, n, seed, batch_size, heldout_splits, device, seconds,
                              model, torch.cat(z_all), gallery_path)
    finally:
        model.train(was_training)
    seconds["total"] = time.perf_counter() - t_start
    info = {
        "metrics": list(cfg),
        "features": fx.name if fx else None,
        "features_description": fx.description if fx else None,
        "n_fake": n,
        "n_real": real.count,
        "real_split": real_split,
        "seed": seed,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    if "is" in cfg and "is_mean" not in values:
        info["skipped"] = {"is": f"features {fx.name if fx else None!r} give no class logits (use features=domain or inception)"}
        log.warning("metrics: IS skipped: %s", info["skipped"]["is"])
    if fx is not None:
        info["features_seconds"] = round(real.seconds_features + fake.seconds_features, 3)
    return MetricsResult(values, info)


def _compute(cfg: dict[str, dict[str, Any]], real: _Collector, fake: _Collector, fm: FeatureMetrics | None, datamodule: Any,
             pix: PixelFeatures, fx: FeatureExtractor | None, n: int, seed: int, batch_size: int,
             heldout_splits: tuple[str, ...], device: torch.device, seconds: dict[str, float], model: Any,
             z_all: Tensor, gallery_path: str | Path | None) -> dict[str, float]:
    values: dict[str, float] = {}
    if "quality" in cfg:
        assert real.quality is not None and fake.quality is not None
        values.update({f"quality_{k}": v for k, v in quality_summary(fake.quality.compute(), real.quality.compute()).items()})
    if "mmd" in cfg:
        t0 = time.perf_counter()
        kw = dict(cfg["mmd"])
        space = kw.pop("space")
        res = mmd_test(real.rep(space).to(device), fake.rep(space).to(device), seed=seed, **kw)
        values.update({"mmd2": res.mmd2, "mmd_p_value": res.p_value, "mmd_bandwidth": res.bandwidth})
        seconds["mmd"] = time.perf_counter() - t0
    if "c2st" in cfg:
        t0 = time.perf_counter()
        kw = dict(cfg["c2st"])
        space = kw.pop("space")
        res = c2st(real.rep(space), fake.rep(space), seed=seed, device=device, **kw)
        values.update({"c2st_accuracy": res.accuracy, "c2st_p_value": res.p_value})
        seconds["c2st"] = time.perf_counter() - t0
    if fm is not None:
        t0 = time.perf_counter()
        values.update(fm.compute())
        seconds["fid_kid_is"] = time.perf_counter() - t0
    if "memorisation" in cfg:
        t0 = time.perf_counter()
        kw = dict(cfg["memorisation"])
        space = kw.pop("space")
        n_train = int(kw.pop("n_train", 10000))
        enc = (lambda x: pix(x).cpu()) if space == "pixels" else (lambda x: fx(x)[0].cpu())  # type: ignore[misc]
        train_reps, train_pos = [], []
        for x, p in _real_batches(datamodule, "train", n_train, batch_size, seed + 2):
            train_reps.append(enc(x.to(device)))
            train_pos.append(p)
        train_rep = torch.cat(train_reps)
        held_splits = [s for s in heldout_splits if datamodule.split.get(s)]
        if not held_splits:
            raise ConfigError("memorisation needs held-out real images; set data.val_fraction or data.test_fraction > 0")
        held_rep = torch.cat([enc(x.to(device)) for s in held_splits for x, _ in _real_batches(datamodule, s, n, batch_size, seed + 3)])
        fake_rep = fake.rep(space)
        values.update({f"nn_{k}" if not k.startswith("nn_") else k: v for k, v in memorisation_score(fake_rep, train_rep, held_rep, **kw).items()})
        if gallery_path is not None:
            _write_gallery(Path(gallery_path), model, z_all, fake_rep, train_rep, torch.cat(train_pos), datamodule)
        seconds["memorisation"] = time.perf_counter() - t0
    return values


def _write_gallery(path: Path, model: Any, z_all: Tensor, fake_rep: Tensor, train_rep: Tensor, train_pos: Tensor,
                   datamodule: Any, k: int = 8) -> None:
    """Top row: the ``k`` fakes closest to the training set; bottom row: their nearest training images."""
    from torchvision.utils import make_grid, save_image

    dist, idx = nearest_neighbours(fake_rep, train_rep)
    order = dist.argsort()[:k]
    device = _model_device(model)
    fakes = model.generate(z_all[order].to(device)).float().clamp(-1, 1).cpu()
    ds = datamodule.dataset("train")
    reals = ds.__getitems__(train_pos[idx[order]].tolist())["image"]
    grid = make_grid(torch.cat([fakes, reals]), nrow=len(order), normalize=True, value_range=(-1, 1), padding=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, path)


def compute_metrics(
    model: Any,
    datamodule: Any,
    metrics_cfg: Any,
    n: int = 512,
    **kwargs: Any,  # see evaluate()
) -> dict[str, float]:
    """Metric values only (``evaluate(...).values``)."""
    return evaluate(model, datamodule, metrics_cfg, n, **kwargs).values
