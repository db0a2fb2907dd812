"""Poster factors read off images: direct pixel readings and a small CNN regressor trained on real posters.

A generated image carries no factors, so the directions check reads them:

* direct, exact on any image: ``brightness`` - the mean luminance (Rec. 601 weights) of the image in [0, 1];
* regressed: a small CNN (strided convolutions -> MLP) trained on real posters of the train split to
  predict the posters' own factors (``figure_x``, ``has_orb``, ...; see
  :mod:`gan_interp.data.synthetic_posters`) and three mask-derived ones: ``bg_luminance``, ``bg_rg``,
  ``bg_yb`` - the mean luminance and opponent colours (R - G, (R + G) / 2 - B) of the background
  concept's pixels. Its R^2 on held-out posters (the test split) says how far each reading can be trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

DIRECT_FACTORS: tuple[str, ...] = ("brightness",)
MASK_FACTORS: tuple[str, ...] = ("bg_luminance", "bg_rg", "bg_yb")
COLOUR_FACTORS: tuple[str, ...] = ("bg_rg", "bg_yb")  # need RGB images
REGRESSED_FACTORS: tuple[str, ...] = (
    *MASK_FACTORS,
    "saturation",
    "figure_x",
    "figure_scale",
    "has_orb",
    "orb_x",
    "orb_y",
    "orb_radius",
    "has_stripes",
    "title_top",
    "title_light",
    "n_letters",
    "has_frame",
)
_LUMA = (0.299, 0.587, 0.114)


def _unit(images: Tensor) -> Tensor:
    """float ``[-1, 1]`` or uint8 images -> float ``[0, 1]``."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else (images.float() + 1.0) / 2.0


def luminance(images: Tensor) -> Tensor:
    """``[n, H, W]`` luminance in [0, 1] (grayscale images: the channel itself)."""
    x = _unit(images)
    return x[:, 0] if x.shape[1] == 1 else sum(w * x[:, c] for c, w in enumerate(_LUMA))


def brightness(images: Tensor) -> Tensor:
    """``[n]`` mean luminance of each image."""
    return luminance(images).flatten(1).mean(1)


def background_colour(images: Tensor, background: Tensor) -> dict[str, Tensor]:
    """Mean luminance and opponent colours of the ``background`` pixels (bool ``[n, H, W]``; an image
    without background pixels uses all of its pixels): ``{bg_luminance, bg_rg, bg_yb}`` each ``[n]``."""
    x = _unit(images)
    m = background.float()
    m = torch.where(m.flatten(1).sum(1).view(-1, 1, 1) > 0, m, torch.ones_like(m))
    mean = lambda v: (v * m).flatten(1).sum(1) / m.flatten(1).sum(1)  # noqa: E731
    out = {"bg_luminance": mean(luminance(images))}
    if x.shape[1] == 3:
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        out |= {"bg_rg": mean(r - g), "bg_yb": mean((r + g) / 2 - b)}
    return out


def factor_table(
    images: Tensor,  # [n, C, H, W], uint8 or float [-1, 1]
    masks: np.ndarray | Tensor | None,  # bool [n, K, H, W] or None
    factors: dict[str, np.ndarray],  # per-image factors (each [n])
    concept_names: list[str] | tuple[str, ...],
    names: tuple[str, ...],  # wanted factors; those the data cannot give are dropped
) -> tuple[tuple[str, ...], Tensor]:
    """The available ``names`` and their values ``[n, F]`` (float64)."""
    columns: dict[str, Tensor] = {}
    if masks is not None and "background" in concept_names:
        bg = torch.as_tensor(np.asarray(masks))[:, list(concept_names).index("background")]
        columns |= background_colour(images, bg)
    for k, v in factors.items():
        columns.setdefault(k, torch.as_tensor(np.asarray(v), dtype=torch.float64))
    kept = tuple(k for k in names if k in columns)
    if not kept:
        return kept, torch.empty(images.shape[0], 0, dtype=torch.float64)
    return kept, torch.stack([columns[k].double() for k in kept], 1)


