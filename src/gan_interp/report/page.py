"""One self-contained static HTML page for a run or a multirun (sweep) directory.

    python -m gan_interp.report outputs/train/runs/<run>            # -> <run>/report.html
    python -m gan_interp.report outputs/train/multiruns/<sweep> -o cmp.html

The page holds the config, loss and metric curves (matplotlib, embedded PNG), sample grids and
probe galleries per epoch (a slider per gallery), and for a multirun a side-by-side comparison
table (model, data, seed, final metrics) plus metric curves of all runs. Every image is a base64
``data:`` URI: the file can be mailed or opened offline. Plain HTML + CSS + a few lines of JS.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import logging
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gan_interp.io import write_text
from gan_interp.report.run_data import RunData, collect_run, find_runs
from gan_interp.report.tables import fmt as fmt_number

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

CSS = """
body{font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}h3{margin-bottom:6px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}td.best{font-weight:bold;background:#e8f6e8}
img{max-width:100%;image-rendering:pixelated}.thumb{max-width:96px}img.big{width:min(100%,560px)}
.gallery{display:flex;flex-wrap:wrap;gap:12px}.gallery figure{margin:0}.gallery figcaption{font-size:12px;color:#555}
.slider .frame{display:none}.slider .frame.on{display:block}.slider input{width:320px;vertical-align:middle}
.tabs button{border:1px solid #bbb;background:#f6f6f6;padding:4px 10px;cursor:pointer;margin-right:2px}
.tabs button.on{background:#fff;border-bottom-color:#fff;font-weight:bold}
.tab{display:none;border-top:1px solid #bbb;padding-top:8px}
.tab.on{display:block}pre{background:#f7f7f7;padding:8px;font-size:12px;overflow:auto;max-height:480px}
.note{color:#666;font-size:13px}.scroll{overflow-x:auto}.fail{color:#a00;font-weight:bold}
.interrupted{color:#a60;font-weight:bold}
#imgstatus{color:#666;font-size:12px}
"""

JS = """
function slide(el){var f=el.closest('.slider').querySelectorAll('.frame');
 f.forEach(function(x,i){x.classList.toggle('on',i==el.value)});
 el.parentNode.querySelector('.lab').textContent=f[el.value].dataset.label;}
function tab(btn,id){var box=btn.closest('.tabbox');
 box.querySelectorAll(':scope>.tabs>button').forEach(function(b){b.classList.toggle('on',b==btn)});
 box.querySelectorAll(':scope>.tab').forEach(function(t){t.classList.toggle('on',t.id==id)});}
window.addEventListener('load',function(){var imgs=document.images,ok=0;
 for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0)ok++;}
 document.body.setAttribute('data-images-total',imgs.length);document.body.setAttribute('data-images-loaded',ok);
 var s=document.getElementById('imgstatus');if(s)s.textContent=ok+' of '+imgs.length+' images loaded';});
"""


class _Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def data_uri(png: bytes | Path, mime: str = "image/png") -> str:
    raw = png.read_bytes() if isinstance(png, Path) else png
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def img_tag(src: bytes | Path, alt: str, cls: str = "") -> str:
    return f'<img src="{data_uri(src)}" alt="{esc(alt)}"{f" class={cls!r}" if cls else ""}>'


def fmt(v: Any) -> str:
    """A table cell: numbers through the one formatter (4 significant digits), everything HTML-escaped."""
    return esc(fmt_number(v, 4, significant=True))


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
    """Training curves worth plotting: per-step series (``*_step``) where logged, else the rest."""
    out: dict[str, list[tuple[float, float]]] = {}
    for key, pts in sorted(run.curves.items()):
        base = key.removesuffix("_step").removesuffix("_epoch")
        if key.endswith("g_steps") or key.startswith(("probes/", "metrics/")) or key == "epoch" or not pts:
            continue
        if len(pts) > len(out.get(base, [])):  # of *_step / *_epoch keep the denser series
            out[base] = pts
    return out


def metric_keys(runs: Iterable[RunData]) -> list[str]:
    keys: set[str] = set()
    for r in runs:
        for values in r.metric_history.values():
            keys |= set(values)
    first = [k for k in KEY_METRICS if k in keys]
    return first + sorted(k for k in keys - set(first) if not k.endswith(("_real", "_bandwidth", "_std")))


# -- widgets ---------------------------------------------------------------------------------------------
def slider(frames: list[tuple[str, str]], ids: _Ids) -> str:
    """Frames (label, html) with a range input; the last frame is shown first."""
    if not frames:
        return ""
    last = len(frames) - 1
    parts = [
        f'<div class="slider" id="{ids("s")}"><div><input type="range" min="0" max="{last}" value="{last}" '
        f'oninput="slide(this)"> <span class="lab">{esc(frames[-1][0])}</span></div>'
    ]
    for i, (label, body) in enumerate(frames):
        parts.append(f'<div class="frame{" on" if i == last else ""}" data-label="{esc(label)}">{body}</div>')
    parts.append("</div>")
    return "".join(parts)


def tabs(items: list[tuple[str, str]], ids: _Ids) -> str:
    if not items:
        return ""
    names = [ids("t") for _ in items]
    buttons = "".join(
        f'<button class="{"on" if i == 0 else ""}" onclick="tab(this,\'{n}\')">{esc(label)}</button>'
        for i, ((label, _), n) in enumerate(zip(items, names))
    )
    panes = "".join(
        f'<div class="tab{" on" if i == 0 else ""}" id="{n}">{body}</div>'
        for i, ((_, body), n) in enumerate(zip(items, names))
    )
    return f'<div class="tabbox"><div class="tabs">{buttons}</div>{panes}</div>'


def kv_table(values: dict[str, Any], limit: int = 40) -> str:
    rows = [(k, v) for k, v in values.items() if isinstance(v, (int, float, str, bool))][:limit]
    if not rows:
        return ""
    return "<table>" + "".join(f'<tr><th class="l">{esc(k)}</th><td>{fmt(v)}</td></tr>' for k, v in rows) + "</table>"


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


def run_section(run: RunData, ids: _Ids, max_images: int = 16) -> str:
    out = [f"<p class='note'>{esc(run.path)}</p>"]
    out.extend(status_lines(run))
    head = {"model": run.model, "data": run.data, "seed": run.seed, "g_steps": run.final.get("g_steps", "?")}
    if run.overrides:
        head["overrides"] = " ".join(run.overrides)
    out.append(kv_table(head))
    final = run.final_metrics()
    if final:
        out.append(
            "<h3>Evaluation metrics (latest)</h3>"
            + kv_table({k: final[k] for k in metric_keys([run]) + sorted(final) if k in final})
        )
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
    curves = loss_series(run)
    if curves:
        png = plot_panels({k: {run.name: v} for k, v in curves.items()}, "step")
        out.append(
            f"<h3>Training curves <span class='note'>({esc(run.curve_source)})</span></h3>"
            + img_tag(png, "training curves")
        )
    keys = metric_keys([run])
    if len(run.metric_history) >= 1 and keys:
        series = {k: {run.name: [(e, v[k]) for e, v in run.metric_history.items() if k in v]} for k in keys}
        out.append("<h3>Metric curves</h3>" + img_tag(plot_panels(series, "epoch"), "metric curves"))
    if run.samples:
        out.append(
            "<h3>Samples (fixed latents)</h3>" + slider([(lab, img_tag(p, lab, "big")) for lab, p in run.samples], ids)
        )
    if run.nn_galleries:
        out.append(
            "<h3>Memorisation: closest fakes (top) and their nearest training images (bottom)</h3>"
            + slider([(lab, img_tag(p, lab, "big")) for lab, p in run.nn_galleries], ids)
        )
    if run.probes:
        items = []
        for probe, per_label in run.probes.items():
            frames = []
            for label, entry in per_label.items():
                figs = "".join(
                    f"<figure>{img_tag(p, p.stem)}<figcaption>{esc(p.stem)}</figcaption></figure>"
                    for p in entry["images"][:max_images]
                )
                frames.append((label, f"<div class='gallery'>{figs}</div>{kv_table(entry['summary'])}"))
            items.append((probe, slider(frames, ids)))
        out.append("<h3>Probes (slider: epoch)</h3>" + tabs(items, ids))
    if run.config_text:
        out.append(f"<details><summary>Config</summary><pre>{esc(run.config_text)}</pre></details>")
    return "\n".join(out)


def comparison_section(runs: list[RunData], ids: _Ids) -> str:
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
            [f"<td>{img_tag(r.samples[-1][1], r.name, 'thumb') if r.samples else ''}</td>" for r in runs],
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
    series = {k: {n: p for n, p in s.items() if p} for k, s in series.items() if any(s.values())}
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
    ids = _Ids()
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
