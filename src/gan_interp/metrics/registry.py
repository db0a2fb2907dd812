"""Metric registry: name -> metric function, with the representations it needs.

A metric is a function ``metric(ctx, **options) -> {key: value}`` (``ctx`` is a
:class:`~gan_interp.metrics.context.MetricContext`), registered with what it reads::

    @register_metric("mmd", spaces=("pixels", "features"), forwards=mmd_test)
    def mmd(ctx: MetricContext, space: str, **options: Any) -> dict[str, float]:
        res = mmd_test(ctx.real(space), ctx.fake(space), seed=ctx.seed, **options)
        return {"mmd2": res.mmd2, ...}

Representations the runner collects while the real and the generated images stream past
(only those the selected metrics need):

=================== ===========================================================================
``pixels``          average-pooled pixels ``[n, C * p * p]`` (``pixel_size``)
``features``        feature-net vectors ``[n, d]`` (``features=``: Inception, domain net, pixels)
``logits``          the feature net's class logits ``[n, k]`` (none for nets without classes)
``images``          the images average-pooled to at most ``image_size`` px, uint8
``image_stats``     running means of sharpness, noise and total variation of the full images
``train_reference`` not streamed: the metric reads the training and held-out splits itself
=================== ===========================================================================

``needs`` names fixed representations. A metric with ``spaces`` takes a ``space`` option (the
first choice is the default) and needs the chosen representation. ``streams`` says whose
representations a metric reads: the real and the generated images (two-sample metrics), or only the
generated ones (``("fake",)``). Options are the function's keyword arguments plus, with ``forwards``,
the keyword arguments (with defaults, except ``seed``/``device``) of the function it forwards them
to; anything else is a one-line :class:`ConfigError`. A metric that cannot run on the chosen
representations raises :class:`MetricSkipped` (recorded in the result's ``info["skipped"]``).

Metrics run in registration order (the built-ins, :mod:`gan_interp.metrics.builtin`: quality,
mmd, c2st, fid, kid, is, memorisation, ssim, prdc); their values keep that order too. What each
built-in reads and writes (its output keys) is listed in :mod:`gan_interp.metrics.runner`; e.g.
``ssim`` needs ``images`` of both streams (``ssim_nn_fake ssim_nn_real ssim_pairs_fake ssim_pairs_real``),
``prdc`` needs ``features`` of both (``prdc_precision prdc_recall prdc_density prdc_coverage``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gan_interp.errors import ConfigError

REPRESENTATIONS = ("pixels", "features", "logits", "images", "image_stats", "train_reference")
STREAMS = ("real", "fake")
FORWARD_RESERVED = ("seed", "device")  # set by the metric from the context, never from the config

MetricFn = Callable[..., dict[str, float]]


class MetricSkipped(Exception):
    """Raised by a metric that cannot run on what was collected; the message says why."""


@dataclass(frozen=True)
class Needs:
    """What the runner collects: representations per stream, and whether a train reference is read."""

    real: frozenset[str] = frozenset()
    fake: frozenset[str] = frozenset()
    reference: bool = False  # a metric reads the training and held-out splits

    def __or__(self, other: Needs) -> Needs:
        return Needs(self.real | other.real, self.fake | other.fake, self.reference or other.reference)

    def of(self, stream: str) -> frozenset[str]:
        return self.real if stream == "real" else self.fake

    @property
    def any(self) -> frozenset[str]:
        return self.real | self.fake


@dataclass(frozen=True)
class MetricSpec:
    """One registered metric (see the module doc)."""

    name: str
    fn: MetricFn  # fn(ctx, **options) -> {key: value}
    needs: tuple[str, ...]  # fixed representations
    spaces: tuple[str, ...]  # choices of the `space` option (first = default); the chosen one is needed
    streams: tuple[str, ...]  # whose representations: ("real", "fake") or ("fake",)
    forwards: Callable[..., Any] | None  # options outside fn's signature go to this function
    timing: str | None  # key of the metric's seconds in the result's info (None: not timed)

    def option_names(self) -> list[str]:
        own = [
            p.name
            for p in inspect.signature(self.fn).parameters.values()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ][1:]  # minus ctx
        if self.forwards is None:
            return own
        forwarded = [
            p.name
            for p in inspect.signature(self.forwards).parameters.values()
            if p.default is not p.empty and p.name not in FORWARD_RESERVED and p.name not in own
        ]
        return own + forwarded

    def check(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` validated, with the default ``space`` filled in; one-line :class:`ConfigError`."""
        options = dict(options)
        allowed = self.option_names()
        for key in options:
            if key not in allowed:
                raise ConfigError(
                    f"metrics.metrics.{self.name}.{key} is not an option of metric {self.name}; "
                    f"options: {', '.join(allowed) or '(none)'}"
                )
        if self.spaces:
            space = options.setdefault("space", self.spaces[0])
            if space not in self.spaces:
                raise ConfigError(
                    f"metrics.metrics.{self.name}.space={space!r} must be one of {', '.join(self.spaces)}"
                )
        return options

    def needs_for(self, options: Mapping[str, Any]) -> Needs:
        """The representations this metric reads with these (checked) options."""
        reps = set(self.needs) - {"train_reference"}
        if self.spaces:
            reps.add(options["space"])
        per_stream = {s: frozenset(reps if s in self.streams else ()) for s in STREAMS}
        return Needs(per_stream["real"], per_stream["fake"], "train_reference" in self.needs)


