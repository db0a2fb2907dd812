"""Data: image sources, the decode-once cache, and the shared GANDataModule.

Imports are lazy so light tools (the poster downloader, the synthetic-poster renderer) don't pay
for importing Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "GANDataModule": "gan_interp.data.datamodule",
    "model_to_uint8": "gan_interp.data.datamodule",
    "uint8_to_model": "gan_interp.data.datamodule",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gan_interp.data' has no attribute {name!r}")
