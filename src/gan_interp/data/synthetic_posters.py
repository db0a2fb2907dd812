"""Procedural "movie posters": the embedded default dataset and interpretability ground truth.

Every poster is drawn from a handful of latent factors (genre, palette, figure position/scale,
title band, optional orb, frame and stripe texture) with hard edges, so each concept has an
exact per-pixel mask (GAN Dissection computes IoU between generator units and these masks).

Determinism: poster ``i`` under ``seed`` uses its own generator
``SeedSequence(seed, spawn_key=(i,))`` and is rendered with per-element arithmetic only, so it is
bit-identical however the posters are chunked (``start``/``n``).

Mask rule: layers are painted in the order of ``CONCEPTS``; every pixel has exactly one owner,
the last layer painted there. ``masks[:, k]`` is where concept ``k`` is visible in the final
image, so the masks partition the image (every pixel is True in exactly one mask). The frame,
painted last, owns the border pixels it covers; letters own their pixels inside the title band.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gan_interp.errors import ConfigError

CONCEPTS: tuple[str, ...] = ("background", "stripes", "orb", "figure", "title_band", "letters", "frame")
GENRES: tuple[str, ...] = ("action", "comedy", "drama", "horror", "romance", "scifi")
RESOLUTIONS: tuple[int, ...] = (32, 64, 128)

# Per-genre palette: base hue, saturation, value at top / bottom, hue drift top->bottom,
# orb probability, orb hue and saturation (orb value is 1).
_HUE = np.array([0.05, 0.14, 0.60, 0.99, 0.92, 0.47])
_SAT = np.array([0.85, 0.75, 0.55, 0.85, 0.40, 0.70])
_V_TOP = np.array([0.95, 1.00, 0.70, 0.45, 1.00, 0.25])
_V_BOT = np.array([0.55, 0.80, 0.35, 0.22, 0.80, 0.60])
_HUE_DRIFT = np.array([-0.05, 0.03, 0.05, 0.0, -0.05, 0.10])
_ORB_P = np.array([0.5, 0.7, 0.3, 0.8, 0.6, 0.85])
_ORB_HUE = np.array([0.13, 0.02, 0.12, 0.0, 0.0, 0.80])
_ORB_SAT = np.array([0.75, 0.70, 0.35, 0.05, 0.05, 0.50])
N_UNIFORMS = 32  # uniforms drawn per poster (fixed, so the noise stream never shifts)
_CHUNK = 256  # posters rendered at once (memory bound only; results do not depend on it)
_OVERLAY_COLOURS = np.array(
    [[60, 60, 60], [140, 90, 200], [255, 220, 0], [230, 30, 30], [40, 120, 255], [0, 230, 230], [60, 220, 60]],
    dtype=np.uint8,
)


@dataclass
class PosterBatch:
    """A batch of rendered posters with exact concept masks and the factors that made them."""

    images: np.ndarray  # uint8 [N, 3, H, W]
    masks: np.ndarray  # bool [N, len(CONCEPTS), H, W], a partition of the pixels (see module doc)
    factors: dict[str, np.ndarray]  # each shape [N]
    concept_names: tuple[str, ...] = CONCEPTS
    genre_names: tuple[str, ...] = GENRES

    def __len__(self) -> int:
        return int(self.images.shape[0])


def validate_request(
    n: int, resolution: int, seed: int = 0, start: int = 0, orb_probability: float | None = None
) -> None:
    """Raise ``ConfigError`` (a ``ValueError``) with a one-line message naming a bad value."""
    if isinstance(resolution, bool) or resolution not in RESOLUTIONS:
        raise ConfigError(f"resolution={resolution!r} is not supported; use one of {RESOLUTIONS}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"n={n!r} posters requested; n must be an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed={seed!r} is invalid; seed must be an integer >= 0")
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise ConfigError(f"start={start!r} is invalid; start must be an integer >= 0")
    if orb_probability is not None and not 0.0 <= float(orb_probability) <= 1.0:
        raise ConfigError(f"orb_probability={orb_probability!r} must lie in [0, 1] (or None for the genre's own)")


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB for arrays of shape [N]; returns float32 [N, 3] in [0, 1]."""
    h, s, v = (np.asarray(a, dtype=np.float64) for a in (h, s, v))
    h6 = np.mod(h, 1.0) * 6.0
    i = np.floor(h6).astype(np.int64) % 6
    f = h6 - np.floor(h6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = np.stack([np.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))])
    return np.clip(table[i, np.arange(h.shape[0])], 0.0, 1.0).astype(np.float32)


