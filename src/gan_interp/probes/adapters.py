"""Model-agnostic access for probes: generator/discriminator nets, w space, k-GAN members, hooks.

Probes only rely on the :class:`~gan_interp.models.base.GANModule` contract and degrade gracefully
(``hasattr`` checks) for the optional parts:

* StyleGAN-like models: ``mapping(z) -> w [n, w_dim]`` and ``synthesize(ws)`` with
  ``ws [n, num_ws, w_dim]``; the number of ws is read from ``num_ws``/``n_ws``/``n_layers``/
  ``num_layers`` (an int attribute) or found by probing ``synthesize``.
* k-GAN-like models: ``generate(z, member=j)`` and ``k`` (int) or ``members`` (a sequence).
* SeFa: ``model.sefa_weight()`` if present, else the stacked ``style_affine_weights()``
  (StyleGAN-like, w space), else the first ``Linear``/``ConvTranspose2d`` of the generator.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

_NUM_WS_ATTRS = ("num_ws", "n_ws", "n_layers", "num_layers", "n_styles")


def has_w_space(model: nn.Module) -> bool:
    """True when the model exposes ``mapping`` and ``synthesize`` (StyleGAN-like)."""
    return callable(getattr(model, "mapping", None)) and callable(getattr(model, "synthesize", None))


def num_ws(model: nn.Module) -> int:
    """Number of per-layer w inputs of ``synthesize`` (StyleGAN-like models)."""
    for obj in (model, getattr(model, "generator", None), getattr(model, "synthesis", None)):
        for attr in _NUM_WS_ATTRS:
            value = getattr(obj, attr, None) if obj is not None else None
            if isinstance(value, int) and value > 0:
                return value
    raise AttributeError(f"{type(model).__name__} has mapping/synthesize but no num_ws-like attribute ({', '.join(_NUM_WS_ATTRS)})")


def broadcast_ws(model: nn.Module, w: Tensor) -> Tensor:
    """``w [n, w_dim]`` -> ``ws [n, num_ws, w_dim]`` (the same w for every layer)."""
    return w.unsqueeze(1).repeat(1, num_ws(model), 1)


def synthesize_w(model: nn.Module, w: Tensor) -> Tensor:
    """Images from ``w [n, w_dim]`` (broadcast to every layer) or ``ws [n, L, w_dim]``."""
    return model.synthesize(broadcast_ws(model, w) if w.ndim == 2 else w)


def n_members(model: nn.Module) -> int:
    """Number of k-GAN members (0 for single-generator models)."""
    k = getattr(model, "k", None)
    if isinstance(k, int) and k > 0:
        return k
    members = getattr(model, "members", None)
    if members is not None and not callable(members):
        try:
            return len(members)
        except TypeError:
            return 0
    return 0


def generate(model: nn.Module, z: Tensor, member: int | None = None) -> Tensor:
    """``model.generate(z)``, or one k-GAN member's images when ``member`` is given."""
    return model.generate(z) if member is None else model.generate(z, member=member)


def generate_batched(model: nn.Module, z: Tensor, batch_size: int = 64, member: int | None = None) -> Tensor:
    """Generate in chunks of ``batch_size`` (bounded memory); returns images on the model's device."""
    return torch.cat([generate(model, z[i : i + batch_size], member) for i in range(0, z.shape[0], batch_size)])


def _search(modules: list[nn.Module], kinds: tuple[type, ...]) -> nn.Module | None:
    for root in modules:
        for m in root.modules():
            if isinstance(m, kinds):
                return m
    return None


def generator_roots(model: nn.Module) -> list[nn.Module]:
    """Modules that make up the generator (synthesis side), in forward order as far as we can tell."""
    roots: list[nn.Module] = list(model.generator_layers().values()) if hasattr(model, "generator_layers") else []
    if isinstance(getattr(model, "generator", None), nn.Module):
        roots.append(model.generator)
    return roots


def discriminator_roots(model: nn.Module) -> list[nn.Module]:
    roots = list(model.discriminator_layers().values()) if hasattr(model, "discriminator_layers") else []
    for attr in ("discriminator", "critic_net", "disc"):
        if isinstance(getattr(model, attr, None), nn.Module):
            roots.append(getattr(model, attr))
    return roots


