"""Decode once, train many times: a uint8 image cache on disk (``.npy``, memory-mapped on load).

Layout of one cache entry ``<cache_dir>/<source>-<res>px-<hash>/``::

    images.npy   uint8 [N_alloc, C, H, W]   (only the first ``n_valid`` rows are used)
    masks.npy    bool  [N, K, H, W]         (optional: concept masks)
    labels.npy   int64 [N]                  (optional)
    factors.npz  dict of [N] arrays         (optional: latent factors of procedural data)
    meta.json    n_valid, skipped files, concept/label names, fingerprint

The entry is written into a temporary folder and renamed into place, so parallel sweep jobs and
interrupted runs never see a half-written cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gan_interp.data.decode import DecodeFailure, decode_image_file
from gan_interp.data.sources import ArraySource, FileSource, ImageSource
from gan_interp.io import atomic_path
from gan_interp.progress import Progress

log = logging.getLogger(__name__)

CACHE_VERSION = 1
MEMMAP_THRESHOLD_BYTES = 512 * 2**20  # larger caches stay on disk, memory-mapped


@dataclass
class CachedImages:
    """Decoded images of a source at one resolution (arrays may be memory-mapped)."""

    images: np.ndarray  # uint8 [N, C, H, W]
    masks: np.ndarray | None = None  # bool [N, K, H, W]
    labels: np.ndarray | None = None  # int64 [N]
    factors: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def concept_names(self) -> list[str]:
        return list(self.meta.get("concept_names", []))


def cache_key(source: ImageSource, resolution: int, channels: int, aspect: str) -> str:
    material = json.dumps(
        {"v": CACHE_VERSION, "src": source.fingerprint(), "res": resolution, "ch": channels, "aspect": aspect},
        sort_keys=True,
        default=str,
    )
    return f"{source.name}-{resolution}px-{hashlib.sha1(material.encode()).hexdigest()[:12]}"


def _decode_files(source: FileSource, out_dir: Path, resolution: int, channels: int, aspect: str, workers: int) -> dict:
    files = source.files()
    images = np.lib.format.open_memmap(
        out_dir / "images.npy", mode="w+", dtype=np.uint8, shape=(len(files), channels, resolution, resolution)
    )
    labels = source.labels()
    kept, skipped = [], []

    def decode(path: Path) -> np.ndarray | str:
        try:
            return decode_image_file(path, resolution, channels, aspect, source.crop_rule())
        except DecodeFailure as exc:
            return str(exc)

    progress = Progress(len(files), f"decode cache {source.name}", unit="images")
    with progress, ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # Pillow releases the GIL while decoding
        for i, result in enumerate(pool.map(decode, files, chunksize=1)):
            progress.update(1)
            if isinstance(result, str):
                skipped.append(result)
                continue
            images[len(kept)] = result
            kept.append(i)
    images.flush()
    del images
    if labels is not None:
        np.save(out_dir / "labels.npy", labels[kept])
    if skipped:
        log.warning("skipped %d unreadable image file(s) of %d; first: %s", len(skipped), len(files), skipped[0])
    return {"n_valid": len(kept), "n_files": len(files), "skipped": skipped, "label_names": source.label_names()}


def _store_arrays(source: ArraySource, out_dir: Path, resolution: int, channels: int) -> dict:
    arrays = source.arrays(resolution, channels)
    images = np.ascontiguousarray(arrays["images"], dtype=np.uint8)
    np.save(out_dir / "images.npy", images)
    if arrays.get("masks") is not None:
        np.save(out_dir / "masks.npy", np.ascontiguousarray(arrays["masks"], dtype=bool))
    if arrays.get("labels") is not None:
        np.save(out_dir / "labels.npy", np.asarray(arrays["labels"], dtype=np.int64))
    if arrays.get("factors"):
        np.savez(out_dir / "factors.npz", **{k: np.asarray(v) for k, v in arrays["factors"].items()})
    return {
        "n_valid": int(images.shape[0]),
        "skipped": [],
        "concept_names": list(arrays.get("concept_names", [])),
        "label_names": list(arrays.get("label_names", [])),
    }


def build_cache(
    source: ImageSource, cache_dir: Path, resolution: int, channels: int, aspect: str, workers: int = 4
) -> Path:
    """Decode ``source`` into the cache (no-op if the entry exists). Returns the entry folder."""
    cache_dir = Path(cache_dir).expanduser()
    entry = cache_dir / cache_key(source, resolution, channels, aspect)
    if (entry / "meta.json").is_file():
        return entry
    with atomic_path(entry, directory=True) as tmp:  # another process finishing first: theirs is kept
        if isinstance(source, FileSource):
            meta = _decode_files(source, tmp, resolution, channels, aspect, workers)
        else:
            meta = _store_arrays(source, tmp, resolution, channels)
        meta.update(source=source.name, resolution=resolution, channels=channels, aspect=aspect)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    return entry


def load_cache(entry: Path) -> CachedImages:
    """Open a cache entry; big arrays are memory-mapped, small ones read into RAM."""
    meta = json.loads((entry / "meta.json").read_text())
    n = int(meta["n_valid"])
    images_path = entry / "images.npy"
    mmap = "r" if images_path.stat().st_size > MEMMAP_THRESHOLD_BYTES else None
    images = np.load(images_path, mmap_mode=mmap)[:n]
    masks = np.load(entry / "masks.npy", mmap_mode="r") if (entry / "masks.npy").is_file() else None
    labels = np.load(entry / "labels.npy") if (entry / "labels.npy").is_file() else None
    factors = dict(np.load(entry / "factors.npz")) if (entry / "factors.npz").is_file() else {}
    return CachedImages(images=images, masks=masks, labels=labels, factors=factors, meta=meta, path=entry)
