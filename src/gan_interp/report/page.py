"""One self-contained static HTML page for a run or a multirun (sweep) directory.

    python -m gan_interp.report outputs/train/runs/<run>            # -> <run>/report.html
    python -m gan_interp.report outputs/train/multiruns/<sweep> -o cmp.html

The page holds the run's status (ok / failed / interrupted with its resume command), the config,
the latest metrics and their curves over epochs (one source: the metrics files; a metric evaluated
once is shown as a number), training curves from the CSV log, sample grids, the k-GAN epoch folders
(cell medoids, member samples, cell sizes) and one tab per probe with a slider over epochs (images
with their captions, every reading of ``summary.json``, its tables); for a multirun a side-by-side
comparison table (model, data, seed, final metrics) plus metric curves of all runs. Every image is a
base64 ``data:`` URI: the file can be mailed or opened offline (:mod:`gan_interp.report.html`).
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gan_interp.io import write_text
from gan_interp.report.html import (
    CSS,
    JS,
    SAMPLES_MIN_PX,
    Ids,
    esc,
    figure,
    fmt,
    gallery,
    html_table,
    img_tag,
    kv_table,
    slider,
    tabs,
)
from gan_interp.report.run_data import RunData, collect_run, find_runs, flatten_summary

log = logging.getLogger(__name__)

# metrics shown first in tables / comparison curves, with the better direction
KEY_METRICS: dict[str, str] = {
    "fid": "min",
    "kid_mean": "min",
    "is_mean": "max",
    "mmd2": "min",
    "mmd_p_value": "",
    "c2st_accuracy": "half",
    "c2st_p_value": "",
    "nn_ratio": "",
    "nn_copy_fraction": "min",
    "quality_laplacian_var_ratio": "",
    "quality_noise_ratio": "",
    "quality_tv_ratio": "",
}
MAX_CURVE_PANELS = 12
MEMBER_KEY = re.compile(r"/m\d+/")  # a k-GAN member's own series (train/m0/d_loss)


# -- plots ---------------------------------------------------------------------------------------------
def _figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def plot_panels(series: dict[str, dict[str, list[tuple[float, float]]]], xlabel: str, ncols: int = 4) -> bytes | None:
    """Small multiples: one panel per key; each panel has one line per run (``series[key][run]``)."""
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(series)[:MAX_CURVE_PANELS]
    ncols = min(ncols, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.6 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for run, pts in series[key].items():
            pts = sorted(pts)
            ax.plot(
                [p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) < 30 else None, ms=3, lw=1.2, label=run
            )
        ax.set_title(key, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
        if len(series[key]) > 1:
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    return _figure_png(fig)


def loss_series(run: RunData) -> dict[str, list[tuple[float, float]]]:
    """Training curves worth plotting: per-step series (``*_step``) where logged, else the rest; the
    whole model's (``train/*``, ``val/*``) first, then per-member (``train/m<j>/*``) and ``kgan/*`` ones."""
    out: dict[str, list[tuple[float, float]]] = {}
    for key, pts in sorted(run.curves.items()):
        base = key.removesuffix("_step").removesuffix("_epoch")
        if key.endswith("g_steps") or key.startswith(("probes/", "metrics/")) or key == "epoch" or not pts:
            continue
        if len(pts) > len(out.get(base, [])):  # of *_step / *_epoch keep the denser series
            out[base] = pts
    return dict(sorted(out.items(), key=lambda kv: bool(MEMBER_KEY.search(kv[0])) or kv[0].startswith("kgan/")))


def metric_keys(runs: Iterable[RunData]) -> list[str]:
    keys: set[str] = set()
    for r in runs:
        for values in r.metric_history.values():
            keys |= set(values)
    first = [k for k in KEY_METRICS if k in keys]
    return first + sorted(k for k in keys - set(first) if not k.endswith(("_real", "_bandwidth", "_std")))


# -- sections ----------------------------------------------------------------------------------------------
def status_badge(run: RunData) -> str:
    """'ok', or a coloured 'failed' / 'interrupted' (SIGTERM/SIGINT, resumable) badge."""
    status = run.status
    cls = {"failed": "fail", "interrupted": "interrupted"}.get(status)
    return f"<span class={cls}>{status}</span>" if cls else status