def _named_roots(model: nn.Module, word: str) -> list[nn.Module]:
    """Top-most submodules whose qualified name contains ``word`` (e.g. k-GAN ``members.0.generator``)."""
    found: list[tuple[str, nn.Module]] = []
    for name, m in model.named_modules():
        if word in name.split(".")[-1] and not any(name.startswith(f + ".") for f, _ in found):
            found.append((name, m))
    return [m for _, m in found]


def first_generator_layer(model: nn.Module) -> nn.Module | None:
    """The first ``Linear``/``ConvTranspose2d`` of the generator (where z enters)."""
    kinds = (nn.Linear, nn.ConvTranspose2d)
    found = _search(generator_roots(model), kinds)
    return found if found is not None else _search(_named_roots(model, "generator"), kinds)


def _is_conv2d(m: nn.Module) -> bool:
    """``nn.Conv2d`` or a custom conv with a 4-D ``weight`` [out, in, kh, kw] (e.g. an equalized-lr conv)."""
    if isinstance(m, nn.Conv2d):
        return True
    name = type(m).__name__.lower()
    w = getattr(m, "weight", None)
    return isinstance(w, nn.Parameter) and w.ndim == 4 and "conv" in name and "transpose" not in name and "modulated" not in name


def first_discriminator_conv(model: nn.Module) -> nn.Module | None:
    """The first convolution of the discriminator (sees the pixels): ``weight [out, in, kh, kw]``."""
    for root in discriminator_roots(model) + _named_roots(model, "discriminator"):
        for m in root.modules():
            if _is_conv2d(m):
                return m
    return None


def discriminator_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Output shape of every ``discriminator_layers()`` entry for one blank image."""
    x = torch.zeros(1, model.channels, model.resolution, model.resolution, device=model.device)
    with torch.no_grad():
        acts = run_capturing(model.discriminator_layers(), lambda: model.critic(x), stop_early=False)
    return {k: tuple(v.shape) for k, v in acts.items()}


def last_feature_layer(model: nn.Module) -> str:
    """Name of the last discriminator layer with a feature map ``[n, C > 1, h, w]`` (not the score head)."""
    shapes = discriminator_shapes(model)
    maps = [k for k, s in shapes.items() if len(s) == 4 and s[1] > 1]
    if not maps and not shapes:
        raise ValueError(f"{type(model).__name__} exposes no discriminator_layers()")
    return (maps or list(shapes))[-1]


def critic_fn(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """``x -> [n]`` scores (``model.critic``)."""
    return lambda x: model.critic(x).reshape(x.shape[0], -1).sum(1)


class StopForward(Exception):
    """Raised by a hook to end a forward pass early once every wanted activation is captured."""


@contextlib.contextmanager
def capture(layers: dict[str, nn.Module], stop_early: bool = False, detach: bool = True) -> Iterator[dict[str, Tensor]]:
    """Forward hooks that store each layer's output in the yielded dict (name -> tensor).

    With ``stop_early`` the forward pass is aborted (:class:`StopForward`) as soon as every layer
    has fired; wrap the call in :func:`run_capturing`.
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


def run_capturing(layers: dict[str, nn.Module], fn: Callable[[], object], stop_early: bool = True, detach: bool = True) -> dict[str, Tensor]:
    """Run ``fn()`` and return the outputs of ``layers`` (the forward stops after the last one)."""
    with capture(layers, stop_early=stop_early, detach=detach) as store:
        try:
            fn()
        except StopForward:
            pass
    return dict(store)


@contextlib.contextmanager
def frozen_parameters(module: nn.Module) -> Iterator[None]:
    """Temporarily set ``requires_grad=False`` on every parameter (no parameter ``.grad`` is touched)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def seeded(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (reproducible latents on any device)."""
    return torch.Generator().manual_seed(int(seed))


def fixed_z(model: nn.Module, n: int, seed: int) -> Tensor:
    """``n`` latents from a generator seeded with ``seed`` (same every epoch/run)."""
    return model.sample_z(n, generator=seeded(seed))
