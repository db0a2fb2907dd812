"""The ``dissection`` probe: GAN Dissection of one generator layer, with interventions.

The dissection itself lives in :mod:`gan_interp.dissect`; it is imported when the probe runs, so
importing :mod:`gan_interp.probes` does not import it.

Writes into ``<out_dir>/dissection/``:

* ``dissection.json`` - per-unit best concept, IoU (top-quantile threshold) and the IQR-threshold
  result, concept pixel fractions, headline summary;
* ``summary.png`` - units per concept and the sorted best-IoU chart;
* ``unit_strips.png`` - the top-activating samples of the best units, unit region lit;
* ``ace.json`` / ``ace.png`` - average causal effect of ablating/inserting each top concept's units;
* ``artifacts.json`` - (``artifact_units > 0``) quality before/after ablating artifact units;
* ``insertion.json`` / ``insertion_<concept>.png`` - (``insert_concepts > 0``) spatial insertion and
  ablation of each top concept's units inside ``insert_box`` (concept fraction inside vs outside the
  region) and the context table (:mod:`gan_interp.dissect.spatial`); the figure shows before / after /
  difference with the region outlined.
"""

from __future__ import annotations

from typing import Any

import torch

from gan_interp.errors import ConfigError
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.registry import register_probe


@register_probe("dissection", requires=("generator_layers",))
def dissection_probe(
    ctx: ProbeContext,
    layer: str | None = None,  # generator layer; null = a middle layer (side ~ resolution / 4)
    n_samples: int = 256,  # generated samples dissected
    batch_size: int = 64,
    quantile: float = 0.01,  # top fraction of each unit's activations counted as "on"
    segmenter: Any = "auto",  # auto | trained | colour | {_target_: ...}
    segmenter_steps: int = 400,  # training steps of the project's own segmenter (cached)
    segmenter_width: int = 16,
    interpretable_iou: float = 0.04,  # a unit "matches" a concept above this IoU
    strip_units: int = 8,  # rows in unit_strips.png (best units)
    strip_k: int = 6,  # samples per row
    ace_concepts: int = 2,  # intervene on this many concepts (most matched units first); 0 = off
    ace_units: tuple[int, ...] = (1, 2, 4),  # top-n units ablated/inserted
    ace_samples: int = 64,
    artifact_units: int = 0,  # ablate this many artifact units (0 = off)
    artifact_samples: int = 128,
    insert_concepts: int = 0,  # spatial insertion/ablation + context table for this many concepts (0 = off)
    insert_units: int = 4,  # top units of the concept edited
    insert_box: list[int] | None = None,  # [x0, y0, x1, y1] image pixels; null = the central quarter
    insert_scale: float = 2.0,  # inserted value = scale x insert_basis
    insert_basis: str = "threshold",  # 'threshold' (the unit's top-quantile level) or 'concept_mean'
    insert_tiles: int = 4,  # context table: the feature map cut into tiles x tiles regions
    insert_samples: int = 32,
) -> dict:
    """Dissect ``layer`` against the segmenter's concepts; figures + JSON; returns the summary."""
    from gan_interp.dissect import figures
    from gan_interp.dissect.dissection import dissect, unit_examples
    from gan_interp.dissect.intervene import ablate_artifact_units, ace_curve, rank_artifact_units
    from gan_interp.dissect.segmenter import build_segmenter

    model, datamodule, out, seed = ctx.model, ctx.datamodule, ctx.out, ctx.seed
    if insert_concepts > 0:  # bad insertion options fail before the (slow) dissection
        from gan_interp.dissect.spatial import central_box, check_box

        insert_box = list(
            check_box(insert_box if insert_box is not None else central_box(model.resolution), model.resolution)
        )
        if insert_scale <= 0 or insert_basis not in ("threshold", "concept_mean"):
            raise ConfigError(
                f"probes.dissection.insert_scale={insert_scale} must be > 0 and insert_basis={insert_basis!r} "
                "one of threshold, concept_mean"
            )
    cache_dir = getattr(datamodule, "cache_dir", None) if datamodule is not None else None
    seg = build_segmenter(segmenter, datamodule, cache_dir, steps=segmenter_steps, width=segmenter_width, seed=seed)
    if hasattr(seg, "to"):
        seg.to(model.device)
    result = dissect(model, seg, layer, n_samples=n_samples, batch_size=batch_size, quantile=quantile, seed=seed)
    payload = result.to_json(interpretable_iou)
    payload["segmenter"] = {
        "type": type(seg).__name__,
        **{k: v for k, v in getattr(seg, "metrics", {}).items() if k != "settings"},
    }
    out.json("dissection", payload)
    out.image("summary", figures.summary_chart(result, interpretable_iou), caption=f"dissection of {result.layer}")

    k, iou = result.best("quantile")
    best_units = iou.argsort(descending=True)[: min(strip_units, result.n_units)].tolist()
    if best_units:
        imgs, masks = unit_examples(model, result, best_units, strip_k)
        labels = [f"u{u} {result.concept_names[int(k[u])]}\nIoU {float(iou[u]):.2f}" for u in best_units]
        out.image("unit_strips", figures.unit_strips(imgs, masks, labels), caption="top-activating samples")

    summary: dict[str, Any] = {"layer": result.layer, "n_units": result.n_units, **payload["summary"]}
    # concepts present in the samples, most matched units first (ties: highest unit IoU)
    matched = payload["summary"]["quantile"]["units_per_concept"]
    top_iou = result.iou.max(dim=0).values
    present = [i for i, f in enumerate(result.concept_fraction.tolist()) if f > 0]
    ranked = [
        result.concept_names[i]
        for i in sorted(present, key=lambda i: (-matched[result.concept_names[i]], -float(top_iou[i])))
    ]
    if ace_concepts > 0:
        concepts = ranked[:ace_concepts]
        rows: list[dict] = []
        for concept in concepts:
            for mode in ("ablate", "insert"):
                rows += ace_curve(
                    model,
                    result,
                    seg,
                    concept,
                    [n for n in ace_units if n <= result.n_units],
                    mode,
                    n_samples=ace_samples,
                    batch_size=batch_size,
                    seed=seed + 1,
                )
        out.json("ace", rows)
        if rows:
            out.image("ace", figures.ace_chart(rows), caption="average causal effect")
        summary["ace"] = {f"{r['mode']}_{r['concept']}_top{r['n_units']}": r["ace"] for r in rows}
    if artifact_units > 0:
        order, corr = rank_artifact_units(model, result.layer, artifact_samples, batch_size, seed=seed + 2)
        units = order[:artifact_units]
        real = datamodule.images("val", artifact_samples) if datamodule is not None else None
        art = ablate_artifact_units(
            model, result.layer, units, real, n_samples=artifact_samples, batch_size=batch_size, seed=seed + 3
        )
        art.update(units=units.tolist(), correlation=corr[units].tolist())
        out.json("artifacts", art)
        summary["artifacts"] = {k2: v for k2, v in art.items() if k2 not in ("units", "correlation")}
    if insert_concepts > 0:
        from gan_interp.dissect.spatial import spatial_report

        reports = [
            spatial_report(
                model,
                result,
                seg,
                concept,
                insert_box,
                insert_units,
                insert_scale,
                insert_tiles,
                insert_samples,
                seed + 4,
                basis=insert_basis,
            )
            for concept in ranked[:insert_concepts]
        ]
        for rep in reports:
            figure = rep.pop("figure")
            out.image(f"insertion_{rep['concept']}", figure, caption=f"insert {rep['concept']} in {rep['box']}")
        out.json("insertion", reports)
        summary["insertion"] = {
            r["concept"]: {m: {k: r[m][k] for k in ("inside_ace", "outside_ace")} for m in ("insert", "ablate")}
            for r in reports
        }
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return summary
