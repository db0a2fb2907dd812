"""Helpers shared by the reproducible studies in ``experiments/``.

A study is a Hydra experiment config (``conf/experiment/<name>.yaml``, whose
``hydra.sweeper.params`` define the sweep), a script ``experiments/<name>/run.py`` that launches
that sweep through the real CLI (``python -m gan_interp.train -m experiment=<name>``) and then
reads what the jobs left on disk, and a README quoting the tables the script wrote. This module
holds the reading and table-writing parts; nothing here trains.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gan_interp.data.synthetic_posters import CONCEPTS as POSTER_CONCEPTS
from gan_interp.errors import ConfigError
from gan_interp.io import write_json, write_text
from gan_interp.progress import track
from gan_interp.report.run_data import EPOCH_RE, RunData, collect_run
from gan_interp.report.tables import MeanSD, fmt, md_table, mean_sd  # noqa: F401  (the study scripts' helpers)

CONCEPTS = tuple(c for c in POSTER_CONCEPTS if c != "background")  # saliency concept ratios in the tables


def launch_sweep(experiment: str, sweep_dir: Path, overrides: Sequence[str] = (), cwd: Path | None = None) -> None:
    """Run ``python -m gan_interp.train -m experiment=<experiment>`` into ``sweep_dir``; raise if it fails."""
    group = (
        []
        if any(o.startswith("group=") for o in overrides)
        else [f"group={experiment}-{time.strftime('%Y%m%d-%H%M%S')}"]
    )
    cmd = [
        sys.executable,
        "-m",
        "gan_interp.train",
        "-m",
        f"experiment={experiment}",
        f"hydra.sweep.dir={sweep_dir}",
        *group,
        *overrides,
    ]  # one W&B group per launch of the study
    print("+", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=cwd, check=False)  # W&B online/offline: gan_interp.logging_utils.wandb_mode
    if done.returncode != 0:
        raise SystemExit(
            f"error: sweep {experiment} failed with exit code {done.returncode}; see the logs in {sweep_dir}"
        )


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job folders of a Hydra sweep dir, in job-number order (``<num>_...``)."""
    jobs = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and p.name.split("_", 1)[0].isdigit()]
    if not jobs:
        raise ConfigError(f"sweep dir {sweep_dir} has no job folders; run the study without --collect-only first")
    return sorted(jobs, key=lambda p: int(p.name.split("_", 1)[0]))


def collecting(jobs: Sequence[Path], label: str = "collect jobs") -> Iterator[Path]:
    """Yield ``jobs`` (a study's collect loop) with a progress line every 30 s (:mod:`gan_interp.progress`)."""
    return track(jobs, label, unit="jobs")


def completed_jobs(sweep_dir: Path) -> tuple[list[Path], list[str]]:
    """(job dirs that finished, names of the jobs that crashed: those with a ``failure.json``)."""
    done, failed = [], []
    for job in job_dirs(sweep_dir):
        (failed.append(job.name) if (job / "failure.json").is_file() else done.append(job))
    if not done:
        raise ConfigError(f"every job in {sweep_dir} failed ({', '.join(failed)}); see their failure.json")
    return done, failed


def resolved_config(run_dir: Path) -> DictConfig:
    """The fully resolved training config a job wrote (``config_resolved.json``)."""
    path = Path(run_dir) / "config_resolved.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir} has no config_resolved.json (the job crashed before training?)")
    return OmegaConf.create(json.loads(path.read_text()))  # type: ignore[return-value]


def load_trained(run_dir: Path, ckpt: str = "last.ckpt") -> tuple[Any, Any]:
    """(model in eval mode on the CPU, set-up datamodule) of a job, from ``checkpoints/<ckpt>``."""
    from gan_interp.checkpoints import build_model_and_data, load_checkpoint

    cfg = resolved_config(run_dir)
    model, datamodule = build_model_and_data(cfg, cfg.paths, load_checkpoint(Path(run_dir) / "checkpoints" / ckpt))
    return model.cpu().eval(), datamodule


def read_job(run_dir: Path) -> RunData:
    """What a job wrote - final and per-epoch metrics, probe summaries - read by the review page's reader."""
    return collect_run(run_dir, curves=False)


def probe_summaries(run: RunData) -> dict[int, dict[str, dict[str, Any]]]:
    """``{epoch: {probe: summary.json}}`` of the ``probes/epoch_XXX/`` folders of a job."""
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for probe, labels in run.probes.items():
        for label, item in labels.items():
            m = EPOCH_RE.fullmatch(label)
            if m and item["summary"]:
                out.setdefault(int(m.group(1)), {})[probe] = item["summary"]
    return dict(sorted(out.items()))


def write_results(here: Path, title: str, sections: Sequence[tuple[str, str]], data: dict[str, Any]) -> None:
    """``results.md`` (title + (caption, markdown) sections) and ``results.json`` next to a study script."""
    if data.get("failed_jobs"):
        sections = [
            *sections,
            ("Failed jobs (see their failure.json):", "\n".join(f"* {f}" for f in data["failed_jobs"])),
        ]
    text = [f"# {title}", ""]
    for caption, body in sections:
        text += [caption, "", body, ""]
    write_text(here / "results.md", "\n".join(text))
    write_json(data, here / "results.json")


