"""Spatial insertion and ablation: edit a concept's units inside one region of the feature map.

GAN Dissection's signature experiments (Bau et al. 2019, section 4.3): set a concept's top units to a
high value (insert) or to zero (ablate) only inside a chosen region, then measure with the segmenter
how much of the concept appears **inside** vs **outside** the region, and how the effect depends on
what the region held before the edit (a door appears on a wall, not in the sky) - the *context table*.

* a region is a box ``(x0, y0, x1, y1)`` in image pixels (``x1``, ``y1`` exclusive, as in slicing);
  :func:`feature_region` maps it to the feature-map cells whose centres lie inside it, and "inside"
  is measured on the image pixels under those cells (:func:`cells_footprint`), so the edited and the
  measured area are the same;
* :func:`region_effect` - one box, many images: the concept's fraction inside/outside, before/after;
* :func:`context_table` - the feature map cut into ``tiles x tiles`` regions, every (image, tile)
  edited separately and grouped by the concept that covered most of the tile before the edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from gan_interp.dissect.dissection import layer_shapes
from gan_interp.dissect.intervene import edit_units
from gan_interp.errors import ConfigError
from gan_interp.probes.runner import probe_mode

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels (x1, y1 exclusive)


def check_box(box: Any, resolution: int) -> Box:
    """``box`` as four ints with ``0 <= x0 < x1 <= resolution`` (same for y), or a one-line ConfigError."""
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        values = []
    if len(values) != 4 or any(v != int(v) for v in values):
        raise ConfigError(f"box={box!r} must be four integers [x0, y0, x1, y1] in image pixels (x1, y1 exclusive)")
    x0, y0, x1, y1 = (int(v) for v in values)
    if not (0 <= x0 < x1 <= resolution and 0 <= y0 < y1 <= resolution):
        raise ConfigError(
            f"box={[x0, y0, x1, y1]} must satisfy 0 <= x0 < x1 <= {resolution} and 0 <= y0 < y1 <= {resolution} "
            "(image pixels of the generated image)"
        )
    return x0, y0, x1, y1


def feature_region(box: Box, resolution: int, map_size: tuple[int, int]) -> Tensor:
    """Bool ``[h, w]``: feature-map cells whose centre (in image pixels) lies inside ``box``.

    A box smaller than one cell selects the cell holding the box centre, so no region is empty.
    """
    h, w = map_size
    x0, y0, x1, y1 = box
    cy = (torch.arange(h, dtype=torch.float64) + 0.5) * resolution / h
    cx = (torch.arange(w, dtype=torch.float64) + 0.5) * resolution / w
    region = ((cy >= y0) & (cy < y1))[:, None] & ((cx >= x0) & (cx < x1))[None, :]
    if not region.any():
        iy = min(int((y0 + y1) / 2 * h / resolution), h - 1)
        ix = min(int((x0 + x1) / 2 * w / resolution), w - 1)
        region[iy, ix] = True
    return region


def cells_footprint(region: Tensor, resolution: int) -> Tensor:
    """Bool ``[resolution, resolution]``: the image pixels under the cells of a feature-map ``region``."""
    h, w = region.shape
    iy = torch.arange(resolution) * h // resolution
    ix = torch.arange(resolution) * w // resolution
    return region[iy][:, ix]


def map_size(model: Any, layer: str) -> tuple[int, int]:
    """``(h, w)`` of a generator layer's feature map."""
    shape = layer_shapes(model)[layer]
    if len(shape) != 3:
        raise ConfigError(f"layer={layer!r} has output shape {tuple(shape)}; spatial edits need a feature map")
    return int(shape[1]), int(shape[2])


def _fractions(masks: Tensor, concept: int, inside: Tensor) -> tuple[Tensor, Tensor]:
    """Per image: the concept's fraction of the ``inside`` pixels and of the other pixels ``[B]``."""
    m = masks[:, concept].float()
    ins = inside.to(m.device).float()
    n_in, n_out = ins.sum().clamp_min(1), (1 - ins).sum().clamp_min(1)
    return (m * ins).flatten(1).sum(1).cpu() / n_in.cpu(), (m * (1 - ins)).flatten(1).sum(1).cpu() / n_out.cpu()


def _mean(x: list[Tensor]) -> float:
    return float(torch.cat(x).mean()) if x else 0.0