class FactorNet(nn.Module):
    """Strided 4x4 convolutions down to 4x4 (32 -> 64 channels), then a 64-unit MLP: factors ``[n, F]``."""

    def __init__(
        self,
        channels: int,  # image channels
        resolution: int,  # image side (a power of two >= 8)
        n_out: int,  # factors predicted
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, side = channels, resolution
        while side > 4:
            c_out = 32 if c_in == channels else 64
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
            c_in, side = c_out, side // 2
        head = [nn.Flatten(), nn.Linear(c_in * side * side, 64), nn.ReLU(), nn.Linear(64, n_out)]
        self.net = nn.Sequential(*layers, *head)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def fit_factor_net(x: Tensor, y: Tensor, epochs: int, seed: int, batch_size: int = 64, lr: float = 2e-3) -> FactorNet:
    """Adam on the mean squared error of standardised targets ``y [n, F]`` from images ``x`` in [-1, 1]."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = FactorNet(x.shape[1], x.shape[-1], y.shape[1])
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        for _ in range(int(epochs)):
            order = torch.randperm(x.shape[0])
            for i in range(0, x.shape[0], batch_size):
                idx = order[i : i + batch_size]
                loss = (net(x[idx]) - y[idx]).pow(2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return net.eval()


def r_squared(truth: Tensor, pred: Tensor) -> Tensor:
    """``[F]`` coefficient of determination per column (``-inf``-safe: a constant truth column gives 0)."""
    ss_res = (truth - pred).pow(2).sum(0)
    ss_tot = (truth - truth.mean(0)).pow(2).sum(0)
    return torch.where(ss_tot > 0, 1 - ss_res / ss_tot.clamp_min(1e-300), torch.zeros_like(ss_tot))


@dataclass
class FactorReader:
    """Reads factors off images: the direct ones exactly, the regressed ones through ``net``."""

    names: tuple[str, ...]  # every factor read, direct ones first
    regressed: tuple[str, ...]  # the ones read by the regressor
    net: FactorNet | None  # images -> standardised regressed factors
    y_mean: Tensor  # [F_regressed] de-standardisation
    y_std: Tensor  # [F_regressed]
    r2: dict[str, float]  # held-out R^2 per factor (1.0 for direct readings)

    @torch.no_grad()
    def read(self, images: Tensor, batch_size: int = 512) -> Tensor:
        """``[n, len(names)]`` factor readings (float64) of images in ``[-1, 1]``."""
        cols = [brightness(images).double().view(-1, 1)]
        if self.net is not None and self.regressed:
            pred = torch.cat([self.net(images[i : i + batch_size].float()) for i in range(0, len(images), batch_size)])
            cols.append(pred.double() * self.y_std + self.y_mean)
        return torch.cat(cols, 1)


def _split_table(dm, split: str, n: int | None, names: tuple[str, ...]) -> tuple[Tensor, tuple[str, ...], Tensor]:
    """Images of a split's probe sample with their factor table."""
    positions = dm.sample_positions(split, n)
    rows = dm.dataset(split).indices[positions]
    data = dm.data
    images = dm.images(split, n)
    masks = None if data.masks is None else data.masks[rows]
    factors = {k: np.asarray(v)[rows] for k, v in (data.factors or {}).items()}
    kept, table = factor_table(images, masks, factors, dm.concept_names or (), names)
    return images, kept, table


def fit_factor_reader(
    dm,  # a GANDataModule (set up); its train split fits, its test split scores
    n_fit: int = 3000,  # training posters (at most)
    n_test: int = 1000,  # held-out posters for R^2 (at most)
    epochs: int = 20,
    seed: int = 0,
    names: tuple[str, ...] = REGRESSED_FACTORS,  # wanted regressed factors (unavailable ones are dropped)
) -> FactorReader:
    """Train the factor regressor on real posters; data without factors or masks gets the direct readings only."""
    dm.setup()
    x, kept, y = _split_table(dm, "train", n_fit, names)
    direct = DIRECT_FACTORS
    if not kept or x.shape[0] < 2:
        return FactorReader(direct, (), None, torch.zeros(0), torch.ones(0), {k: 1.0 for k in direct})
    keep = y.std(0) > 0  # a factor constant in the data can't be learnt
    kept, y = tuple(k for k, ok in zip(kept, keep.tolist()) if ok), y[:, keep]
    mean, std = y.mean(0), y.std(0)
    net = fit_factor_net(x, ((y - mean) / std).float(), epochs, seed)
    reader = FactorReader((*direct, *kept), kept, net, mean, std, {k: 1.0 for k in direct})
    split = "test" if len(dm.split.get("test", [])) else "val"
    xt, kept_t, yt = _split_table(dm, split, n_test, kept)
    if kept_t == kept and xt.shape[0] > 1:
        r2 = r_squared(yt, reader.read(xt)[:, len(direct) :])
        reader.r2 |= {k: float(v) for k, v in zip(kept, r2)}
    return reader
