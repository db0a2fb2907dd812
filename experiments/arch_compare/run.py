"""Architecture comparison: DCGAN vs StyleGAN-lite vs k-GAN, metrics and probes side by side.

    python experiments/arch_compare/run.py                  # sweep (conf/experiment/arch_compare.yaml) + tables
    python experiments/arch_compare/run.py --collect-only   # tables from an existing sweep dir
    python experiments/arch_compare/run.py trainer.max_epochs=2   # extra overrides go to the sweep

Writes ``results.md`` / ``results.json`` / ``figures/`` next to this file (or ``--results-dir``) and the HTML
review page ``outputs/sweep/report.html``; the sweep itself goes to ``outputs/sweep`` (git-ignored).
"""

from __future__ import annotations

import math
from pathlib import Path

import hydra
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from gan_interp.report import study  # noqa: E402

HERE = Path(__file__).resolve().parent
MODELS = ("dcgan", "stylegan_lite", "kgan")

METRIC_COLS = {  # results column -> metrics key
    "FID (domain)": "fid",
    "KID (domain)": "kid_mean",
    "MMD²": "mmd2",
    "C2ST acc": "c2st_accuracy",
    "NN ratio": "nn_ratio",
    "TV ratio": "quality_tv_ratio",
    "sharpness ratio": "quality_laplacian_var_ratio",
}


def parameter_counts(run_dir: Path) -> dict[str, float]:
    model = hydra.utils.instantiate(study.resolved_config(run_dir).model)  # the counts need no weights
    if model.n_members:  # k-GAN: the generators / critics of all k members
        g = sum(p.numel() for m in model.members for p in m.generator.parameters())
        d = sum(p.numel() for m in model.members for p in m.discriminator.parameters())
    else:
        g = sum(p.numel() for p in model.generator.parameters())
        d = sum(p.numel() for p in model.discriminator.parameters())
    return {"G params (M)": g / 1e6, "D params (M)": d / 1e6}


def sample_figure(jobs: dict[str, list[Path]], epoch: int, out: Path) -> None:
    fig, axes = plt.subplots(1, len(jobs), figsize=(4 * len(jobs), 4.3))
    for ax, (model, dirs) in zip(axes, jobs.items()):
        png = dirs[0] / "samples" / f"epoch_{epoch:03d}.png"
        if png.is_file():
            ax.imshow(Image.open(png))
        ax.set_title(f"{model} (seed 0, epoch {epoch + 1})")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def curve_figure(per_model: dict[str, list[dict[int, dict[str, float]]]], out: Path) -> None:
    keys = ("fid", "mmd2", "c2st_accuracy")
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2))
    for ax, key in zip(axes, keys):
        for model, runs in per_model.items():
            for i, hist in enumerate(runs):
                epochs = sorted(hist)
                ax.plot(
                    [e + 1 for e in epochs],
                    [hist[e].get(key, math.nan) for e in epochs],
                    "o-",
                    color=f"C{MODELS.index(model) if model in MODELS else 3}",
                    alpha=0.8,
                    label=model if i == 0 else None,
                )
        ax.set_xlabel("epoch")
        ax.set_title(key)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def collect(sweep_dir: Path, out: Path) -> None:
    per_model: dict[str, list[Path]] = {}
    done, failed = study.completed_jobs(sweep_dir)
    for job in done:
        per_model.setdefault(study.resolved_config(job).model.name, []).append(job)
    data: dict = {"sweep_dir": str(sweep_dir), "failed_jobs": failed, "models": {}}
    metric_rows, probe_rows, half_rows = [], [], []
    histories: dict[str, list] = {}
    last_epoch = 0
    for model, dirs in per_model.items():
        runs = []
        for d in study.collecting(dirs, f"collect {model} jobs"):
            cfg = study.resolved_config(d)
            job = study.read_job(d)
            probes = study.probe_summaries(job)
            last = max(probes) if probes else None
            last_epoch = max(last_epoch, int(cfg.trainer.max_epochs) - 1)
            runs.append(
                {
                    "job": d.name,
                    "seed": int(cfg.seed),
                    "fit_seconds": job.final.get("fit_seconds"),
                    "g_steps": job.final.get("g_steps"),
                    "metrics": job.metric_history,
                    **parameter_counts(d),
                    "probes": study.probe_readings(probes[last]) if last is not None else {},
                }
            )
        histories[model] = [r["metrics"] for r in runs]
        data["models"][model] = runs
        row = {"model": model, "seeds": len(runs)}
        for key in ("G params (M)", "D params (M)"):
            row[key] = runs[0][key]
        row["G steps"] = int(study.mean_sd(r["g_steps"] for r in runs)[0])
        row["train min"] = study.mean_sd((r["fit_seconds"] or math.nan) / 60 for r in runs)
        for col, key in METRIC_COLS.items():
            row[col] = study.mean_sd(r["metrics"][max(r["metrics"])].get(key) for r in runs if r["metrics"])
        metric_rows.append(row)
        half = {"model": model}
        for col, key in (("FID", "fid"), ("MMD²", "mmd2"), ("C2ST acc", "c2st_accuracy")):
            for r in runs:
                epochs = sorted(r["metrics"])
                if len(epochs) >= 2:
                    half.setdefault(f"{col} @ep{epochs[0] + 1}", []).append(r["metrics"][epochs[0]].get(key))
                    half.setdefault(f"{col} @ep{epochs[-1] + 1}", []).append(r["metrics"][epochs[-1]].get(key))
        half_rows.append({k: (study.mean_sd(v) if isinstance(v, list) else v) for k, v in half.items()})
        probe_keys = list(runs[0]["probes"])
        probe_rows.append({"model": model, **{k: study.mean_sd(r["probes"].get(k) for r in runs) for k in probe_keys}})
    n_eval = int(study.resolved_config(done[0]).metrics.n)
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    sample_figure(per_model, last_epoch, figs / "samples_final.png")
    curve_figure(histories, figs / "metrics_curves.png")

    metric_cols = ["model", "seeds", "G params (M)", "D params (M)", "G steps", "train min", *METRIC_COLS]
    probe_keys = [k for k in probe_rows[0] if k != "model"] if probe_rows else []
    probe_t = [{"probe reading": k, **{r["model"]: r.get(k, "") for r in probe_rows}} for k in probe_keys]
    half_cols = ["model"] + sorted(
        {k for r in half_rows for k in r if k != "model"}, key=lambda k: (k.split(" @")[0], int(k.split("@ep")[1]))
    )
    sections = [
        (
            f"Final metrics (after epoch {last_epoch + 1}; mean ± sd over seeds; {n_eval} generated vs {n_eval} real "
            "32-px posters; FID/KID in the domain-autoencoder feature space, not Inception):",
            study.md_table(metric_rows, metric_cols),
        ),
        ("Half-way vs end of training (mean ± sd over seeds):", study.md_table(half_rows, half_cols)),
        (
            "Probe readings after the last epoch (mean ± sd over seeds; saliency/<concept> = share of the critic's "
            "SmoothGrad mass on the concept's pixels / the concept's share of the area, on real posters):",
            study.md_table(probe_t, ["probe reading", *per_model]),
        ),
    ]
    data["tables"] = {"final_metrics": metric_rows, "half_way": half_rows, "probes": probe_t}
    study.finish_study(out, sweep_dir, "Architecture comparison: DCGAN vs StyleGAN-lite vs k-GAN", sections, data)


if __name__ == "__main__":
    study.study_main("arch_compare", HERE, collect, __doc__)