def _sample(u: np.ndarray, orb_probability: float | None = None) -> dict[str, np.ndarray]:
    """Map per-poster uniforms [N, N_UNIFORMS] to latent factors and colours (vectorised).

    ``orb_probability`` replaces the per-genre orb probability (None: the genre's, the default)."""
    g = np.minimum((u[:, 0] * len(GENRES)).astype(np.int64), len(GENRES) - 1)
    hue = np.mod(_HUE[g] + (u[:, 1] - 0.5) * 0.06, 1.0)
    sat = np.clip(_SAT[g] + (u[:, 2] - 0.5) * 0.2, 0.0, 1.0)
    dv = (u[:, 3] - 0.5) * 0.16
    scale = 0.42 + 0.24 * u[:, 4]
    fig_x = 0.28 + 0.44 * u[:, 5]
    has_orb = u[:, 6] < (_ORB_P[g] if orb_probability is None else float(orb_probability))
    orb_x = np.where(fig_x < 0.5, 0.60 + 0.22 * u[:, 7], 0.18 + 0.22 * u[:, 7])
    orb_y, orb_r = 0.32 + 0.18 * u[:, 8], 0.07 + 0.07 * u[:, 9]
    f = {
        "genre": g,
        "hue": hue.astype(np.float32),
        "saturation": sat.astype(np.float32),
        "figure_x": fig_x.astype(np.float32),
        "figure_scale": scale.astype(np.float32),
        "title_top": (u[:, 10] < 0.5).astype(np.int64),
        "title_light": (u[:, 11] < 0.5).astype(np.int64),
        "n_letters": 3 + (u[:, 12] * 6).astype(np.int64),
        "has_orb": has_orb.astype(np.int64),
        "orb_x": np.where(has_orb, orb_x, 0.0).astype(np.float32),
        "orb_y": np.where(has_orb, orb_y, 0.0).astype(np.float32),
        "orb_radius": np.where(has_orb, orb_r, 0.0).astype(np.float32),
        "has_frame": (u[:, 13] < 0.4).astype(np.int64),
        "has_stripes": (u[:, 14] < 0.5).astype(np.int64),
        "stripe_dir": np.where(u[:, 15] < 0.5, -1, 1).astype(np.int64),
        "noise_sigma": (2.0 + 4.0 * u[:, 16]).astype(np.float32),
    }
    ones = np.ones_like(hue)
    light = f["title_light"].astype(bool)
    f["_rgb"] = {  # private: colours [N, 3] per layer
        "top": _hsv_to_rgb(hue, sat, np.clip(_V_TOP[g] + dv, 0, 1)),
        "bot": _hsv_to_rgb(hue + _HUE_DRIFT[g], sat, np.clip(_V_BOT[g] + dv, 0, 1)),
        "orb": _hsv_to_rgb(_ORB_HUE[g], _ORB_SAT[g], ones),
        "figure": _hsv_to_rgb(hue + 0.5, 0.4 * ones, 0.02 + 0.06 * u[:, 17]),
        "band": _hsv_to_rgb(hue, np.where(light, 0.1, 0.35), np.where(light, 0.93, 0.12)),
        "letters": _hsv_to_rgb(hue + 0.5 * u[:, 18], np.where(light, 0.6, 0.45), np.where(light, 0.18, 0.97)),
        "frame": _hsv_to_rgb(0.12 * ones, np.where(u[:, 19] < 0.5, 0.7, 0.0), np.where(u[:, 19] < 0.8, 0.9, 0.05)),
    }
    f["_geom"] = {  # private: raw geometry in [0, 1] units
        "stripe_k": 5 + 5 * u[:, 20],
        "stripe_phase": u[:, 21],
        "stripe_duty": 0.35 + 0.15 * u[:, 22],
        "stripe_light": u[:, 23] < 0.5,
        "band_h": 0.12 + 0.08 * u[:, 24],
        "band_off": 0.06 + 0.04 * u[:, 25],
        "letter_w": 0.05 + 0.03 * u[:, 26],
        "letter_gap": 0.3 + 0.3 * u[:, 27],
        "title_shift": u[:, 28] - 0.5,
        "frame_t": 0.025 + 0.025 * u[:, 29],
        "orb_x": orb_x,
        "orb_y": orb_y,
        "orb_r": orb_r,
    }
    return f


