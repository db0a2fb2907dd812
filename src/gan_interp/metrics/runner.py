"""Compute the evaluation metrics of a generator against its data, streaming in batches.

    settings = MetricsSettings(metrics={"mmd": {}, "c2st": {"space": "images"}}, n=512)
    result = evaluate(model, datamodule, settings)           # result.values, result.info

Real images (a seeded random subset of ``real_split``) and generated images (seeded latents)
flow through in batches of ``batch_size``; per batch we keep only the representations the
selected metrics need (see :mod:`gan_interp.metrics.registry`): running quality sums and small
representations (pooled pixels ``[n, C*p*p]``, features ``[n, d]``, logits, ``image_size`` px
uint8 images for the image C2ST and SSIM). Peak memory therefore grows with ``n`` times those small
sizes, never with full images. Then each selected metric runs, in registry order.

The reference: the presets ``conf/metrics/default.yaml`` and ``all.yaml`` compare the fakes with
held-out real images (``real_split: test``, as seed 001 plans: never trained on, not even by the
domain feature net); ``study.yaml`` (the committed studies) still with the training images. A split
with fewer than ``n`` images is compared at its size, with one warning line and ``info.n_real`` in
the JSON; one with fewer than 4 is a :class:`ConfigError` (:func:`check_real_split`). Memorisation
always reads the training split and the held-out splits itself.

Metric names in ``settings.metrics`` (value = options, ``{}``/None for defaults):

=============== =================================================================================
``mmd``          ``space`` pixels|features, ``n_permutations``, ``chunk``, ``bandwidth``
``c2st``         ``space`` images|pixels|features, ``classifier``, ``epochs``, ``lr``, ``hidden``...
``quality``      (none) sharpness, noise, total variation of fakes and reals
``memorisation`` ``space`` pixels|features, ``quantile``, ``n_train`` (reference set size)
``fid``          (none)
``kid``          ``subsets``, ``subset_size``
``is``           ``splits``
``ssim``         ``queries``, ``candidates``, ``pairs``, ``kernel_size``, ``sigma`` (on the ``images``)
``prdc``         ``k_precision_recall`` (3), ``k_density_coverage`` (5), ``chunk`` (on the ``features``)
=============== =================================================================================

Output keys: ``mmd2 mmd_p_value mmd_bandwidth``, ``c2st_accuracy c2st_p_value``,
``quality_<laplacian_var|noise|tv>_<fake|real|ratio>``,
``nn_fake_median nn_heldout_median nn_ratio nn_copy_fraction``, ``fid``, ``kid_mean kid_std``,
``is_mean is_std``, ``ssim_nn_fake ssim_nn_real ssim_pairs_fake ssim_pairs_real`` (SSIM of fakes to their
nearest real image and of reals to their nearest other real - the floor; mean SSIM of random pairs within
each set - 1 for a collapsed generator; :mod:`gan_interp.metrics.ssim`),
``prdc_precision prdc_recall prdc_density prdc_coverage`` (Kynkaanniemi et al. 2019, Naeem et al. 2020;
:mod:`gan_interp.metrics.prdc`).

:func:`evaluate_and_record` is what the training callback and the checkpoint CLI call: it writes
``<out_dir>/<name>.json`` (values + which features were used + timings; with ``memorisation`` also
``<out_dir>/nn_<name>.png``) and logs ``metrics/<key>`` to the loggers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gan_interp.errors import ConfigError
from gan_interp.io import write_text
from gan_interp.logging_utils import log_metrics
from gan_interp.metrics.context import MetricContext, StreamCollector, real_batches
from gan_interp.metrics.features import FeatureExtractor, PixelFeatures, build_feature_extractor
from gan_interp.metrics.registry import MetricSkipped, MetricSpec, Needs, get_metric, metric_names
from gan_interp.metrics.settings import MetricsSettings
from gan_interp.progress import track

log = logging.getLogger(__name__)

DIRNAME = "metrics"  # the metrics folder of a run (<run>/metrics/epoch_XXX.json)


@dataclass
class MetricsResult:
    """Metric values plus what produced them."""

    values: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)  # features used, sample sizes, seconds per step


def _model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def selected_metrics(settings: MetricsSettings) -> list[tuple[MetricSpec, dict[str, Any]]]:
    """The chosen metrics with their options, in registry (= run) order."""
    return [(get_metric(name), settings.metrics[name]) for name in metric_names() if name in settings.metrics]


def _feature_net(
    settings: MetricsSettings, datamodule: Any, device: torch.device, needs: Needs, seconds: dict[str, float]
) -> FeatureExtractor | None:
    """The feature extractor, if a selected metric needs features or logits."""
    if not {"features", "logits"} & needs.any:
        return None
    t0 = time.perf_counter()
    fx = build_feature_extractor(
        settings.features,
        datamodule,
        settings.cache_dir,
        device,
        settings.pixel_size,
        settings.inception_weights,
        settings.domain,
    )
    seconds["feature_net"] = time.perf_counter() - t0
    return fx


def _stream(
    model: Any,
    datamodule: Any,
    settings: MetricsSettings,
    streams: dict[str, StreamCollector],
    device: torch.device,
    seconds: dict[str, float],
) -> Tensor:
    """Real then generated images through their collectors; returns the latents used."""
    n, batch_size, seed = settings.n, settings.batch_size, settings.seed
    t0 = time.perf_counter()
    real = real_batches(datamodule, settings.real_split, n, batch_size, seed)
    for images, _ in track(real, "metrics real images", unit="batches"):
        streams["real"].update(images.to(device))
    seconds["real_pass"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed + 1)
    z_all: list[Tensor] = []
    for b0 in track(range(0, n, batch_size), "metrics fake images", unit="batches"):
        z = model.sample_z(min(batch_size, n - b0), generator=g)
        z_all.append(z.cpu())
        streams["fake"].update(model.generate(z).float().clamp(-1, 1))
    seconds["fake_pass"] = time.perf_counter() - t0
    return torch.cat(z_all)


MIN_REAL = 4  # fewer real images than this in the reference split: a ConfigError, not a comparison
SPLIT_FIX = {  # how to give a split more images
    "train": "lower data.val_fraction + data.test_fraction",
    "val": "raise data.val_fraction",
    "test": "raise data.test_fraction",
}


def check_real_split(datamodule: Any, settings: MetricsSettings) -> int:
    """The number of real images the two-sample metrics compare with ``settings.n`` generated ones.

    Fewer than :data:`MIN_REAL` in ``settings.real_split``: one-line :class:`ConfigError` naming the fix.
    Fewer than ``n``: one warning line; the metrics then compare ``n`` fakes with all the split's reals
    (C2ST: as many of each), and the metrics JSON records ``info.n_real``.
    """
    split, n = settings.real_split, settings.n
    n_real = min(n, len(datamodule.split.get(split) or ()))
    fix = f"{SPLIT_FIX[split]} (or data.source.n where the source draws its images)"
    if n_real < MIN_REAL:
        raise ConfigError(
            f"metrics.real_split={split!r} has {n_real} images, the metrics need >= {MIN_REAL}; {fix}, "
            "or choose another metrics.real_split"
        )
    if n_real < n:
        log.warning(
            "metrics: the %r split has %d real images for n=%d generated ones; the metrics compare %d fakes with "
            "%d reals (info.n_real); for %d of each, %s",
            split,
            n_real,
            n,
            n,
            n_real,
            n,
            fix,
        )
    return n_real


def _run_metrics(
    ctx: MetricContext, selected: list[tuple[MetricSpec, dict[str, Any]]], seconds: dict[str, float]
) -> tuple[dict[str, float], dict[str, str]]:
    """Each metric in turn: (values, skipped metric -> reason)."""
    values: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for spec, options in selected:
        t0 = time.perf_counter()
        try:
            values.update(spec.fn(ctx, **options))
        except MetricSkipped as why:
            skipped[spec.name] = str(why)
            log.warning("metrics: %s skipped: %s", spec.name, why)
        if spec.timing is not None:
            seconds[spec.timing] = seconds.get(spec.timing, 0.0) + time.perf_counter() - t0
    return values, skipped


def evaluate(
    model: Any,  # a GANModule (generate / sample_z / latent_dim)
    datamodule: Any,  # a GANDataModule
    settings: MetricsSettings,  # which metrics, n, features, ... (see MetricsSettings)
    gallery_path: str | Path | None = None,  # write the memorisation nearest-neighbour pairs here (PNG)
) -> MetricsResult:
    """All metrics of ``settings`` for ``model`` against ``datamodule`` (see module doc for names)."""
    selected = selected_metrics(settings)
    if not selected:
        return MetricsResult({}, {"metrics": []})
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    device = _model_device(model)
    datamodule.setup()
    needs = Needs()
    for spec, options in selected:
        needs = needs | spec.needs_for(options)
    if needs.reference and not [s for s in settings.heldout_splits if datamodule.split.get(s)]:
        raise ConfigError("memorisation needs held-out real images; set data.val_fraction or data.test_fraction > 0")
    if needs.real:
        check_real_split(datamodule, settings)
    fx = _feature_net(settings, datamodule, device, needs, seconds)
    pix = PixelFeatures(datamodule.channels, settings.pixel_size)
    streams = {s: StreamCollector(needs.of(s), pix, fx, settings.image_size) for s in ("real", "fake")}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(settings.seed)
            z = _stream(model, datamodule, settings, streams, device, seconds)
            ctx = MetricContext(
                model,
                datamodule,
                settings,
                device,
                streams,
                pix,
                fx,
                z,
                None if gallery_path is None else Path(gallery_path),
            )
            values, skipped = _run_metrics(ctx, selected, seconds)
    finally:
        model.train(was_training)
    seconds["total"] = time.perf_counter() - t_start
    return MetricsResult(values, _info(settings, fx, streams, seconds, skipped))


def _info(
    settings: MetricsSettings,
    fx: FeatureExtractor | None,
    streams: dict[str, StreamCollector],
    seconds: dict[str, float],
    skipped: dict[str, str],
) -> dict[str, Any]:
    """What produced the values: metrics, features, sample sizes, seconds per step, skipped metrics."""
    info: dict[str, Any] = {
        "metrics": list(settings.metrics),
        "features": fx.name if fx else None,
        "features_description": fx.description if fx else None,
        "n_fake": settings.n,
        "n_real": streams["real"].count,
        "real_split": settings.real_split,
        "seed": settings.seed,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    if skipped:
        info["skipped"] = skipped
    if fx is not None:
        info["features_seconds"] = round(sum(s.seconds_features for s in streams.values()), 3)
    return info


def compute_metrics(
    model: Any,
    datamodule: Any,
    metrics_cfg: Any,  # {name: options}, a list of names, or "all"
    n: int = 512,
    **settings: Any,  # the other MetricsSettings fields
) -> dict[str, float]:
    """Metric values only (``evaluate(...).values``)."""
    return evaluate(model, datamodule, MetricsSettings(metrics=metrics_cfg, n=n, **settings)).values


def write_metrics_json(
    path: Path, result: MetricsResult, epoch: int | None, step: int, g_steps: int | None, source: str
) -> Path:
    """``{"epoch", "step", "g_steps", "source", "values", "info"}`` (NaN written as null)."""
    values = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.values.items()}
    payload = {
        "epoch": epoch,
        "step": step,
        "g_steps": g_steps,
        "source": source,
        "values": values,
        "info": result.info,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(payload, indent=1, default=str))  # atomic
    return path


def evaluate_and_record(
    model: Any,  # GANModule
    datamodule: Any,  # GANDataModule
    settings: MetricsSettings,  # what to evaluate (settings.cache_dir None -> out_dir)
    out_dir: str | Path,  # <run>/metrics (or the probe CLI's output folder)
    name: str,  # file stem: epoch_XXX or ckpt_<name>
    epoch: int | None = None,  # written into the JSON and logged as "epoch"
    step: int = 0,  # logger step and the JSON's "step"
    loggers: Any = (),  # Lightning loggers to log metrics/<key> to
    source: str = "callback",  # what triggered it: train_epoch_end | train_end | checkpoint <file>
) -> MetricsResult | None:
    """Evaluate; write ``<out_dir>/<name>.json`` (+ ``nn_<name>.png``); log ``metrics/<key>``."""
    if not settings.metrics:
        return None
    out_dir = Path(out_dir)
    if settings.cache_dir is None:
        settings = dataclasses.replace(settings, cache_dir=str(out_dir))
    gallery = out_dir / f"nn_{name}.png" if "memorisation" in settings.metrics else None
    result = evaluate(model, datamodule, settings, gallery_path=gallery)
    g_steps = getattr(model, "g_steps", None)
    write_metrics_json(out_dir / f"{name}.json", result, epoch, step, None if g_steps is None else int(g_steps), source)
    logged = {f"metrics/{k}": v for k, v in result.values.items()}
    log_metrics(loggers, logged, step, epoch, None if g_steps is None else int(g_steps))  # one row at the epoch
    log.info(
        "metrics %s (%s): %s",
        name,
        result.info.get("features") or "no learned features",
        ", ".join(f"{k}={v:.4g}" for k, v in result.values.items()),
    )
    return result
