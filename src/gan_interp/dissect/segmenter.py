"""Concept segmenters: image -> bool concept masks, the "s_c(x)" of GAN Dissection.

* :class:`NetSegmenter` - a small U-Net trained by the project itself on ground-truth masks
  (``synthetic_posters`` ships exact per-pixel masks). :func:`trained_segmenter` trains it once,
  seeded, and caches it under ``<cache_dir>/segmenters/<key>.pt`` (the key hashes the data
  fingerprint and every training setting, so a changed setting trains a new one).
* :class:`ColourSegmenter` - colour concepts (black/white/gray and eight hue ranges) plus an
  optional "texture" concept (high local contrast), for data without masks; the hue concepts only
  where the data can show them (:func:`data_has_hues`: not on grayscale data, even loaded as RGB).
* any user object with ``concept_names`` and ``__call__(images) -> bool [B, K, H, W]``, built from
  a ``_target_`` config by :func:`build_segmenter`.

Every segmenter takes images in ``[-1, 1]`` ``[B, C, H, W]`` and returns bool ``[B, K, H, W]``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_interp.errors import ConfigError
from gan_interp.io import torch_save

log = logging.getLogger(__name__)

SEGMENTER_VERSION = 1


@runtime_checkable
class Segmenter(Protocol):
    concept_names: list[str]

    def __call__(self, images: Tensor) -> Tensor:  # [-1,1] [B,C,H,W] -> bool [B,K,H,W]
        ...


# -- trained segmentation net ------------------------------------------------------------------------
def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SegNet(nn.Module):
    """Three-scale U-Net: full, 1/2 and 1/4 resolution, skip connections, 1x1 head (logits)."""

    def __init__(
        self,
        in_channels: int,  # image channels
        n_concepts: int,  # K output maps
        width: int = 24,  # channels at full resolution (x2 per scale down)
    ) -> None:
        super().__init__()
        w = width
        self.enc1, self.enc2, self.enc3 = _block(in_channels, w), _block(w, 2 * w), _block(2 * w, 2 * w)
        self.dec2, self.dec1 = _block(4 * w, 2 * w), _block(3 * w, w)
        self.head = nn.Conv2d(w, n_concepts, 1)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(e3, size=e2.shape[-2:], mode="nearest"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="nearest"), e1], 1))
        return self.head(d1)


class NetSegmenter:
    """Wraps a :class:`SegNet`: exclusive concepts -> one-hot argmax, else sigmoid > 0.5 per concept."""

    def __init__(
        self,
        net: SegNet,  # trained network (kept in eval mode)
        concept_names: list[str],  # names of the K output maps
        exclusive: bool = True,  # True: concepts partition the pixels (argmax); False: multi-label
        metrics: dict[str, Any] | None = None,  # held-out quality recorded at training time
    ) -> None:
        self.net = net.eval()
        self.concept_names = list(concept_names)
        self.exclusive = exclusive
        self.metrics = dict(metrics or {})

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        param = next(self.net.parameters())
        logits = self.net(images.to(param.device, param.dtype))
        if self.exclusive:
            return F.one_hot(logits.argmax(1), len(self.concept_names)).permute(0, 3, 1, 2).bool()
        return logits > 0

    def to(self, device: torch.device | str) -> NetSegmenter:
        self.net.to(device)
        return self


def segmentation_quality(segmenter: Segmenter, images: Tensor, masks: Tensor, batch_size: int = 128) -> dict[str, Any]:
    """Pixel accuracy and per-concept IoU of ``segmenter`` against ground-truth bool masks."""
    inter = torch.zeros(masks.shape[1], dtype=torch.float64)
    union = torch.zeros_like(inter)
    correct = 0.0
    for lo in range(0, images.shape[0], batch_size):
        pred = segmenter(images[lo : lo + batch_size]).cpu()
        gt = masks[lo : lo + batch_size].bool().cpu()
        inter += (pred & gt).sum((0, 2, 3)).double()
        union += (pred | gt).sum((0, 2, 3)).double()
        correct += (pred == gt).all(1).sum().item()
    n_pix = images.shape[0] * images.shape[-1] * images.shape[-2]
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(union, float("nan")))
    return {
        "pixel_accuracy": correct / max(n_pix, 1),
        "concept_iou": {name: float(v) for name, v in zip(segmenter.concept_names, iou.tolist())},
    }


def train_segnet(
    images: Tensor,  # float [-1,1] [N, C, H, W] training images
    masks: Tensor,  # bool [N, K, H, W] ground-truth masks
    steps: int = 600,  # optimiser steps
    batch_size: int = 32,
    lr: float = 3e-3,  # Adam learning rate (cosine-decayed to 0)
    width: int = 24,  # SegNet width
    seed: int = 0,  # init + batch order (the global RNG is left untouched)
) -> tuple[SegNet, bool]:
    """Train a :class:`SegNet` on ground-truth masks; returns (net in eval mode, exclusive flag)."""
    if images.shape[0] == 0 or masks.shape[0] != images.shape[0]:
        raise ConfigError(
            f"segmenter training needs images and masks of the same N>0, got {images.shape[0]} / {masks.shape[0]}"
        )
    exclusive = bool((masks.sum(1) == 1).all())
    target = masks.float().argmax(1) if exclusive else masks.float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SegNet(images.shape[1], masks.shape[1], width)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.15)
        net.train()
        for _ in range(steps):
            idx = torch.randint(0, images.shape[0], (min(batch_size, images.shape[0]),), generator=gen)
            x, y = images[idx].float(), target[idx]
            if torch.rand((), generator=gen) < 0.5:  # horizontal flip (poster concepts are symmetric enough)
                x, y = x.flip(-1), y.flip(-1)
            logits = net(x)
            loss = F.cross_entropy(logits, y) if exclusive else F.binary_cross_entropy_with_logits(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return net.eval(), exclusive


def trained_segmenter(
    datamodule: Any,  # a GANDataModule whose source has ground-truth masks
    cache_dir: str | Path,  # segmenters are cached in <cache_dir>/segmenters/<key>.pt
    steps: int = 600,
    batch_size: int = 32,
    lr: float = 3e-3,
    width: int = 24,
    seed: int = 0,
    max_train: int | None = None,  # cap on training images (None: the whole train split)
) -> NetSegmenter:
    """The project's own segmenter for a masked dataset: load from cache or train (seeded) and cache."""
    masks_np = datamodule.masks("train")
    if masks_np is None:
        raise ConfigError(
            f"data {getattr(datamodule, 'name', '?')!r} has no concept masks to train a segmenter on; "
            "use probes.dissection.segmenter=colour or a _target_ segmenter"
        )
    n_train = len(masks_np) if max_train is None else min(int(max_train), len(masks_np))
    names = list(datamodule.concept_names)
    settings = {
        "v": SEGMENTER_VERSION,
        "source": datamodule.source.fingerprint(),
        "res": datamodule.resolution,
        "ch": datamodule.channels,
        "split_seed": datamodule.split_seed,
        "concepts": names,
        "n_train": n_train,
        **({"subset": "probe-sample-v1"} if n_train < len(masks_np) else {}),  # capped sets: not the first rows
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "width": width,
        "seed": seed,
    }
    key = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = Path(cache_dir).expanduser() / "segmenters" / f"{key}.pt"
    if path.is_file():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        net = SegNet(datamodule.channels, len(names), width)
        net.load_state_dict(blob["state_dict"])
        return NetSegmenter(net, names, bool(blob["exclusive"]), json.loads(blob["metrics"]))
    t0 = time.perf_counter()
    if n_train < len(masks_np):  # capped: the split's seeded, class-stratified probe sample
        images, masks_np = datamodule.images_with_masks("train", n_train)
    else:  # the whole split, in cache order
        images = datamodule.images("train")
    masks = torch.from_numpy(np.ascontiguousarray(masks_np))
    net, exclusive = train_segnet(images, masks, steps, batch_size, lr, width, seed)
    seg = NetSegmenter(net, names, exclusive)
    metrics: dict[str, Any] = {"train_seconds": time.perf_counter() - t0, "settings": settings}
    val_masks = datamodule.masks("val")
    if val_masks is not None and len(val_masks):
        metrics["val"] = segmentation_quality(
            seg, datamodule.images("val"), torch.from_numpy(np.ascontiguousarray(val_masks))
        )
    seg.metrics = metrics
    torch_save({"state_dict": net.state_dict(), "exclusive": exclusive, "metrics": json.dumps(metrics)}, path)
    log.info("trained segmenter %s in %.1fs (%s)", path.name, metrics["train_seconds"], metrics.get("val", {}))
    return seg


