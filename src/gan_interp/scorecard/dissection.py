"""Scorecard rows of GAN Dissection (issue 12 point 2; spatial insertion: issue 17 point 1).

One entry point, :func:`check_dissection`. Every reading is taken on the reference model, the same
architecture at random init and a planted generator whose answer is known
(:mod:`gan_interp.dissect.planted`), and - for the unit/concept match - next to a **shuffled-mask**
control: the same units scored against the concept masks of *other* samples (``dissect(mask_shift=s)``
for ``s = 1..shuffles``), which keeps every concept's area and spatial prior and breaks only the
pairing of a unit with its own image. Rows:

* top-quantile readout - mean best IoU at each unit's top-1 % threshold;
* IQR readout - IoU at the threshold maximising the information quality ratio, the concept chosen by
  that ratio (Bau et al. 2019 and their code); and the ratio itself;
* ablation - ACE of ablating a concept's top-k units vs k random other units (several draws);
* spatial insertion - the concept's fraction inside vs outside the edited region, and its dependence on
  what the region held before (the context table);
* concepts that fit the data - no hue concept offered for grayscale images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gan_interp.dissect.dissection import DissectionResult, dissect, resolve_layer
from gan_interp.dissect.intervene import ablation_vs_random
from gan_interp.dissect.iou import iqr_from_counts
from gan_interp.dissect.planted import PlantedPosterGAN, PlantedSceneGAN, planted_posters
from gan_interp.dissect.segmenter import ColourSegmenter, build_segmenter, data_has_hues
from gan_interp.dissect.spatial import context_table, insert_values
from gan_interp.scorecard.rows import ScoreRow

PROBE = "dissection"
MARGIN_IOU = 0.02  # an IoU readout passes when the real masks beat every shuffled draw by this much
MARGIN_RATIO = 0.01  # the same for the information quality ratio
PLANTED_MIN = 0.9  # planted readings must reach this fraction of their known answer
MIN_AREA = 0.002  # concepts covering less of the planted / generated pixels are not scored
MIN_SEG_IOU = 0.3  # planted concepts the segmenter itself misses (IoU vs ground truth below this) are not scored
INSERT_MARGIN = 0.01  # insertion: the concept's fraction must rise this much more inside than outside
RANK_BY = "iqr"  # ablation ranks a concept's units by information quality ratio (top-1 % IoU favours small parts)


@dataclass(frozen=True)
class Settings:
    n_samples: int  # generated samples per dissection
    shuffles: int  # shuffled-mask draws
    seg_steps: int  # segmenter training steps (cached per setting)
    seg_width: int
    bank: int  # held-out posters of the planted generator
    ace_units: int  # k of the ablation check
    ace_draws: int  # random k-unit sets
    ace_samples: int  # latents per ablation
    tiles: int  # context table: tiles x tiles regions
    insert_samples: int  # latents per context table


FULL = Settings(256, 3, 400, 16, 256, 4, 5, 64, 4, 32)
TINY = Settings(48, 2, 60, 8, 48, 2, 3, 16, 2, 8)


def _iou_numbers(r: DissectionResult) -> dict[str, float]:
    s = r.summary()
    return {
        "quantile": s["quantile"]["mean_best_iou"],
        "iqr": s["iqr"]["mean_best_iou"],
        "ratio": s["iqr"]["mean_best_ratio"],
    }


def _readouts(model: Any, seg: Any, layer: str, st: Settings, seed: int) -> dict[str, Any]:
    """Dissection with the real masks and with ``st.shuffles`` shuffled-mask draws; the headline numbers."""
    kw = dict(n_samples=st.n_samples, batch_size=64, seed=seed)
    real = dissect(model, seg, layer, **kw)
    shuffled = [_iou_numbers(dissect(model, seg, layer, mask_shift=s, **kw)) for s in range(1, st.shuffles + 1)]
    return {"result": real, "real": _iou_numbers(real), "shuffled": shuffled}


def _cell(read: dict[str, Any], key: str) -> str:
    worst = max(s[key] for s in read["shuffled"])
    return f"real {read['real'][key]:.3f} / shuffled max {worst:.3f}"


def _beats(read: dict[str, Any], key: str, margin: float) -> bool:
    return read["real"][key] >= max(s[key] for s in read["shuffled"]) + margin


@torch.no_grad()
def _known_answers(planted: PlantedPosterGAN, seg: Any, res: DissectionResult) -> dict[int, dict[str, float]]:
    """Per planted concept, computed directly (exact quantiles, dense masks - not the streamed dissection):
    the segmenter's IoU and ratio against the ground truth on the planted samples (what the planted unit,
    which *is* the ground-truth mask, scores at the best threshold), and the IoU of the unit's exact top-``q``
    pixels with the segmenter's mask. Concepts under MIN_AREA or that the segmenter misses (IoU < MIN_SEG_IOU:
    a dissection cannot beat its segmenter) are left out."""
    units = planted.units(res.latents)
    gt = units > 0
    pred = seg(planted.generate(res.latents)).cpu().bool()
    n = float(gt[:, 0].numel())
    out = {}
    for c in range(gt.shape[1]):
        g, p = gt[:, c], pred[:, c]
        top = units[:, c] > torch.quantile(units[:, c].flatten(), 1.0 - res.quantile)
        area = float(g.float().mean())
        if area < MIN_AREA:
            continue
        inter, a_p, a_g = (p & g).sum(), p.sum(), g.sum()
        iou = float(inter) / max(float(a_p + a_g - inter), 1.0)
        if iou < MIN_SEG_IOU:
            continue
        out[c] = {
            "area": area,
            "iou": iou,
            "precision": float(inter) / max(float(a_p), 1.0),  # segmented pixels of c that are c
            "ratio": float(iqr_from_counts(inter, a_p, a_g, n)),
            "quantile": float((top & p).sum()) / max(float((top | p).sum()), 1.0),
        }
    return out


def _planted_scores(res: DissectionResult, known: dict[int, dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Per readout: planted unit ``c``'s reading for concept ``c`` over its known answer, and whether the
    readout labels unit ``c`` with concept ``c``."""
    tables = {"quantile": (res.iou, "quantile"), "iqr": (res.iqr_iou, "iou"), "ratio": (res.iqr, "ratio")}
    out = {}
    for key, (table, answer) in tables.items():
        labels = res.best("quantile" if key == "quantile" else "iqr")[0]
        rel = {res.concept_names[c]: float(table[c, c]) / max(k[answer], 1e-12) for c, k in known.items()}
        right = sum(int(labels[c]) == c for c in known)
        out[key] = {"relative": rel, "mean_relative": sum(rel.values()) / max(len(rel), 1), "labelled": right}
    return out


