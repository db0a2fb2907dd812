"""Decode one image file into a fixed-size uint8 array (CHW), robust to bad files.

Aspect handling: ``center_crop`` takes the largest centred square; ``letterbox`` pads the short
side with a constant fill so nothing is cut off (posters are ~182x268, i.e. portrait).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ASPECT_MODES = ("center_crop", "letterbox")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")

# A crop fraction, or a rule giving it from the image's (width, height).
CropFraction = float | Callable[[tuple[int, int]], float]

# Exceptions Pillow raises for corrupt, truncated or non-image files.
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


class DecodeFailure(Exception):
    """A single file could not be decoded (the caller skips it and counts it)."""


def check_aspect(aspect: str) -> None:
    if aspect not in ASPECT_MODES:
        from gan_interp.errors import ConfigError

        raise ConfigError(f"data.aspect={aspect!r} is not supported; use one of {', '.join(ASPECT_MODES)}")


def to_square(
    img: Image.Image,
    resolution: int,  # output side length in pixels
    aspect: str = "center_crop",  # 'center_crop' or 'letterbox'
    crop_fraction: CropFraction = 1.0,  # central fraction of the short side kept first, or size -> fraction
    fill: int = 0,  # letterbox padding value
) -> Image.Image:
    """Resize ``img`` to ``resolution`` x ``resolution`` using the chosen aspect handling."""
    if callable(crop_fraction):  # per-image rule, e.g. LFW: crop the 250x250 frames, keep ready-cropped faces
        crop_fraction = crop_fraction(img.size)
    if crop_fraction < 1.0:
        w, h = img.size
        side = max(1, int(round(min(w, h) * crop_fraction)))
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    if aspect == "center_crop":
        return ImageOps.fit(img, (resolution, resolution), method=Image.Resampling.BICUBIC)
    fill_value = fill if img.mode == "L" else (fill,) * len(img.getbands())
    return ImageOps.pad(img, (resolution, resolution), method=Image.Resampling.BICUBIC, color=fill_value)


def decode_image_file(
    path: str | Path,
    resolution: int,  # output side length
    channels: int = 3,  # 3 -> RGB, 1 -> grayscale
    aspect: str = "center_crop",
    crop_fraction: CropFraction = 1.0,
) -> np.ndarray:
    """Return ``uint8 [channels, resolution, resolution]`` or raise :class:`DecodeFailure`.

    Grayscale, palette and CMYK files are converted. ``Image.load()`` (not ``verify()``) is used:
    a truncated JPEG passes ``verify()`` and only fails when its pixels are decoded.
    """
    try:
        with Image.open(path) as img:
            img.load()
            img = img.convert("RGB" if channels == 3 else "L")
    except DECODE_ERRORS as exc:  # corrupt / truncated / not an image
        raise DecodeFailure(f"{path}: {type(exc).__name__}: {exc}") from exc
    img = to_square(img, resolution, aspect, crop_fraction)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr)


def list_image_files(root: Path, recursive: bool = True) -> list[Path]:
    """All image files under ``root`` (sorted, so the order is reproducible)."""
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
