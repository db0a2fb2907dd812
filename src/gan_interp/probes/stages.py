"""Stage names: layers named by where they sit in the network, the same for every architecture.

Module names differ per architecture (DCGAN ``block1``, StyleGAN-lite ``b8_conv1``, k-GAN ``block0``),
so probe readings keyed by them cannot sit side by side. A *stage name* is the side (``G`` or ``D``)
and the side length of the layer's output: ``G_8px`` is the generator layer whose output is 8 x 8,
``D_16px`` the discriminator layer whose output is 16 x 16; a layer whose output has no spatial
dimensions (a score, a vector) is ``<side>_flat``. Where several layers of a side have the same
output size, the *last* one in forward order (the stage's output, which is what one block of every
architecture ends with) gets the plain name and the earlier ones an index in forward order:
StyleGAN-lite's ``b8_conv0`` is ``G_8px_0`` and ``b8_conv1`` is ``G_8px``, next to DCGAN's
``block1`` = ``G_8px``.

Sizes come from one forward pass (:func:`layer_stages`: two fixed latents through the generator,
a blank image through the critic) in eval mode, under ``no_grad`` and a forked torch RNG, so it
changes no state. Probe files on disk keep module names; the names logged to W&B
(``probes/<probe>/...``) use stage names.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from gan_interp.capture import discriminator_shapes, output_shapes

log = logging.getLogger(__name__)


def stage_names(side: str, shapes: Mapping[str, Sequence[int]]) -> dict[str, str]:
    """``{module name: stage name}`` for one side from its layers' output shapes (in forward order)."""
    labels = {}
    for name, shape in shapes.items():
        if len(shape) == 4:
            h, w = int(shape[2]), int(shape[3])
            labels[name] = f"{side}_{h}px" if h == w else f"{side}_{h}x{w}px"
        else:
            labels[name] = f"{side}_flat"
    last = {label: name for name, label in labels.items()}  # the last layer of each size
    seen: dict[str, int] = {}
    out = {}
    for name, label in labels.items():
        if last[label] == name:
            out[name] = label
        else:
            out[name] = f"{label}_{seen.get(label, 0)}"
            seen[label] = seen.get(label, 0) + 1
    return out


@dataclass(frozen=True)
class StageNames:
    """Module name -> stage name per side (``{"G": {...}, "D": {...}}``)."""

    by_side: dict[str, dict[str, str]] = field(default_factory=dict)

    def name(self, side: str, layer: str) -> str:
        """The stage name of ``layer`` on ``side``; unknown layers: ``<side>_<module name>``."""
        return self.by_side.get(side, {}).get(layer) or f"{side}_{safe_key(layer)}"

    def rename(self, path: Sequence[str]) -> list[str]:
        """A key path with every ``<side>, <layer>`` pair (side ``G``/``D`` then one of its layers)
        replaced by the one stage name: ``layers/G/block1/mean`` -> ``layers/G_8px/mean``."""
        out: list[str] = []
        i = 0
        while i < len(path):
            side, nxt = path[i], path[i + 1] if i + 1 < len(path) else None
            if side in self.by_side and nxt in self.by_side[side]:
                out.append(self.by_side[side][nxt])
                i += 2
            else:
                out.append(path[i])
                i += 1
        return out


def safe_key(text: str) -> str:
    """A key segment W&B shows as typed: anything but letters, digits, ``_`` and ``-`` becomes ``_``
    (W&B reads ``.`` as nesting)."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", str(text))


@contextlib.contextmanager
def _untouched(model: nn.Module) -> Iterator[None]:
    """Eval mode and a forked torch RNG for the duration; every submodule's mode restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    devices = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            yield
    finally:
        for m, flag in flags:
            m.training = flag


def layer_stages(model: nn.Module) -> StageNames:
    """Stage names of ``model.generator_layers()`` and ``model.discriminator_layers()`` (one forward pass).

    A model whose forward fails here gets no stage names (module names are used; a warning says why).
    """
    by_side: dict[str, dict[str, str]] = {}
    try:
        with _untouched(model):
            g_layers = model.generator_layers()
            if g_layers:
                z = model.fixed_latents(2)
                by_side["G"] = stage_names("G", output_shapes(g_layers, lambda: model.generate(z)))
            if model.discriminator_layers():
                by_side["D"] = stage_names("D", discriminator_shapes(model))
    except Exception as exc:  # naming must never stop the probes: fall back to module names
        log.warning("stage names of %s unavailable (%s); module names are logged", type(model).__name__, exc)
    return StageNames(by_side)


__all__ = ["StageNames", "layer_stages", "safe_key", "stage_names"]