def _strip(read: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in read.items() if k != "result"}


def _readout_rows(reads: dict[str, Any], planted: dict[str, Any], n_known: int, layer: str) -> list[ScoreRow]:
    specs = (
        ("quantile", "mean best IoU, top-1 % threshold", MARGIN_IOU),
        ("iqr", "mean best IoU at the IQR threshold (concept by ratio)", MARGIN_IOU),
        ("ratio", "mean best information quality ratio I/H", MARGIN_RATIO),
    )
    rows = []
    for key, reading, margin in specs:
        p = planted[key]
        planted_ok = n_known > 0 and p["mean_relative"] >= PLANTED_MIN and p["labelled"] == n_known
        ref_ok = _beats(reads["reference"], key, margin)
        rows.append(
            ScoreRow(
                probe=PROBE,
                reading=f"{reading} ({layer})",
                reference=_cell(reads["reference"], key),
                random_init=_cell(reads["random_init"], key),
                planted=f"{p['mean_relative']:.2f} of known, {p['labelled']}/{n_known} labelled",
                criterion=f"reference real >= every shuffled draw + {margin:g}; planted >= {PLANTED_MIN:g} of the "
                "known answer, every planted unit labelled with its concept",
                passed=bool(ref_ok and planted_ok),
                note="" if ref_ok else "the reference units do not beat the shuffled-mask control by the margin",
                details={
                    "reference": _strip(reads["reference"]),
                    "random_init": _strip(reads["random_init"]),
                    "planted": p,
                },
            )
        )
    return rows


def _matched_concepts(res: DissectionResult) -> list[int]:
    """Concepts covering >= 0.5 % of the generated pixels with at least one interpretable (RANK_BY) unit."""
    k, _ = res.best(RANK_BY)
    ok = res.interpretable(RANK_BY)
    present = [c for c in range(len(res.concept_names)) if float(res.concept_fraction[c]) >= 0.005]
    return [c for c in present if bool((ok & (k == c)).any())]


def _ablations(model: Any, res: DissectionResult, seg: Any, concepts: list[int], k: int, st: Settings, seed: int):
    kw = dict(n_samples=st.ace_samples, batch_size=64, seed=seed + 1)
    return [ablation_vs_random(model, res, seg, c, k, st.ace_draws, RANK_BY, seed, **kw) for c in concepts]


def _ablation_cell(found: list[dict[str, Any]]) -> tuple[str, bool]:
    if not found:
        return "no matched concept", False
    gap = sum(r["ace_top"] - r["ace_random_mean"] for r in found) / len(found)
    below = sum(r["beats_every_random"] for r in found)
    cell = f"top-k minus random ACE {gap:+.4f}; below every draw {below}/{len(found)}"
    return cell, gap < 0 and 2 * below >= len(found)