# -- colour / texture concepts -----------------------------------------------------------------------
HUE_BINS: tuple[tuple[str, float, float], ...] = (  # name, hue from, hue to (hue in [0, 1))
    ("red", 0.958, 1.0001),
    ("red", 0.0, 0.042),
    ("orange", 0.042, 0.11),
    ("yellow", 0.11, 0.19),
    ("green", 0.19, 0.45),
    ("cyan", 0.45, 0.53),
    ("blue", 0.53, 0.72),
    ("purple", 0.72, 0.83),
    ("pink", 0.83, 0.958),
)


def rgb_to_hsv(rgb: Tensor) -> Tensor:
    """RGB in [0, 1] ``[B, 3, H, W]`` -> HSV in [0, 1] (hue as a fraction of the circle)."""
    r, g, b = rgb.unbind(1)
    v, _ = rgb.max(1)
    c = v - rgb.min(1).values
    s = torch.where(v > 0, c / v.clamp_min(1e-8), torch.zeros_like(v))
    safe = c.clamp_min(1e-8)
    h = torch.where(v == r, ((g - b) / safe) % 6, torch.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = torch.where(c > 0, h / 6.0, torch.zeros_like(h)) % 1.0
    return torch.stack([h, s, v], 1)


class ColourSegmenter:
    """Simple colour concepts for any data: achromatic (black/gray/white) or one of eight hues
    (``hues=False``, chosen for 1-channel data by :func:`build_segmenter`: black/gray/white by value only).

    The colour concepts partition the pixels; ``texture=True`` adds a non-exclusive "texture"
    concept where the local (3x3) luminance standard deviation exceeds ``texture_std``.
    """

    def __init__(
        self,
        dark: float = 0.2,  # value below this -> black
        grey_saturation: float = 0.2,  # saturation below this -> gray/white
        white: float = 0.8,  # value above this (with low saturation) -> white
        texture: bool = True,  # add the "texture" concept
        texture_std: float = 0.08,  # local luminance std threshold (images in [0, 1])
        hues: bool = True,  # the eight hue concepts (False for grayscale data, where no hue can occur)
    ) -> None:
        self.dark, self.grey_saturation, self.white = dark, grey_saturation, white
        self.texture, self.texture_std = texture, texture_std
        hue_names = list(dict.fromkeys(name for name, _, _ in HUE_BINS)) if hues else []
        self.concept_names = ["black", "gray", "white", *hue_names] + (["texture"] if texture else [])

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        x = ((images.float() + 1) / 2).clamp(0, 1)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h, s, v = rgb_to_hsv(x).unbind(1)
        black = v < self.dark
        achrom = ~black & (s < self.grey_saturation)
        chroma = ~black & ~achrom
        out = {"black": black, "gray": achrom & (v <= self.white), "white": achrom & (v > self.white)}
        for name, lo, hi in HUE_BINS:
            m = chroma & (h >= lo) & (h < hi)
            out[name] = out[name] | m if name in out else m
        if "red" not in self.concept_names:  # no hue concepts: chromatic pixels count as gray/white by value
            out["gray"] |= chroma & (v <= self.white)
            out["white"] |= chroma & (v > self.white)
        if self.texture:
            lum = x.mean(1, keepdim=True)
            mean = F.avg_pool2d(lum, 3, 1, 1, count_include_pad=False)
            var = F.avg_pool2d(lum**2, 3, 1, 1, count_include_pad=False) - mean**2
            out["texture"] = (var.clamp_min(0).sqrt() > self.texture_std)[:, 0]
        return torch.stack([out[n] for n in self.concept_names], 1)


HUE_CHECK_IMAGES = 256  # real training images checked for colour before hue concepts are offered
MIN_HUE_FRACTION = 0.005  # hue concepts need at least this fraction of chromatic real pixels


@torch.no_grad()
def data_has_hues(datamodule: Any) -> bool:
    """Whether hue concepts can occur in the data: not for 1-channel data, nor for RGB data whose real
    images (a probe sample of the training split) have under :data:`MIN_HUE_FRACTION` chromatic pixels
    (a grayscale folder loaded as RGB). Without a datamodule: True (nothing to check against)."""
    if datamodule is None:
        return True
    if getattr(datamodule, "channels", 3) == 1:
        return False
    if not hasattr(datamodule, "images"):
        return True
    images = datamodule.images("train", HUE_CHECK_IMAGES)
    if images.numel() == 0:
        return True
    seg = ColourSegmenter(texture=False)
    hue_names = [n for n in seg.concept_names if n not in ("black", "gray", "white")]
    masks = seg(images)
    chromatic = masks[:, [seg.concept_names.index(n) for n in hue_names]].any(1)
    return float(chromatic.float().mean()) >= MIN_HUE_FRACTION


# -- factory ---------------------------------------------------------------------------------------
def build_segmenter(
    spec: str | Mapping[str, Any] | None,  # "auto" | "trained" | "colour" | {_target_: ...}
    datamodule: Any = None,  # needed for "trained" / "auto"
    cache_dir: str | Path | None = None,  # where trained segmenters are cached
    **train_kwargs: Any,  # steps, batch_size, lr, width, seed, max_train for "trained"
) -> Segmenter:
    """Resolve a segmenter spec; "auto" = trained on ground-truth masks if the data has them, else colours."""
    if isinstance(spec, Mapping) or hasattr(spec, "keys"):
        if "_target_" not in spec:
            raise ConfigError(f"segmenter={dict(spec)!r} needs a _target_ (a class or function building the segmenter)")
        import hydra

        seg = hydra.utils.instantiate(spec)
        if not hasattr(seg, "concept_names") or not callable(seg):
            raise ConfigError(f"segmenter {spec['_target_']} must be callable and have concept_names")
        return seg
    kind = "auto" if spec is None else str(spec).lower()
    if kind in ("colour", "color", "colours", "colors"):
        return ColourSegmenter(hues=data_has_hues(datamodule))  # grayscale data: no hue concepts
    if kind in ("auto", "trained"):
        has_masks = datamodule is not None and datamodule.masks("train") is not None
        if kind == "auto" and not has_masks:
            return ColourSegmenter(hues=data_has_hues(datamodule))
        if datamodule is None:
            raise ConfigError("segmenter=trained needs a datamodule with concept masks")
        return trained_segmenter(datamodule, cache_dir or datamodule.cache_dir, **train_kwargs)
    raise ConfigError(f"segmenter={spec!r} is not known; use auto, trained, colour or a {{_target_: ...}} config")
