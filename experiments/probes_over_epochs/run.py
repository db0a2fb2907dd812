"""Probes over training epochs: how a DCGAN's probe readings and metrics move while it trains.

    python experiments/probes_over_epochs/run.py                  # sweep (conf/experiment/<this>.yaml) + tables
    python experiments/probes_over_epochs/run.py --collect-only   # tables from an existing sweep dir
    python experiments/probes_over_epochs/run.py trainer.max_epochs=3   # extra overrides go to the sweep

Per epoch, from the files the ProbeCallback / MetricsCallback wrote during training: metrics
(FID/KID in the domain feature space, MMD², C2ST, NN ratio) and the scalar probe readings of
:func:`gan_interp.report.study.probe_readings`. Computed here from the per-epoch checkpoints: linear CKA
between each layer at epoch e and the same layer of the final model (generator on 256 fixed
latents, critic on 256 fixed held-out real posters), i.e. when each layer settles (Raghu et al.
2017 report bottom-up convergence for classifiers; this measures it for G and D).

Writes ``results.md`` / ``results.json`` / ``figures/`` next to this file (or ``--results-dir``) and the HTML
review page ``outputs/sweep/report.html``; the sweep itself goes to ``outputs/sweep`` (git-ignored).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import hydra  # noqa: E402
import lightning as L  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from gan_interp.probes.activations import cka_across_models  # noqa: E402
from gan_interp.report import study  # noqa: E402

HERE = Path(__file__).resolve().parent
N_CKA = 256
METRIC_COLS = {
    "FID": "fid",
    "MMD²": "mmd2",
    "C2ST acc": "c2st_accuracy",
    "NN ratio": "nn_ratio",
    "sharpness ratio": "quality_laplacian_var_ratio",
}
PROBE_COLS = (
    "saliency/figure",
    "saliency/letters",
    "saliency/stripes",
    "saliency/frame",
    "SeFa effect / random",
    "GANSpace effect / random",
    "GANSpace top-4 EVR",
    "z-dim change (mean)",
    "NN dist gen/val",
    "D filters neutral share",
)


@torch.no_grad()
def cka_to_final(run_dir: Path) -> dict[int, dict[str, float]]:
    """``{epoch: {"G.<layer>" | "D.<layer>": CKA(layer at epoch, same layer at the last epoch)}}``; epoch -1 = init."""
    ckpts = sorted((run_dir / "checkpoints").glob("epoch_*.ckpt"))
    final, datamodule = study.load_trained(run_dir, ckpts[-1].name)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(N_CKA, final.latent_dim, generator=g)
    ds = datamodule.dataset("val") if len(datamodule.dataset("val")) >= 64 else datamodule.dataset("train")
    x = ds.__getitems__(list(range(min(N_CKA, len(ds)))))["image"]
    out = {}
    cfg = study.resolved_config(run_dir)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)  # the initial weights, seeded as build() does
    initial = hydra.utils.instantiate(cfg.model).eval()
    epoch_of = lambda ckpt: int(ckpt.stem.split("_")[1])  # noqa: E731

    def models():  # (epoch, model), loaded one at a time; the final model is already in memory
        yield -1, initial
        for ckpt in ckpts[:-1]:
            yield epoch_of(ckpt), study.load_trained(run_dir, ckpt.name)[0]
        yield epoch_of(ckpts[-1]), final

    for epoch, model in models():
        row = {}
        for side, inputs, tag in (("generator", z, "G"), ("discriminator", x, "D")):
            mat, rows, cols = cka_across_models(model, final, inputs, side=side)
            row.update(
                {f"{tag}.{name}": float(mat[i, cols.index(name)]) for i, name in enumerate(rows) if name in cols}
            )
        out[epoch] = row
    return out


def curves_figure(
    per_epoch: dict[int, dict[str, tuple[float, float]]], keys: list[str], out: Path, ncols: int = 4
) -> None:
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.8 * nrows), squeeze=False)
    epochs = sorted(per_epoch)
    for ax, key in zip(axes.flat, keys):
        m = [per_epoch[e].get(key, (math.nan, math.nan))[0] for e in epochs]
        s = [per_epoch[e].get(key, (math.nan, math.nan))[1] for e in epochs]
        ax.errorbar([e + 1 for e in epochs], m, yerr=s, fmt="o-", ms=3, capsize=2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def cka_figure(
    per_epoch: dict[int, dict[str, tuple[float, float]]],
    init: dict[str, tuple[float, float]],
    layers: list[str],
    out: Path,
) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    epochs = sorted(per_epoch)
    for ax, side in zip(axes, ("G", "D")):
        for name in [n for n in layers if n.startswith(side + ".")]:
            ys = [init[f"CKA {name}"][0]] + [per_epoch[e][f"CKA {name}"][0] for e in epochs]
            ax.plot([0] + [e + 1 for e in epochs], ys, "o-", ms=3, label=name[2:])
        ax.set_title(f"{side}: CKA of each layer to the final model")
        ax.set_xlabel("epoch (0 = initialisation)")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def collect(sweep_dir: Path, out: Path) -> None:
    runs = []
    done, failed = study.completed_jobs(sweep_dir)
    for job in study.collecting(done):
        cfg, data = study.resolved_config(job), study.read_job(job)
        summaries = study.probe_summaries(data)
        runs.append(
            {
                "job": job.name,
                "seed": int(cfg.seed),
                "metrics": data.metric_history,
                "probes": {e: study.probe_readings(s) for e, s in summaries.items()},
                "cka_to_final": cka_to_final(job),
                "cka_vs_previous_epoch": {
                    e: s.get("activations", {}).get("cka_vs_previous_epoch", {}) for e, s in summaries.items()
                },
                "fit_seconds": data.final.get("fit_seconds"),
            }
        )
    epochs = sorted(set.intersection(*(set(r["metrics"]) for r in runs))) if runs else []
    layers = list(runs[0]["cka_to_final"][epochs[0]]) if runs and epochs else []
    per_epoch: dict[int, dict[str, tuple[float, float]]] = {}
    init_cka = {f"CKA {name}": study.mean_sd(r["cka_to_final"].get(-1, {}).get(name) for r in runs) for name in layers}
    for e in epochs:
        row: dict[str, tuple[float, float]] = {}
        for col, key in METRIC_COLS.items():
            row[col] = study.mean_sd(r["metrics"][e].get(key) for r in runs)
        for col in PROBE_COLS:
            row[col] = study.mean_sd(r["probes"].get(e, {}).get(col) for r in runs)
        for name in layers:
            row[f"CKA {name}"] = study.mean_sd(r["cka_to_final"].get(e, {}).get(name) for r in runs)
        per_epoch[e] = row
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    curves_figure(per_epoch, [*METRIC_COLS, *PROBE_COLS], figs / "readings_over_epochs.png")
    cka_figure(per_epoch, init_cka, layers, figs / "cka_to_final.png")
    table = lambda cols, init=False: study.md_table(  # noqa: E731
        ([{"epoch": "0 (init)", **init_cka}] if init else []) + [{"epoch": e + 1, **per_epoch[e]} for e in epochs],
        ["epoch", *cols],
    )
    settle = []
    for name in layers:  # first epoch from which CKA-to-final stays >= 0.9 (mean over seeds)
        first = next(
            (e + 1 for i, e in enumerate(epochs) if all(per_epoch[f][f"CKA {name}"][0] >= 0.9 for f in epochs[i:])),
            None,
        )
        settle.append(
            {
                "layer": name,
                "CKA @ init": init_cka[f"CKA {name}"],
                "CKA @ epoch 1": per_epoch[epochs[0]][f"CKA {name}"],
                "settles (CKA >= 0.9 from epoch)": first,
            }
        )
    seeds = len(runs)
    n_eval = int(study.resolved_config(done[0]).metrics.n)
    sections = [
        (
            f"Metrics after each epoch (mean ± sd over {seeds} seeds; {n_eval} generated vs {n_eval} real images; "
            "FID in the domain-autoencoder "
            "feature space):",
            table(list(METRIC_COLS)),
        ),
        (
            f"Probe readings after each epoch (mean ± sd over {seeds} seeds; saliency/<concept>: critic SmoothGrad "
            "share "
            "on the concept / its area share, real posters):",
            table(list(PROBE_COLS)),
        ),
        (
            f"Linear CKA of each layer to the same layer of the final model (mean ± sd over {seeds} seeds; G on "
            f"{N_CKA} "
            f"fixed z, D on {N_CKA} fixed held-out posters):",
            table([f"CKA {n}" for n in layers], init=True),
        ),
        (
            "When each layer settles:",
            study.md_table(settle, ["layer", "CKA @ init", "CKA @ epoch 1", "settles (CKA >= 0.9 from epoch)"]),
        ),
    ]
    study.finish_study(
        out,
        sweep_dir,
        "Probes over training epochs (DCGAN, synthetic_posters, 32 px)",
        sections,
        {
            "sweep_dir": str(sweep_dir),
            "failed_jobs": failed,
            "runs": runs,
            "per_epoch": {e + 1: v for e, v in per_epoch.items()},
            "init_cka": init_cka,
            "settle": settle,
        },
    )


if __name__ == "__main__":
    study.study_main("probes_over_epochs", HERE, collect, __doc__)
