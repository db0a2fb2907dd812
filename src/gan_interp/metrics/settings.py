"""The metrics settings: which metrics, on how many images, in which feature space.

One object, instantiated by Hydra from ``conf/metrics/<set>.yaml`` (``_target_`` is this class) and
shared by the training callback (:class:`~gan_interp.callbacks.metrics_callback.MetricsCallback`)
and the checkpoint CLI (``python -m gan_interp.probe_checkpoint``). When the callback evaluates is not a
setting: that is ``schedule.metrics`` (:mod:`gan_interp.callbacks.schedule`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from gan_interp.data.datamodule import SPLITS
from gan_interp.errors import ConfigError
from gan_interp.metrics.features import FEATURE_KINDS


def _plain(obj: Any) -> Any:
    return OmegaConf.to_container(obj, resolve=True) if isinstance(obj, (DictConfig, ListConfig)) else obj


@dataclass
class MetricsSettings:
    """What to evaluate and how (see :mod:`gan_interp.metrics.runner` for the metric names)."""

    metrics: Any = field(default_factory=dict)  # {name: options}, a list of names or "all" (normalised)
    n: int = 512  # generated images per evaluation, and real ones (capped by the split size)
    features: str = "auto"  # auto | inception | domain | pixels (see metrics.features)
    cache_dir: str | None = None  # domain feature-net cache (None -> the metrics output folder)
    batch_size: int = 128  # generation / feature batch
    pixel_size: int = 16  # side of the pooled-pixel representation
    image_size: int = 32  # side of the images the image C2ST sees
    real_split: str = "train"  # real images compared with the fakes (the presets default/all: the held-out "test")
    heldout_splits: tuple[str, ...] = ("val", "test")  # memorisation's held-out reference (never trained on)
    domain: dict[str, Any] | None = None  # domain feature-net kwargs (steps, dim, input_size, n_clusters)
    inception_weights: str | None = None  # explicit Inception weights file
    seed: int = 0  # latents, real subset, permutations, classifier init

    def __post_init__(self) -> None:
        from gan_interp.metrics.registry import normalise_metrics_cfg

        self.metrics = normalise_metrics_cfg(_plain(self.metrics))  # unknown names/options fail here
        self.domain = _plain(self.domain)
        self.heldout_splits = tuple(_plain(self.heldout_splits))
        self.cache_dir = None if self.cache_dir is None else str(self.cache_dir)
        self.n, self.batch_size, self.seed = int(self.n), int(self.batch_size), int(self.seed)
        self.pixel_size, self.image_size = int(self.pixel_size), int(self.image_size)
        if self.metrics and self.n < 4:
            raise ConfigError(f"metrics.n={self.n} is too small; use n >= 4 (hundreds for meaningful numbers)")
        for key in ("batch_size", "pixel_size", "image_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"metrics.{key}={getattr(self, key)} must be >= 1")
        if self.real_split not in SPLITS:
            raise ConfigError(f"metrics.real_split={self.real_split!r} must be one of {', '.join(SPLITS)}")
        if self.features not in FEATURE_KINDS:
            raise ConfigError(f"metrics.features={self.features!r} must be one of {', '.join(FEATURE_KINDS)}")
