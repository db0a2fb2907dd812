"""The dissection pipeline: stream generated samples, threshold units, score them against concepts.

Two passes over the same seeded latents (memory stays bounded by one batch plus the sketches):

1. every unit's upsampled feature map feeds a :class:`~gan_interp.dissect.quantile.QuantileSketch`
   (and a running top-k of the samples where the unit fires most);
2. with thresholds fixed - the top-``q`` quantile plus a ladder of quantile levels for the IQR
   search - a :class:`~gan_interp.dissect.iou.ConceptTally` counts agreements with the
   segmenter's concept masks of the same images.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gan_interp.capture import capture, output_shapes
from gan_interp.dissect.iou import ConceptTally, upsample_maps
from gan_interp.dissect.quantile import QuantileSketch
from gan_interp.errors import ConfigError
from gan_interp.progress import Progress

MIN_IQR = 0.01  # an 'iqr' match also needs an information quality ratio above this (netdissect's default)
DEFAULT_IQR_LEVELS = tuple(float(x) for x in torch.logspace(-3.3, -0.05, 24).flip(0))  # top fractions 0.89 .. 0.0005


def get_layer(model: Any, name: str) -> nn.Module:
    """``model.generator_layers()[name]`` with a one-line error listing the choices."""
    layers = model.generator_layers()
    if name not in layers:
        raise ConfigError(
            f"layer={name!r} is not a generator layer of {type(model).__name__}; choose one of: {', '.join(layers)}"
        )
    return layers[name]


@torch.no_grad()
def layer_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """Output shape (without batch) of every generator layer, from one 2-sample forward in eval mode."""
    was_training = model.training
    model.eval()
    try:
        z = model.sample_z(2, generator=torch.Generator().manual_seed(0))
        shapes = output_shapes(model.generator_layers(), lambda: model.generate(z))
    finally:
        model.train(was_training)
    return {name: shape[1:] for name, shape in shapes.items()}


def resolve_layer(model: Any, layer: str | None) -> str:
    """``None``/"auto": the feature-map layer whose side is closest to ``resolution / 4`` (a middle layer)."""
    if layer not in (None, "auto"):
        get_layer(model, str(layer))
        return str(layer)
    spatial = {n: s for n, s in layer_shapes(model).items() if len(s) == 3 and s[0] > model.channels}
    if not spatial:
        raise ConfigError(f"{type(model).__name__} exposes no generator feature-map layer to dissect")
    target = model.resolution / 4
    return min(spatial, key=lambda n: (abs(spatial[n][-1] - target), -spatial[n][-1]))


@dataclass
class DissectionResult:
    """Per-unit scores of one layer against ``K`` concepts (all tensors on CPU)."""

    layer: str
    concept_names: list[str]
    quantile: float  # top fraction used for the default threshold
    n_samples: int
    seed: int
    thresholds: Tensor  # [U] top-quantile threshold of each unit
    iou: Tensor  # [U, K] IoU at the quantile threshold
    iqr_threshold: Tensor  # [U, K] threshold maximising I/H per (unit, concept)
    iqr: Tensor  # [U, K] the maximal information quality ratio
    iqr_iou: Tensor  # [U, K] IoU at the IQR threshold
    concept_mean_activation: Tensor  # [U, K] mean upsampled activation over the concept's pixels
    concept_fraction: Tensor  # [K] fraction of generated pixels in each concept
    top_samples: Tensor  # [U, k] sample indices with the highest unit maxima
    latents: Tensor  # [N, latent_dim] the latents dissected (sample i = latents[i])
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_units(self) -> int:
        return int(self.thresholds.shape[0])

    def best(self, method: str = "quantile") -> tuple[Tensor, Tensor]:
        """(concept index ``[U]``, IoU ``[U]``) of each unit's best concept; method 'quantile' or 'iqr'.

        'quantile': the concept of highest IoU at the unit's top-quantile threshold. 'iqr' (Bau et al.
        2019 and their code): the concept of highest information quality ratio, each (unit, concept)
        pair thresholded where its ratio peaks among the qualified thresholds (positive association,
        see :mod:`~gan_interp.dissect.iou`), and the IoU there - 0 unless that ratio exceeds
        :data:`MIN_IQR` (the authors' bar for a match). Both choices matter: picking the concept by IoU,
        or counting the IoU of a unit whose ratio is at chance level, rewards the largest concept, whose
        IoU at a permissive threshold is high by area alone (the shuffled-mask control scored as high).
        """
        if method == "quantile":
            iou, k = self.iou.max(dim=1)
            return k, iou
        if method == "iqr":
            k = self.iqr.argmax(dim=1)
            ratio = self.iqr.gather(1, k[:, None])[:, 0]
            iou = self.iqr_iou.gather(1, k[:, None])[:, 0]
            return k, torch.where(ratio > MIN_IQR, iou, torch.zeros_like(iou))
        raise ConfigError(f"method={method!r} must be 'quantile' or 'iqr'")

    def concept_index(self, concept: str | int) -> int:
        if isinstance(concept, int):
            return concept
        if concept not in self.concept_names:
            raise ConfigError(f"concept={concept!r} is not one of {', '.join(self.concept_names)}")
        return self.concept_names.index(concept)

    def units_for(self, concept: str | int, n: int, method: str = "quantile") -> Tensor:
        """The ``n`` units that match ``concept`` best, best first: highest IoU at the top-quantile
        threshold ('quantile') or highest information quality ratio ('iqr', as :meth:`best` labels)."""
        k = self.concept_index(concept)
        scores = {"quantile": self.iou, "iqr": self.iqr}.get(method)
        if scores is None:
            raise ConfigError(f"method={method!r} must be 'quantile' or 'iqr'")
        return scores[:, k].argsort(descending=True, stable=True)[:n]

    def interpretable(self, method: str = "quantile", interpretable_iou: float = 0.04) -> Tensor:
        """Bool ``[U]``: the unit matches its best concept (:meth:`best` IoU above ``interpretable_iou``; for
        'iqr' that IoU is 0 unless the ratio exceeds :data:`MIN_IQR`, as in the authors' code)."""
        return self.best(method)[1] > interpretable_iou

    def summary(self, interpretable_iou: float = 0.04) -> dict[str, Any]:
        """Headline numbers: mean/top-10 best IoU, interpretable units (:meth:`interpretable`) per concept."""
        out: dict[str, Any] = {"interpretable_iou": interpretable_iou}
        for method in ("quantile", "iqr"):
            k, iou = self.best(method)
            ok = self.interpretable(method, interpretable_iou)
            top = iou.sort(descending=True).values
            counts = {name: int(((k == i) & ok).sum()) for i, name in enumerate(self.concept_names)}
            out[method] = {
                "mean_best_iou": float(iou.mean()),
                "top10_mean_iou": float(top[: min(10, len(top))].mean()),
                "max_iou": float(top[0]),
                "n_interpretable": int(ok.sum()),
                "units_per_concept": counts,
            }
        # the ratio I/H itself is 0 for independent masks: a chance-free score, unlike IoU at a low threshold
        out["iqr"]["mean_best_ratio"] = float(self.iqr.max(dim=1).values.mean())
        return out

    def to_json(self, interpretable_iou: float = 0.04) -> dict[str, Any]:
        kq, iq = self.best("quantile")
        ki, _ = self.best("iqr")
        units = []
        for u in range(self.n_units):
            units.append(
                {
                    "unit": u,
                    "concept": self.concept_names[int(kq[u])],
                    "iou": float(iq[u]),
                    "threshold": float(self.thresholds[u]),
                    "iqr_concept": self.concept_names[int(ki[u])],
                    "iqr": float(self.iqr[u, ki[u]]),
                    "iqr_iou": float(self.iqr_iou[u, ki[u]]),
                    "iqr_threshold": float(self.iqr_threshold[u, ki[u]]),
                    "top_samples": self.top_samples[u].tolist(),
                }
            )
        return {
            "layer": self.layer,
            "n_samples": self.n_samples,
            "seed": self.seed,
            "quantile": self.quantile,
            "concepts": self.concept_names,
            "concept_fraction": {n: float(f) for n, f in zip(self.concept_names, self.concept_fraction)},
            "summary": self.summary(interpretable_iou),
            "units": units,
            **self.extra,
        }


def _batches(z: Tensor, batch_size: int, progress: Progress) -> Iterator[tuple[int, Tensor]]:
    for lo in range(0, z.shape[0], batch_size):
        yield lo, z[lo : lo + batch_size]
        progress.update(1)


@torch.no_grad()
def dissect(
    model: Any,  # a GANModule (generator contract: generate, sample_z, generator_layers)
    segmenter: Any,  # images [-1,1] -> bool masks [B, K, H, W]; has concept_names
    layer: str | None = None,  # generator layer name; None/"auto" = a middle layer
    n_samples: int = 512,  # generated samples dissected
    batch_size: int = 64,
    quantile: float = 0.01,  # top fraction of each unit's activations that counts as "on"
    iqr_levels: tuple[float, ...] = DEFAULT_IQR_LEVELS,  # top fractions tried by the IQR threshold search
    sketch_capacity: int = 4096,  # quantile sketch size per level per unit
    top_k: int = 8,  # top-activating samples kept per unit
    seed: int = 0,  # seeds the latents (and the sketch)
    mask_shift: int = 0,  # control: score sample i's units against sample i+shift's masks (0 = off)
) -> DissectionResult:
    """Dissect one generator layer against the segmenter's concepts (see module docstring)."""
    if not 0.0 < quantile < 1.0:
        raise ConfigError(f"quantile={quantile} must be in (0, 1) (the top fraction of activations, e.g. 0.01)")
    if n_samples < 1 or batch_size < 1:
        raise ConfigError(f"n_samples={n_samples} and batch_size={batch_size} must be >= 1")
    name = resolve_layer(model, layer)
    module = get_layer(model, name)
    was_training = model.training
    model.eval()
    progress = Progress(2 * -(-n_samples // batch_size), f"dissection {name} (2 passes)", unit="batches")
    try:
        z_all = model.sample_z(n_samples, generator=torch.Generator().manual_seed(seed)).cpu()
        sketch: QuantileSketch | None = None
        top_v = top_i = None
        with capture({"out": module}, detach=False) as rec:
            for lo, z in _batches(z_all, batch_size, progress):  # pass 1: quantiles and top samples
                images = model.generate(z.to(model.device))
                acts = rec["out"].float()
                if sketch is None:
                    sketch = QuantileSketch(acts.shape[1], sketch_capacity, seed=seed)
                sketch.update_maps(upsample_maps(acts, images.shape[-2:]))
                peak = acts.flatten(2).amax(2).T.cpu()  # [U, B]
                idx = torch.arange(lo, lo + z.shape[0]).expand_as(peak)
                cat_v = peak if top_v is None else torch.cat([top_v, peak], 1)
                cat_i = idx if top_i is None else torch.cat([top_i, idx], 1)
                top_v, pos = cat_v.topk(min(top_k, cat_v.shape[1]), dim=1)
                top_i = cat_i.gather(1, pos)
            assert sketch is not None and top_i is not None
            t_q = sketch.quantile(1.0 - quantile)  # [U]
            ladder = sketch.quantile([1.0 - lv for lv in iqr_levels])  # [U, T]
            tally = ConceptTally(torch.cat([t_q[:, None], ladder], 1), len(segmenter.concept_names))
            for _, z in _batches(z_all, batch_size, progress):  # pass 2: counts against the concept masks
                images = model.generate(z.to(model.device))
                acts = upsample_maps(rec["out"].float(), images.shape[-2:])
                masks = segmenter(images)
                if masks.shape[-2:] != images.shape[-2:] or masks.shape[1] != len(segmenter.concept_names):
                    raise ConfigError(
                        f"segmenter returned masks {tuple(masks.shape)}; expected [B, {len(segmenter.concept_names)}, "
                        f"{images.shape[-2]}, {images.shape[-1]}]"
                    )
                if mask_shift:  # chance-level control: same masks, paired with the wrong samples
                    masks = masks.roll(mask_shift, dims=0)
                tally.update(acts, masks)
    finally:
        progress.close()
        model.train(was_training)
    iou = tally.iou()  # [U, 1+T, K]
    best = tally.best_iqr()
    return DissectionResult(
        layer=name,
        concept_names=list(segmenter.concept_names),
        quantile=float(quantile),
        n_samples=int(n_samples),
        seed=int(seed),
        thresholds=t_q,
        iou=iou[:, 0].float(),
        iqr_threshold=best["threshold"],
        iqr=best["iqr"],
        iqr_iou=best["iou"],
        concept_mean_activation=tally.concept_mean_activation(),
        concept_fraction=(tally.area.double() / max(tally.n_pixels, 1)).float(),
        top_samples=top_i,
        latents=z_all,
    )


@torch.no_grad()
def unit_examples(model: Any, result: DissectionResult, units: list[int], k: int = 6) -> tuple[Tensor, Tensor]:
    """Top-activating samples of ``units``: images ``[n, k, C, H, W]`` and "unit on" masks ``[n, k, H, W]``."""
    module = get_layer(model, result.layer)
    was_training = model.training
    model.eval()
    imgs, masks = [], []
    try:
        with capture({"out": module}, detach=False) as rec:
            for u in units:
                ids = result.top_samples[u, :k]
                x = model.generate(result.latents[ids].to(model.device))
                a = upsample_maps(rec["out"][:, u : u + 1].float(), x.shape[-2:])[:, 0]
                imgs.append(x.cpu())
                masks.append((a > result.thresholds[u].to(a.device)).cpu())
    finally:
        model.train(was_training)
    return torch.stack(imgs), torch.stack(masks)
