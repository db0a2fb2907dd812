"""k-GAN vs k independent GANs vs k=1: partition, medoids, member specialisation and metrics.

    python experiments/kgan_baselines/run.py                  # sweep (conf/experiment/kgan_baselines.yaml) + tables
    python experiments/kgan_baselines/run.py --collect-only   # tables from an existing sweep dir
    python experiments/kgan_baselines/run.py trainer.max_epochs=2   # extra overrides go to the sweep

Writes ``results.md`` / ``results.json`` / ``figures/`` next to this file (or ``--results-dir``) and the HTML
review page ``outputs/sweep/report.html``; the sweep itself goes to ``outputs/sweep`` (git-ignored).

Member specialisation (computed here from ``last.ckpt``): each member j generates ``N_SPEC``
images (``generate(z, member=j)``, seeded z) and every image is put into a cell of the model's
final partition with the same power-cell rule that routes real images (``route_images``);
``purity_j`` = fraction of member j's images that land in cell j. A member trained on its own
cell should mostly produce images of that cell; k members trained on all data should spread their
images over all cells (purity near the cell weight 1/k).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from gan_interp.checkpoints import load_checkpoint  # noqa: E402
from gan_interp.report import study  # noqa: E402

HERE = Path(__file__).resolve().parent
N_SPEC = 512  # images per member for the specialisation table
METRIC_COLS = {
    "FID (domain)": "fid",
    "KID (domain)": "kid_mean",
    "MMD²": "mmd2",
    "C2ST acc": "c2st_accuracy",
    "NN ratio": "nn_ratio",
    "TV ratio": "quality_tv_ratio",
}


def variant_of(cfg) -> str:
    if int(cfg.model.k) == 1:
        return "single (k=1)"
    return f"{'independent' if cfg.model.independent else 'partitioned'} (k={int(cfg.model.k)})"


@torch.no_grad()
def specialisation(run_dir: Path, seed: int = 0) -> dict:
    model, _ = study.load_trained(run_dir)
    k = model.k
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(N_SPEC, model.latent_dim, generator=g)
    counts = torch.zeros(k, k)  # [member, cell]
    for j in range(k):
        cells = model.route_images(model.generate(z, member=j))
        counts[j] = torch.bincount(cells, minlength=k).float()
    mix_cells = model.route_images(model.generate(torch.randn(N_SPEC * k, model.latent_dim, generator=g)))
    mix = torch.bincount(mix_cells, minlength=k).float() / mix_cells.numel()
    weights = model.partition.cell_weights.float().cpu()
    frac = counts / counts.sum(1, keepdim=True)
    return {
        "k": k,
        "member_to_cell_fraction": frac.tolist(),
        "purity": frac.diagonal().tolist(),
        "mean_purity": float(frac.diagonal().mean()),
        "mixture_cell_fraction": mix.tolist(),
        "cell_weights": weights.tolist(),
        "mixture_tv_to_cell_weights": float(0.5 * (mix - weights / weights.sum()).abs().sum()),
    }


def partition_history(run_dir: Path) -> list[dict]:
    """Per epoch: cell sizes, OT cost (partition.json) and the share of training rows that changed cell."""
    out, previous = [], None
    for f in sorted((run_dir / "kgan").glob("epoch_*/partition.json")):
        info = json.loads(f.read_text())
        epoch = int(info["epoch"])
        ckpt = run_dir / "checkpoints" / f"epoch_{epoch:03d}.ckpt"
        moved = math.nan
        if ckpt.is_file():
            rows = load_checkpoint(ckpt).get("kgan", {}).get("row_to_member")
            if rows is not None and previous is not None:
                known = (rows >= 0) & (previous >= 0)
                moved = float((rows[known] != previous[known]).float().mean())
            previous = rows
        out.append(
            {
                "epoch": epoch + 1,
                "cell_sizes": info.get("cell_sizes"),
                "ot_cost": info.get("ot_cost", math.nan),
                "rows_moved": moved,
            }
        )
    return out


def medoid_figure(jobs: list[tuple[str, Path]], out: Path) -> None:
    fig, axes = plt.subplots(len(jobs), 4, figsize=(13, 3.4 * len(jobs)), squeeze=False)
    for row, (variant, d) in zip(axes, jobs):
        last = sorted((d / "kgan").glob("epoch_*"))[-1]
        panels = [("cell medoids (real)", last / "cell_medoids.png")] + [
            (f"member {j} samples", last / f"samples_m{j}.png") for j in range(3)
        ]
        for ax, (title, png) in zip(row, panels):
            ax.axis("off")
            if png.is_file():
                ax.imshow(Image.open(png))
                ax.set_title(f"{variant}: {title}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def job_record(d: Path) -> dict:
    """Everything the tables need from one job."""
    job = study.read_job(d)
    probes = study.probe_summaries(job)
    members = probes[max(probes)].get("members", {}) if probes else {}
    return {
        "job": d.name,
        "seed": int(study.resolved_config(d).seed),
        "metrics": job.metric_history,
        "specialisation": specialisation(d),
        "partition": partition_history(d),
        "members_probe": members,
        "fit_seconds": job.final.get("fit_seconds"),
        "g_steps": job.final.get("g_steps"),
    }


def collect(sweep_dir: Path, out: Path) -> None:
    done, failed = study.completed_jobs(sweep_dir)
    variants: dict[str, list[dict]] = {}
    first_job: dict[str, Path] = {}
    for d in study.collecting(done):
        variant = variant_of(study.resolved_config(d))
        variants.setdefault(variant, []).append(job_record(d))
        first_job.setdefault(variant, d)
    metric_rows, spec_rows, part_rows, mat_text = [], [], [], []
    for variant, runs in variants.items():
        hists = [r["metrics"] for r in runs if r["metrics"]]
        row = {
            "variant": variant,
            "seeds": len(runs),
            "G steps": int(runs[0]["g_steps"] or 0),
            "train min": study.mean_sd((r["fit_seconds"] or math.nan) / 60 for r in runs),
        }
        row.update({col: study.mean_sd(h[max(h)].get(key) for h in hists) for col, key in METRIC_COLS.items()})
        mid = {min(h) for h in hists if len(h) >= 2}
        if mid:
            row[f"FID @ep{min(mid) + 1}"] = study.mean_sd(h[min(h)].get("fid") for h in hists if len(h) >= 2)
        metric_rows.append(row)
        specs = [r["specialisation"] for r in runs]
        spec_rows.append(
            {
                "variant": variant,
                "k": specs[0]["k"],
                "purity per member": "; ".join(
                    f"s{r['seed']}: " + " / ".join(f"{p:.2f}" for p in r["specialisation"]["purity"]) for r in runs
                ),
                "mean purity": study.mean_sd(sp["mean_purity"] for sp in specs),
                "chance (1/k)": 1.0 / specs[0]["k"],
                "mixture cells": "; ".join(
                    f"s{r['seed']}: " + " / ".join(f"{p:.2f}" for p in r["specialisation"]["mixture_cell_fraction"])
                    for r in runs
                ),
                "TV(mixture, cell weights)": study.mean_sd(sp["mixture_tv_to_cell_weights"] for sp in specs),
                "member diversity": study.mean_sd(
                    v.get("diversity") for r in runs for v in r["members_probe"].get("members", {}).values()
                ),
            }
        )
        if specs[0]["k"] > 1:
            m = runs[0]["specialisation"]["member_to_cell_fraction"]
            mat_text += [
                f"{variant}, seed {runs[0]['seed']}: rows = member, columns = cell",
                study.md_table(
                    [{"member": j, **{f"cell {c}": v for c, v in enumerate(r)}} for j, r in enumerate(m)],
                    ["member"] + [f"cell {c}" for c in range(len(m))],
                ),
                "",
            ]
            for r in runs:
                parts = r["partition"]
                moved = [
                    p["rows_moved"] for p in parts if p["rows_moved"] is not None and not math.isnan(p["rows_moved"])
                ]
                part_rows.append(
                    {
                        "variant": variant,
                        "seed": r["seed"],
                        "recomputations": len(parts),
                        "cell sizes (last)": " / ".join(map(str, parts[-1]["cell_sizes"] or [])),
                        "OT cost first": parts[0]["ot_cost"],
                        "OT cost last": parts[-1]["ot_cost"],
                        "max rows moved / epoch": max(moved) if moved else math.nan,
                    }
                )
    n_eval = int(study.resolved_config(done[0]).metrics.n)
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    medoid_figure(list(first_job.items()), figs / "medoids_and_members.png")
    metric_cols = ["variant", "seeds", "G steps", "train min", *METRIC_COLS] + sorted(
        {k for r in metric_rows for k in r if k.startswith("FID @")}
    )
    sections = [
        (
            f"Metrics after the last epoch (mean ± sd over seeds; {n_eval} generated vs {n_eval} real 32-px posters; "
            "FID/KID in the domain-autoencoder feature space):",
            study.md_table(metric_rows, metric_cols),
        ),
        (
            f"Member specialisation ({N_SPEC} images per member, cells of the final partition; purity = share of "
            "member j's images in cell j; mixture cells = share of images of the routed mixture in each cell):",
            study.md_table(
                spec_rows,
                [
                    "variant",
                    "k",
                    "purity per member",
                    "mean purity",
                    "chance (1/k)",
                    "mixture cells",
                    "TV(mixture, cell weights)",
                    "member diversity",
                ],
            ),
        ),
        ("Fraction of each member's images in each cell:", "\n".join(mat_text)),
        (
            "Partition over training (balanced power cells of 8x8 pixel features, recomputed every epoch; 'rows moved' "
            "= share of training images whose cell changed since the previous epoch):",
            study.md_table(
                part_rows,
                [
                    "variant",
                    "seed",
                    "recomputations",
                    "cell sizes (last)",
                    "OT cost first",
                    "OT cost last",
                    "max rows moved / epoch",
                ],
            ),
        ),
    ]
    data = {
        "sweep_dir": str(sweep_dir),
        "failed_jobs": failed,
        "variants": variants,
        "tables": {"metrics": metric_rows, "specialisation": spec_rows, "partition": part_rows},
    }
    study.finish_study(out, sweep_dir, "k-GAN vs k independent GANs vs k=1", sections, data)


if __name__ == "__main__":
    study.study_main("kgan_baselines", HERE, collect, __doc__)
