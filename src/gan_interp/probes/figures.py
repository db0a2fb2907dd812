"""Image helpers shared by the probes: grids, heat maps, overlays, labelled matrix plots.

Every helper returns a float tensor ``[3, H, W]`` (or ``[n, 3, H, W]``) in ``[0, 1]`` ready for
:func:`torchvision.utils.save_image` and :meth:`gan_interp.logging_utils.LogRow.image`. Colour maps
come from matplotlib; labelled plots are drawn on an Agg canvas (no pyplot state, no display).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import make_grid


def to_unit(images: Tensor) -> Tensor:
    """Model images in ``[-1, 1]`` -> ``[0, 1]`` (clamped), float32 on CPU."""
    return images.detach().float().cpu().add(1.0).mul(0.5).clamp(0.0, 1.0)


def to_rgb(images: Tensor) -> Tensor:
    """``[n, 1|3, H, W]`` -> ``[n, 3, H, W]`` (gray repeated)."""
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images[:, :3]


def image_grid(images: Tensor, nrow: int, padding: int = 2, unit: bool = False, pad_value: float = 1.0) -> Tensor:
    """Grid of ``[n, C, H, W]`` images; ``unit=True`` if they are already in ``[0, 1]`` (else ``[-1, 1]``)."""
    x = images.detach().float().cpu()
    x = x.clamp(0, 1) if unit else to_unit(x)
    return make_grid(to_rgb(x), nrow=max(1, nrow), padding=padding, pad_value=pad_value)


def normalize_maps(maps: Tensor, quantile: float = 0.99, eps: float = 1e-12) -> Tensor:
    """Per-map scaling of non-negative maps ``[n, H, W]`` to ``[0, 1]`` (clip at a high quantile)."""
    flat = maps.detach().float().cpu().flatten(1)
    hi = torch.quantile(flat, quantile, dim=1, keepdim=True) if flat.shape[1] > 1 else flat.max(1, keepdim=True).values
    return (flat / (hi + eps)).clamp(0, 1).view_as(maps)


def colormap(values: Tensor, cmap: str = "inferno") -> Tensor:
    """Values in ``[0, 1]`` of any shape ``[...]`` -> RGB ``[..., 3]`` -> returned as ``[..., 3]`` float."""
    from matplotlib import colormaps

    rgba = colormaps[cmap](values.detach().float().cpu().clamp(0, 1).numpy())
    return torch.from_numpy(np.ascontiguousarray(rgba[..., :3])).float()


def heatmaps(maps: Tensor, cmap: str = "inferno") -> Tensor:
    """Maps ``[n, H, W]`` in ``[0, 1]`` -> coloured images ``[n, 3, H, W]``."""
    return colormap(maps, cmap).permute(0, 3, 1, 2).contiguous()


def overlay(images01: Tensor, maps01: Tensor, alpha: float = 0.55, cmap: str = "inferno") -> Tensor:
    """Blend coloured heat maps ``[n, H, W]`` over images ``[n, C, H, W]`` (both in ``[0, 1]``).

    The heat colour is weighted by the map value, so cold pixels show the image unchanged.
    """
    rgb = to_rgb(images01.detach().float().cpu())
    heat = heatmaps(maps01, cmap)
    w = (alpha * maps01.detach().float().cpu()).unsqueeze(1)
    return (rgb * (1 - w) + heat * w).clamp(0, 1)


def upscale(images: Tensor, size: int) -> Tensor:
    """Nearest-neighbour upscaling of ``[n, C, h, w]`` to ``size`` x ``size`` (filters, tiny maps)."""
    return F.interpolate(images.float(), size=(size, size), mode="nearest")


def channel_maps(act: Tensor, max_channels: int = 64, size: int | None = None) -> Tensor:
    """One sample's activation ``[C, h, w]`` -> per-channel maps ``[min(C, max), 1, s, s]`` in ``[0, 1]``.

    Each channel is min-max normalised on its own (constant channels become 0).
    """
    a = act.detach().float().cpu()[:max_channels]
    if a.ndim == 1:
        a = a[:, None, None]
    flat = a.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    norm = ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(a).unsqueeze(1)
    return upscale(norm, size) if size else norm


def matrix_figure(
    matrix: np.ndarray | Tensor,  # [r, c] values to show
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str = "",
    vmin: float | None = 0.0,
    vmax: float | None = 1.0,
    cmap: str = "viridis",
    annotate: bool = True,
) -> Tensor:
    """A labelled heat map (e.g. a CKA matrix) rendered to an RGB tensor ``[3, H, W]`` in ``[0, 1]``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = matrix.detach().cpu().numpy() if isinstance(matrix, Tensor) else np.asarray(matrix)
    r, c = m.shape
    fig = Figure(figsize=(2.2 + 0.55 * c, 1.6 + 0.45 * r), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(m, vmin=vmin, vmax=vmax, cmap=cmap)
    ax.set_xticks(range(c), labels=list(col_labels), rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(r), labels=list(row_labels), fontsize=7)
    if annotate and r * c <= 100:
        for i in range(r):
            for j in range(c):
                if np.isfinite(m[i, j]):
                    ax.text(
                        j,
                        i,
                        f"{m[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="w" if m[i, j] < 0.6 else "k",
                    )
    if title:
        ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.subplots_adjust(left=0.2, bottom=0.25, right=0.86, top=0.9)  # fixed margins: tight_layout doubles the cost
    return figure_to_tensor(fig)


def bar_figure(values: Sequence[float], labels: Sequence[str], title: str = "", ylabel: str = "") -> Tensor:
    """A small labelled bar chart rendered to ``[3, H, W]`` in ``[0, 1]``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.5 + 0.4 * len(values), 2.6), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(range(len(values)), list(values), color="tab:blue")
    ax.set_xticks(range(len(values)), labels=list(labels), rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(ylabel, fontsize=7)
    ax.set_title(title, fontsize=8)
    fig.subplots_adjust(left=0.2, bottom=0.32, right=0.97, top=0.88)
    return figure_to_tensor(fig)


def figure_to_tensor(fig) -> Tensor:  # noqa: ANN001 - matplotlib Figure (with an Agg canvas)
    """Draw a matplotlib figure and return its pixels as ``[3, H, W]`` in ``[0, 1]``."""
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return torch.from_numpy(rgba[..., :3].copy()).permute(2, 0, 1).float().div(255.0)


def captum_overlay_figure(image01: Tensor, attribution: Tensor, title: str = "") -> Tensor:
    """Captum's ``visualize_image_attr`` blended heat map of one image (HWC numpy, no pyplot)."""
    from captum.attr import visualization as viz
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    img = to_rgb(image01.detach().float().cpu()[None])[0].permute(1, 2, 0).numpy()
    attr = attribution.detach().float().cpu()
    attr = (attr.repeat(3, 1, 1) if attr.shape[0] == 1 else attr[:3]).permute(1, 2, 0).numpy()
    fig = Figure(figsize=(3, 3), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    viz.visualize_image_attr(
        attr,
        img,
        method="blended_heat_map",
        sign="absolute_value",
        plt_fig_axis=(fig, ax),
        use_pyplot=False,
        show_colorbar=True,
        title=title,
        alpha_overlay=0.5,
    )
    return figure_to_tensor(fig)
