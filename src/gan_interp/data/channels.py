"""The channel count of an image folder, inferred from its files when ``data.channels`` is null.

A grayscale folder (every checked file is ``L``/``LA``/``I``/``1`` or colour with equal bands) trains
1-channel; anything else 3-channel. An explicit ``data.channels`` (1 or 3) always wins. The model
reads ``model.channels: ${data.channels}``, so :func:`resolve_channels` runs on the config before
data and model are instantiated; the decode cache is keyed by the resolved count.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gan_interp.data.decode import DECODE_ERRORS
from gan_interp.errors import ConfigError

log = logging.getLogger(__name__)

GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
CHANNEL_CHOICES = (1, 3)
MAX_CHECKED_FILES = 64  # spread evenly over the (sorted) file list, so every class folder is seen


def is_grayscale(path: Path) -> bool | None:
    """True/False for a readable image (colour files with identical bands count as gray); None if unreadable."""
    try:
        with Image.open(path) as img:
            if img.mode in GRAY_MODES:
                return True
            img.thumbnail((64, 64))
            rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    except DECODE_ERRORS:
        return None
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def infer_channels(files: list[Path], max_files: int = MAX_CHECKED_FILES) -> int:
    """1 if every checked readable file is grayscale, else 3 (also 3 when nothing is readable)."""
    if not files:
        return 3
    picks = np.unique(np.linspace(0, len(files) - 1, num=min(max_files, len(files))).round().astype(int))
    verdicts = [v for v in (is_grayscale(files[i]) for i in picks) if v is not None]
    return 1 if verdicts and all(verdicts) else 3


def check_channels(channels: Any) -> int | None:
    """``data.channels``: null (infer) or 1 or 3."""
    if channels is None or (isinstance(channels, str) and channels.lower() in ("auto", "null", "none")):
        return None
    if isinstance(channels, bool) or not isinstance(channels, int) or channels not in CHANNEL_CHOICES:
        raise ConfigError(f"data.channels={channels!r} must be 1 (grayscale), 3 (RGB) or null (inferred from images)")
    return int(channels)


def resolve_channels(cfg: Any) -> int:
    """Set ``cfg.data.channels`` (null -> inferred from the source's files, with a one-line notice)."""
    from omegaconf import open_dict

    explicit = check_channels(cfg.data.get("channels"))
    if explicit is not None:
        return explicit
    import hydra

    source = hydra.utils.instantiate(cfg.data.source, channels=3)  # its own channels are ${data.channels}: null
    channels = source.infer_channels()
    with open_dict(cfg):
        cfg.data.channels = channels
    kind = "grayscale: training 1-channel" if channels == 1 else "colour: training RGB"
    other = 3 if channels == 1 else 1
    where = getattr(source, "root", source.name)
    log.info("data.channels=%d: images in %s are %s (set data.channels=%d to override)", channels, where, kind, other)
    return channels
