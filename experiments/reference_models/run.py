"""Reference models: train DCGAN, StyleGAN-lite and k-GAN on synthetic_posters within their CPU budgets and
check each against one quality bar measured on held-out posters (issue 12 point 1).

    python experiments/reference_models/run.py                      # train what is missing, evaluate all
    python experiments/reference_models/run.py --models dcgan       # one model
    python experiments/reference_models/run.py --retrain            # train again even if a finished run exists

A finished run (``<out>/<model>/metrics.json`` + ``checkpoints/last.ckpt``) is reused, not retrained.
Writes ``results.md`` / ``results.json`` / ``figures/`` next to this script and ``<out>/checkpoints.json``
(model -> checkpoint, with the bar's verdict) for experiments/probe_scorecard and the studies.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from gan_interp.io import write_json
from gan_interp.metrics.floor import real_floor
from gan_interp.metrics.runner import evaluate
from gan_interp.metrics.settings import MetricsSettings
from gan_interp.report import study
from gan_interp.scorecard.models import load_trained

HERE = Path(__file__).resolve().parent


def train_command(cfg: Any, name: str, run_dir: Path, extra: list[str]) -> list[str]:
    spec = cfg.models[name]
    hh, mm = divmod(int(spec.budget_min), 60)
    return [
        sys.executable,
        "-m",
        "gan_interp.train",
        *cfg.train_overrides,
        *spec.overrides,
        f"++trainer.max_time=00:{hh:02d}:{mm:02d}:00",  # the budget is a hard stop
        f"seed={cfg.seed}",
        f"threads={cfg.threads}",
        f"group={cfg.group}",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def preset_of(overrides: Any) -> str | None:
    """The ``model=<preset>`` choice among a model's overrides in config.yaml."""
    return next((str(o).split("=", 1)[1] for o in overrides if str(o).startswith("model=")), None)


def finished(run_dir: Path) -> bool:
    return (run_dir / "metrics.json").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()


def train(cfg: Any, name: str, run_dir: Path, extra: list[str], retrain: bool) -> dict[str, Any]:
    """Train ``name`` into ``run_dir`` unless a finished run is there; its wall time and step counts."""
    if finished(run_dir) and not retrain:
        print(f"{name}: reusing the finished run {run_dir}", flush=True)
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        cmd = train_command(cfg, name, run_dir, extra)
        print("+", " ".join(cmd), flush=True)
        started = time.perf_counter()
        done = subprocess.run(cmd, cwd=HERE.parents[1], check=False)
        if done.returncode != 0:
            raise SystemExit(f"error: training {name} failed with exit code {done.returncode}; see {run_dir}")
        print(f"{name}: trained in {(time.perf_counter() - started) / 60:.1f} min (wall, incl. start-up)", flush=True)
    final = json.loads((run_dir / "metrics.json").read_text())
    run_cfg = study.resolved_config(run_dir)
    return {
        "train_minutes": float(final.get("fit_seconds", float("nan"))) / 60,
        "g_steps": int(final.get("g_steps", 0)),
        "max_epochs": int(run_cfg.trainer.max_epochs),
        "budget_min": float(cfg.models[name].budget_min),
        "preset": preset_of(cfg.models[name].overrides) or run_cfg.model.name,
    }


def bar_settings(cfg: Any, out: Path, n: int | None, metrics: Any = None) -> MetricsSettings:
    spec = OmegaConf.to_container(cfg.evaluation, resolve=True)
    if metrics is not None:
        spec["metrics"] = OmegaConf.to_container(metrics, resolve=True)
    if n is not None:
        spec["n"] = n
    return MetricsSettings(**spec, cache_dir=str(out / "feature_cache"))


def assess(cfg: Any, name: str, run_dir: Path, out: Path, n: int | None) -> dict[str, Any]:
    """The bar's readings for one trained model, with the real-vs-real floor measured the same way."""
    model, dm = load_trained(run_dir / "checkpoints" / "last.ckpt", cache_dir=str(out / "data_cache"))
    settings = bar_settings(cfg, out, n)
    values = evaluate(model, dm, settings).values
    floor = real_floor(dm, settings).values
    mlp = evaluate(model, dm, bar_settings(cfg, out, n, cfg.pixel_c2st)).values
    mlp_floor = real_floor(dm, bar_settings(cfg, out, n, cfg.pixel_c2st)).values
    fid, fid_floor = values["fid"], floor["fid"]
    passed_c2st = values["c2st_accuracy"] <= cfg.bar.c2st_accuracy_max
    passed_fid = fid <= cfg.bar.fid_over_floor_max * fid_floor
    return {
        "c2st_conv": values["c2st_accuracy"],
        "c2st_conv_floor": floor["c2st_accuracy"],
        "c2st_mlp": mlp["c2st_accuracy"],
        "c2st_mlp_floor": mlp_floor["c2st_accuracy"],
        "fid": fid,
        "fid_floor": fid_floor,
        "fid_over_floor": fid / fid_floor if fid_floor > 0 else float("inf"),
        **{k: values.get(f"prdc_{k}") for k in ("precision", "recall", "density", "coverage")},
        "kid": values.get("kid_mean"),
        "n": settings.n,
        "passed_c2st": bool(passed_c2st),
        "passed_fid": bool(passed_fid),
        "passed": bool(passed_c2st and passed_fid),
    }