def status_lines(run: RunData) -> list[str]:
    """What stopped a failed or interrupted job; for an interruption, its checkpoint and resume command."""
    if run.status == "failed":
        return [f"<p class='fail'>This job failed: {esc(run.failure.get('error', ''))}</p>"]
    if run.status != "interrupted":
        return []
    f = run.failure
    where = f" at epoch {esc(f['epoch'])}, step {esc(f.get('global_step', '?'))}" if "epoch" in f else ""
    lines = [f"<p class='interrupted'>Interrupted by {esc(f.get('signal', 'a signal'))}{where}.</p>"]
    if f.get("resume"):
        lines.append(f"<p class='note'>Resume from {esc(f.get('checkpoint'))}:</p><pre>{esc(f['resume'])}</pre>")
    return lines


def split_series(
    series: dict[str, list[tuple[float, float]]],
) -> tuple[dict[str, list[tuple[float, float]]], dict[str, tuple[float, float]]]:
    """(series with two or more points: plotted, ``{key: (x, value)}`` of one-point series: shown as numbers)."""
    curves = {k: pts for k, pts in series.items() if len(pts) >= 2}
    points = {k: pts[0] for k, pts in series.items() if len(pts) == 1}
    return curves, points


def points_table(points: dict[str, tuple[float, float]], axis: str) -> str:
    """One-point series as numbers: ``key (axis x)`` -> value."""
    return kv_table({f"{k} ({axis} {x:g})": v for k, (x, v) in points.items()}, limit=None)


def training_curves(run: RunData) -> str:
    """The CSV log's training curves (per step); one-point series as numbers."""
    if not run.curves:
        return (
            "<h3>Training curves</h3><p class='note'>No training curves: this run has no CSV log "
            "(csv/metrics.csv), which the default loggers (logger=[wandb,csv]) write.</p>"
        )
    curves, points = split_series(loss_series(run))
    out = [f"<h3>Training curves <span class='note'>({esc(run.curve_source)})</span></h3>"]
    if curves:
        out.append(img_tag(plot_panels({k: {run.name: v} for k, v in curves.items()}, "step"), "training curves"))
    if len(curves) > MAX_CURVE_PANELS:
        out.append(f"<p class='note'>{len(curves) - MAX_CURVE_PANELS} more series in csv/metrics.csv</p>")
    if points:
        out.append("<p class='note'>Logged once:</p>" + points_table(points, "step"))
    return "".join(out)


def metric_curves(run: RunData) -> str:
    """Metric curves over epochs (the metrics files: the same numbers as the table); a metric evaluated
    once is a number, not a one-point plot."""
    series = {k: [(e, v[k]) for e, v in sorted(run.metric_history.items()) if k in v] for k in metric_keys([run])}
    curves, points = split_series({k: p for k, p in series.items() if p})
    out = []
    if curves:
        out.append(
            "<h3>Metric curves</h3>"
            + img_tag(plot_panels({k: {run.name: v} for k, v in curves.items()}, "epoch"), "metric curves")
        )
    latest = max(run.metric_history, default=None)
    earlier = {k: p for k, p in points.items() if p[0] != latest}
    if earlier:
        out.append("<h3>Metrics evaluated once</h3>" + points_table(earlier, "epoch"))
    if points and not curves and not earlier:
        out.append(
            f"<p class='note'>Metrics were evaluated at one epoch ({latest}): the table above holds their numbers; "
            "curves need two or more evaluations (schedule.metrics).</p>"
        )
    return "".join(out)


def metrics_block(run: RunData) -> str:
    out = []
    final = run.final_metrics()
    if final:
        values = {k: final[k] for k in metric_keys([run]) + sorted(final) if k in final}
        out.append("<h3>Evaluation metrics (latest)</h3>" + kv_table(values))
        info = run.metric_info
        if info.get("features_description"):
            out.append(f"<p class='note'>Features: {esc(info['features_description'])}</p>")
        if info.get("n_fake"):
            out.append(
                f"<p class='note'>n = {esc(info.get('n_fake'))} generated vs {esc(info.get('n_real'))} real "
                f"({esc(info.get('real_split'))} split)</p>"
            )
    if run.checkpoint_metrics:
        out.append("<h3>Metrics of checkpoints (probe CLI)</h3>")
        for name, values in run.checkpoint_metrics.items():
            out.append(f"<h4>{esc(name)}</h4>" + kv_table(values))
    return "".join(out)


