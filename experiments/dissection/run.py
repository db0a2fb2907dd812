"""GAN Dissection experiment: trained vs random-init DCGAN, with vs without Interpretable-GAN training.

    python experiments/dissection/run.py                 # settings in config.yaml
    python experiments/dissection/run.py epochs=2 threads=1 dissection.n_samples=128

Writes ``results.json``, ``results.md`` (the tables quoted in README.md) and ``figures/`` next to
this file; training runs, checkpoints and the cached segmenter go to ``outputs/`` (git-ignored).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict
from torchvision.utils import save_image

from gan_interp.capture import capture
from gan_interp.dissect import figures
from gan_interp.dissect.dissection import DissectionResult, dissect, get_layer, unit_examples
from gan_interp.dissect.intervene import ablate_artifact_units, ablation_vs_random, ace_curve, rank_artifact_units
from gan_interp.dissect.segmenter import build_segmenter
from gan_interp.dissect.spatial import central_box, spatial_report
from gan_interp.models.interpretable import InterpretableRegularizer
from gan_interp.paths import config_dir
from gan_interp.train import build
from gan_interp.wandb_tables import log_study_tables

HERE = Path(__file__).resolve().parent
os.environ.setdefault("WANDB_MODE", "offline")


def compose_train_cfg(overrides: list[str], out: Path, name: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"paths.output_dir={out / 'runs' / name}",
                f"paths.cache_dir={out / 'cache'}",
                f"paths.data_dir={out / 'data'}",
                f"paths.root_dir={out}",
                *overrides,
            ],
        )
    with open_dict(cfg):
        cfg.callbacks.pop("rich_progress_bar", None)
        cfg.trainer.enable_progress_bar = False
        cfg.trainer.enable_model_summary = False
    return cfg


def train_variant(cfg):
    """Train one model; returns (datamodule, trained model, the same model at its initial weights)."""
    datamodule, model, trainer = build(cfg)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)  # build() seeds exactly like this
    initial = hydra.utils.instantiate(cfg.model)
    assert all(
        torch.equal(a, b)
        for a, b in zip(initial.generator.state_dict().values(), model.generator.state_dict().values())
    )
    trainer.fit(model, datamodule=datamodule)
    return datamodule, model.cpu().eval(), initial.eval()


def unit_comparison(a: DissectionResult, b: DissectionResult, method: str = "quantile") -> dict:
    """Per-unit best IoU of model ``a`` vs the same units of model ``b``."""
    _, ia = a.best(method)
    _, ib = b.best(method)
    return {"units_beating": int((ia > ib).sum()), "n_units": int(len(ia)), "mean_diff": float((ia - ib).mean())}


def row(name: str, r: DissectionResult, thr: float, vs: DissectionResult | None) -> dict:
    s = r.summary(thr)
    out = {
        "model": name,
        "layer": r.layer,
        "units": r.n_units,
        "mean_best_iou": s["quantile"]["mean_best_iou"],
        "top10_iou": s["quantile"]["top10_mean_iou"],
        "max_iou": s["quantile"]["max_iou"],
        "n_iou_gt_thr": s["quantile"]["n_interpretable"],
        "iqr_mean_best_iou": s["iqr"]["mean_best_iou"],
        "iqr_top10_iou": s["iqr"]["top10_mean_iou"],
        "iqr_mean_best_ratio": s["iqr"]["mean_best_ratio"],
        "concepts_covered": sum(1 for v in s["quantile"]["units_per_concept"].values() if v > 0),
        "units_per_concept": s["quantile"]["units_per_concept"],
    }
    if vs is not None:
        cmp = unit_comparison(r, vs)
        out["units_beating_random"] = f"{cmp['units_beating']}/{cmp['n_units']}"
        out["mean_gain_vs_random"] = cmp["mean_diff"]
    return out


@torch.no_grad()
def group_separation(model, layer: str, n_concepts: int, n: int = 128, seed: int = 0) -> dict:
    """Fit the Interpretable-GAN filter groups (GMM) on ``n`` samples; mean cosine of each filter map
    with its own group centre vs the other centres (higher gap = more concept-coherent filters)."""
    with capture({"out": get_layer(model, layer)}, detach=False) as rec:
        model.generate(model.sample_z(n, generator=torch.Generator().manual_seed(seed)))
    feats = rec["out"].float()
    reg = InterpretableRegularizer(feats.shape[1], feats.shape[2] * feats.shape[3], n_concepts=n_concepts, seed=seed)
    reg.regroup(feats)
    sim = reg.group_similarity(feats)
    own, other = float(sim["own_group_cos"]), float(sim["other_group_cos"])
    return {"group_cos_own": own, "group_cos_other": other, "group_gap": own - other}


def md_table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


READOUTS = ("mean_best_iou", "iqr_mean_best_iou", "iqr_mean_best_ratio")


def shuffled_control(model, seg, d, seed: int, real: dict[str, DissectionResult]) -> list[dict]:
    """Each readout with the real masks next to ``d.shuffles`` shuffled-mask draws (mask_shift 1..shuffles)."""
    rows = []
    for layer in d.layers:
        kw = dict(n_samples=d.n_samples, batch_size=d.batch_size, quantile=d.quantile, seed=seed)
        draws = [
            row("s", dissect(model, seg, layer, mask_shift=s, **kw), d.interpretable_iou, None)
            for s in range(1, d.shuffles + 1)
        ]
        got = row("plain", real[layer], d.interpretable_iou, None)
        for key in READOUTS:
            worst = max(x[key] for x in draws)
            rows.append(
                {
                    "layer": layer,
                    "readout": key,
                    "real_masks": got[key],
                    "shuffled_draws": ", ".join(f"{x[key]:.3f}" for x in draws),
                    "real_minus_max": got[key] - worst,
                }
            )
    return rows


def ablation_control(model, res: DissectionResult, seg, concepts: list[str], iv, batch_size: int, seed: int) -> list:
    """Ablating each concept's top-k units vs k random other units, ``iv.random_draws`` sets, for both rankings."""
    rows = []
    for concept in concepts:
        for rank_by in ("quantile", "iqr"):
            r = ablation_vs_random(
                model,
                res,
                seg,
                concept,
                iv.control_units,
                iv.random_draws,
                rank_by,
                seed + 4,
                n_samples=iv.n_samples,
                batch_size=batch_size,
                seed=seed + 1,
            )
            r["random_min"], r["random_max"] = min(r["ace_random"]), max(r["ace_random"])
            rows.append(r)
    return rows