@torch.no_grad()
def region_effect(
    model: Any,  # GANModule
    layer: str,  # generator layer name
    units: Sequence[int] | Tensor,  # the concept's units to edit
    segmenter: Any,  # images -> bool concept masks
    concept: int,  # index into segmenter.concept_names
    box: Box,  # region in image pixels (checked)
    value: float | Tensor = 0.0,  # 0 = ablate; per-unit values = insert
    n_samples: int = 64,
    batch_size: int = 64,
    seed: int = 1,  # latents (paired: the same z before and after)
) -> dict[str, Any]:
    """Concept fraction inside / outside the edited region, before and after (means over images)."""
    box = check_box(box, model.resolution)
    region = feature_region(box, model.resolution, map_size(model, layer))
    inside = cells_footprint(region, model.resolution)
    acc: dict[str, list[Tensor]] = {k: [] for k in ("in_b", "in_a", "out_b", "out_a")}
    with probe_mode(model):  # eval mode; every submodule's flag restored after
        z_all = model.sample_z(n_samples, generator=torch.Generator().manual_seed(seed))
        for lo in range(0, n_samples, batch_size):
            z = z_all[lo : lo + batch_size]
            ib, ob = _fractions(segmenter(model.generate(z)), concept, inside)
            with edit_units(model, layer, units, value, region=region):
                ia, oa = _fractions(segmenter(model.generate(z)), concept, inside)
            for key, v in zip(acc, (ib, ia, ob, oa)):
                acc[key].append(v)
    out = {
        "box": list(box),
        "cells": int(region.sum()),
        "inside_before": _mean(acc["in_b"]),
        "inside_after": _mean(acc["in_a"]),
        "outside_before": _mean(acc["out_b"]),
        "outside_after": _mean(acc["out_a"]),
        "n_samples": int(n_samples),
    }
    out["inside_ace"] = out["inside_after"] - out["inside_before"]
    out["outside_ace"] = out["outside_after"] - out["outside_before"]
    return out


@torch.no_grad()
def edited_images(
    model: Any,  # GANModule
    layer: str,  # generator layer name
    units: Sequence[int] | Tensor,  # units to edit
    box: Box,  # region in image pixels (checked)
    value: float | Tensor = 0.0,  # 0 = ablate; per-unit values = insert
    n: int = 8,  # images
    seed: int = 1,  # their latents
) -> tuple[Tensor, Tensor]:
    """``(before, after)`` images ``[n, C, H, W]`` (CPU, [-1, 1]) of the same latents, the region edited."""
    box = check_box(box, model.resolution)
    region = feature_region(box, model.resolution, map_size(model, layer))
    with probe_mode(model):  # eval mode; every submodule's flag restored after
        z = model.sample_z(n, generator=torch.Generator().manual_seed(seed))
        before = model.generate(z).cpu()
        with edit_units(model, layer, units, value, region=region):
            after = model.generate(z).cpu()
    return before, after


def tile_boxes(resolution: int, h: int, w: int, tiles: int) -> list[Box]:
    """The feature map cut into ``tiles x tiles`` near-equal blocks of cells, as image-pixel boxes."""
    if tiles < 1 or tiles > min(h, w):
        raise ConfigError(f"tiles={tiles} must be between 1 and the feature map side {min(h, w)}")
    ys = [round(i * h / tiles) for i in range(tiles + 1)]
    xs = [round(i * w / tiles) for i in range(tiles + 1)]
    sy, sx = resolution / h, resolution / w
    return [
        (int(xs[j] * sx), int(ys[i] * sy), int(xs[j + 1] * sx), int(ys[i + 1] * sy))
        for i in range(tiles)
        for j in range(tiles)
    ]