def _ablation_row(
    models: dict[str, Any], reads: dict[str, Any], known: dict[int, dict[str, float]], seg: Any, st: Settings, seed: int
) -> ScoreRow:
    """Top-k vs random ablation on the reference and random init; on the planted posters, ablating unit ``c``
    must remove the segmented ``c`` pixels that are really ``c`` (its known answer: precision x fraction)."""
    cells, found = {}, {}
    for name in ("reference", "random_init"):
        res = reads[name]["result"]
        found[name] = _ablations(models[name], res, seg, _matched_concepts(res), st.ace_units, st, seed)
        cells[name] = _ablation_cell(found[name])
    res_p = reads["planted"]["result"]
    bg = res_p.concept_names.index("background") if "background" in res_p.concept_names else -1
    scored = [c for c in known if c != bg]  # ablated background pixels take the background colour: no change
    found["planted"] = planted = _ablations(models["planted"], res_p, seg, scored, 1, st, seed)
    for c, r in zip(scored, planted):
        r["known_ace"] = -known[c]["precision"] * r["fraction_before"]
        r["planted_unit_ranked_first"] = r["units"] == [c]
    removed = sum(r["ace_top"] for r in planted) / min(sum(r["known_ace"] for r in planted), -1e-12)
    planted_ok = (
        bool(planted)
        and removed >= PLANTED_MIN
        and all(r["planted_unit_ranked_first"] and r["beats_every_random"] for r in planted)
    )
    return ScoreRow(
        probe=PROBE,
        reading=f"ablation: ACE of a concept's top-{st.ace_units} units (by IQR) vs {st.ace_draws} random unit sets",
        reference=cells["reference"][0],
        random_init=cells["random_init"][0],
        planted=f"{removed:.2f} of the known ACE ({len(planted)} concepts)",
        criterion="reference: mean(top-k ACE - random ACE) < 0 and top-k below every draw for >= half the matched "
        f"concepts; planted: each concept's own unit ranked first and below every random unit, together >= "
        f"{PLANTED_MIN:g} of the known ACE",
        passed=bool(cells["reference"][1] and planted_ok),
        note="ablating any units moves every concept a little: only the difference to random units is evidence; "
        "known ACE = the segmented pixels of the concept that are the concept (nested parts, e.g. letters left "
        "on an ablated title band, can keep the segmenter seeing some of it)",
        details=found,
    )


def _insertion(model: Any, res: DissectionResult, seg: Any, st: Settings, seed: int) -> dict[str, Any] | None:
    """Context table of inserting the best-matched concept (area 0.5 %..50 %, highest unit ratio) at its top-k
    units (twice their top-quantile threshold, :func:`~gan_interp.dissect.spatial.insert_values`), tile by tile."""
    frac = res.concept_fraction
    cands = [c for c in range(len(res.concept_names)) if 0.005 <= float(frac[c]) <= 0.5]
    if not cands:
        return None
    c = max(cands, key=lambda i: float(res.iqr[:, i].max()))
    units = res.units_for(c, st.ace_units, RANK_BY)
    value = insert_values(res, units, c)
    table = context_table(model, res.layer, units, seg, c, value, st.tiles, st.insert_samples, seed=seed + 2)
    n = sum(r["n"] for r in table)
    inside = sum(r["inside_ace"] * r["n"] for r in table) / max(n, 1)
    outside = sum(r["outside_ace"] * r["n"] for r in table) / max(n, 1)
    return {
        "concept": res.concept_names[c],
        "units": units.tolist(),
        "inside_ace": inside,
        "outside_ace": outside,
        "contexts": table,
    }


def _insertion_cell(ins: dict[str, Any] | None) -> tuple[str, bool]:
    if ins is None:
        return "no concept of 0.5-50 % area", False
    by = ", ".join(f"{r['context']} {r['inside_ace']:+.3f}" for r in ins["contexts"][:3])
    cell = f"{ins['concept']}: inside {ins['inside_ace']:+.3f} / outside {ins['outside_ace']:+.3f} (by context: {by})"
    return cell, ins["inside_ace"] >= ins["outside_ace"] + INSERT_MARGIN


