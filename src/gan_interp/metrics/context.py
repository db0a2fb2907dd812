"""What a metric function reads: the representations collected per stream, and the run's settings.

:class:`StreamCollector` keeps, batch by batch, the representations one stream (real or generated
images) needs (see :mod:`gan_interp.metrics.registry` for the names); :class:`MetricContext` hands
them to the metric functions together with the model, the data and the settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_interp.metrics.features import FeatureExtractor, PixelFeatures
from gan_interp.metrics.quality import QualityAccumulator
from gan_interp.metrics.settings import MetricsSettings

KEPT = ("pixels", "features", "logits", "images")  # representations kept as per-batch tensors


def positions(n_total: int, n: int, seed: int) -> list[int]:
    """A seeded random subset (sorted) of ``range(n_total)`` of size ``min(n, n_total)``."""
    g = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(n_total, generator=g)[: min(n, n_total)].tolist())


def real_batches(datamodule: Any, split: str, n: int, batch_size: int, seed: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Seeded random subset of a split, in batches: (images [-1,1], dataset positions)."""
    ds = datamodule.dataset(split)
    pos = positions(len(ds), n, seed)
    for b0 in range(0, len(pos), batch_size):
        chunk = pos[b0 : b0 + batch_size]
        yield ds.__getitems__(chunk)["image"], torch.tensor(chunk)


def small_uint8(images: Tensor, size: int) -> Tensor:
    """[-1,1] images -> uint8 at most ``size`` px (average-pooled)."""
    if images.shape[-1] > size:
        images = F.adaptive_avg_pool2d(images.float(), size)
    return images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu()


class StreamCollector:
    """The representations ``needs`` of one stream of image batches (real or generated)."""

    def __init__(
        self,
        needs: frozenset[str],  # representation names (registry.REPRESENTATIONS)
        pix: PixelFeatures,  # images -> pooled pixels
        fx: FeatureExtractor | None,  # images -> (features, logits); needed for features/logits
        image_size: int,  # side of the kept `images`
    ) -> None:
        self.pix, self.fx, self.image_size = pix, fx, image_size
        self.kept: dict[str, list[Tensor]] = {rep: [] for rep in KEPT if rep in needs}
        self.quality = QualityAccumulator() if "image_stats" in needs else None
        self.seconds_features = 0.0  # time spent in the feature net
        self.count = 0  # images seen

    def update(self, images: Tensor) -> None:
        """Take one batch of images in [-1, 1] (on the model's device)."""
        self.count += int(images.shape[0])
        if self.quality is not None:
            self.quality.update(images)
        if "pixels" in self.kept:
            self.kept["pixels"].append(self.pix(images).cpu())
        if "images" in self.kept:
            self.kept["images"].append(small_uint8(images, self.image_size))
        if "features" in self.kept or "logits" in self.kept:
            assert self.fx is not None, "features/logits need a feature extractor"
            t0 = time.perf_counter()
            feats, logits = self.fx(images)
            self.seconds_features += time.perf_counter() - t0
            if "features" in self.kept:
                self.kept["features"].append(feats.cpu())
            if "logits" in self.kept and logits is not None:
                self.kept["logits"].append(logits.cpu())

    def batches(self, rep: str) -> list[Tensor]:
        """The kept per-batch tensors of ``rep`` (empty for logits of a net without classes)."""
        return self.kept[rep]

    def rep(self, rep: str) -> Any:
        """``rep`` of all images: a tensor, or the ``image_stats`` means ``{measure: value}``."""
        if rep == "image_stats":
            assert self.quality is not None
            return self.quality.compute()
        return torch.cat(self.kept[rep])


@dataclass
class MetricContext:
    """Everything a metric function reads (see :mod:`gan_interp.metrics.registry`)."""

    model: Any  # the GANModule (generate / sample_z)
    datamodule: Any  # the GANDataModule (set up)
    settings: MetricsSettings  # n, seed, batch_size, ...
    device: torch.device  # the model's device
    streams: dict[str, StreamCollector]  # "real" / "fake" -> what was collected
    pix: PixelFeatures  # images -> pooled pixels
    fx: FeatureExtractor | None  # images -> (features, logits), if a metric needs features
    z: Tensor  # the latents of the generated images, in order
    gallery_path: Path | None = None  # where a metric may write its picture (memorisation)

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def n(self) -> int:
        return self.settings.n

    def real(self, rep: str) -> Any:
        return self.streams["real"].rep(rep)

    def fake(self, rep: str) -> Any:
        return self.streams["fake"].rep(rep)

    def batches(self, stream: str, rep: str) -> list[Tensor]:
        return self.streams[stream].batches(rep)

    def encoder(self, space: str) -> Callable[[Tensor], Tensor]:
        """images -> ``space`` representation on the CPU (for reference sets read by the metric)."""
        if space == "pixels":
            return lambda x: self.pix(x).cpu()
        assert self.fx is not None, "the features space needs a feature extractor"
        fx = self.fx
        return lambda x: fx(x)[0].cpu()

    def real_batches(self, split: str, n: int, seed: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Seeded random subset of ``split`` in ``settings.batch_size`` batches: (images, positions)."""
        return real_batches(self.datamodule, split, n, self.settings.batch_size, seed)

    def heldout_splits(self) -> list[str]:
        """The non-empty splits of ``settings.heldout_splits`` (never trained on)."""
        return [s for s in self.settings.heldout_splits if self.datamodule.split.get(s)]
