"""Probe registry: name -> probe function.

A probe is a plain function::

    probe(model, datamodule, out_dir, loggers, step, seed, **kwargs) -> dict

that writes its PNG/JSON into ``out_dir / <probe name>/`` (``out_dir`` is the
``<run>/probes/epoch_XXX`` folder), logs images under ``probes/<probe name>/<image name>`` to every
logger in ``loggers`` and returns a JSON-able summary. Register one with::

    @register_probe("dissection")
    def dissection(model, datamodule, out_dir, loggers, step, seed, **kwargs) -> dict: ...

Built-in probes are registered when :mod:`gan_interp.probes` is imported. A probe named ``X`` that
is not registered yet is looked up on demand by importing the module named for it in
:data:`EXTENSION_MODULES`, else ``gan_interp.probes.X``, ``gan_interp.X`` and ``gan_interp.X.probe``
(so an extension module only has to exist under one of those names).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Mapping

from gan_interp.errors import ConfigError

ProbeFn = Callable[..., dict]

PROBES: dict[str, ProbeFn] = {}

# probes that live outside this package: name -> module that registers it on import
EXTENSION_MODULES: dict[str, str] = {"dissection": "gan_interp.dissect.probe"}

# arguments every probe receives positionally/by name from the runner (not settable in config)
RESERVED_ARGS = ("model", "datamodule", "out_dir", "loggers", "step", "seed")
# keys of a probe's config entry consumed by the runner, not passed to the probe
RUNNER_KEYS = ("enabled",)


def register_probe(name: str) -> Callable[[ProbeFn], ProbeFn]:
    """Decorator: register ``fn`` as the probe ``name`` (re-registering replaces the old one)."""

    def deco(fn: ProbeFn) -> ProbeFn:
        PROBES[name] = fn
        fn.probe_name = name  # type: ignore[attr-defined]
        return fn

    return deco


# probes living outside gan_interp.probes: name -> module that registers them when imported
EXTERNAL_PROBES: dict[str, str] = {"dissection": "gan_interp.dissect.probe"}


def _try_import(name: str) -> None:
    for module in (f"gan_interp.probes.{name}", f"gan_interp.{name}", *([EXTERNAL_PROBES[name]] if name in EXTERNAL_PROBES else [])):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module.startswith(exc.name):
                continue  # that module does not exist: try the next one
            raise
        if name in PROBES:
            return


def get_probe(name: str) -> ProbeFn:
    """The probe registered as ``name`` (importing an extension module if needed)."""
    import gan_interp.probes  # noqa: F401  (registers the built-in probes)

    if name not in PROBES:
        _try_import(name)
    if name not in PROBES:
        raise ConfigError(f"probe {name!r} is not a known probe; choose from: {', '.join(sorted(PROBES))}")
    return PROBES[name]


def check_probe_kwargs(name: str, kwargs: Mapping[str, Any]) -> None:
    """Raise a one-line :class:`ConfigError` if ``kwargs`` are not options of probe ``name``."""
    fn = get_probe(name)
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    options = [p for p in params if p not in RESERVED_ARGS]
    for key in kwargs:
        if key in RUNNER_KEYS:
            continue
        if key not in options:
            raise ConfigError(f"probes.{name}.{key} is not an option of probe {name}; options: {', '.join(options)}")
