"""Figures of a dissection: summary chart, top-activating sample strips, causal-effect chart.

All functions return ``[3, H, W]`` float tensors in ``[0, 1]`` (drawn on an Agg canvas, no pyplot
state), ready for :class:`gan_interp.probes.output.ProbeOutput.image`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gan_interp.dissect.dissection import DissectionResult


def _figure(w: float, h: float, dpi: int = 100):  # noqa: ANN202 - matplotlib Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _to_tensor(fig) -> Tensor:  # noqa: ANN001
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return torch.from_numpy(rgba[..., :3].copy()).permute(2, 0, 1).float().div(255.0)


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def summary_chart(result: DissectionResult, interpretable_iou: float = 0.04, method: str = "quantile") -> Tensor:
    """Left: units per best concept with IoU above ``interpretable_iou``; right: every unit's best IoU, sorted."""
    k, iou = result.best(method)
    names, colours = result.concept_names, _colours(len(result.concept_names))
    fig = _figure(10, 3.4)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    ok = result.interpretable(method, interpretable_iou)
    counts = [int(((k == i) & ok).sum()) for i in range(len(names))]
    ax1.bar(range(len(names)), counts, color=colours)
    ax1.set_xticks(range(len(names)), labels=names, rotation=45, ha="right", fontsize=8)
    ax1.set_ylabel(f"units with IoU > {interpretable_iou:g}", fontsize=8)
    ax1.set_title(f"{result.layer}: {sum(counts)}/{result.n_units} units match a concept", fontsize=9)
    order = iou.argsort(descending=True)
    ax2.bar(range(len(order)), iou[order].numpy(), color=[colours[int(k[u])] for u in order], width=1.0)
    ax2.axhline(interpretable_iou, color="gray", lw=0.8, ls="--")
    ax2.set_xlabel("units (sorted)", fontsize=8)
    ax2.set_ylabel(f"best IoU ({method} threshold)", fontsize=8)
    ax2.set_title(f"{result.n_samples} samples, top {result.quantile:g} quantile", fontsize=9)
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=n) for c, n in zip(colours, names)]
    ax2.legend(handles=handles, fontsize=6, ncol=2, loc="upper right")
    fig.tight_layout()
    return _to_tensor(fig)


def unit_strips(images: Tensor, masks: Tensor, labels: Sequence[str]) -> Tensor:
    """Rows of top-activating samples (``[n, k, C, H, W]`` in [-1, 1]) with the unit's region lit.

    Pixels outside the thresholded unit map (``masks [n, k, H, W]``) are dimmed to 30 %.
    """
    n, k = images.shape[:2]
    x = images.detach().float().cpu().add(1).mul(0.5).clamp(0, 1)
    x = x.repeat(1, 1, 3, 1, 1) if x.shape[2] == 1 else x[:, :, :3]
    lit = x * (0.3 + 0.7 * masks.float()[:, :, None])
    fig = _figure(1.0 + 1.1 * k, 0.4 + 1.1 * n)
    for r in range(n):
        for c in range(k):
            ax = fig.add_subplot(n, k, r * k + c + 1)
            ax.imshow(lit[r, c].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(labels[r], fontsize=7, rotation=0, ha="right", va="center")
    fig.tight_layout(pad=0.3)
    return _to_tensor(fig)


def ace_chart(rows: Sequence[dict[str, Any]]) -> Tensor:
    """Concept-fraction change vs number of units intervened on, one line per (concept, mode)."""
    fig = _figure(5, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    series: dict[tuple[str, str], list[tuple[int, float, float]]] = {}
    for r in rows:
        series.setdefault((r["concept"], r["mode"]), []).append((r["n_units"], r["ace"], r["ace_sem"]))
    for (concept, mode), pts in series.items():
        pts.sort()
        xs, ys, es = zip(*pts)
        ax.errorbar(
            xs, ys, yerr=es, marker="o", ls="-" if mode == "ablate" else "--", label=f"{mode} {concept}", capsize=2
        )
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xlabel("units intervened on (top IoU first)", fontsize=8)
    ax.set_ylabel("change of concept pixel fraction (ACE)", fontsize=8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return _to_tensor(fig)


def insertion_figure(before: Tensor, after: Tensor, box: Sequence[int], title: str = "") -> Tensor:
    """Columns of images (``[n, C, H, W]`` in [-1, 1]): before, after the edit, and ``|after - before|``,
    the edited region ``box`` (x0, y0, x1, y1 in pixels, exclusive ends) outlined in every panel."""
    from matplotlib.patches import Rectangle

    def rgb(x: Tensor) -> Tensor:
        x = x.detach().float().cpu().add(1).mul(0.5).clamp(0, 1)
        return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x[:, :3]

    b, a = rgb(before), rgb(after)
    diff = (a - b).abs().amax(1, keepdim=True).expand_as(a)
    diff = diff / diff.max().clamp_min(1e-8)
    rows = (("before", b), ("after", a), ("difference", diff))
    n = b.shape[0]
    x0, y0, x1, y1 = (float(v) for v in box)
    fig = _figure(0.6 + 1.1 * n, 0.5 + 1.1 * len(rows))
    for r, (label, imgs) in enumerate(rows):
        for c in range(n):
            ax = fig.add_subplot(len(rows), n, r * n + c + 1)
            ax.imshow(imgs[c].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="yellow", lw=1.2))
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout(pad=0.3)
    return _to_tensor(fig)