def _planted_scene(st: Settings, seed: int) -> tuple[dict[str, Any], bool]:
    """Insert the door units of :class:`PlantedSceneGAN`: the region turns red where it held wall, not sky."""
    scene, seg = PlantedSceneGAN().eval(), ColourSegmenter(texture=False)
    res = dissect(scene, seg, "feat", n_samples=max(st.n_samples, 64), batch_size=64, seed=seed)
    red = seg.concept_names.index("red")
    units = res.units_for(red, 1, "iqr")
    table = context_table(
        scene, "feat", units, seg, red, insert_values(res, units, red), 4, st.insert_samples, seed=seed
    )
    by = {r["context"]: r for r in table}
    ok = (
        units.tolist() == [0]
        and by.get("gray", {}).get("inside_after", 0.0) >= PLANTED_MIN
        and by.get("blue", {}).get("inside_after", 1.0) <= 1 - PLANTED_MIN
        and all(abs(r["outside_ace"]) <= 0.01 for r in table)
    )
    return {"units": units.tolist(), "contexts": table}, bool(ok)


def _insertion_row(models: dict[str, Any], reads: dict[str, Any], seg: Any, st: Settings, seed: int) -> ScoreRow:
    found = {n: _insertion(models[n], reads[n]["result"], seg, st, seed) for n in ("reference", "random_init")}
    cells = {n: _insertion_cell(v) for n, v in found.items()}
    scene, scene_ok = _planted_scene(st, seed)
    by = {r["context"]: r["inside_after"] for r in scene["contexts"]}
    return ScoreRow(
        probe=PROBE,
        reading=f"spatial insertion of a concept's top-{st.ace_units} units, {st.tiles}x{st.tiles} tiles: "
        "concept fraction change inside vs outside the tile",
        reference=cells["reference"][0],
        random_init=cells["random_init"][0],
        planted=f"door on wall {by.get('gray', float('nan')):.2f}, on sky {by.get('blue', float('nan')):.2f}",
        criterion=f"reference: inside change >= outside change + {INSERT_MARGIN:g}; planted scene: a door appears "
        f"(>= {PLANTED_MIN:g} of the tile) where the tile held wall, not where it held sky, nothing outside",
        passed=bool(cells["reference"][1] and scene_ok),
        note="context = the concept covering most of the tile before the edit (the paper's context table)",
        details={**found, "planted_scene": scene},
    )


class _GrayView:
    """A data module's training images as grayscale replicated to RGB (what a gray folder loaded as RGB gives)."""

    channels = 3

    def __init__(self, datamodule: Any) -> None:
        self.datamodule = datamodule

    def images(self, split: str = "train", n: int | None = None) -> torch.Tensor:
        x = self.datamodule.images(split, n)
        return x.mean(1, keepdim=True).expand(-1, 3, -1, -1) if x.shape[1] == 3 else x


def _grayscale_row(dm: Any) -> ScoreRow:
    gray_hues, colour_hues = data_has_hues(_GrayView(dm)), data_has_hues(dm)
    names = ColourSegmenter(hues=gray_hues).concept_names
    return ScoreRow(
        probe=PROBE,
        reading="colour concepts offered for data without masks",
        reference=None,
        random_init=None,
        planted=f"grayscale copy: {', '.join(names)}; colour posters: hues {'yes' if colour_hues else 'no'}",
        criterion="no hue concept for grayscale images (even loaded as RGB); hue concepts for colour images",
        passed=bool(not gray_hues and colour_hues),
        note="masked data (the posters) is segmented into its own concepts; this is the colour segmenter's rule",
        details={"grayscale_hues": gray_hues, "colour_hues": colour_hues},
    )


def check_dissection(ref: Any, rand: Any, dm: Any, *, seed: int = 0, tiny: bool = False) -> list[ScoreRow]:
    """Dissection scorecard rows for a model trained on a masked dataset (``synthetic_posters``).

    ``ref`` the trained model and ``rand`` the same architecture at random init (eval, CPU); ``dm`` their
    set-up data module (its test split, else val, feeds the planted generator); ``tiny``: small sizes for tests.
    """
    st = TINY if tiny else FULL
    seg = build_segmenter("auto", dm, dm.cache_dir, steps=st.seg_steps, width=st.seg_width, seed=seed)
    names = list(dm.concept_names)
    if list(seg.concept_names) != names:
        raise ValueError(f"segmenter concepts {seg.concept_names} differ from the data's {names}")
    layer = resolve_layer(ref, None)
    models = {"reference": ref, "random_init": rand, "planted": planted_posters(dm, st.bank)}
    reads = {n: _readouts(m, seg, layer if n != "planted" else "concepts", st, seed) for n, m in models.items()}
    known = _known_answers(models["planted"], seg, reads["planted"]["result"])
    planted = _planted_scores(reads["planted"]["result"], known)
    rows = _readout_rows(reads, planted, len(known), layer)
    rows.append(_ablation_row(models, reads, known, seg, st, seed))
    rows.append(_insertion_row(models, reads, seg, st, seed))
    rows.append(_grayscale_row(dm))
    return rows