def insertion_study(model, res: DissectionResult, seg, ins, seed: int, figs: Path) -> tuple[list, list]:
    """Spatial insertion/ablation of the top concepts' units in a box, their context tables and figures."""
    k, _ = res.best("quantile")
    ok = res.interpretable("quantile")
    top = res.iou.max(dim=0).values
    frac = res.concept_fraction.tolist()
    ranked = sorted(  # concepts of 0-50 % area (not the dominant one): most matched units first, then top IoU
        (i for i in range(len(frac)) if 0 < frac[i] <= 0.5), key=lambda i: (-int(((k == i) & ok).sum()), -top[i])
    )
    concepts = [res.concept_names[i] for i in ranked[: ins.concepts]]
    box = list(ins.box) if ins.box else list(central_box(model.resolution))
    rows, contexts = [], []
    for concept in concepts:
        rep = spatial_report(
            model, res, seg, concept, box, ins.units, ins.scale, ins.tiles, ins.n_samples, seed + 6, basis=ins.basis
        )
        save_image(rep.pop("figure"), figs / f"insertion_{concept}.png")
        for mode in ("insert", "ablate"):
            r = rep[mode]
            rows.append(
                {
                    "concept": concept,
                    "mode": mode,
                    "units": rep["units"],
                    "box": rep["box"],
                    **{c: r[c] for c in ("inside_before", "inside_after", "inside_ace", "outside_ace")},
                }
            )
            contexts += [{"concept": concept, "mode": mode, **c} for c in r["contexts"]]
    return rows, contexts


