"""Interventions on generator units: ablate / insert, average causal effect, artifact units.

Bau et al. (2019) test whether units *cause* a concept: zeroing ("ablating") the units that match
a concept should remove it, forcing them to a high value ("inserting") should add it. The
**average causal effect** (ACE) of a set of units on concept ``c`` is the mean change of the
concept's pixel fraction (as the segmenter sees it) over the same latents with and without the
intervention. Units that correlate with a *low* discriminator score are "artifact units";
ablating them should improve sample quality.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_interp.capture import capture
from gan_interp.dissect.dissection import get_layer
from gan_interp.errors import ConfigError


@contextmanager
def edit_units(
    model: Any,  # GANModule
    layer: str,  # generator layer name
    units: Sequence[int] | Tensor,  # channels to overwrite
    value: float | Tensor = 0.0,  # 0 = ablate; a scalar or one value per unit = insert
    region: Tensor | None = None,  # optional bool [h, w] (layer resolution): only edit there
) -> Iterator[None]:
    """Forward hook that overwrites ``units`` of ``layer``'s output while the context is open."""
    module = get_layer(model, layer)
    idx = torch.as_tensor(list(units) if not isinstance(units, Tensor) else units, dtype=torch.long)

    def hook(_m: Any, _inp: Any, out: Tensor) -> Tensor:
        if idx.numel() == 0:
            return out
        out = out.clone()
        val = torch.as_tensor(value, dtype=out.dtype, device=out.device)
        val = val.reshape(1, -1, 1, 1) if val.ndim == 1 else val
        target = val.expand(out.shape[0], idx.numel(), *out.shape[2:])
        sel = idx.to(out.device)
        if region is None:
            out[:, sel] = target
        else:
            r = region.to(out.device).bool()
            out[:, sel] = torch.where(r, target, out[:, sel])
        return out

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def concept_fraction(images: Tensor, segmenter: Any, concept: int) -> Tensor:
    """Fraction of each image's pixels the segmenter assigns to ``concept`` ``[B]``."""
    return segmenter(images)[:, concept].float().flatten(1).mean(1).cpu()


@torch.no_grad()
def average_causal_effect(
    model: Any,  # GANModule
    layer: str,  # generator layer name
    units: Sequence[int] | Tensor,  # units to intervene on
    segmenter: Any,  # images -> bool concept masks
    concept: int,  # index into segmenter.concept_names
    value: float | Tensor = 0.0,  # 0 = ablate; per-unit values (e.g. the concept's mean activation) = insert
    n_samples: int = 256,
    batch_size: int = 64,
    seed: int = 1,  # latents (use a seed different from the dissection's to avoid selection bias)
) -> dict[str, Any]:
    """Mean change of ``concept``'s pixel fraction caused by the intervention (paired latents)."""
    was_training = model.training
    model.eval()
    before, after = [], []
    try:
        z_all = model.sample_z(n_samples, generator=torch.Generator().manual_seed(seed))
        for lo in range(0, n_samples, batch_size):
            z = z_all[lo : lo + batch_size]
            before.append(concept_fraction(model.generate(z), segmenter, concept))
            with edit_units(model, layer, units, value):
                after.append(concept_fraction(model.generate(z), segmenter, concept))
    finally:
        model.train(was_training)
    b, a = torch.cat(before), torch.cat(after)
    d = a - b
    return {
        "ace": float(d.mean()),
        "ace_sem": float(d.std(unbiased=True) / max(len(d), 1) ** 0.5) if len(d) > 1 else 0.0,
        "fraction_before": float(b.mean()),
        "fraction_after": float(a.mean()),
        "n_units": len(units),
        "n_samples": int(n_samples),
    }


def ace_curve(
    model: Any,
    result: Any,  # DissectionResult (ranks the concept's units, provides insert values)
    segmenter: Any,
    concept: str | int,
    n_units: Sequence[int] = (1, 2, 4, 8),
    mode: str = "ablate",  # 'ablate' (zero) or 'insert' (the concept's mean activation per unit)
    rank_by: str = "quantile",  # rank the concept's units by IoU at the 'quantile' or 'iqr' threshold
    **kwargs: Any,  # n_samples, batch_size, seed for average_causal_effect
) -> list[dict[str, Any]]:
    """ACE of the top-n units of ``concept`` for each n (the paper's "number of units ablated" plot)."""
    if mode not in ("ablate", "insert"):
        raise ConfigError(f"mode={mode!r} must be 'ablate' or 'insert'")
    k = result.concept_index(concept)
    rows = []
    for n in n_units:
        units = result.units_for(k, int(n), rank_by)
        value: float | Tensor = 0.0 if mode == "ablate" else result.concept_mean_activation[units, k]
        row = average_causal_effect(model, result.layer, units, segmenter, k, value, **kwargs)
        rows.append({"concept": result.concept_names[k], "mode": mode, "units": units.tolist(), **row})
    return rows