def _render_chunk(f: dict, res: int, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paint one chunk; returns uint8 images [B, 3, R, R] and the owner map int8 [B, R, R]."""
    rgb, geo = f["_rgb"], f["_geom"]
    b = f["genre"].shape[0]
    c = (np.arange(res) + 0.5) / res  # pixel centres in [0, 1]
    y, x = c[None, :, None], c[None, None, :]
    idx = np.arange(res)
    col = lambda a: np.asarray(a)[:, None, None]  # noqa: E731  [B] -> [B, 1, 1]
    owner = np.zeros((b, res, res), np.int8)
    t = c.astype(np.float32)[None, None, :, None]
    img = np.ascontiguousarray(
        np.broadcast_to(rgb["top"][..., None, None] * (1 - t) + rgb["bot"][..., None, None] * t, (b, 3, res, res))
    )

    def paint(mask: np.ndarray, name: str, colour: np.ndarray | None = None) -> None:
        owner[mask] = CONCEPTS.index(name)
        if colour is not None:
            np.copyto(img, colour[:, :, None, None], where=mask[:, None])

    # stripes: diagonal bands over the background, a lighter or darker shade of it
    phase = np.mod((x + col(f["stripe_dir"]) * y) * col(geo["stripe_k"]) + col(geo["stripe_phase"]), 1.0)
    stripes = (phase < col(geo["stripe_duty"])) & col(f["has_stripes"].astype(bool))
    target = np.where(geo["stripe_light"], 1.0, 0.0).astype(np.float32)[:, None, None, None]
    np.copyto(img, img * np.float32(0.75) + np.float32(0.25) * target, where=stripes[:, None])
    paint(stripes, "stripes")
    # orb: a disc, always on the side away from the figure
    orb = (x - col(geo["orb_x"])) ** 2 + (y - col(geo["orb_y"])) ** 2 < col(geo["orb_r"]) ** 2
    paint(orb & col(f["has_orb"].astype(bool)), "orb", rgb["orb"])
    # figure: head ellipse, neck, shoulder ellipse and a widening trapezoid body, anchored at the bottom
    s, fx = col(f["figure_scale"].astype(np.float64)), col(f["figure_x"].astype(np.float64))
    top, dx = 1.0 - s, np.abs(x - fx)
    head = (dx / (0.13 * s)) ** 2 + ((y - top - 0.15 * s) / (0.15 * s)) ** 2 <= 1.0
    neck = (dx < 0.05 * s) & (y >= top + 0.26 * s) & (y < top + 0.42 * s)
    shoulders = (dx / (0.26 * s)) ** 2 + ((y - top - 0.48 * s) / (0.12 * s)) ** 2 <= 1.0
    body = (y >= top + 0.48 * s) & (dx <= 0.26 * s + 0.3 * (y - top - 0.48 * s))
    paint(head | neck | shoulders | body, "figure", rgb["figure"])
    # title band (integer rows) with block "letters" (integer rows/columns)
    bh = np.maximum(3, np.rint(geo["band_h"] * res)).astype(np.int64)
    off = np.rint(geo["band_off"] * res).astype(np.int64)
    b0 = np.where(f["title_top"] == 1, off, res - off - bh)
    rows = (idx[None] >= b0[:, None]) & (idx[None] < (b0 + bh)[:, None])  # [B, R]
    paint(rows[:, :, None] & np.ones((1, 1, res), bool), "title_band", rgb["band"])
    pad = np.maximum(1, np.rint(bh * 0.22)).astype(np.int64)
    lrows = (idx[None] >= (b0 + pad)[:, None]) & (idx[None] < (b0 + bh - pad)[:, None])
    n = f["n_letters"]
    w = np.minimum(geo["letter_w"], 0.8 / (n * (1 + geo["letter_gap"])))
    wp = np.maximum(2, np.rint(w * res)).astype(np.int64)
    gp = np.maximum(1, np.rint(w * geo["letter_gap"] * res)).astype(np.int64)
    total = n * wp + (n - 1) * gp
    x0 = np.rint(0.1 * res + np.maximum(0.0, 0.8 * res - total) * (geo["title_shift"] + 0.5)).astype(np.int64)
    rel = idx[None] - x0[:, None]
    lcols = (rel >= 0) & (rel < total[:, None]) & (np.mod(rel, (wp + gp)[:, None]) < wp[:, None])
    paint(lrows[:, :, None] & lcols[:, None, :], "letters", rgb["letters"])
    # frame: a border ring of integer thickness
    tp = np.maximum(1, np.rint(geo["frame_t"] * res)).astype(np.int64)[:, None]
    edge = (idx[None] < tp) | (idx[None] >= res - tp)  # [B, R]
    paint((edge[:, :, None] | edge[:, None, :]) & col(f["has_frame"].astype(bool)), "frame", rgb["frame"])
    # mild per-pixel noise on the image only
    img = img * np.float32(255.0) + noise * f["noise_sigma"][:, None, None, None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), owner


def _poster_streams(indices: range, seed: int, res: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-poster uniforms [B, N_UNIFORMS] and unit noise [B, 3, R, R] from (seed, index)."""
    u = np.empty((len(indices), N_UNIFORMS))
    noise = np.empty((len(indices), 3, res, res), np.float32)
    for k, i in enumerate(indices):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))
        u[k] = rng.random(N_UNIFORMS)  # factors first: identical at every resolution
        noise[k] = rng.standard_normal((3, res, res), dtype=np.float32)
    return u, noise


