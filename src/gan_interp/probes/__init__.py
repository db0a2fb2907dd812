"""Interpretability probes: plain functions (module + tensors in; PNG/JSON/tensors out).

Importing this package registers the built-in probes in :data:`gan_interp.probes.registry.PROBES`:

=============  ==================================================================================
saliency       SmoothGrad (Captum ``NoiseTunnel(Saliency)``) of the critic on real/fake images
activations    per-channel maps, mean activation per layer, linear CKA (layers, similar inputs,
               epochs; :func:`~gan_interp.probes.activations.cka_across_models` for models)
traversals     one z/w dimension at a time, lerp/slerp, freeze one dimension and resample the rest
directions     SeFa and GANSpace PCA directions, each next to a random-direction control
actmax         activation maximisation of a D unit in pixel space and through the generator
filters        first-layer D filters
neighbours     nearest training images of generated samples (pixel / D-feature space, chunked)
members        per-member samples and medoids (k-GAN)
dissection     GAN Dissection of a generator layer, with interventions (:mod:`gan_interp.dissect`)
=============  ==================================================================================

Each probe is ``fn(ctx, **options) -> dict`` with a :class:`~gan_interp.probes.context.ProbeContext`,
registered with what it requires of the model and the data (:mod:`gan_interp.probes.registry`).
Run them with :func:`gan_interp.probes.runner.run_probes` or during training with
:class:`gan_interp.callbacks.probe_callback.ProbeCallback`.
"""

from gan_interp.probes import (  # noqa: F401  (each registers its probe)
    activations,
    actmax,
    directions,
    dissection,
    filters,
    members,
    neighbours,
    saliency,
    traversals,
)
from gan_interp.probes.context import ProbeContext
from gan_interp.probes.registry import PROBES, REQUIREMENTS, get_probe, register_probe
from gan_interp.probes.runner import run_probes

__all__ = ["PROBES", "REQUIREMENTS", "ProbeContext", "get_probe", "register_probe", "run_probes"]