def probes_block(run: RunData, ids: Ids, max_images: int) -> str:
    """One tab per probe, a slider over its epochs: figures with captions, every reading, its tables."""
    items = []
    for probe, per_label in run.probes.items():
        frames = []
        for label, entry in per_label.items():
            readings = kv_table(flatten_summary(entry["summary"]), limit=None)
            tables = "".join(
                f"<div class='readings'><b>{esc(name)}</b>{html_table(t['columns'], t['rows'])}</div>"
                for name, t in entry["tables"].items()
            )
            body = gallery(entry["images"][:max_images]) + f"<div class='readings'>{readings}</div>{tables}"
            frames.append((label, body))
        items.append((probe, slider(frames, ids)))
    return "<h3>Probes (slider: epoch)</h3>" + tabs(items, ids) if items else ""


def kgan_block(run: RunData, ids: Ids) -> str:
    """The k-GAN epoch folders: cell medoids, each member's samples, the cells' sizes and weights."""
    frames = []
    for label, entry in run.kgan.items():
        part = entry["partition"]
        sizes, weights = part.get("cell_sizes") or [], part.get("cell_weights") or []
        medoids = part.get("medoid_rows") or []
        rows = [
            [j, size, weights[j] if j < len(weights) else "", medoids[j] if j < len(medoids) else ""]
            for j, size in enumerate(sizes)
        ]
        cells = html_table(["cell", "size", "weight", "medoid row"], rows) if rows else ""
        stats = kv_table({k: part[k] for k in ("k", "independent", "ot_cost", "reseeded") if k in part})
        frames.append((label, gallery(entry["images"]) + f"<div class='readings'>{cells}</div>{stats}"))
    return "<h3>k-GAN partition (slider: epoch)</h3>" + slider(frames, ids) if frames else ""


def run_section(run: RunData, ids: Ids, max_images: int = 16) -> str:
    out = [f"<p class='note'>{esc(run.path)}</p>", f"<p>Status: {status_badge(run)}</p>"]
    out.extend(status_lines(run))
    head = {"model": run.model, "data": run.data, "seed": run.seed, "g_steps": run.final.get("g_steps", "?")}
    if run.overrides:
        head["overrides"] = " ".join(run.overrides)
    out.append(kv_table(head))
    out.append(metrics_block(run))
    out.append(training_curves(run))
    out.append(metric_curves(run))
    if run.samples:
        frames = [(lab, figure(p, SAMPLES_MIN_PX)) for lab, p in run.samples]
        out.append("<h3>Samples (fixed latents)</h3>" + slider(frames, ids))
    if run.nn_galleries:
        frames = [(lab, figure(p, SAMPLES_MIN_PX)) for lab, p in run.nn_galleries]
        out.append("<h3>Memorisation: closest fakes (top) and their nearest training images (bottom)</h3>")
        out.append(slider(frames, ids))
    out.append(kgan_block(run, ids))
    out.append(probes_block(run, ids, max_images))
    if run.config_text:
        out.append(f"<details><summary>Config</summary><pre>{esc(run.config_text)}</pre></details>")
    return "\n".join(x for x in out if x)