def ablation_vs_random(
    model: Any,
    result: Any,  # DissectionResult (ranks the concept's units)
    segmenter: Any,
    concept: str | int,
    n_units: int = 4,  # k: top-k units vs k random units
    draws: int = 5,  # random k-unit sets (seeded by random_seed)
    rank_by: str = "quantile",  # rank the concept's units by 'quantile' IoU or 'iqr' ratio
    random_seed: int = 0,  # seeds the random unit sets
    **kwargs: Any,  # n_samples, batch_size, seed for average_causal_effect (the same latents for every set)
) -> dict[str, Any]:
    """ACE of ablating the concept's top-k units next to the ACE of ablating k random other units, ``draws``
    times (each set drawn from the units outside the top k, so the control never contains them).

    Ablating any units perturbs every concept a little (a few points of pixel fraction either way in a
    briefly trained DCGAN): the random sets are the control a top-k effect must beat.
    """
    k = result.concept_index(concept)
    n = min(int(n_units), result.n_units)
    top = result.units_for(k, n, rank_by)
    row = average_causal_effect(model, result.layer, top, segmenter, k, 0.0, **kwargs)
    others = torch.tensor([u for u in range(result.n_units) if u not in set(top.tolist())], dtype=torch.long)
    gen = torch.Generator().manual_seed(int(random_seed))
    rand = [
        average_causal_effect(
            model, result.layer, others[torch.randperm(len(others), generator=gen)[:n]], segmenter, k, 0.0, **kwargs
        )["ace"]
        for _ in range(int(draws) if len(others) else 0)
    ]
    return {
        "concept": result.concept_names[k],
        "n_units": n,
        "units": top.tolist(),
        "rank_by": rank_by,
        "fraction_before": row["fraction_before"],
        "ace_top": row["ace"],
        "ace_top_sem": row["ace_sem"],
        "ace_random": rand,
        "ace_random_mean": sum(rand) / max(len(rand), 1),
        "beats_every_random": bool(rand) and all(row["ace"] < r for r in rand),
    }


# -- artifact units ---------------------------------------------------------------------------------
@torch.no_grad()
def rank_artifact_units(
    model: Any,
    layer: str,
    n_samples: int = 512,
    batch_size: int = 64,
    seed: int = 2,
) -> tuple[Tensor, Tensor]:
    """Units ranked by Pearson correlation of their mean activation with the *negated* critic score.

    Returns (unit order ``[U]`` most artifact-like first, correlation ``[U]``).
    """
    module = get_layer(model, layer)
    was_training = model.training
    model.eval()
    acts, scores = [], []
    try:
        z_all = model.sample_z(n_samples, generator=torch.Generator().manual_seed(seed))
        with capture({"out": module}, detach=False) as rec:
            for lo in range(0, n_samples, batch_size):
                x = model.generate(z_all[lo : lo + batch_size])
                acts.append(rec["out"].float().flatten(2).mean(2).cpu())
                scores.append(model.critic(x).float().cpu())
    finally:
        model.train(was_training)
    a, s = torch.cat(acts).double(), -torch.cat(scores).double()
    a, s = a - a.mean(0), s - s.mean()
    corr = (a * s[:, None]).sum(0) / (a.norm(dim=0) * s.norm()).clamp_min(1e-12)
    return corr.argsort(descending=True), corr.float()


def sliced_wasserstein(x: Tensor, y: Tensor, n_projections: int = 256, size: int = 16, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between two image sets, downsampled to ``size`` px (lower = closer)."""

    def flat(t: Tensor) -> Tensor:
        t = t.float()
        if t.shape[-1] != size:
            t = F.adaptive_avg_pool2d(t, size)
        return t.flatten(1).cpu()

    a, b = flat(x), flat(y)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], n_projections, generator=g)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa, pb = (a @ dirs).sort(0).values, (b @ dirs).sort(0).values
    return float((pa - pb).abs().mean())


@torch.no_grad()
def ablate_artifact_units(
    model: Any,
    layer: str,
    units: Sequence[int] | Tensor,  # e.g. rank_artifact_units(...)[0][:n]
    real_images: Tensor | None = None,  # [-1,1] reference images for the SWD quality metric
    quality_fn: Callable[[Tensor], float] | None = None,  # extra metric on generated images (higher = better)
    n_samples: int = 256,
    batch_size: int = 64,
    seed: int = 3,  # fresh latents, not the ones used for ranking
) -> dict[str, Any]:
    """Quality before/after ablating ``units``: mean critic score, SWD to ``real_images``, ``quality_fn``."""
    was_training = model.training
    model.eval()
    out: dict[str, Any] = {"n_units": len(units)}
    try:
        z_all = model.sample_z(n_samples, generator=torch.Generator().manual_seed(seed))
        for tag, ctx in (("before", None), ("after", units)):
            imgs, scores = [], []
            for lo in range(0, n_samples, batch_size):
                z = z_all[lo : lo + batch_size]
                if ctx is None:
                    x = model.generate(z)
                else:
                    with edit_units(model, layer, ctx, 0.0):
                        x = model.generate(z)
                imgs.append(x.cpu())
                scores.append(model.critic(x).float().cpu())
            x_all = torch.cat(imgs)
            out[f"critic_{tag}"] = float(torch.cat(scores).mean())
            if real_images is not None and len(real_images):
                out[f"swd_{tag}"] = sliced_wasserstein(x_all, real_images)
            if quality_fn is not None:
                out[f"quality_{tag}"] = float(quality_fn(x_all))
    finally:
        model.train(was_training)
    return out