METRICS: dict[str, MetricSpec] = {}


def register_metric(
    name: str,
    *,
    needs: tuple[str, ...] = (),  # fixed representations (see REPRESENTATIONS)
    spaces: tuple[str, ...] = (),  # choices of a `space` option (first = default); the chosen one is needed
    streams: tuple[str, ...] = STREAMS,  # whose representations the metric reads
    forwards: Callable[..., Any] | None = None,  # options outside fn's signature are keyword args of this
    timing: str | None = "",  # key of its seconds in info["seconds"] ("" -> the name; None -> not timed)
) -> Callable[[MetricFn], MetricFn]:
    """Decorator: register ``fn`` as the metric ``name`` (re-registering replaces the old one)."""
    _load_builtin()
    bad = [r for r in (*needs, *spaces) if r not in REPRESENTATIONS] + [s for s in streams if s not in STREAMS]
    if bad:
        raise ValueError(f"metric {name}: unknown representations/streams {bad}; use {REPRESENTATIONS} / {STREAMS}")

    def deco(fn: MetricFn) -> MetricFn:
        METRICS[name] = MetricSpec(
            name, fn, tuple(needs), tuple(spaces), tuple(streams), forwards, name if timing == "" else timing
        )
        return fn

    return deco


def _load_builtin() -> None:
    """Register the built-in metrics first (their order is the order metrics run in)."""
    import gan_interp.metrics.builtin  # noqa: F401


def metric_names() -> list[str]:
    """Registered metric names, in the order they run."""
    _load_builtin()
    return list(METRICS)


def get_metric(name: str) -> MetricSpec:
    """The metric registered as ``name``; one-line :class:`ConfigError` for an unknown name."""
    _load_builtin()
    if name not in METRICS:
        raise ConfigError(f"metrics.metrics.{name} is not a known metric; choose from: {', '.join(METRICS)}")
    return METRICS[name]


def normalise_metrics_cfg(metrics_cfg: Any) -> dict[str, dict[str, Any]]:
    """``{name: options}`` from a mapping, a list of names, a comma list, ``"all"`` or None.

    Entries set to ``false`` are dropped; ``{}``/None/``true`` mean the defaults. Names and options
    are checked (one-line :class:`ConfigError`) and the default ``space`` is filled in.
    """
    if metrics_cfg is None:
        return {}
    if isinstance(metrics_cfg, str):
        names = metric_names() if metrics_cfg == "all" else [m.strip() for m in metrics_cfg.split(",") if m.strip()]
        metrics_cfg = {name: {} for name in names}
    elif not isinstance(metrics_cfg, Mapping):
        metrics_cfg = {name: {} for name in metrics_cfg}
    out: dict[str, dict[str, Any]] = {}
    for name, options in metrics_cfg.items():
        if options is False:
            continue
        if not (options is None or options is True or isinstance(options, Mapping)):
            raise ConfigError(f"metrics.metrics.{name}={options!r} must be a mapping of options (or true/false)")
        out[str(name)] = get_metric(str(name)).check(options if isinstance(options, Mapping) else {})
    return out