def comparison_section(runs: list[RunData], ids: Ids) -> str:
    finals = [r.final_metrics() for r in runs]
    keys = [k for k in metric_keys(runs) if any(k in f for f in finals)]
    for f in finals:
        keys += [k for k in f if k not in keys and not k.endswith(("_real", "_bandwidth", "_std"))]
    best: dict[str, float] = {}
    for k in keys:
        vals = [f[k] for f in finals if k in f and isinstance(f[k], float) and math.isfinite(f[k])]
        rule = KEY_METRICS.get(k, "")
        if vals and rule == "min":
            best[k] = min(vals)
        elif vals and rule == "max":
            best[k] = max(vals)
        elif vals and rule == "half":
            best[k] = min(vals, key=lambda v: abs(v - 0.5))

    def row(label: str, cells: list[str]) -> str:
        return f"<tr><th class='l'>{esc(label)}</th>{''.join(cells)}</tr>"

    rows = [
        row("run", [f"<td class='l'><a href='#{esc(r.name)}'>{esc(r.name)}</a></td>" for r in runs]),
        row("model", [f"<td class='l'>{esc(r.model)}</td>" for r in runs]),
        row("data", [f"<td class='l'>{esc(r.data)}</td>" for r in runs]),
        row("seed", [f"<td>{esc(r.seed)}</td>" for r in runs]),
        row("g_steps", [f"<td>{fmt(r.final.get('g_steps', ''))}</td>" for r in runs]),
        row("status", [f"<td>{status_badge(r)}</td>" for r in runs]),
    ]
    for k in keys:
        rows.append(
            row(
                k,
                [
                    "<td "
                    f"class='{'best' if k in best and f.get(k) == best[k] else ''}'>{fmt(f[k]) if k in f else ''}</td>"
                    for f in finals
                ],
            )
        )
    rows.append(
        row(
            "last samples",
            [f"<td>{img_tag(r.samples[-1][1], r.name, 'thumb px') if r.samples else ''}</td>" for r in runs],
        )
    )
    table = f"<div class='scroll'><table class='cmp'>{''.join(rows)}</table></div>"
    note = (
        "<p class='note'>Bold: best per row (lowest FID/KID/MMD/copy fraction, highest IS, "
        "C2ST accuracy closest to 0.5).</p>"
    )
    series = {
        k: {r.name: [(e, v[k]) for e, v in r.metric_history.items() if k in v] for r in runs if r.metric_history}
        for k in metric_keys(runs)
    }
    # a metric no run evaluated twice has no curve: its numbers are the table's
    series = {k: {n: p for n, p in s.items() if p} for k, s in series.items() if any(len(p) >= 2 for p in s.values())}
    curves = (
        ("<h3>Metric curves, all runs</h3>" + img_tag(plot_panels(series, "epoch"), "metric curves of all runs"))
        if series
        else ""
    )
    return table + note + curves


def build_report(root: str | Path, title: str | None = None, max_images: int = 16) -> str:
    """The HTML of the report for a run or multirun directory."""
    root = Path(root)
    paths = find_runs(root)
    if not paths:
        from gan_interp.errors import ConfigError

        raise ConfigError(
            f"{root} is not a run or multirun directory (no .hydra/config.yaml, metrics.json, samples/ or "
            "checkpoints/ found)"
        )
    runs = [collect_run(p) for p in paths]
    ids = Ids()
    title = title or (
        f"gan-interp run {runs[0].name}" if len(runs) == 1 else f"gan-interp sweep {root.name} ({len(runs)} runs)"
    )
    body = [f"<h1>{esc(title)}</h1><p id='imgstatus'></p>"]
    if len(runs) == 1:
        body.append(run_section(runs[0], ids, max_images))
    else:
        body.append("<h2>Architecture comparison</h2>" + comparison_section(runs, ids))
        for r in runs:
            body.append(
                f"<h2 id='{esc(r.name)}'>{esc(r.name)} <span class='note'>{esc(r.model)} / {esc(r.data)} / seed "
                f"{esc(r.seed)}</span></h2>"
            )
            opened = " open" if len(runs) <= 4 else ""
            body.append(f"<details{opened}><summary>details</summary>{run_section(r, ids, max_images)}</details>")
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{CSS}</style><script>{JS}</script></head><body>{''.join(body)}</body></html>"
    )


def write_report(root: str | Path, out: str | Path | None = None, **kwargs: Any) -> Path:
    """Write the report (default ``<root>/report.html``) and return its path."""
    out_path = Path(out) if out else Path(root) / "report.html"
    text = build_report(root, **kwargs)
    write_text(out_path, text)  # atomic, UTF-8
    return out_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gan_interp.report", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "run_dir", help="a run dir (outputs/train/runs/...) or a multirun dir (outputs/train/multiruns/...)"
    )
    parser.add_argument("-o", "--out", default=None, help="output HTML file (default: <run_dir>/report.html)")
    parser.add_argument("--title", default=None)
    parser.add_argument("--max-images", type=int, default=16, help="images per probe and epoch")
    args = parser.parse_args(argv)
    from gan_interp.errors import GanInterpError

    if not Path(args.run_dir).is_dir():
        print(f"error: run_dir={args.run_dir} is not a directory", file=sys.stderr)
        return 2
    try:
        path = write_report(args.run_dir, args.out, title=args.title, max_images=args.max_images)
    except GanInterpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0