def main(argv: list[str]) -> None:
    cfg = OmegaConf.merge(OmegaConf.load(HERE / "config.yaml"), OmegaConf.from_dotlist(argv))
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    out = Path(cfg.out_dir) if cfg.out_dir else HERE / "outputs"
    results_dir = Path(cfg.results_dir) if cfg.results_dir else HERE
    figs = results_dir / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    base = [*cfg.train_overrides, f"trainer.max_epochs={cfg.epochs}", f"seed={cfg.seed}"]

    models = {}
    for variant, extra in (("plain", []), ("interpretable", list(cfg.interpretable_overrides))):
        t = time.perf_counter()
        datamodule, trained, initial = train_variant(compose_train_cfg([*base, *extra], out, variant))
        timings[f"train_{variant}_s"] = time.perf_counter() - t
        models[variant] = trained
        if variant == "plain":
            models["random_init"] = initial  # identical initial weights for both variants (same seed)
            dm = datamodule

    t = time.perf_counter()
    seg = build_segmenter(
        "trained", dm, out / "cache", steps=cfg.segmenter.steps, width=cfg.segmenter.width, seed=cfg.seed
    )
    timings["segmenter_s"] = time.perf_counter() - t

    d = cfg.dissection
    results: dict[str, dict[str, DissectionResult]] = {}
    t = time.perf_counter()
    for name, model in models.items():
        results[name] = {
            layer: dissect(
                model, seg, layer, n_samples=d.n_samples, batch_size=d.batch_size, quantile=d.quantile, seed=cfg.seed
            )
            for layer in d.layers
        }
    # control: the trained model's units scored against the masks of *other* samples (chance level)
    results["plain_shuffled_masks"] = {
        layer: dissect(
            models["plain"],
            seg,
            layer,
            n_samples=d.n_samples,
            batch_size=d.batch_size,
            quantile=d.quantile,
            seed=cfg.seed,
            mask_shift=1,
        )
        for layer in d.layers
    }
    timings["dissection_s"] = time.perf_counter() - t

    rows = []
    for layer in d.layers:
        for name in ("random_init", "plain", "interpretable", "plain_shuffled_masks"):
            vs = results["random_init"][layer] if name != "random_init" else None
            rows.append(row(name, results[name][layer], d.interpretable_iou, vs))

    n_concepts = int(next(o.split("=")[1] for o in cfg.interpretable_overrides if "n_concepts" in o))
    layer_i = next(o.split("=")[1] for o in cfg.interpretable_overrides if "interpretable.layer" in o)
    groups = [
        {"model": name, "layer": layer_i, **group_separation(models[name], layer_i, n_concepts, seed=cfg.seed + 7)}
        for name in ("random_init", "plain", "interpretable")
    ]

    # interventions on the plain trained model
    iv = cfg.interventions
    t = time.perf_counter()
    plain, res = models["plain"], results["plain"][iv.layer]
    ace_rows = []
    concepts = [c for i, c in enumerate(res.concept_names) if float(res.concept_fraction[i]) >= iv.min_fraction]
    for concept in concepts:
        for mode in ("ablate", "insert"):
            ace_rows += ace_curve(
                plain,
                res,
                seg,
                concept,
                list(iv.n_units),
                mode,
                n_samples=iv.n_samples,
                batch_size=d.batch_size,
                seed=cfg.seed + 1,
            )
    order, corr = rank_artifact_units(plain, iv.layer, iv.artifact_samples, d.batch_size, seed=cfg.seed + 2)
    real = dm.images("val", iv.artifact_samples)
    gen = torch.Generator().manual_seed(cfg.seed + 5)
    art_rows = []
    for n in iv.artifact_units:
        for kind, units in (("artifact", order[:n]), ("random", torch.randperm(res.n_units, generator=gen)[:n])):
            r = ablate_artifact_units(
                plain, iv.layer, units, real, n_samples=iv.artifact_samples, batch_size=d.batch_size, seed=cfg.seed + 3
            )
            art_rows.append({"units": kind, "n": n, **{k: v for k, v in r.items() if k != "n_units"}})
    control_rows = ablation_control(plain, res, seg, concepts, iv, d.batch_size, cfg.seed)
    timings["interventions_s"] = time.perf_counter() - t
    t = time.perf_counter()
    shuffle_rows = shuffled_control(plain, seg, d, cfg.seed, results["plain"])
    ins = cfg.insertion
    insert_rows, context_rows = insertion_study(plain, results["plain"][ins.layer], seg, ins, cfg.seed, figs)
    timings["controls_insertion_s"] = time.perf_counter() - t

    # figures
    for name in ("plain", "interpretable", "random_init"):
        r = results[name][iv.layer]
        save_image(figures.summary_chart(r, d.interpretable_iou), figs / f"summary_{name}_{iv.layer}.png")
        k, iou = r.best()
        best = iou.argsort(descending=True)[:6].tolist()
        imgs, masks = unit_examples(models[name], r, best, 6)
        labels = [f"u{u} {r.concept_names[int(k[u])]}\nIoU {float(iou[u]):.2f}" for u in best]
        save_image(figures.unit_strips(imgs, masks, labels), figs / f"strips_{name}_{iv.layer}.png")
    save_image(figures.ace_chart([a for a in ace_rows if a["concept"] in concepts[:3]]), figs / "ace_plain.png")
    timings["total_s"] = time.perf_counter() - t0

    ablate4 = [a for a in ace_rows if a["mode"] == "ablate" and a["n_units"] == 4]
    summary = {
        "ablate_top4_mean_ace": sum(a["ace"] for a in ablate4) / max(len(ablate4), 1),
        "ablate_top4_concepts_lowered": f"{sum(a['ace'] < 0 for a in ablate4)}/{len(ablate4)}",
    }
    payload = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "segmenter": seg.metrics.get("val"),
        "dissection": rows,
        "groups": groups,
        "ace": ace_rows,
        "artifacts": art_rows,
        "readout_vs_shuffled": shuffle_rows,
        "ablation_vs_random": control_rows,
        "insertion": insert_rows,
        "insertion_contexts": context_rows,
        "summary": summary,
        "timings": timings,
        "torch_threads": torch.get_num_threads(),
    }
    (results_dir / "results.json").write_text(json.dumps(payload, indent=1, default=str))

    cols = [
        "model",
        "layer",
        "units",
        "mean_best_iou",
        "top10_iou",
        "max_iou",
        "n_iou_gt_thr",
        "concepts_covered",
        "units_beating_random",
        "mean_gain_vs_random",
        "iqr_mean_best_iou",
        "iqr_top10_iou",
        "iqr_mean_best_ratio",
    ]
    ace_cols = ["concept", "mode", "n_units", "fraction_before", "fraction_after", "ace", "ace_sem"]
    art_cols = ["units", "n", "critic_before", "critic_after", "swd_before", "swd_after"]
    md = [
        f"Dissection (IoU at the top-{d.quantile:g} quantile threshold unless 'iqr'; {d.n_samples} samples; "
        f"'n_iou_gt_thr' = units with best IoU > {d.interpretable_iou}):\n",
        md_table(rows, cols),
        f"\nFilter groups (GMM, C={n_concepts}) fitted on 128 samples of {layer_i}: cosine of each filter map with "
        "its own group centre vs the other centres:\n",
        md_table(groups, ["model", "layer", "group_cos_own", "group_cos_other", "group_gap"]),
        "\nAverage causal effect on the plain model, layer " + iv.layer + f" ({iv.n_samples} fresh latents):\n",
        md_table(ace_rows, ace_cols),
        f"\nAblating top-4 units: mean ACE over concepts {summary['ablate_top4_mean_ace']:.4f}; "
        f"fraction lowered for {summary['ablate_top4_concepts_lowered']} concepts.\n",
        f"\nEach readout with the real masks vs {d.shuffles} shuffled-mask draws (plain model):\n",
        md_table(shuffle_rows, ["layer", "readout", "real_masks", "shuffled_draws", "real_minus_max"]),
        f"\nAblating each concept's top-{iv.control_units} units vs {iv.control_units} random other units "
        f"({iv.random_draws} draws), layer {iv.layer}:\n",
        md_table(
            control_rows,
            [
                "concept",
                "rank_by",
                "units",
                "fraction_before",
                "ace_top",
                "ace_random_mean",
                "random_min",
                "random_max",
                "beats_every_random",
            ],
        ),
        f"\nSpatial insertion / ablation in a box, layer {ins.layer} ({ins.n_samples} latents): the concept's "
        "fraction inside vs outside the edited region:\n",
        md_table(
            insert_rows,
            ["concept", "mode", "units", "box", "inside_before", "inside_after", "inside_ace", "outside_ace"],
        ),
        f"\nContext table ({ins.tiles}x{ins.tiles} tiles, each edited alone; context = the concept covering most "
        "of the tile before the edit):\n",
        md_table(
            context_rows,
            ["concept", "mode", "context", "n", "inside_before", "inside_after", "inside_ace", "outside_ace"],
        ),
        "\nArtifact units (ranked by correlation with a low D score) vs random units, ablated:\n",
        md_table(art_rows, art_cols),
        "\nSegmenter on held-out real posters: " + json.dumps(seg.metrics.get("val"), default=lambda v: round(v, 3)),
        "\nTimings (s): " + json.dumps({k: round(v, 1) for k, v in timings.items()}),
    ]
    (results_dir / "results.md").write_text("\n".join(md) + "\n")
    log_study_tables(out, results_dir / "results.md", "dissection")  # a W&B run of job_type study in outputs/wandb/
    print("\n".join(md))


if __name__ == "__main__":
    main(sys.argv[1:])
