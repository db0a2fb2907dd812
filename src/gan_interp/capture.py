"""Forward-hook activation capture (the one helper probes and :mod:`gan_interp.dissect` use) and layer shapes.

* :func:`capture` - a context manager whose dict fills with each hooked layer's output (name ->
  tensor) on every forward pass while it is open; optionally the forward is aborted
  (:class:`StopForward`) as soon as every layer has fired.
* :func:`run_capturing` - run one function and return the captured outputs.
* :func:`output_shapes`, :func:`discriminator_shapes`, :func:`last_feature_layer` - layer output
  shapes from one forward pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import Tensor, nn


class StopForward(Exception):
    """Raised by a hook to end a forward pass early once every wanted activation is captured."""


@contextlib.contextmanager
def capture(
    layers: Mapping[str, nn.Module],  # name -> module whose output is stored under that name
    stop_early: bool = False,  # abort the forward (StopForward) once every layer has fired
    detach: bool = True,  # store detached copies (False: the output itself, e.g. to backprop through it)
) -> Iterator[dict[str, Tensor]]:
    """Forward hooks that store each layer's latest output in the yielded dict (name -> tensor).

    With ``stop_early`` wrap the forward in :func:`run_capturing` (it catches :class:`StopForward`).
    """
    store: dict[str, Tensor] = {}
    handles = []

    def make(name: str):
        def hook(_m: nn.Module, _inp, out) -> None:
            t = out[0] if isinstance(out, (tuple, list)) else out
            store[name] = t.detach().clone() if detach else t  # clone: later in-place ops must not change it
            if stop_early and len(store) == len(layers):
                raise StopForward

        return hook

    try:
        for name, layer in layers.items():
            handles.append(layer.register_forward_hook(make(name)))
        yield store
    finally:
        for h in handles:
            h.remove()


def run_capturing(
    layers: Mapping[str, nn.Module],
    fn: Callable[[], object],
    stop_early: bool = True,
    detach: bool = True,
) -> dict[str, Tensor]:
    """Run ``fn()`` and return the outputs of ``layers`` (by default the forward stops after the last one)."""
    with capture(layers, stop_early=stop_early, detach=detach) as store, contextlib.suppress(StopForward):
        fn()
    return dict(store)


def output_shapes(layers: Mapping[str, nn.Module], fn: Callable[[], object]) -> dict[str, tuple[int, ...]]:
    """Output shape of every layer that fires while running ``fn()`` (firing order), under ``no_grad``."""
    with torch.no_grad():
        acts = run_capturing(layers, fn, stop_early=False, detach=False)
    return {k: tuple(v.shape) for k, v in acts.items()}


def discriminator_shapes(model) -> dict[str, tuple[int, ...]]:
    """Output shape of every ``discriminator_layers()`` entry for one blank image."""
    x = torch.zeros(1, model.channels, model.resolution, model.resolution, device=model.device)
    return output_shapes(model.discriminator_layers(), lambda: model.critic(x))


def last_feature_layer(model) -> str:
    """Name of the last discriminator layer with a feature map ``[n, C > 1, h, w]`` (not the score head)."""
    shapes = discriminator_shapes(model)
    maps = [k for k, s in shapes.items() if len(s) == 4 and s[1] > 1]
    if not maps and not shapes:
        raise ValueError(f"{type(model).__name__} exposes no discriminator_layers()")
    return (maps or list(shapes))[-1]
