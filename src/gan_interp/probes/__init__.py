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
=============  ==================================================================================

Run them with :func:`gan_interp.probes.runner.run_probes` or during training with
:class:`gan_interp.callbacks.probe_callback.ProbeCallback`.
"""

from gan_interp.probes import actmax, activations, directions, filters, members, neighbours, saliency, traversals  # noqa: F401
from gan_interp.probes.registry import PROBES, get_probe, register_probe
from gan_interp.probes.runner import run_probes

__all__ = ["PROBES", "get_probe", "register_probe", "run_probes"]