def render_posters(
    n: int,  # posters to render
    resolution: int = 64,  # side: 32, 64 or 128
    seed: int = 0,  # the poster stream
    start: int = 0,  # index of the first poster in the stream
    orb_probability: float | None = None,  # None: each genre's own (the default); 0: posters never have an orb
) -> PosterBatch:
    """Render posters ``start .. start+n-1`` of stream ``seed`` at ``resolution`` (32, 64 or 128).

    Poster ``i`` is bit-identical whatever ``n``/``start`` it is rendered under; its factors do not
    depend on ``resolution`` (only the pixel grid and the noise do). ``orb_probability`` changes only
    whether a poster has an orb (the same uniform decides it): with 0, every poster is the default one
    with its orb left out and nothing else changed (the planted "no-orb" control of the probe scorecard).
    """
    validate_request(n, resolution, seed, start, orb_probability)
    res = int(resolution)
    streams = lambda lo, hi: _poster_streams(range(start + lo, start + hi), int(seed), res)  # noqa: E731
    return _render(int(n), res, streams, orb_probability)


def _render(n: int, res: int, inputs, orb_probability: float | None = None) -> PosterBatch:
    """Render ``n`` posters in chunks; ``inputs(lo, hi)`` gives a chunk's (uniforms, unit noise)."""
    images = np.empty((n, 3, res, res), np.uint8)
    masks = np.empty((n, len(CONCEPTS), res, res), bool)
    parts: list[dict] = []
    kinds = np.arange(len(CONCEPTS), dtype=np.int8)[None, :, None, None]
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        u, noise = inputs(lo, hi)
        f = _sample(u, orb_probability)
        images[lo:hi], owner = _render_chunk(f, res, noise)
        masks[lo:hi] = owner[:, None] == kinds
        parts.append({k: v for k, v in f.items() if not k.startswith("_")})
    factors = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return PosterBatch(images=images, masks=masks, factors=factors)


def render_from_uniforms(u: np.ndarray, resolution: int = 64, noise: np.ndarray | None = None) -> PosterBatch:
    """Posters drawn from given per-poster uniforms ``u [N, N_UNIFORMS]`` in ``[0, 1)`` instead of a seeded
    stream: column ``j`` drives what :func:`_sample` reads from ``u[:, j]`` (0 genre, 1 hue offset, 2 saturation
    offset, 3 value offset, 4 figure scale, 5 figure x, 6 orb presence, 7-9 orb x/y/radius, 10 title at top,
    11 light title, 12 letter count, 13 frame, 14 stripes, ...). ``noise [N, 3, R, R]`` in units of
    ``noise_sigma`` (default: none). The probe scorecard's planted generator renders through this.
    """
    u = np.asarray(u, dtype=np.float64).reshape(-1, N_UNIFORMS)
    validate_request(len(u), resolution)
    res = int(resolution)

    def inputs(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        return u[lo:hi], np.zeros((hi - lo, 3, res, res), np.float32) if noise is None else noise[lo:hi]

    return _render(len(u), res, inputs)


def render_poster(index: int, resolution: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """One poster: (uint8 image [3, R, R], bool masks [C, R, R], factors as Python scalars)."""
    batch = render_posters(1, resolution=resolution, seed=seed, start=index)
    return batch.images[0], batch.masks[0], {k: v[0].item() for k, v in batch.factors.items()}


def save_preview(path: str | Path, n: int = 16, resolution: int = 64, seed: int = 0) -> Path:
    """Write a PNG: a grid of ``n`` posters, and below it the same grid as concept-mask overlays."""
    from PIL import Image

    batch = render_posters(n, resolution=resolution, seed=seed)
    cols = int(np.ceil(np.sqrt(n)))
    rows = -(-n // cols)
    scale, gap = max(1, 128 // resolution), 2
    tile = resolution * scale + gap
    canvas = np.full((2 * rows * tile + gap, cols * tile + gap, 3), 255, np.uint8)
    owner = np.argmax(batch.masks, axis=1)  # masks partition the pixels
    gray = batch.images.astype(np.float32).mean(axis=1, keepdims=True).transpose(0, 2, 3, 1)
    overlay = (0.35 * gray + 0.65 * _OVERLAY_COLOURS[owner]).astype(np.uint8)
    for k in range(n):
        r, cc = divmod(k, cols)
        for block, pic in ((0, batch.images[k].transpose(1, 2, 0)), (rows, overlay[k])):
            up = pic.repeat(scale, axis=0).repeat(scale, axis=1)
            y0, x0 = (block + r) * tile + gap, cc * tile + gap
            canvas[y0 : y0 + up.shape[0], x0 : x0 + up.shape[1]] = up
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
    return path
