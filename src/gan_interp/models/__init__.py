"""GAN models. Every model is a :class:`GANModule` (see ``base.py`` for the generator contract)."""

from __future__ import annotations

import importlib

from gan_interp.models.base import GANModule
from gan_interp.models.dcgan import DCGAN

# config name -> "module:Class" (imported lazily so a broken optional model never blocks the rest)
MODEL_REGISTRY: dict[str, str] = {
    "dcgan": "gan_interp.models.dcgan:DCGAN",
    "stylegan_lite": "gan_interp.models.stylegan_lite:StyleGANLite",
    "kgan": "gan_interp.models.kgan:KGAN",
}


def model_class(name: str) -> type[GANModule]:
    """The class registered under a config name."""
    module, cls = MODEL_REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["DCGAN", "GANModule", "MODEL_REGISTRY", "model_class"]
