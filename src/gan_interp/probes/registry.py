"""Probe registry: name -> probe function and what it requires of the model and the data.

A probe is a plain function ``fn(ctx, **options) -> dict``. ``ctx`` is a
:class:`~gan_interp.probes.context.ProbeContext`; the probe writes its PNG/JSON through ``ctx.out``
(into ``<run>/probes/epoch_XXX/<probe>/``, images logged as ``probes/<probe>/<name>``) and returns a
JSON-able summary. Its keyword arguments after ``ctx`` are its options (checked against the
config by :func:`check_probe_kwargs`). Register one with::

    @register_probe("members", requires=("members",))
    def members_probe(ctx, n: int = 8) -> dict: ...

``requires`` names entries of :data:`REQUIREMENTS` (an unknown name is an error at registration).
The runner calls a probe only when every requirement holds; otherwise it records the first failing
requirement's reason under ``skipped`` in ``probes.json`` and writes nothing for the probe.

The built-in probes (:mod:`gan_interp.probes`, including ``dissection``) register when that package
is imported; :func:`get_probe` imports it first, so every registered name is known. There is no
other lookup: a probe in another module registers when that module is imported.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gan_interp.errors import ConfigError
from gan_interp.models.base import has_style_space

ProbeFn = Callable[..., dict]


@dataclass(frozen=True)
class Requirement:
    """A condition a probe needs: ``check(model, datamodule)`` and the reason logged when it fails."""

    check: Callable[[Any, Any], bool]
    reason: str


def _has_masks(datamodule: Any) -> bool:
    return datamodule is not None and datamodule.masks("train") is not None


REQUIREMENTS: dict[str, Requirement] = {
    "members": Requirement(lambda m, dm: m.n_members > 0, "model has no k-GAN members"),
    "style_space": Requirement(lambda m, dm: has_style_space(m), "model has no style space (mapping/synthesize/n_ws)"),
    "datamodule": Requirement(lambda m, dm: dm is not None, "no datamodule"),
    "concept_masks": Requirement(lambda m, dm: _has_masks(dm), "the data has no concept masks"),
    "generator_layers": Requirement(lambda m, dm: bool(m.generator_layers()), "model exposes no generator_layers()"),
    "discriminator_layers": Requirement(
        lambda m, dm: bool(m.discriminator_layers()), "model exposes no discriminator_layers()"
    ),
    "input_conv": Requirement(
        lambda m, dm: m.discriminator_input_conv() is not None, "model has no discriminator input convolution"
    ),
}

# keys of a probe's config entry consumed by the runner, not passed to the probe
# (enabled: false skips it; per_member: true also runs it on every ensemble member, probes/per_member.py)
RUNNER_KEYS = ("enabled", "per_member")


@dataclass(frozen=True)
class Probe:
    """A registered probe: its name, function and requirements."""

    name: str
    fn: ProbeFn
    requires: tuple[str, ...] = ()

    def options(self) -> list[str]:
        """The probe's option names: the function's parameters after ``ctx``."""
        return list(inspect.signature(self.fn).parameters)[1:]

    def unmet(self, model: Any, datamodule: Any) -> str | None:
        """The reason of the first requirement ``model``/``datamodule`` fail, or None if all hold."""
        for req in self.requires:
            if not REQUIREMENTS[req].check(model, datamodule):
                return REQUIREMENTS[req].reason
        return None


PROBES: dict[str, Probe] = {}


def register_probe(name: str, requires: tuple[str, ...] = ()) -> Callable[[ProbeFn], ProbeFn]:
    """Decorator: register ``fn(ctx, **options)`` as the probe ``name`` (re-registering replaces it)."""
    unknown = [r for r in requires if r not in REQUIREMENTS]
    if unknown:
        raise ValueError(f"probe {name!r} requires unknown {unknown}; choose from: {', '.join(REQUIREMENTS)}")

    def deco(fn: ProbeFn) -> ProbeFn:
        if not inspect.signature(fn).parameters:
            raise TypeError(f"probe {name!r}: {fn.__name__} must take the probe context as its first argument")
        PROBES[name] = Probe(name, fn, tuple(requires))
        return fn

    return deco


def get_probe(name: str) -> Probe:
    """The probe registered as ``name`` (one-line :class:`ConfigError` listing the choices otherwise)."""
    import gan_interp.probes  # noqa: F401  (registers the built-in probes)

    if name not in PROBES:
        raise ConfigError(f"probe {name!r} is not a known probe; choose from: {', '.join(sorted(PROBES))}")
    return PROBES[name]


def check_probe_kwargs(name: str, kwargs: Mapping[str, Any]) -> None:
    """Raise a one-line :class:`ConfigError` if ``kwargs`` are not options of probe ``name``."""
    probe = get_probe(name)
    params = list(inspect.signature(probe.fn).parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    options = probe.options()
    for key in kwargs:
        if key in RUNNER_KEYS:
            continue
        if key not in options:
            raise ConfigError(f"probes.{name}.{key} is not an option of probe {name}; options: {', '.join(options)}")