def figures(models: dict[str, Path], out: Path) -> None:
    """The last sample grid of each model, next to real posters, in figures/."""
    from gan_interp.data.synthetic_posters import save_preview

    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    save_preview(figs / "real_posters.png", n=64, resolution=32, seed=1)
    for name, run_dir in models.items():
        grids = sorted((run_dir / "samples").glob("epoch_*.png"))
        if grids:
            shutil.copyfile(grids[-1], figs / f"{name}_samples.png")


COLS = [
    "model", "preset", "train min (budget)", "G steps", "C2ST conv (floor)", "C2ST MLP (floor)",
    "FID (floor)", "FID / floor", "precision", "recall", "density", "coverage", "bar",
]  # fmt: skip


def table_row(name: str, t: dict[str, Any], a: dict[str, Any]) -> dict[str, Any]:
    fmt = study.fmt
    verdict = "PASS" if a["passed"] else "FAIL (" + ", ".join(
        k for k, ok in (("C2ST", a["passed_c2st"]), ("FID", a["passed_fid"])) if not ok
    ) + ")"  # fmt: skip
    return {
        "model": name,
        "preset": t["preset"],
        "train min (budget)": f"{t['train_minutes']:.1f} ({t['budget_min']:.0f})",
        "G steps": t["g_steps"],
        "C2ST conv (floor)": f"{fmt(a['c2st_conv'])} ({fmt(a['c2st_conv_floor'])})",
        "C2ST MLP (floor)": f"{fmt(a['c2st_mlp'])} ({fmt(a['c2st_mlp_floor'])})",
        "FID (floor)": f"{fmt(a['fid'])} ({fmt(a['fid_floor'])})",
        "FID / floor": a["fid_over_floor"],
        **{k: a[k] for k in ("precision", "recall", "density", "coverage")},
        "bar": verdict,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="dcgan,kgan,stylegan_lite", help="comma-separated, from config.yaml")
    parser.add_argument("--retrain", action="store_true", help="train even when a finished run exists")
    parser.add_argument("--out-dir", type=Path, default=None, help="runs + checkpoints.json (default: outputs/)")
    parser.add_argument("--results-dir", type=Path, default=HERE, help="where results.md/.json and figures/ go")
    parser.add_argument("--eval-n", type=int, default=None, help="images per side of the bar (default: config)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override config.yaml, e.g. evaluation.domain.steps=50",
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every training run")
    args = parser.parse_args(argv)
    cfg = OmegaConf.load(HERE / "config.yaml")
    for item in args.set:
        key, _, value = item.partition("=")
        OmegaConf.update(cfg, key, yaml.safe_load(value), merge=False)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")  # progress lines of the metrics
    out = (args.out_dir or Path(cfg.out_dir or HERE / "outputs")).resolve()
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in cfg.models]
    if unknown:
        raise SystemExit(f"error: --models {','.join(unknown)} unknown; choose from {','.join(cfg.models)}")
    os.environ.setdefault("WANDB_MODE", "offline")
    training, assessed, runs = {}, {}, {}
    for name in names:
        runs[name] = out / name
        training[name] = train(cfg, name, runs[name], list(args.overrides), args.retrain)
        assessed[name] = assess(cfg, name, runs[name], out, args.eval_n)
        print(f"{name}: {json.dumps(assessed[name], default=str)}", flush=True)
    index = {
        n: {"checkpoint": str(runs[n] / "checkpoints" / "last.ckpt"), "passed_bar": assessed[n]["passed"]}
        for n in names
    }
    write_json(index, out / "checkpoints.json")
    results = args.results_dir.resolve()
    figures(runs, results)
    rows = [table_row(n, training[n], assessed[n]) for n in names]
    n_eval = next(iter(assessed.values()))["n"] if assessed else 0
    caption = (
        f"Quality bar on {n_eval} generated vs {n_eval} held-out test posters (32 px): C2ST accuracy <= "
        f"{cfg.bar.c2st_accuracy_max} (conv net on the images; the MLP on 16x16 pooled pixels beside it) and "
        f"FID in the domain-autoencoder features <= {cfg.bar.fid_over_floor_max} x the floor (training posters vs "
        "held-out posters, same n and features). Floors in brackets. Training minutes are the fit's wall time on "
        "this machine; the budget is a hard stop (trainer.max_time)."
    )
    data = {"training": training, "bar": assessed, "config": OmegaConf.to_container(cfg), "checkpoints": index}
    study.write_results(
        results, "Reference models against the quality bar", [(caption, study.md_table(rows, COLS))], data
    )
    print(f"results: {results / 'results.md'}; checkpoints: {out / 'checkpoints.json'}", flush=True)


if __name__ == "__main__":
    main()