@torch.no_grad()
def context_table(
    model: Any,  # GANModule
    layer: str,  # generator layer name
    units: Sequence[int] | Tensor,  # the concept's units to edit
    segmenter: Any,  # images -> bool concept masks (its concept_names name the contexts)
    concept: int,  # the concept inserted / ablated
    value: float | Tensor,  # 0 = ablate; per-unit values = insert
    tiles: int = 4,  # the feature map is cut into tiles x tiles regions, each edited on its own
    n_samples: int = 32,
    batch_size: int = 64,
    seed: int = 1,
) -> list[dict[str, Any]]:
    """One row per context (the concept covering most of a tile before the edit): how many
    (image, tile) pairs had it, and the concept's mean fraction inside the tile before/after."""
    h, w = map_size(model, layer)
    names = list(segmenter.concept_names)
    tally: dict[int, list[list[Tensor]]] = {}  # context -> [before, after, outside change]
    with probe_mode(model):  # eval mode; every submodule's flag restored after
        z_all = model.sample_z(n_samples, generator=torch.Generator().manual_seed(seed))
        for lo in range(0, n_samples, batch_size):
            z = z_all[lo : lo + batch_size]
            masks = segmenter(model.generate(z)).cpu()
            for box in tile_boxes(model.resolution, h, w, tiles):
                region = feature_region(box, model.resolution, (h, w))
                inside = cells_footprint(region, model.resolution)
                context = masks[:, :, inside].float().mean(2).argmax(1)  # [B] majority concept in the tile
                before, out_b = _fractions(masks, concept, inside)
                with edit_units(model, layer, units, value, region=region):
                    after, out_a = _fractions(segmenter(model.generate(z)).cpu(), concept, inside)
                for c in context.unique().tolist():
                    sel = context == c
                    rows = tally.setdefault(int(c), [[], [], []])
                    rows[0].append(before[sel])
                    rows[1].append(after[sel])
                    rows[2].append((out_a - out_b)[sel])
    table = []
    for c in sorted(tally, key=lambda c: -sum(len(t) for t in tally[c][0])):
        b, a, o = (torch.cat(x) for x in tally[c])
        table.append(
            {
                "context": names[c],
                "n": int(len(b)),
                "inside_before": float(b.mean()),
                "inside_after": float(a.mean()),
                "inside_ace": float((a - b).mean()),
                "outside_ace": float(o.mean()),
            }
        )
    return table


INSERT_BASES = ("threshold", "concept_mean")  # what an inserted unit value is a multiple of


def insert_values(result: Any, units: Tensor, concept: int, scale: float = 2.0, basis: str = "threshold") -> Tensor:
    """Per-unit insertion values: ``scale`` x the unit's top-quantile threshold (``basis='threshold'``: the
    level above which the unit counts as on) or x its mean activation over the concept's pixels
    (``'concept_mean'``, what the whole-map insertion of :func:`~gan_interp.dissect.intervene.ace_curve`
    uses). On a briefly trained DCGAN the concept mean inserts almost nothing; twice the threshold does."""
    if scale <= 0:
        raise ConfigError(f"scale={scale} must be > 0 (the inserted value is scale x the {basis})")
    if basis == "threshold":
        return result.thresholds[units] * float(scale)
    if basis == "concept_mean":
        return result.concept_mean_activation[units, concept] * float(scale)
    raise ConfigError(f"basis={basis!r} must be one of {', '.join(INSERT_BASES)}")


def central_box(resolution: int) -> Box:
    """The central quarter of the image: ``(r/4, r/4, 3r/4, 3r/4)``."""
    q = resolution // 4
    return q, q, resolution - q, resolution - q


def spatial_report(
    model: Any,  # GANModule
    result: Any,  # DissectionResult of the layer edited (ranks the units, gives insertion values)
    segmenter: Any,
    concept: str | int,
    box: Box,  # region of the figure and of the inside/outside reading
    n_units: int = 4,  # the concept's top units (by top-quantile IoU) edited
    scale: float = 2.0,  # insertion value = scale x basis (see insert_values)
    tiles: int = 4,  # context table regions per side
    n_samples: int = 32,
    seed: int = 1,
    n_figure: int = 6,  # images in the figure
    basis: str = "threshold",  # insertion value basis: 'threshold' or 'concept_mean' (insert_values)
) -> dict[str, Any]:
    """Insert and ablate ``concept``'s top units inside ``box`` (inside/outside effect), the context tables of
    both edits, and the figure (``"figure"``: before / after insertion / difference, region outlined)."""
    from gan_interp.dissect.figures import insertion_figure

    k = result.concept_index(concept)
    units = result.units_for(k, min(int(n_units), result.n_units))
    value = insert_values(result, units, k, scale, basis)
    kw: dict[str, Any] = dict(n_samples=n_samples, seed=seed)
    report: dict[str, Any] = {"concept": result.concept_names[k], "units": units.tolist(), "value": value.tolist()}
    report["box"] = list(check_box(box, model.resolution))
    for mode, v in (("insert", value), ("ablate", 0.0)):
        report[mode] = region_effect(model, result.layer, units, segmenter, k, box, v, **kw)
        report[mode]["contexts"] = context_table(model, result.layer, units, segmenter, k, v, tiles, **kw)
    before, after = edited_images(model, result.layer, units, box, value, n_figure, seed)
    title = f"insert {report['concept']} (units {report['units']}) in {report['box']}"
    report["figure"] = insertion_figure(before, after, report["box"], title)
    return report