def finish_study(
    out: Path, sweep_dir: Path, title: str, sections: Sequence[tuple[str, str]], data: dict[str, Any]
) -> None:
    """Write the results (:func:`write_results`), log their tables to W&B (a ``study`` run in the sweep's group,
    under ``<sweep_dir>/wandb/``) and write the sweep's HTML review page; say where they are."""
    from gan_interp.report.page import write_report
    from gan_interp.wandb_tables import log_study_tables

    write_results(out, title, sections, data)
    log_study_tables(Path(sweep_dir), out / "results.md", config={"title": title, "sweep_dir": str(sweep_dir)})
    report = write_report(
        sweep_dir, out=sweep_dir / "report.html", title=f"{Path(sweep_dir).parent.parent.name}: {title}"
    )
    print(f"results: {out / 'results.md'}; review page: {report}", flush=True)


def probe_readings(summaries: dict[str, dict]) -> dict[str, float]:
    """Scalar readings of one epoch's probe summaries (``{probe: summary.json}``), for study tables."""
    out: dict[str, float] = {}
    sal = summaries.get("saliency", {})
    ratios = sal.get("real", {}).get("concept_ratio", {})
    for c in CONCEPTS:
        out[f"saliency/{c}"] = ratios.get(c, math.nan)
    out["saliency centre share (real)"] = sal.get("real", {}).get("center_mass_share", math.nan)
    dirs = summaries.get("directions", {})
    out["SeFa effect / random"] = dirs.get("sefa", {}).get("effect_ratio_vs_random", math.nan)
    out["GANSpace effect / random"] = dirs.get("ganspace", {}).get("effect_ratio_vs_random", math.nan)
    out["SeFa top-4 eig share"] = sum(dirs.get("sefa", {}).get("eigenvalue_share", [math.nan]))
    out["GANSpace top-4 EVR"] = sum(dirs.get("ganspace", {}).get("explained_variance_ratio", [math.nan]))
    trav = summaries.get("traversals", {})
    changes = list(trav.get("z_dim_change", {}).values())
    out["z-dim change (mean)"] = sum(changes) / len(changes) if changes else math.nan
    interp = list(trav.get("interpolation_max_over_mean_step", {}).values())
    out["interp. max/mean step"] = max(interp) if interp else math.nan
    div = trav.get("freeze_diversity", {})
    frozen = [v for k, v in div.items() if k != "none"]
    out["diversity frozen/free"] = (sum(frozen) / len(frozen)) / div["none"] if frozen and div.get("none") else math.nan
    out["NN dist gen/val"] = summaries.get("neighbours", {}).get("pixel", {}).get("gen_over_val", math.nan)
    cka = summaries.get("activations", {}).get("cka_layers", {}).get("G", {})
    if cka:
        out["CKA G first↔last layer"] = cka["matrix"][0][-2]  # first block vs the last block before to_image
    sim = summaries.get("activations", {}).get("similar_inputs", {}).get("G", {})
    if sim:
        last = list(sim.values())[-1]
        out["G out. CKA similar/unrelated z"] = last["cka_similar"] / max(last["cka_unrelated"], 1e-8)
    reached = summaries.get("actmax", {}).get("pixel", {})
    if reached:
        out["actmax gain"] = sum(r - s for r, s in zip(reached["reached"], reached["start"])) / len(reached["reached"])
    out["D filters neutral share"] = summaries.get("filters", {}).get("mean_neutral_share", math.nan)
    return out


def study_main(
    name: str,
    here: Path,
    collect: Callable[[Path, Path], None],
    doc: str | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    """Command line of ``experiments/<name>/run.py``: run the sweep (unless ``--collect-only``), then ``collect``."""
    parser = argparse.ArgumentParser(description=(doc or name).split("\n\n")[0])
    parser.add_argument("--collect-only", action="store_true", help="skip training; read an existing sweep dir")
    parser.add_argument("--sweep-dir", type=Path, default=here / "outputs" / "sweep")
    parser.add_argument("--results-dir", type=Path, default=here, help="where results.md/.json and figures/ go")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for the sweep, e.g. trainer.max_epochs=2")
    args = parser.parse_args(argv)
    sweep_dir = args.sweep_dir.resolve()
    if not args.collect_only:
        if sweep_dir.exists() and any(sweep_dir.iterdir()):
            raise SystemExit(
                f"error: --sweep-dir {sweep_dir} is not empty; delete it, pick another, or pass --collect-only"
            )
        started = time.perf_counter()
        launch_sweep(name, sweep_dir, args.overrides, cwd=here.parents[1])
        print(f"sweep took {time.perf_counter() - started:.0f} s", flush=True)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")  # progress lines of collect
    collect(sweep_dir, args.results_dir.resolve())
